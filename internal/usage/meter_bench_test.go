package usage_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
	"atrium/internal/usage"
	"atrium/internal/usage/storemeter"
)

// benchWorkspaces creates n workspaces in a fresh SQLite store.
func benchWorkspaces(b *testing.B, n int) (store.SystemDB, []uuid.UUID) {
	b.Helper()
	db := testkit.OpenSQLite(b, testkit.NewClock())
	svc := tenancy.NewService(db, nil)
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ws, err := svc.Create(context.Background(), fmt.Sprintf("W%d", i), fmt.Sprintf("w-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = ws.ID
	}
	return db, ids
}

// BenchmarkIncrement is the hot path: Meter.Increment from parallel
// goroutines over 100 workspaces and 3 metrics, flushing every second to
// SQLite as Atrium does.
func BenchmarkIncrement(b *testing.B) {
	db, ids := benchWorkspaces(b, 100)
	m := usage.NewMeter(usage.MeterConfig{Counters: storemeter.New(db), Logger: testkit.DiscardLogger()})
	metrics := []string{"api_calls", "exports", "reports"}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) * 7919
		for pb.Next() {
			i++
			if err := m.Increment(context.Background(), ids[i%uint64(len(ids))], metrics[i%3], 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := m.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCountCall is what the metering middleware does per request:
// the limit, the cached overage, and the checked increment.
func BenchmarkCountCall(b *testing.B) {
	db, ids := benchWorkspaces(b, 100)
	svc, err := usage.New(usage.Config{DB: db, Counters: storemeter.New(db), Logger: testkit.DiscardLogger(),
		Limits: &limits{values: map[string]int64{"api_calls_per_month": 1 << 40, "storage_bytes": -1, "members": -1}}})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1) * 7919
		for pb.Next() {
			i++
			if _, err := svc.CountCall(context.Background(), ids[i%uint64(len(ids))], true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := svc.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}
