package billing_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
)

const day = 24 * time.Hour

// withHold rebuilds the rig's ledger with tenancy's non-payment hold.
func (r *rig) withHold(t *testing.T) {
	t.Helper()
	versions, err := billing.SyncPlans(r.ctx, r.db, r.catalog)
	if err != nil {
		t.Fatal(err)
	}
	r.ledger = billing.NewLedger(billing.LedgerConfig{DB: r.db, Catalog: r.catalog, Versions: versions,
		Logger: testkit.DiscardLogger(), Hold: tenancy.NonPaymentHold{},
		Changed: func(_ context.Context, ws uuid.UUID) { r.changed.Add(1); r.ent.Invalidate(ws) }})
	r.ent = billing.NewEntitlements(r.ledger, r.clock, func(uuid.UUID) string { return "https://example.test/upgrade" })
}

func (r *rig) deleted(t *testing.T, ws uuid.UUID) bool {
	t.Helper()
	var deleted *time.Time
	if err := r.db.ReadWorkspace(r.ctx, ws, func(tx store.Tx) error {
		return tx.QueryRow(r.ctx, `SELECT deleted_at FROM workspace WHERE id = $1`, ws).Scan(&deleted)
	}); err != nil {
		t.Fatal(err)
	}
	return deleted != nil
}

func (r *rig) dunning(t *testing.T, want int) {
	t.Helper()
	n, err := r.ledger.AdvanceDunning(r.ctx, r.db)
	if err != nil || n != want {
		t.Fatalf("AdvanceDunning took %d steps (%v), want %d", n, err, want)
	}
}

func TestDunning(t *testing.T) {
	for _, dialect := range testkit.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			r := setup(t, dialect)
			r.withHold(t)
			ws := r.workspace(t)
			r.apply(t, "evt_1", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 1))
			late := r.paid(ws, "pro", 2)
			late.Status = billing.StatusPastDue
			r.apply(t, "evt_2", billing.EventSubscriptionUpdated, late)

			r.clock.Advance(6 * day)
			r.dunning(t, 0)
			if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); !ok {
				t.Fatal("features taken before 7 days")
			}
			r.clock.Advance(day)
			r.dunning(t, 1)
			if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); ok {
				t.Fatal("still pro's features after 7 days unpaid")
			}
			if s, _ := r.ent.Suspended(r.ctx, ws); s {
				t.Fatal("suspended after 7 days")
			}
			r.clock.Advance(23 * day)
			r.dunning(t, 1)
			if s, _ := r.ent.Suspended(r.ctx, ws); !s {
				t.Fatal("not suspended after 30 days")
			}
			if r.deleted(t, ws) {
				t.Fatal("deleted after 30 days")
			}
			r.clock.Advance(30 * day)
			r.dunning(t, 1)
			r.dunning(t, 0)
			if !r.deleted(t, ws) {
				t.Fatal("not scheduled for deletion after 60 days")
			}

			// A payment restores everything.
			r.apply(t, "evt_3", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 3))
			s, _ := r.ledger.Subscription(r.ctx, ws)
			if s.DunningStep != "" || s.PastDueSince != nil || s.Status != billing.StatusActive {
				t.Fatalf("after payment %+v", s)
			}
			if r.deleted(t, ws) {
				t.Fatal("still deleted after payment")
			}
			if susp, _ := r.ent.Suspended(r.ctx, ws); susp {
				t.Fatal("still suspended after payment")
			}
			if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); !ok {
				t.Fatal("pro's features not back after payment")
			}
			want := "[subscribed past_due dunning_downgraded dunning_suspended dunning_deletion_scheduled payment_recovered]"
			if h := r.history(t, ws); fmt.Sprint(h) != want {
				t.Fatalf("history %v, want %s", h, want)
			}
			if n := r.count(t, ws, `SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action LIKE 'subscription.%'`); n != 6 {
				t.Fatalf("%d subscription audit entries, want 6", n)
			}
		})
	}
}

// TestDunningCatchesUp: a scheduler that did not run for two months takes
// every missed step once, in order.
func TestDunningCatchesUp(t *testing.T) {
	r := setup(t, "sqlite")
	r.withHold(t)
	ws := r.workspace(t)
	late := r.paid(ws, "pro", 1)
	late.Status = billing.StatusPastDue
	r.apply(t, "evt_1", billing.EventSubscriptionUpdated, late)
	r.clock.Advance(61 * day)
	r.dunning(t, 3)
	r.dunning(t, 0)
	if h := r.history(t, ws); fmt.Sprint(h) != "[past_due dunning_downgraded dunning_suspended dunning_deletion_scheduled]" {
		t.Fatalf("history %v", h)
	}
}

func TestTrialReminders(t *testing.T) {
	for _, dialect := range testkit.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			r := setup(t, dialect)
			ws := r.workspace(t)
			if _, err := r.ledger.StartTrial(r.ctx, ws); err != nil {
				t.Fatal(err)
			}
			remind := func(want int) {
				t.Helper()
				if n, err := r.ledger.RemindTrials(r.ctx, r.db); err != nil || n != want {
					t.Fatalf("RemindTrials sent %d (%v), want %d", n, err, want)
				}
			}
			r.clock.Advance(10 * day)
			remind(0)
			r.clock.Advance(day + time.Hour) // 2 days 23 hours left
			remind(1)
			remind(0)
			r.clock.Advance(2 * day) // 23 hours left
			remind(1)
			remind(0)
			if h := r.history(t, ws); fmt.Sprint(h) != "[trial_started trial_ending_3d trial_ending_1d]" {
				t.Fatalf("history %v", h)
			}
			if n := r.count(t, ws, `SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = 'subscription.changed'`); n != 3 {
				t.Fatalf("%d events", n)
			}
		})
	}
}
