package sandboxpay_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/billing/sandboxpay"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

const baseURL = "https://atrium.example"

// Test cards.
const (
	cardOK       = "4242 4242 4242 4242"
	cardDeclined = "4000 0000 0000 0002"
	cardLater    = "4000-0000-0000-0341"
)

const day = 24 * time.Hour

// rig is the sandbox over a fresh store of one dialect, feeding a real
// ledger, with a clock the test moves.
type rig struct {
	db      store.SystemDB
	clock   *testkit.Clock
	catalog *billing.Catalog
	ledger  *billing.Ledger
	p       *sandboxpay.Provider
	ctx     context.Context
}

func setup(t *testing.T, dialect store.Dialect) *rig {
	t.Helper()
	r := &rig{clock: testkit.NewClock(), ctx: kernel.WithLogger(context.Background(), testkit.DiscardLogger())}
	r.db = testkit.OpenStore(t, dialect, r.clock)
	var err error
	if r.catalog, err = billing.LoadCatalog(""); err != nil {
		t.Fatal(err)
	}
	versions, err := billing.SyncPlans(r.ctx, r.db, r.catalog)
	if err != nil {
		t.Fatal(err)
	}
	r.ledger = billing.NewLedger(billing.LedgerConfig{DB: r.db, Catalog: r.catalog, Versions: versions, Logger: testkit.DiscardLogger()})
	r.p, err = sandboxpay.New(sandboxpay.Config{DB: r.db, Catalog: r.catalog, Ledger: r.ledger, PublicBaseURL: baseURL})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) workspace(t *testing.T) uuid.UUID {
	return storetest.CreateWorkspace(t, r.db, "ws-"+strings.ToLower(uuid.NewString()[:8]))
}

func (r *rig) plan(key string) billing.Plan { return *r.catalog.Plan(key) }

// checkout starts a monthly USD checkout of plan.
func (r *rig) checkout(t *testing.T, ws uuid.UUID, plan string, trialEnd time.Time) billing.CheckoutSession {
	t.Helper()
	s, err := r.p.Checkout(r.ctx, billing.CheckoutRequest{WorkspaceID: ws, Plan: r.plan(plan), Interval: billing.Monthly,
		Currency: "usd", TrialEnd: trialEnd, SuccessURL: "/billing?checkout=success&session={CHECKOUT_SESSION_ID}",
		IdempotencyKey: "checkout-" + uuid.NewString()})
	if err != nil {
		t.Fatalf("checkout: %v", err)
	}
	return s
}

// subscribe checks out plan and completes it with card; it returns the
// sandbox subscription's ID, as the ledger has it.
func (r *rig) subscribe(t *testing.T, ws uuid.UUID, plan, card string) string {
	t.Helper()
	s := r.checkout(t, ws, plan, time.Time{})
	if _, err := r.p.CompleteCheckout(r.ctx, s.ID, card); err != nil {
		t.Fatalf("complete: %v", err)
	}
	return r.sub(t, ws).ProviderSubscriptionID
}

