package catalog

import (
	"encoding/json"
	"testing"
	"time"

	"atrium/internal/usage"
)

// TestUsageTypes checks the usage events as internal/usage emits them
// against their documentation.
func TestUsageTypes(t *testing.T) {
	c := New(usageTypes...)
	now := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	for name, payload := range map[string]any{
		usage.EventWarning: usage.WarningEvent{Metric: usage.APICalls, Threshold: 80, Used: 80, Limit: 100,
			PeriodStart: now, PeriodEnd: now.AddDate(0, 1, 0)},
		usage.EventGraceStarted: usage.GraceStartedEvent{Metric: usage.Members, Used: 21, Limit: 20, BufferLimit: 21, GraceEndsAt: now},
		usage.EventBlocked:      usage.BlockedEvent{Metric: usage.StorageBytes, Used: 2, Limit: 1, Reason: usage.BlockedPlanChanged},
	} {
		data, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(name, data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
