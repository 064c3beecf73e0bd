package billing_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

// rig is a ledger over a fresh store of one dialect, with a clock the test moves.
type rig struct {
	db      store.SystemDB
	clock   *testkit.Clock
	catalog *billing.Catalog
	ledger  *billing.Ledger
	ent     *billing.Entitlements
	changed atomic.Int64
	ctx     context.Context
}

func setup(t *testing.T, dialect store.Dialect) *rig {
	t.Helper()
	r := &rig{clock: testkit.NewClock()}
	r.db = testkit.OpenStore(t, dialect, r.clock)
	r.ctx = kernel.WithLogger(context.Background(), testkit.DiscardLogger())
	r.catalog = mustCatalog(t, "")
	versions, err := billing.SyncPlans(r.ctx, r.db, r.catalog)
	if err != nil {
		t.Fatal(err)
	}
	r.ledger = billing.NewLedger(billing.LedgerConfig{DB: r.db, Catalog: r.catalog, Versions: versions, Logger: testkit.DiscardLogger(),
		Changed: func(_ context.Context, ws uuid.UUID) { r.changed.Add(1); r.ent.Invalidate(ws) }})
	r.ent = billing.NewEntitlements(r.ledger, r.clock, func(uuid.UUID) string { return "https://example.test/upgrade" })
	return r
}

func mustCatalog(t *testing.T, path string) *billing.Catalog {
	t.Helper()
	c, err := billing.LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *rig) workspace(t *testing.T) uuid.UUID {
	return storetest.CreateWorkspace(t, r.db, "ws-"+strings.ToLower(uuid.NewString()[:8]))
}

// paid is Stripe's view of an active subscription of ws to plan.
func (r *rig) paid(ws uuid.UUID, plan string, version int64) billing.ProviderSubscription {
	now := r.clock.Now()
	return billing.ProviderSubscription{Provider: billing.ProviderStripe, ID: "sub_" + ws.String()[:8], CustomerID: "cus_1",
		WorkspaceID: ws, PlanKey: plan, Interval: billing.Monthly, Currency: "usd", Status: billing.StatusActive,
		CurrentPeriodStart: now, CurrentPeriodEnd: now.AddDate(0, 1, 0), Quantity: 1, HasPaymentMethod: true, Version: version}
}

func (r *rig) apply(t *testing.T, id, typ string, view billing.ProviderSubscription) bool {
	t.Helper()
	ok, err := r.ledger.Apply(r.ctx, billing.ProviderEvent{Provider: billing.ProviderStripe, ID: id, Type: typ, Subscription: &view})
	if err != nil {
		t.Fatalf("apply %s: %v", id, err)
	}
	return ok
}

