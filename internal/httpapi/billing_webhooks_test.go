package httpapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/billing/stripepay"
	"atrium/internal/billing/stripepay/stripetest"
	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

const stripeWebhookPath = "/api/v1/billing/webhooks/stripe"

// webhookRig is the API with the Stripe endpoint over stripe-mock and a real
// ledger on a fresh store, and one workspace.
type webhookRig struct {
	url      string
	db       store.SystemDB
	ledger   *billing.Ledger
	provider *stripepay.Provider
	ws       uuid.UUID
	logs     *syncBuffer
}

// syncBuffer collects the log lines of concurrent requests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func setupWebhooks(t *testing.T, dialect store.Dialect) *webhookRig {
	t.Helper()
	provider, _ := stripetest.New(t, nil)
	ctx := context.Background()
	db := testkit.OpenStore(t, dialect, kernel.SystemClock{})
	catalog, err := billing.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := billing.SyncPlans(ctx, db, catalog)
	if err != nil {
		t.Fatal(err)
	}
	ledger := billing.NewLedger(billing.LedgerConfig{DB: db, Catalog: catalog, Versions: versions, Logger: testkit.DiscardLogger()})
	r := &webhookRig{db: db, ledger: ledger, provider: provider, logs: &syncBuffer{},
		ws: storetest.CreateWorkspace(t, db, "acme-"+strings.ToLower(uuid.NewString()[:8]))}
	r.url = serveWebhooks(t, provider, ledger, r.logs)
	return r
}

func serveWebhooks(t *testing.T, provider httpapi.StripeWebhooks, ledger httpapi.LedgerApplier, logs *syncBuffer) string {
	t.Helper()
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{Logger: logger, StripeWebhooks: provider, BillingLedger: ledger}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// subscriptionEvent is a signed-able Stripe event about a subscription of the rig's workspace.
func (r *webhookRig) subscriptionEvent(id, typ, subscriptionID, status string, created time.Time) stripetest.Event {
	return stripetest.Event{ID: id, Type: typ, Created: created, Object: map[string]any{
		"id": subscriptionID, "object": "subscription", "status": status, "customer": "cus_acme", "currency": "usd",
		"metadata": map[string]string{"atrium_workspace_id": kernel.FormatID(kernel.PrefixWorkspace, r.ws), "atrium_plan": "pro"},
	}}
}

func postWebhook(t *testing.T, url string, payload []byte, signature string) response {
	t.Helper()
	return call(t, url, http.MethodPost, stripeWebhookPath, map[string]string{"Stripe-Signature": signature}, string(payload))
}

func (r *webhookRig) events(t *testing.T) int {
	t.Helper()
	var n int
	if err := r.db.ReadTx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM billing_event`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *webhookRig) history(t *testing.T) int {
	t.Helper()
	var n int
	if err := r.db.ReadWorkspace(context.Background(), r.ws, func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM subscription_history WHERE workspace_id = $1`, r.ws).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *webhookRig) subscription(t *testing.T) billing.Subscription {
	t.Helper()
	s, err := r.ledger.Subscription(context.Background(), r.ws)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertReceived(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK || r.body["received"] != true {
		t.Fatalf("status %d body %s, want 200 {\"received\":true}", r.status, r.raw)
	}
}

func TestStripeWebhookRefusesBadSignaturesAndChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := setupWebhooks(t, d)
		payload := r.subscriptionEvent("evt_bad", "customer.subscription.updated", "sub_bad", "active", time.Now()).Payload(t)
		good := stripetest.Sign(payload, time.Now())
		changed := bytes.Replace(payload, []byte(`"active"`), []byte(`"activf"`), 1)
		for name, tc := range map[string]struct {
			payload   []byte
			signature string
		}{
			"missing signature":   {payload, ""},
			"malformed signature": {payload, "v1=zz,t=yesterday"},
			"body changed":        {changed, good},
			"old timestamp":       {payload, stripetest.Sign(payload, time.Now().Add(-6*time.Minute))},
		} {
			res := postWebhook(t, r.url, tc.payload, tc.signature)
			assertEnvelope(t, res, http.StatusBadRequest, kernel.CodeInvalid)
			if strings.Contains(res.raw, stripetest.WebhookSecret) {
				t.Errorf("%s: the answer shows the secret: %s", name, res.raw)
			}
		}
		if n := r.events(t); n != 0 {
			t.Errorf("%d events stored after refused deliveries", n)
		}
		if s := r.subscription(t); s.Stored() || s.PlanKey != "free" {
			t.Errorf("subscription after refused deliveries: %+v", s)
		}
	})
}

