// Package usage meters what workspaces use and holds them to their plan's
// quotas.
//
// Three metrics are measured against the limits of a workspace's plan:
//
//	api_calls      a counter: calls made with a bearer credential in the
//	               billing period, against api_calls_per_month; counted by
//	               a Meter on the hot path, without a database write per call
//	storage_bytes  a gauge: bytes the workspace stores, summed from the
//	               registered StorageSources by RecalculateGauges (hourly)
//	members        a gauge: memberships plus pending, unexpired invitations,
//	               counted from tenancy's tables whenever it is needed
//
// Usage is kept per period (usage_counter) as history. The rules (rules.go)
// warn at 80, 90, 95 and 100 % of a limit, each once per period (an event
// whose subscriber mails the owners and admins, and a response header on
// metered calls), allow growth up to 5 % past the limit for 7 days, and then
// refuse growth with quota_exceeded (402). Reading and deleting are never
// refused.
//
// Growth is decided two ways. A gauge that grows inside a write transaction
// (an invitation, a membership) is admitted by Admit, in that transaction,
// which serialises the workspace's admissions: of many requests racing for
// the last seat, exactly one wins. API calls are admitted by CountCall
// against the live count of the node's Meter: exact on one node, and across
// nodes within one flush interval (a second), since a node sees another's
// calls once they are flushed.
package usage

import (
	"context"
	"time"

	"github.com/google/uuid"

	"atrium/internal/store"
	"atrium/internal/tenancy"
)

// The metrics.
const (
	APICalls     = "api_calls"
	StorageBytes = "storage_bytes"
	Members      = "members"
)

// metric describes one metric: the plan limit it is measured against and
// whether it is a counter (grows in a period, starts again at 0 in the next)
// or a gauge (a level, carried from one period to the next).
type metric struct {
	Name    string
	Limit   string // the plan's limit, as PlanLimits names it
	Counter bool
	// Words name it in a sentence ("API calls").
	Words string
}

// metrics lists every metric, in the order GET /usage shows them.
var metrics = []metric{
	{Name: APICalls, Limit: "api_calls_per_month", Counter: true, Words: "API calls"},
	{Name: StorageBytes, Limit: "storage_bytes", Words: "storage"},
	{Name: Members, Limit: "members", Words: "members"},
}

// Metrics returns the names of every metric, in the order Usage lists them.
func Metrics() []string {
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = m.Name
	}
	return names
}

func lookupMetric(name string) (metric, bool) {
	for _, m := range metrics {
		if m.Name == name {
			return m, true
		}
	}
	return metric{}, false
}

// PlanLimits reads the limits of a workspace's current plan; billing.Entitlements is one.
type PlanLimits interface {
	// Limit returns the workspace's limit for metric ("members", "storage_bytes", "api_calls_per_month", …) under its current plan; -1 is unlimited.
	Limit(ctx context.Context, workspaceID uuid.UUID, metric string) (int64, error)
}

// Periods says which period usage at a given time is counted in: calendar
// months by default (CalendarMonths); billing may supply subscription
// periods. The Meter asks on every increment, so an implementation must
// answer from memory.
type Periods interface {
	// Period returns the period of workspaceID that contains at, as a start
	// and an exclusive end.
	Period(ctx context.Context, workspaceID uuid.UUID, at time.Time) (start, end time.Time, err error)
}

// CalendarMonths is the period of every workspace: the calendar month in UTC.
type CalendarMonths struct{}

// Period returns the UTC calendar month containing at; it never fails.
func (CalendarMonths) Period(_ context.Context, _ uuid.UUID, at time.Time) (time.Time, time.Time, error) {
	at = at.UTC()
	start := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0), nil
}

// StorageSource is one kind of data a workspace stores (files, say). The
// storage_bytes gauge is the sum over every registered source; with none it
// is 0.
type StorageSource interface {
	// StorageBytes returns how many bytes workspaceID stores, read in tx, a
	// transaction bound to that workspace.
	StorageBytes(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) (int64, error)
}

// Directory names whom to tell about a workspace's usage; tenancy.Service
// is one.
type Directory interface {
	// Admins returns the workspace and its owners and admins with their
	// names and addresses.
	Admins(ctx context.Context, workspaceID uuid.UUID) (tenancy.Workspace, []tenancy.Member, error)
}