func (r *rig) history(t *testing.T, ws uuid.UUID) []string {
	t.Helper()
	var changes []string
	err := r.db.ReadWorkspace(r.ctx, ws, func(tx store.Tx) error {
		rows, err := tx.Query(r.ctx, `SELECT change FROM subscription_history WHERE workspace_id = $1 ORDER BY created_at, id`, ws)
		if err != nil {
			return err
		}
		changes, err = store.Collect(rows, func(row store.Row) (string, error) {
			var c string
			return c, row.Scan(&c)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

func (r *rig) count(t *testing.T, ws uuid.UUID, sql string) int {
	t.Helper()
	var n int
	if err := r.db.ReadWorkspace(r.ctx, ws, func(tx store.Tx) error { return tx.QueryRow(r.ctx, sql, ws).Scan(&n) }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLedger(t *testing.T) {
	for _, dialect := range testkit.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Run("a workspace that never subscribed is on the default plan", func(t *testing.T) {
				r := setup(t, dialect)
				ws := r.workspace(t)
				s, err := r.ledger.Subscription(r.ctx, ws)
				if err != nil || s.Stored() || s.PlanKey != "free" || s.Status != billing.StatusActive {
					t.Fatalf("got %+v, %v", s, err)
				}
				if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); ok {
					t.Fatal("free includes webhooks")
				}
				if n, _ := r.ent.Limit(r.ctx, ws, billing.LimitMembers); n != 5 {
					t.Fatalf("free members limit %d", n)
				}
				err = r.ent.Require(r.ctx, ws, billing.FeatureWebhooks)
				if kernel.CodeOf(err) != kernel.CodePaymentRequired || kernel.As(err).Fields["upgrade_url"] == "" ||
					kernel.As(err).Fields["feature"] != "webhooks" {
					t.Fatalf("Require: %v", err)
				}
			})
			t.Run("an event applies once, also when delivered concurrently", func(t *testing.T) {
				r := setup(t, dialect)
				ws := r.workspace(t)
				var wg sync.WaitGroup
				var applied atomic.Int64
				for range 8 {
					wg.Go(func() {
						view := r.paid(ws, "pro", 100)
						ok, err := r.ledger.Apply(r.ctx, billing.ProviderEvent{Provider: billing.ProviderStripe, ID: "evt_same",
							Type: billing.EventSubscriptionUpdated, Subscription: &view})
						if err != nil {
							t.Error(err)
						}
						if ok {
							applied.Add(1)
						}
					})
				}
				wg.Wait()
				if applied.Load() != 1 {
					t.Fatalf("applied %d times", applied.Load())
				}
				if h := r.history(t, ws); len(h) != 1 || h[0] != "subscribed" {
					t.Fatalf("history %v", h)
				}
				if n := r.count(t, ws, `SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'subscription.subscribed'`); n != 1 {
					t.Fatalf("%d audit entries", n)
				}
				if n := r.count(t, ws, `SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = 'subscription.changed'`); n != 1 {
					t.Fatalf("%d events", n)
				}
				s, _ := r.ledger.Subscription(r.ctx, ws)
				if s.PlanKey != "pro" || s.Amount != 2900 || s.Currency != "usd" || s.MonthlyAmount() != 2900 {
					t.Fatalf("subscription %+v", s)
				}
				if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); !ok {
					t.Fatal("pro lacks webhooks after the change")
				}
			})
			t.Run("events out of order leave the latest state", func(t *testing.T) {
				r := setup(t, dialect)
				ws := r.workspace(t)
				newer := r.paid(ws, "pro", 200)
				newer.CancelAtPeriodEnd = true
				r.apply(t, "evt_2", billing.EventSubscriptionUpdated, newer)
				older := r.paid(ws, "enterprise", 100)
				if !r.apply(t, "evt_1", billing.EventSubscriptionUpdated, older) {
					t.Fatal("the older event was not stored")
				}
				s, _ := r.ledger.Subscription(r.ctx, ws)
				if s.PlanKey != "pro" || !s.CancelAtPeriodEnd || s.ProviderVersion != 200 {
					t.Fatalf("an older view won: %+v", s)
				}
			})
			t.Run("deletion returns the workspace to the default plan and keeps its currency", func(t *testing.T) {
				r := setup(t, dialect)
				ws := r.workspace(t)
				r.apply(t, "evt_1", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 1))
				r.apply(t, "evt_2", billing.EventSubscriptionDeleted, r.paid(ws, "pro", 2))
				s, _ := r.ledger.Subscription(r.ctx, ws)
				if s.PlanKey != "free" || s.Currency != "usd" || s.Amount != 0 || s.CanceledAt == nil {
					t.Fatalf("after deletion %+v", s)
				}
				if h := r.history(t, ws); fmt.Sprint(h) != "[subscribed canceled]" {
					t.Fatalf("history %v", h)
				}
				// A late view from before the end does not bring it back.
				r.apply(t, "evt_late", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 1))
				if s, _ := r.ledger.Subscription(r.ctx, ws); s.PlanKey != "free" {
					t.Fatalf("a stale view revived the subscription: %+v", s)
				}
			})
			t.Run("past due starts dunning and a payment ends it", func(t *testing.T) {
				r := setup(t, dialect)
				ws := r.workspace(t)
				r.apply(t, "evt_1", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 1))
				late := r.paid(ws, "pro", 2)
				late.Status = billing.StatusPastDue
				r.apply(t, "evt_2", billing.EventSubscriptionUpdated, late)
				s, _ := r.ledger.Subscription(r.ctx, ws)
				if s.PastDueSince == nil || s.DunningStep != billing.DunningPastDue {
					t.Fatalf("past due %+v", s)
				}
				r.apply(t, "evt_3", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 3))
				s, _ = r.ledger.Subscription(r.ctx, ws)
				if s.PastDueSince != nil || s.DunningStep != "" || s.Status != billing.StatusActive {
					t.Fatalf("recovered %+v", s)
				}
				if h := r.history(t, ws); fmt.Sprint(h) != "[subscribed past_due payment_recovered]" {
					t.Fatalf("history %v", h)
				}
			})
			t.Run("an event naming no workspace is stored and changes nothing", func(t *testing.T) {
				r := setup(t, dialect)
				view := r.paid(uuid.Nil, "pro", 1)
				if !r.apply(t, "evt_x", billing.EventSubscriptionUpdated, view) {
					t.Fatal("not stored")
				}
				if r.apply(t, "evt_x", billing.EventSubscriptionUpdated, view) {
					t.Fatal("stored twice")
				}
			})
			t.Run("invoices are mirrored once and announced", func(t *testing.T) {
				r := setup(t, dialect)
				ws := r.workspace(t)
				inv := billing.ProviderInvoice{Provider: billing.ProviderStripe, ID: "in_1", WorkspaceID: ws, Number: "A-1",
					Status: "open", Currency: "usd", AmountDue: 2900, Version: 1}
				ev := func(id, typ string, v billing.ProviderInvoice) {
					if _, err := r.ledger.Apply(r.ctx, billing.ProviderEvent{Provider: billing.ProviderStripe, ID: id, Type: typ, Invoice: &v}); err != nil {
						t.Fatal(err)
					}
				}
				ev("evt_f", billing.EventInvoicePaymentFailed, inv)
				paid := inv
				paid.Status, paid.AmountPaid, paid.Version = "paid", 2900, 3
				ev("evt_p", billing.EventInvoicePaid, paid)
				stale := inv
				stale.Version = 2
				ev("evt_u", billing.EventInvoiceUpdated, stale)
				list, err := r.ledger.Invoices(r.ctx, ws, nil, 10)
				if err != nil || len(list) != 1 || list[0].Status != "paid" || list[0].AmountPaid != 2900 {
					t.Fatalf("invoices %+v, %v", list, err)
				}
				if n := r.count(t, ws, `SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type IN ('invoice.paid', 'invoice.payment_failed')`); n != 2 {
					t.Fatalf("%d invoice events", n)
				}
			})
		})
	}
}