// sub is the workspace's subscription in the ledger.
func (r *rig) sub(t *testing.T, ws uuid.UUID) billing.Subscription {
	t.Helper()
	s, err := r.ledger.Subscription(r.ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// invoices are the workspace's invoices in the ledger, newest first.
func (r *rig) invoices(t *testing.T, ws uuid.UUID) []billing.Invoice {
	t.Helper()
	list, err := r.ledger.Invoices(r.ctx, ws, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func (r *rig) history(t *testing.T, ws uuid.UUID) string {
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
	return strings.Join(changes, " ")
}

// count runs a count query of the workspace ($1).
func (r *rig) count(t *testing.T, ws uuid.UUID, query string) int {
	t.Helper()
	var n int
	if err := r.db.ReadWorkspace(r.ctx, ws, func(tx store.Tx) error { return tx.QueryRow(r.ctx, query, ws).Scan(&n) }); err != nil {
		t.Fatal(err)
	}
	return n
}

// pending counts the events the ledger has not taken, in every workspace.
func (r *rig) pending(t *testing.T) int {
	t.Helper()
	var n int
	if err := r.db.System(r.ctx, "test: pending sandbox events", func(tx store.Tx) error {
		return tx.QueryRow(r.ctx, `SELECT count(*) FROM sandbox_event`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *rig) renew(t *testing.T) sandboxpay.Report {
	t.Helper()
	rep, err := r.p.Renew(r.ctx, r.db)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	return rep
}

// charges counts the charges a report tells of.
func charges(rep sandboxpay.Report) int { return rep.Renewed + rep.Failed + rep.Recovered + rep.Ended }

func (r *rig) change(sub string, plan string, interval billing.Interval, atPeriodEnd bool, key string) billing.ChangeRequest {
	return billing.ChangeRequest{SubscriptionID: sub, Plan: r.plan(plan), Interval: interval, Currency: "usd",
		AtPeriodEnd: atPeriodEnd, IdempotencyKey: key}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, r func() *rig)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, func() *rig { return setup(t, d) })
		})
	}
}

func TestSandboxNewNamesWhatIsMissing(t *testing.T) {
	c, err := billing.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	db := testkit.OpenSQLite(t, testkit.NewClock())
	ledger := billing.NewLedger(billing.LedgerConfig{DB: db, Catalog: c})
	good := sandboxpay.Config{DB: db, Catalog: c, Ledger: ledger, PublicBaseURL: baseURL}
	for want, change := range map[string]func(*sandboxpay.Config){
		"store":           func(c *sandboxpay.Config) { c.DB = nil },
		"catalogue":       func(c *sandboxpay.Config) { c.Catalog = nil },
		"ledger":          func(c *sandboxpay.Config) { c.Ledger = nil },
		"ATRIUM_BASE_URL": func(c *sandboxpay.Config) { c.PublicBaseURL = "atrium.example" },
	} {
		cfg := good
		change(&cfg)
		if _, err := sandboxpay.New(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("without the %s: %v", want, err)
		}
	}
}

func TestSandboxCheckout(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		t.Run("a card that succeeds subscribes and pays the first period", func(t *testing.T) {
			ws := r.workspace(t)
			s := r.checkout(t, ws, "pro", time.Time{})
			if !strings.HasPrefix(s.ID, "cs_sbx_") || s.URL != baseURL+"/sandbox/checkout/"+s.ID {
				t.Fatalf("session %+v", s)
			}
			page, err := r.p.CheckoutPage(r.ctx, s.ID)
			if err != nil || page.State != sandboxpay.PageOpen || page.PlanName != "Pro" || page.Amount != 2900 || page.Currency != "usd" {
				t.Fatalf("page %+v, %v", page, err)
			}
			redirect, err := r.p.CompleteCheckout(r.ctx, s.ID, cardOK)
			if err != nil || redirect != baseURL+"/billing?checkout=success&session="+s.ID {
				t.Fatalf("complete: %q, %v", redirect, err)
			}
			sub := r.sub(t, ws)
			now := r.clock.Now()
			if sub.PlanKey != "pro" || sub.Status != billing.StatusActive || sub.Provider != billing.ProviderSandbox ||
				sub.Amount != 2900 || !strings.HasPrefix(sub.ProviderSubscriptionID, "sub_sbx_") ||
				!strings.HasPrefix(sub.ProviderCustomerID, "cus_sbx_") || !sub.HasPaymentMethod ||
				!sub.CurrentPeriodEnd.Equal(now.AddDate(0, 1, 0)) {
				t.Fatalf("ledger %+v", sub)
			}
			invs := r.invoices(t, ws)
			if len(invs) != 1 || invs[0].Status != "paid" || invs[0].AmountPaid != 2900 || invs[0].Provider != "sandbox" ||
				len(invs[0].Lines) != 1 || invs[0].Lines[0].Description != "Pro (monthly)" {
				t.Fatalf("invoices %+v", invs)
			}
			if h := r.history(t, ws); h != "subscribed" {
				t.Fatalf("history %q", h)
			}
			if n := r.pending(t); n != 0 {
				t.Fatalf("%d events left undelivered", n)
			}
			if page, _ := r.p.CheckoutPage(r.ctx, s.ID); page.State != sandboxpay.PageCompleted {
				t.Fatalf("page after completion: %s", page.State)
			}
			if _, err := r.p.CompleteCheckout(r.ctx, s.ID, cardOK); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("second completion: %v", err)
			}
			if _, err := r.p.Checkout(r.ctx, billing.CheckoutRequest{WorkspaceID: ws, Plan: r.plan("enterprise"),
				Interval: billing.Monthly, Currency: "usd"}); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("a second subscription's checkout: %v", err)
			}
		})
		t.Run("the declined card changes nothing and the page stays open", func(t *testing.T) {
			ws := r.workspace(t)
			s := r.checkout(t, ws, "pro", time.Time{})
			_, err := r.p.CompleteCheckout(r.ctx, s.ID, cardDeclined)
			if kernel.CodeOf(err) != kernel.CodePaymentRequired || !strings.Contains(kernel.As(err).Message, "declined") {
				t.Fatalf("declined card: %v", err)
			}
			if sub := r.sub(t, ws); sub.Stored() || sub.PlanKey != "free" {
				t.Fatalf("ledger after a decline %+v", sub)
			}
			if n := r.count(t, ws, `SELECT count(*) FROM sandbox_subscription WHERE workspace_id = $1`); n != 0 {
				t.Fatalf("%d sandbox subscriptions after a decline", n)
			}
			if _, err := r.p.CompleteCheckout(r.ctx, s.ID, "4111 1111 1111 1111"); kernel.CodeOf(err) != kernel.CodeInvalid {
				t.Fatalf("unknown card: %v", err)
			}
			if page, _ := r.p.CheckoutPage(r.ctx, s.ID); page.State != sandboxpay.PageOpen {
				t.Fatalf("page after a decline: %s", page.State)
			}
			if _, err := r.p.CompleteCheckout(r.ctx, s.ID, cardOK); err != nil {
				t.Fatalf("a good card after a decline: %v", err)
			}
			if r.sub(t, ws).PlanKey != "pro" {
				t.Fatal("not subscribed")
			}
		})
		t.Run("the later-failing card is accepted now and fails at the renewal", func(t *testing.T) {
			ws := r.workspace(t)
			r.subscribe(t, ws, "pro", cardLater)
			sub := r.sub(t, ws)
			if sub.Status != billing.StatusActive || len(r.invoices(t, ws)) != 1 {
				t.Fatalf("after checkout %+v", sub)
			}
			r.clock.Set(*sub.CurrentPeriodEnd)
			if rep := r.renew(t); rep.Failed < 1 {
				t.Fatalf("report %+v", rep)
			}
			if sub := r.sub(t, ws); sub.Status != billing.StatusPastDue || sub.PastDueSince == nil {
				t.Fatalf("after the renewal %+v", sub)
			}
		})
		t.Run("an expired session takes no card", func(t *testing.T) {
			ws := r.workspace(t)
			s := r.checkout(t, ws, "pro", time.Time{})
			r.clock.Advance(24 * time.Hour)
			if page, _ := r.p.CheckoutPage(r.ctx, s.ID); page.State != sandboxpay.PageExpired {
				t.Fatalf("page: %s", page.State)
			}
			if _, err := r.p.CompleteCheckout(r.ctx, s.ID, cardOK); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("complete: %v", err)
			}
			if r.sub(t, ws).Stored() {
				t.Fatal("an expired checkout subscribed")
			}
		})
		t.Run("hostile and forged IDs find nothing", func(t *testing.T) {
			ws, other := r.workspace(t), r.workspace(t)
			s := r.checkout(t, ws, "pro", time.Time{})
			random := s.ID[len("cs_sbx_")+26:]
			otherPart := strings.TrimPrefix(kernel.FormatID("ws", other), "ws_")
			for _, id := range []string{"", "cs_sbx_", "cs_sbx_../../etc/passwd", s.ID + "x", s.ID[:len(s.ID)-1],
				strings.ToUpper(s.ID), "cs_sbx_" + otherPart + random, "sub_sbx_" + s.ID[7:], "cs_sbx_" + strings.Repeat("z", 52),
				"cs_sbx_" + strings.Repeat("0", 52), "cs_sbx_" + strings.Repeat("7", 10000), "cs_sbx_' OR 1=1 --"} {
				if _, err := r.p.CheckoutPage(r.ctx, id); kernel.CodeOf(err) != kernel.CodeNotFound {
					t.Errorf("page %q: %v", id, err)
				}
				if _, err := r.p.CompleteCheckout(r.ctx, id, cardOK); kernel.CodeOf(err) != kernel.CodeNotFound {
					t.Errorf("complete %q: %v", id, err)
				}
			}
			for _, id := range []string{"sub_sbx_x", "sub_1Nv0rN2eZvKYlo2C", "cus_sbx_" + otherPart} {
				if _, err := r.p.Subscription(r.ctx, id); kernel.CodeOf(err) != kernel.CodeNotFound {
					t.Errorf("subscription %q: %v", id, err)
				}
			}
			if _, err := r.p.Portal(r.ctx, "cus_sbx_"+otherPart, ""); kernel.CodeOf(err) != kernel.CodeNotFound {
				t.Errorf("portal of a customer without a subscription: %v", err)
			}
			if err := r.p.FailNextCharge(r.ctx, other); kernel.CodeOf(err) != kernel.CodeNotFound {
				t.Errorf("fail next charge without a subscription: %v", err)
			}
			if _, err := r.p.Checkout(r.ctx, billing.CheckoutRequest{WorkspaceID: ws, Plan: r.plan("pro"), Interval: billing.Monthly,
				Currency: "usd", SuccessURL: "https://evil.example/"}); kernel.CodeOf(err) != kernel.CodeInvalid {
				t.Errorf("a success URL of another origin: %v", err)
			}
		})
	})
}

