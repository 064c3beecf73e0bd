// Package stripetest runs the Stripe provider against stripe-mock, Stripe's
// own API mock, for tests: it finds the mock (or skips), builds a provider
// whose calls are recorded, and signs webhook events as Stripe does.
package stripetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"

	"atrium/internal/billing"
	"atrium/internal/billing/stripepay"
)

// Environment variables naming stripe-mock (.ci/setup-services prints them).
const (
	EnvMockURL     = "ATRIUM_TEST_STRIPE_MOCK_URL"
	EnvRequireMock = "ATRIUM_REQUIRE_STRIPE_MOCK"
)

// WebhookSecret is the signing secret of the providers New builds.
const WebhookSecret = "whsec_atrium_test_secret"

// MockURL returns stripe-mock's URL. Without one the test is skipped, or
// fails when ATRIUM_REQUIRE_STRIPE_MOCK=1 (as in CI).
func MockURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvMockURL)
	if u == "" {
		if os.Getenv(EnvRequireMock) == "1" {
			t.Fatalf("%s=1 but %s is not set", EnvRequireMock, EnvMockURL)
		}
		t.Skipf("Stripe tests skipped: set %s (eval \"$(bash .ci/setup-services)\" starts stripe-mock)", EnvMockURL)
	}
	return u
}

// Call is one request the provider sent to Stripe.
type Call struct {
	Method         string
	Path           string
	IdempotencyKey string
	// Form is the request's form-encoded body, or its query for a GET.
	Form url.Values
}

// Recorder records the requests passing through it to the real transport.
type Recorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	calls []Call
}

// RoundTrip records the request and sends it on.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	c := Call{Method: req.Method, Path: req.URL.Path, IdempotencyKey: req.Header.Get("Idempotency-Key"), Form: req.URL.Query()}
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil && len(body) > 0 {
			c.Form = form
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// Calls returns the requests recorded so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Reset forgets the requests recorded so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.calls = nil
	r.mu.Unlock()
}

// Find returns the last recorded request with the method and path.
func (r *Recorder) Find(method, path string) (Call, bool) {
	calls := r.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Method == method && calls[i].Path == path {
			return calls[i], true
		}
	}
	return Call{}, false
}

// New builds a provider over stripe-mock with the default plan catalogue
// (or catalog, when given), recording its calls.
func New(t testing.TB, catalog *billing.Catalog) (*stripepay.Provider, *Recorder) {
	t.Helper()
	base := MockURL(t)
	if catalog == nil {
		var err error
		if catalog, err = billing.LoadCatalog(""); err != nil {
			t.Fatal(err)
		}
	}
	rec := &Recorder{next: http.DefaultTransport}
	p, err := stripepay.New(stripepay.Config{
		SecretKey:     "sk_test_atrium",
		WebhookSecret: WebhookSecret,
		APIBase:       base,
		Catalog:       catalog,
		PublicBaseURL: "https://atrium.example",
		HTTPClient:    &http.Client{Transport: rec, Timeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}

// Event is a Stripe event to sign: Object is its data.object.
type Event struct {
	ID      string
	Type    string
	Created time.Time
	Object  any
}

// Payload renders the event as Stripe sends it.
func (e Event) Payload(t testing.TB) []byte {
	t.Helper()
	created := e.Created
	if created.IsZero() {
		created = time.Now()
	}
	raw, err := json.Marshal(map[string]any{
		"id": e.ID, "object": "event", "api_version": "2026-03-25.dahlia", "created": created.Unix(),
		"livemode": false, "pending_webhooks": 1, "type": e.Type,
		"data": map[string]any{"object": e.Object},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Sign returns the Stripe-Signature header of payload signed with
// WebhookSecret at the time given (now when zero).
func Sign(payload []byte, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: WebhookSecret, Timestamp: at}).Header
}