func TestTrials(t *testing.T) {
	for _, dialect := range testkit.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			r := setup(t, dialect)
			ws := r.workspace(t)
			s, err := r.ledger.StartTrial(r.ctx, ws)
			if err != nil || s.Status != billing.StatusTrialing || s.PlanKey != "pro" || s.TrialEnd == nil {
				t.Fatalf("start: %+v, %v", s, err)
			}
			if !s.TrialEnd.Equal(r.clock.Now().Add(14 * 24 * time.Hour)) {
				t.Fatalf("trial ends %s", s.TrialEnd)
			}
			if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); !ok {
				t.Fatal("a pro trial lacks webhooks")
			}
			if _, err := r.ledger.StartTrial(r.ctx, ws); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("second start: %v", err)
			}
			if s, err = r.ledger.ExtendTrial(r.ctx, ws); err != nil || !s.TrialEnd.Equal(r.clock.Now().Add(21*24*time.Hour)) {
				t.Fatalf("extend: %+v, %v", s, err)
			}
			if _, err := r.ledger.ExtendTrial(r.ctx, ws); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("second extension: %v", err)
			}
			r.clock.Advance(20 * 24 * time.Hour)
			if n, err := r.ledger.EndExpiredTrials(r.ctx, r.db); err != nil || n != 0 {
				t.Fatalf("a running trial ended: %d, %v", n, err)
			}
			r.clock.Advance(2 * 24 * time.Hour)
			if n, err := r.ledger.EndExpiredTrials(r.ctx, r.db); err != nil || n != 1 {
				t.Fatalf("ended %d, %v", n, err)
			}
			s, _ = r.ledger.Subscription(r.ctx, ws)
			if s.PlanKey != "free" || s.Status != billing.StatusActive || !s.TrialUsed {
				t.Fatalf("after the trial %+v", s)
			}
			if ok, _ := r.ent.Can(r.ctx, ws, billing.FeatureWebhooks); ok {
				t.Fatal("webhooks kept after the trial")
			}
			if _, err := r.ledger.StartTrial(r.ctx, ws); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("a second trial: %v", err)
			}
			if h := r.history(t, ws); fmt.Sprint(h) != "[trial_started trial_extended trial_ended]" {
				t.Fatalf("history %v", h)
			}
		})
	}
}