func TestSandboxTrialThenFirstCharge(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		ws := r.workspace(t)
		if _, err := r.ledger.StartTrial(r.ctx, ws); err != nil {
			t.Fatal(err)
		}
		trialEnd := *r.sub(t, ws).TrialEnd
		r.clock.Advance(3 * day)
		s := r.checkout(t, ws, "pro", trialEnd)
		if page, _ := r.p.CheckoutPage(r.ctx, s.ID); !page.TrialEnd.Equal(trialEnd) {
			t.Fatalf("page trial end %s", page.TrialEnd)
		}
		if _, err := r.p.CompleteCheckout(r.ctx, s.ID, cardOK); err != nil {
			t.Fatal(err)
		}
		sub := r.sub(t, ws)
		if sub.Status != billing.StatusTrialing || sub.Provider != billing.ProviderSandbox || !sub.TrialEnd.Equal(trialEnd) ||
			!sub.HasPaymentMethod || len(r.invoices(t, ws)) != 0 {
			t.Fatalf("with a card on the trial %+v", sub)
		}
		r.clock.Set(trialEnd.Add(-time.Minute))
		if rep := r.renew(t); charges(rep) != 0 {
			t.Fatalf("renewed before the trial's end: %+v", rep)
		}
		r.clock.Set(trialEnd.Add(time.Hour))
		if rep := r.renew(t); rep.Renewed != 1 {
			t.Fatalf("report %+v", rep)
		}
		sub = r.sub(t, ws)
		// The trial ends on 29 January: the period ends on February's last day.
		if sub.Status != billing.StatusActive || !sub.CurrentPeriodStart.Equal(trialEnd) ||
			!sub.CurrentPeriodEnd.Equal(time.Date(2026, 2, 28, 9, 30, 0, 0, time.UTC)) {
			t.Fatalf("after the first charge %+v", sub)
		}
		invs := r.invoices(t, ws)
		if len(invs) != 1 || invs[0].Status != "paid" || invs[0].AmountPaid != 2900 || !invs[0].PeriodStart.Equal(trialEnd) {
			t.Fatalf("invoices %+v", invs)
		}
		// Adding the card records "updated" in between (the ledger's name for
		// a change of the amount the trial will pay).
		if h := r.history(t, ws); !strings.HasPrefix(h, "trial_started ") || !strings.HasSuffix(h, " subscribed") {
			t.Fatalf("history %q", h)
		}
	})
}

