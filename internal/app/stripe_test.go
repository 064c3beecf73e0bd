package app_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"atrium/internal/billing/stripepay/stripetest"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestStripeConfiguredServesItsWebhook boots Atrium with Stripe configured
// (against stripe-mock) and checks that the webhook endpoint exists and
// checks signatures; without Stripe it does not exist.
func TestStripeConfiguredServesItsWebhook(t *testing.T) {
	mock := stripetest.MockURL(t)
	a := testkit.Boot(t, store.SQLite, testkit.AppOptions{Env: map[string]string{
		"ATRIUM_STRIPE_SECRET_KEY": "sk_test_atrium", "ATRIUM_STRIPE_WEBHOOK_SECRET": stripetest.WebhookSecret,
		"ATRIUM_STRIPE_API_BASE": mock,
	}})
	payload := stripetest.Event{ID: "evt_app_1", Type: "product.created", Object: map[string]any{"id": "prod_1", "object": "product"}}.Payload(t)
	post := func(base, signature string) int {
		req, _ := http.NewRequest("POST", base+"/api/v1/billing/webhooks/stripe", bytes.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		if signature != "" {
			req.Header.Set("Stripe-Signature", signature)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(a.URL(), stripetest.Sign(payload, time.Now())); got != 200 {
		t.Fatalf("a signed event of an ignored type: %d, want 200", got)
	}
	if got := post(a.URL(), ""); got != 400 {
		t.Fatalf("an unsigned event: %d, want 400", got)
	}
	plain := testkit.Boot(t, store.SQLite, testkit.AppOptions{})
	if got := post(plain.URL(), stripetest.Sign(payload, time.Now())); got != 404 {
		t.Fatalf("without Stripe the endpoint answers %d, want 404", got)
	}
}
