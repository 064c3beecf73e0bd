package app

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"atrium/internal/events"
	"atrium/internal/events/scheduler"
	"atrium/internal/httpapi"
	"atrium/internal/idempotency"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/webhooks"
)

// Intervals of the scheduled tasks.
const (
	hardDeleteEvery    = time.Hour
	tokenCleanupEvery  = 15 * time.Minute
	outboxCleanupEvery = time.Hour
	runCleanupEvery    = 24 * time.Hour
	trialSweepEvery    = 15 * time.Minute
	billingSweepEvery  = time.Hour
	sandboxRenewEvery  = 5 * time.Minute
	// runRetention is how long the scheduler's run records stay readable.
	runRetention = 90 * 24 * time.Hour
)

// initScheduled builds this node's scheduler, with every task Atrium runs
// on a schedule, and the relay lag monitor of the platform admins' view.
// Every node registers the same tasks, and one node at a time runs them. A
// fork registers its own on App.Scheduler before Run. With manual set, Run
// leaves the scheduler stopped (Options.ManualScheduler).
func (a *App) initScheduled(clock kernel.Clock, manual bool) {
	a.Scheduler = newScheduler(a.DB, clock, a.Logger, a.NodeID, a.Services.Idempotency)
	ledger := a.Services.Billing.Ledger
	a.Scheduler.Register(scheduler.Task{Name: "billing.trials", Every: trialSweepEvery, Run: func(ctx context.Context) error {
		n, err := ledger.EndExpiredTrials(ctx, a.DB)
		logCount(ctx, "expired trials ended", n)
		return err
	}})
	a.Scheduler.Register(scheduler.Task{Name: "billing.trial_reminders", Every: billingSweepEvery, Run: func(ctx context.Context) error {
		n, err := ledger.RemindTrials(ctx, a.DB)
		logCount(ctx, "trial reminders sent", n)
		return err
	}})
	if sandbox := a.sandbox; sandbox != nil {
		a.Scheduler.Register(scheduler.Task{Name: "billing.sandbox_renew", Every: sandboxRenewEvery, Run: func(ctx context.Context) error {
			report, err := sandbox.Renew(ctx, a.DB)
			logCounts(ctx, "sandbox subscriptions renewed", map[string]int64{"renewed": int64(report.Renewed),
				"failed": int64(report.Failed), "recovered": int64(report.Recovered), "ended": int64(report.Ended)})
			return err
		}})
		a.Scheduler.Register(scheduler.Task{Name: "billing.sandbox_deliver", Every: time.Minute, Run: func(ctx context.Context) error {
			n, err := sandbox.DeliverPending(store.Polling(ctx), a.DB)
			logCount(ctx, "sandbox events delivered late", n)
			return err
		}})
	}
	a.Scheduler.Register(scheduler.Task{Name: "usage.recalculate", Every: time.Hour, Run: func(ctx context.Context) error {
		n, err := a.Services.Usage.RecalculateGauges(ctx, a.DB)
		logCount(ctx, "workspaces' usage recalculated", n)
		return err
	}})
	a.Scheduler.Register(scheduler.Task{Name: "billing.dunning", Every: billingSweepEvery, Run: func(ctx context.Context) error {
		n, err := ledger.AdvanceDunning(ctx, a.DB)
		logCount(ctx, "dunning steps taken", n)
		return err
	}})
	a.relayLag = &relayLagMonitor{events: a.Events, clock: clock, every: relayLagEvery}
	a.manualScheduler = manual
}

// runScheduler runs the scheduler until ctx ends, unless it is manual.
func (a *App) runScheduler(ctx context.Context) {
	if !a.manualScheduler {
		a.Scheduler.Run(ctx)
	}
}

// newScheduler builds a scheduler over db named node, with Atrium's tasks.
func newScheduler(db store.SystemDB, clock kernel.Clock, logger *slog.Logger, node string, keys *idempotency.Store) *scheduler.Scheduler {
	s := scheduler.New(scheduler.Config{DB: db, Logger: logger, Clock: clock, Node: node})
	s.Register(scheduler.Task{Name: "workspace.hard_delete", Every: hardDeleteEvery, Run: func(ctx context.Context) error {
		n, err := tenancy.PurgeDeletedWorkspaces(ctx, db)
		logCount(ctx, "workspaces purged", n)
		return err
	}})
	s.Register(scheduler.Task{Name: "account.purge", Every: hardDeleteEvery, Run: func(ctx context.Context) error {
		deleted, err := identity.PurgeDeletedAccounts(ctx, db)
		logCounts(ctx, "deleted accounts' traces purged", deleted)
		return err
	}})
	s.Register(scheduler.Task{Name: "tokens.cleanup", Every: tokenCleanupEvery, Run: func(ctx context.Context) error {
		deleted, err := identity.DeleteExpiredCredentials(ctx, db)
		logCounts(ctx, "expired credentials deleted", deleted)
		if err != nil {
			return err
		}
		n, err := tenancy.DeleteExpiredInvites(ctx, db)
		logCount(ctx, "expired invitations deleted", n)
		return err
	}})
	s.Register(scheduler.Task{Name: "idempotency.cleanup", Every: tokenCleanupEvery, Run: func(ctx context.Context) error {
		n, err := store.DeleteInBatches(ctx, 500, keys.DeleteExpired)
		logCount(ctx, "expired idempotency keys deleted", n)
		return err
	}})
	s.Register(scheduler.Task{Name: "outbox.cleanup", Every: outboxCleanupEvery, Run: func(ctx context.Context) error {
		c, err := events.Cleanup(ctx, db)
		logCounts(ctx, "sent events and finished jobs deleted", map[string]int64{"outbox": c.SentEvents, "job": c.FinishedJobs})
		return err
	}})
	s.Register(scheduler.Task{Name: "webhooks.cleanup", Every: outboxCleanupEvery, Run: func(ctx context.Context) error {
		n, err := webhooks.DeleteOldDeliveries(ctx, db)
		logCount(ctx, "settled webhook deliveries deleted", n)
		return err
	}})
	s.Register(scheduler.Task{Name: "scheduler.cleanup", Every: runCleanupEvery, Run: func(ctx context.Context) error {
		n, err := s.DeleteRunsOlderThan(ctx, runRetention)
		logCount(ctx, "old scheduler runs deleted", n)
		return err
	}})
	return s
}

// logCount logs, in the task's log, how many rows a task handled, if any;
// the scheduler logs every run's end already.
func logCount[N int | int64](ctx context.Context, what string, n N) {
	if n > 0 {
		kernel.Logger(ctx).InfoContext(ctx, what, "count", n)
	}
}

// logCounts is logCount for a count per table.
func logCounts(ctx context.Context, what string, counts map[string]int64) {
	var attrs []any
	for _, table := range slices.Sorted(maps.Keys(counts)) {
		if counts[table] > 0 {
			attrs = append(attrs, table, counts[table])
		}
	}
	if len(attrs) > 0 {
		kernel.Logger(ctx).InfoContext(ctx, what, attrs...)
	}
}

// adminDeps is what the platform-admin routes read.
func (a *App) adminDeps() *httpapi.AdminDeps {
	return &httpapi.AdminDeps{Admins: a.Services.Identity, Scheduler: a.Scheduler, RelayLag: a.relayLag, Node: a.NodeID}
}
