package stripepay_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v85/webhook"

	"atrium/internal/billing"
	"atrium/internal/billing/stripepay"
	"atrium/internal/billing/stripepay/stripetest"
	"atrium/internal/kernel"
)

// subscriptionObject is a subscription as an event carries it.
func subscriptionObject(id, status string, workspace uuid.UUID) map[string]any {
	return map[string]any{
		"id": id, "object": "subscription", "status": status, "customer": "cus_webhook", "currency": "usd",
		"metadata": map[string]string{"atrium_workspace_id": kernel.FormatID(kernel.PrefixWorkspace, workspace), "atrium_plan": "pro"},
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_1", "object": "subscription_item", "quantity": 1,
			"price": map[string]any{"id": "price_unknown", "object": "price", "currency": "usd", "unit_amount": 2900,
				"recurring": map[string]any{"interval": "month", "interval_count": 1}},
		}}},
	}
}

func invoiceObject(id, status string, workspace uuid.UUID) map[string]any {
	return map[string]any{
		"id": id, "object": "invoice", "status": status, "customer": "cus_webhook", "currency": "usd", "amount_due": 2900,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{
			"subscription": "sub_webhook",
			"metadata":     map[string]string{"atrium_workspace_id": kernel.FormatID(kernel.PrefixWorkspace, workspace), "atrium_plan": "pro"},
		}},
	}
}

func signed(t *testing.T, e stripetest.Event) ([]byte, string) {
	t.Helper()
	payload := e.Payload(t)
	return payload, stripetest.Sign(payload, time.Now())
}

func TestParseWebhookRefusesBadSignatures(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	workspace := kernel.NewID()
	payload := stripetest.Event{ID: "evt_sig", Type: "customer.subscription.updated", Object: subscriptionObject("sub_1", "active", workspace)}.Payload(t)
	good := stripetest.Sign(payload, time.Now())
	changed := bytes.Clone(payload)
	changed[bytes.IndexByte(changed, '1')] = '2' // one byte of the body

	for name, tc := range map[string]struct {
		payload []byte
		header  string
		want    string
	}{
		"missing signature":    {payload, "", "missing"},
		"malformed header":     {payload, "t=not-a-time,v1=abc", "malformed"},
		"no v1 signature":      {payload, "t=" + strings.Split(strings.TrimPrefix(good, "t="), ",")[0], "matches"},
		"body changed":         {changed, good, "matches"},
		"other secret":         {payload, signWith(payload, "whsec_other"), "matches"},
		"older than 300 s":     {payload, stripetest.Sign(payload, time.Now().Add(-301*time.Second)), "older than 300 seconds"},
		"signed, not an event": {[]byte(`{"object":"list"}`), stripetest.Sign([]byte(`{"object":"list"}`), time.Now()), "not a Stripe event"},
	} {
		_, err := p.ParseWebhook(context.Background(), tc.payload, tc.header)
		if !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("%s: err = %v, want invalid", name, err)
			continue
		}
		if msg := kernel.As(err).Message; !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q, want it to say %q", name, msg, tc.want)
		}
		if strings.Contains(err.Error(), stripetest.WebhookSecret) {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("refused events reached Stripe: %+v", calls)
	}
	if ev, err := p.ParseWebhook(context.Background(), payload, good); err != nil || ev.ID != "evt_sig" {
		t.Errorf("the well-signed event: %+v, %v", ev, err)
	}
}

func signWith(payload []byte, secret string) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret}).Header
}

func TestParseWebhookIgnoresUnknownTypesWithoutCallingStripe(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	payload, header := signed(t, stripetest.Event{ID: "evt_unknown", Type: "payment_intent.created", Object: map[string]any{"id": "pi_1", "object": "payment_intent"}})
	ev, err := p.ParseWebhook(context.Background(), payload, header)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != billing.EventIgnored || ev.ID != "evt_unknown" || ev.ProviderType != "payment_intent.created" || ev.Provider != "stripe" ||
		!bytes.Equal(ev.Raw, payload) || ev.Subscription != nil || ev.Invoice != nil || ev.Customer != nil {
		t.Errorf("event = %+v", ev)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("an ignored event reached Stripe: %+v", calls)
	}
}