func TestStripeWebhookCapsTheBodyAt64KiB(t *testing.T) {
	t.Parallel()
	provider, _ := stripetest.New(t, nil)
	url := serveWebhooks(t, provider, unusedLedger{t}, &syncBuffer{})

	event := stripetest.Event{ID: "evt_big", Type: "charge.succeeded", Object: map[string]any{"id": "ch_1", "object": "charge"}}.Payload(t)
	exact := append(bytes.Clone(event), bytes.Repeat([]byte(" "), 64<<10-len(event))...) // JSON allows trailing spaces
	assertReceived(t, postWebhook(t, url, exact, stripetest.Sign(exact, time.Now())))

	over := append(bytes.Clone(exact), ' ')
	assertEnvelope(t, postWebhook(t, url, over, stripetest.Sign(over, time.Now())), http.StatusRequestEntityTooLarge, kernel.CodeTooLarge)
	huge := bytes.Repeat([]byte("x"), 1<<20)
	assertEnvelope(t, postWebhook(t, url, huge, stripetest.Sign(huge, time.Now())), http.StatusRequestEntityTooLarge, kernel.CodeTooLarge)
}

// unusedLedger fails the test if an event reaches it.
type unusedLedger struct{ t *testing.T }

func (l unusedLedger) Apply(context.Context, billing.ProviderEvent) (bool, error) {
	l.t.Error("an event reached the ledger")
	return false, nil
}

func TestStripeWebhookAppliesEachEventOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := setupWebhooks(t, d)
		payload := r.subscriptionEvent("evt_once", "customer.subscription.created", "sub_once", "active", time.Now()).Payload(t)
		signature := stripetest.Sign(payload, time.Now())

		assertReceived(t, postWebhook(t, r.url, payload, signature))
		s := r.subscription(t)
		if !s.Stored() || s.PlanKey != "pro" || s.Provider != billing.ProviderStripe || s.ProviderSubscriptionID != "sub_once" ||
			s.Status != billing.StatusActive || s.ProviderVersion == 0 {
			t.Fatalf("subscription after the event: %+v", s)
		}
		history := r.history(t)

		// The same delivery again, then many at once: all answered 200, none applied.
		assertReceived(t, postWebhook(t, r.url, payload, signature))
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if res := call(t, r.url, http.MethodPost, stripeWebhookPath, map[string]string{"Stripe-Signature": signature}, string(payload)); res.status != http.StatusOK {
					t.Errorf("concurrent duplicate: %d %s", res.status, res.raw)
				}
			})
		}
		wg.Wait()
		if n := r.events(t); n != 1 {
			t.Errorf("%d events stored, want 1", n)
		}
		if after := r.subscription(t); after.ProviderVersion != s.ProviderVersion || r.history(t) != history {
			t.Errorf("a duplicate was applied: version %d -> %d, history %d -> %d", s.ProviderVersion, after.ProviderVersion, history, r.history(t))
		}

		// A second event about the same subscription, of the same type and
		// state: stored, but the subscription records no second change.
		again := r.subscriptionEvent("evt_once_again", "customer.subscription.created", "sub_once", "active", time.Now()).Payload(t)
		assertReceived(t, postWebhook(t, r.url, again, stripetest.Sign(again, time.Now())))
		if r.history(t) != history {
			t.Errorf("the same change was recorded twice")
		}
	})
}