func TestSandboxEventsSurviveACrash(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		sandboxpay.WithoutDelivery(r.p)
		ws := r.workspace(t)
		s := r.checkout(t, ws, "pro", time.Time{})
		if _, err := r.p.CompleteCheckout(r.ctx, s.ID, cardOK); err != nil {
			t.Fatal(err)
		}
		if sub := r.sub(t, ws); sub.Stored() {
			t.Fatalf("delivered without delivery: %+v", sub)
		}
		if n := r.pending(t); n != 3 {
			t.Fatalf("%d pending events, want checkout.completed, subscription.updated, invoice.paid", n)
		}
		var wg sync.WaitGroup
		var delivered [2]int
		for i := range delivered {
			wg.Go(func() {
				n, err := r.p.DeliverPending(r.ctx, r.db)
				if err != nil {
					t.Error(err)
				}
				delivered[i] = n
			})
		}
		wg.Wait()
		if delivered[0]+delivered[1] < 3 {
			t.Fatalf("delivered %v", delivered)
		}
		sub := r.sub(t, ws)
		if sub.PlanKey != "pro" || sub.Status != billing.StatusActive || len(r.invoices(t, ws)) != 1 {
			t.Fatalf("ledger after delivery %+v", sub)
		}
		if h := r.history(t, ws); h != "subscribed" {
			t.Fatalf("history %q: an event applied twice", h)
		}
		if n := r.pending(t); n != 0 {
			t.Fatalf("%d events still pending", n)
		}
		if n, err := r.p.DeliverPending(r.ctx, r.db); n != 0 || err != nil {
			t.Fatalf("a second run delivered %d, %v", n, err)
		}
		// Later changes delivered late leave the last state.
		r.clock.Advance(day)
		id := sub.ProviderSubscriptionID
		for _, key := range []string{"c1", "r1", "c2"} {
			var err error
			if key[0] == 'c' {
				_, err = r.p.Cancel(r.ctx, id, true, key)
			} else {
				_, err = r.p.Resume(r.ctx, id, key)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n, err := r.p.DeliverPending(r.ctx, r.db); n != 3 || err != nil {
			t.Fatalf("delivered %d, %v", n, err)
		}
		if s := r.sub(t, ws); !s.CancelAtPeriodEnd {
			t.Fatalf("ledger %+v", s)
		}
	})
}