func TestParseWebhookMapsEachHandledType(t *testing.T) {
	t.Parallel()
	p, _ := stripetest.New(t, nil)
	workspace := kernel.NewID()
	ws := kernel.FormatID(kernel.PrefixWorkspace, workspace)
	session := map[string]any{
		"id": "cs_1", "object": "checkout.session", "mode": "subscription", "status": "complete", "client_reference_id": ws,
		"customer": "cus_checkout", "subscription": "sub_checkout",
		"metadata":         map[string]string{"atrium_workspace_id": ws, "atrium_plan": "pro"},
		"customer_details": map[string]any{"email": "ada@example.com", "name": "Ada"},
	}
	customer := map[string]any{"id": "cus_webhook", "object": "customer", "email": "ada@example.com",
		"metadata": map[string]string{"atrium_workspace_id": ws}}

	for _, tc := range []struct {
		stripeType string
		object     map[string]any
		want       string
		check      func(t *testing.T, ev billing.ProviderEvent)
	}{
		{"checkout.session.completed", session, billing.EventCheckoutCompleted, func(t *testing.T, ev billing.ProviderEvent) {
			if ev.Subscription == nil || ev.Subscription.ID != "sub_checkout" || ev.Subscription.WorkspaceID != workspace || ev.Subscription.PlanKey != "pro" {
				t.Errorf("subscription = %+v", ev.Subscription)
			}
			if c := ev.Customer; c == nil || c.ID != "cus_checkout" || c.WorkspaceID != workspace || c.Email != "ada@example.com" || c.Name != "Ada" {
				t.Errorf("customer = %+v", ev.Customer)
			}
		}},
		{"customer.subscription.created", subscriptionObject("sub_created", "incomplete", workspace), billing.EventSubscriptionUpdated, nil},
		{"customer.subscription.updated", subscriptionObject("sub_updated", "past_due", workspace), billing.EventSubscriptionUpdated, nil},
		{"customer.subscription.deleted", subscriptionObject("sub_deleted", "canceled", workspace), billing.EventSubscriptionDeleted, nil},
		{"invoice.paid", invoiceObject("in_paid", "paid", workspace), billing.EventInvoicePaid, nil},
		{"invoice.payment_failed", invoiceObject("in_failed", "open", workspace), billing.EventInvoicePaymentFailed, nil},
		{"customer.updated", customer, billing.EventCustomerUpdated, func(t *testing.T, ev billing.ProviderEvent) {
			if c := ev.Customer; c == nil || c.ID != "cus_webhook" || c.WorkspaceID != workspace {
				t.Errorf("customer = %+v", ev.Customer)
			}
		}},
	} {
		t.Run(tc.stripeType, func(t *testing.T) {
			created := time.Now().Add(-time.Minute)
			payload := stripetest.Event{ID: "evt_" + tc.stripeType, Type: tc.stripeType, Created: created, Object: tc.object}.Payload(t)
			ev, err := p.ParseWebhook(context.Background(), payload, stripetest.Sign(payload, time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != tc.want || ev.ProviderType != tc.stripeType || ev.ID != "evt_"+tc.stripeType || !ev.CreatedAt.Equal(created.Truncate(time.Second)) {
				t.Fatalf("event = %s %s %s %v, want type %s", ev.ID, ev.Type, ev.ProviderType, ev.CreatedAt, tc.want)
			}
			if strings.HasPrefix(tc.stripeType, "customer.subscription.") {
				s := ev.Subscription
				if s == nil || s.ID != tc.object["id"] || s.WorkspaceID != workspace || s.PlanKey != "pro" || s.Provider != "stripe" {
					t.Fatalf("subscription = %+v", s)
				}
				// The view is Stripe's subscription as it is now (stripe-mock's
				// says active), not the copy the event carried.
				if s.Status != billing.StatusActive || s.Version <= created.UnixMicro() {
					t.Errorf("subscription status %s version %d: want Stripe's current state, read after the event", s.Status, s.Version)
				}
			}
			if strings.HasPrefix(tc.stripeType, "invoice.") {
				inv := ev.Invoice
				if inv == nil || inv.ID != tc.object["id"] || inv.WorkspaceID != workspace || inv.Version <= created.UnixMicro() || inv.Status == "" {
					t.Fatalf("invoice = %+v", inv)
				}
				if ev.Subscription == nil || ev.Subscription.WorkspaceID != workspace || ev.Subscription.PlanKey != "pro" {
					t.Errorf("invoice's subscription = %+v", ev.Subscription)
				}
			}
			if tc.check != nil {
				tc.check(t, ev)
			}
		})
	}
}

func TestParseWebhookIgnoresObjectsAtriumDidNotCreate(t *testing.T) {
	t.Parallel()
	p, _ := stripetest.New(t, nil)
	foreign := subscriptionObject("sub_foreign", "active", uuid.Nil)
	foreign["metadata"] = map[string]string{}
	payload, header := signed(t, stripetest.Event{ID: "evt_foreign", Type: "customer.subscription.updated", Object: foreign})
	ev, err := p.ParseWebhook(context.Background(), payload, header)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != billing.EventIgnored || ev.Subscription != nil {
		t.Errorf("event about another product's subscription = %+v, want ignored", ev)
	}
	oneOff := map[string]any{"id": "cs_pay", "object": "checkout.session", "mode": "payment", "client_reference_id": "ws_x"}
	payload, header = signed(t, stripetest.Event{ID: "evt_payment", Type: "checkout.session.completed", Object: oneOff})
	if ev, err := p.ParseWebhook(context.Background(), payload, header); err != nil || ev.Type != billing.EventIgnored {
		t.Errorf("one-off payment session = %+v, %v, want ignored", ev, err)
	}
}

// TestParseWebhookVersionsFollowReadsNotArrival delivers a subscription's
// events newest first: each view is read from Stripe when its event is
// parsed, so versions rise in the order of the reads, and the view a ledger
// keeps (the highest version) is the last read, Stripe's current state,
// whatever order the events were created in.
func TestParseWebhookVersionsFollowReadsNotArrival(t *testing.T) {
	t.Parallel()
	p, _ := stripetest.New(t, nil)
	workspace := kernel.NewID()
	now := time.Now()
	events := []stripetest.Event{ // newest first: the worst arrival order
		{ID: "evt_3", Type: "customer.subscription.deleted", Created: now, Object: subscriptionObject("sub_order", "canceled", workspace)},
		{ID: "evt_2", Type: "customer.subscription.updated", Created: now.Add(-time.Second), Object: subscriptionObject("sub_order", "active", workspace)},
		{ID: "evt_1", Type: "customer.subscription.created", Created: now.Add(-2 * time.Second), Object: subscriptionObject("sub_order", "incomplete", workspace)},
	}
	var kept *billing.ProviderSubscription
	var last int64
	for _, e := range events {
		payload, header := signed(t, e)
		ev, err := p.ParseWebhook(context.Background(), payload, header)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Subscription.Version <= last {
			t.Fatalf("%s: version %d after %d: versions must rise with each read", e.ID, ev.Subscription.Version, last)
		}
		last = ev.Subscription.Version
		if kept == nil || ev.Subscription.Version >= kept.Version { // the ledger's rule
			kept = ev.Subscription
		}
	}
	current, err := p.Subscription(context.Background(), "sub_order")
	if err != nil {
		t.Fatal(err)
	}
	current.Version, kept.Version = 0, 0
	kept.WorkspaceID, kept.PlanKey = current.WorkspaceID, current.PlanKey // stripe-mock's copy has no metadata
	if *kept != current {
		t.Errorf("kept %+v\nStripe has %+v", *kept, current)
	}
}

// TestParseWebhookFallsBackToTheEventsCopy answers the subscription read
// with Stripe's 404, as for a subscription deleted since (stripe-mock knows
// every ID): the event's copy is used, versioned with the event's time.
func TestParseWebhookFallsBackToTheEventsCopy(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such subscription"}}`))
	}))
	t.Cleanup(gone.Close)
	p, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", WebhookSecret: stripetest.WebhookSecret, APIBase: gone.URL,
		Catalog: catalog(t), PublicBaseURL: "https://atrium.example"})
	if err != nil {
		t.Fatal(err)
	}
	workspace := kernel.NewID()
	created := time.Now().Add(-10 * time.Second)
	payload, header := signed(t, stripetest.Event{ID: "evt_gone", Type: "customer.subscription.deleted", Created: created,
		Object: subscriptionObject("sub_gone", "canceled", workspace)})
	ev, err := p.ParseWebhook(context.Background(), payload, header)
	if err != nil {
		t.Fatal(err)
	}
	s := ev.Subscription
	if ev.Type != billing.EventSubscriptionDeleted || s == nil || s.Status != billing.StatusCanceled || s.WorkspaceID != workspace ||
		s.Version != created.Truncate(time.Second).UnixMicro() {
		t.Errorf("event %s, subscription %+v", ev.Type, s)
	}

	// A failure other than not-found is an error, so Stripe delivers again.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"boom"}}`))
	}))
	t.Cleanup(down.Close)
	p, _ = stripepay.New(stripepay.Config{SecretKey: "sk_test_x", WebhookSecret: stripetest.WebhookSecret, APIBase: down.URL,
		Catalog: catalog(t), PublicBaseURL: "https://atrium.example", HTTPClient: &http.Client{Timeout: 5 * time.Second}})
	if _, err := p.ParseWebhook(context.Background(), payload, header); !kernel.IsCode(err, kernel.CodeUnavailable) {
		t.Errorf("Stripe down: err = %v, want unavailable", err)
	}
}