func TestStripeWebhookConcurrentFirstDeliveries(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := setupWebhooks(t, d)
		payload := r.subscriptionEvent("evt_race", "customer.subscription.updated", "sub_race", "active", time.Now()).Payload(t)
		signature := stripetest.Sign(payload, time.Now())
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if res := call(t, r.url, http.MethodPost, stripeWebhookPath, map[string]string{"Stripe-Signature": signature}, string(payload)); res.status != http.StatusOK {
					t.Errorf("concurrent delivery: %d %s", res.status, res.raw)
				}
			})
		}
		wg.Wait()
		if n := r.events(t); n != 1 {
			t.Errorf("%d events stored, want 1", n)
		}
		if n := r.history(t); n != 1 {
			t.Errorf("%d history rows, want the one change", n)
		}
	})
}

// TestStripeWebhookEndsOnStripesStateWhateverTheOrder delivers a
// subscription's events newest first. Each is read again from Stripe when it
// arrives, so the ledger ends on Stripe's subscription as it is (stripe-mock
// answers the same subscription every time), with the last read's version.
func TestStripeWebhookEndsOnStripesStateWhateverTheOrder(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := setupWebhooks(t, d)
		now := time.Now()
		for _, e := range []stripetest.Event{
			r.subscriptionEvent("evt_3", "customer.subscription.updated", "sub_order", "past_due", now),
			r.subscriptionEvent("evt_2", "customer.subscription.updated", "sub_order", "active", now.Add(-time.Second)),
			r.subscriptionEvent("evt_1", "customer.subscription.created", "sub_order", "incomplete", now.Add(-2*time.Second)),
		} {
			payload := e.Payload(t)
			assertReceived(t, postWebhook(t, r.url, payload, stripetest.Sign(payload, time.Now())))
		}
		stripeNow, err := r.provider.Subscription(context.Background(), "sub_order")
		if err != nil {
			t.Fatal(err)
		}
		s := r.subscription(t)
		if s.ProviderSubscriptionID != "sub_order" || s.Status != stripeNow.Status || s.Interval != stripeNow.Interval ||
			!s.CurrentPeriodEnd.Equal(stripeNow.CurrentPeriodEnd) || s.CancelAtPeriodEnd != stripeNow.CancelAtPeriodEnd ||
			s.Currency != stripeNow.Currency || s.ProviderVersion >= stripeNow.Version {
			t.Errorf("ledger %+v\nStripe %+v", s, stripeNow)
		}
		if n := r.events(t); n != 3 {
			t.Errorf("%d events stored, want 3", n)
		}
	})
}

func TestStripeWebhookIgnoresUnknownTypes(t *testing.T) {
	t.Parallel()
	r := setupWebhooks(t, store.SQLite)
	payload := stripetest.Event{ID: "evt_unknown_type", Type: "payout.paid", Object: map[string]any{"id": "po_1", "object": "payout"}}.Payload(t)
	assertReceived(t, postWebhook(t, r.url, payload, stripetest.Sign(payload, time.Now())))
	logs := r.logs.String()
	if !strings.Contains(logs, "billing webhook ignored") || !strings.Contains(logs, "evt_unknown_type") || !strings.Contains(logs, "payout.paid") {
		t.Errorf("the ignored event was not logged with its ID and type: %s", logs)
	}
	if n := r.events(t); n != 0 {
		t.Errorf("%d events stored for an ignored type", n)
	}
}

func TestStripeWebhookLedgerFailureAsksForARetry(t *testing.T) {
	t.Parallel()
	provider, _ := stripetest.New(t, nil)
	ctx := context.Background()
	db, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(t.TempDir(), "atrium.db"), Clock: kernel.SystemClock{}, Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	catalog, _ := billing.LoadCatalog("")
	ledger := billing.NewLedger(billing.LedgerConfig{DB: db, Catalog: catalog, Logger: testkit.DiscardLogger()})
	url := serveWebhooks(t, provider, ledger, &syncBuffer{})
	if err := db.Close(); err != nil { // the database goes away
		t.Fatal(err)
	}
	r := &webhookRig{ws: kernel.NewID()}
	payload := r.subscriptionEvent("evt_db_down", "customer.subscription.updated", "sub_down", "active", time.Now()).Payload(t)
	res := postWebhook(t, url, payload, stripetest.Sign(payload, time.Now()))
	assertEnvelope(t, res, http.StatusInternalServerError, kernel.CodeInternal)
}
