package stripepay_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v85"

	"atrium/internal/billing"
	"atrium/internal/billing/stripepay"
	"atrium/internal/billing/stripepay/stripetest"
	"atrium/internal/kernel"
)

func catalog(t *testing.T) *billing.Catalog {
	t.Helper()
	c, err := billing.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewNamesTheMissingSetting(t *testing.T) {
	t.Parallel()
	good := stripepay.Config{SecretKey: "sk_test_x", WebhookSecret: "whsec_x", Catalog: catalog(t), PublicBaseURL: "https://atrium.example"}
	for name, tc := range map[string]struct {
		change func(*stripepay.Config)
		want   string
	}{
		"secret key":     {func(c *stripepay.Config) { c.SecretKey = "" }, "ATRIUM_STRIPE_SECRET_KEY"},
		"webhook secret": {func(c *stripepay.Config) { c.WebhookSecret = " " }, "ATRIUM_STRIPE_WEBHOOK_SECRET"},
		"catalogue":      {func(c *stripepay.Config) { c.Catalog = nil }, "catalogue"},
		"base URL":       {func(c *stripepay.Config) { c.PublicBaseURL = "/relative" }, "public base URL"},
		"API base":       {func(c *stripepay.Config) { c.APIBase = "localhost:12111" }, "ATRIUM_STRIPE_API_BASE"},
	} {
		cfg := good
		tc.change(&cfg)
		if _, err := stripepay.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %q", name, err, tc.want)
		}
	}
	if _, err := stripepay.New(good); err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutCreatesCustomerPriceAndSession(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	ctx := context.Background()
	cat := catalog(t)
	workspace := kernel.NewID()
	trialEnd := time.Now().Add(24 * time.Hour) // sooner than Checkout accepts
	s, err := p.Checkout(ctx, billing.CheckoutRequest{
		WorkspaceID: workspace, Email: "ada@example.com", Plan: *cat.Plan("pro"), Interval: billing.Monthly,
		Currency: "usd", SuccessURL: "/billing/done", TrialEnd: trialEnd, IdempotencyKey: "checkout-key-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID == "" || s.URL == "" {
		t.Fatalf("session = %+v, want an ID and a URL", s)
	}
	ws := kernel.FormatID(kernel.PrefixWorkspace, workspace)

	customer, ok := rec.Find(http.MethodPost, "/v1/customers")
	if !ok {
		t.Fatal("no customer was created for a workspace without one")
	}
	if customer.IdempotencyKey != "checkout-key-1:customer" || customer.Form.Get("metadata[atrium_workspace_id]") != ws ||
		customer.Form.Get("email") != "ada@example.com" {
		t.Errorf("customer request = %+v", customer)
	}

	price, ok := rec.Find(http.MethodPost, "/v1/prices")
	if !ok {
		t.Fatal("no price was created for a catalogue price without a Stripe ID")
	}
	if price.IdempotencyKey != "atrium-price-atrium_pro_usd_month_2900" || price.Form.Get("lookup_key") != "atrium_pro_usd_month_2900" ||
		price.Form.Get("unit_amount") != "2900" || price.Form.Get("recurring[interval]") != "month" ||
		price.Form.Get("metadata[atrium_plan]") != "pro" || price.Form.Get("product") != "atrium_pro" {
		t.Errorf("price request = %+v", price)
	}

	session, ok := rec.Find(http.MethodPost, "/v1/checkout/sessions")
	if !ok {
		t.Fatal("no checkout session was created")
	}
	f := session.Form
	if session.IdempotencyKey != "checkout-key-1" {
		t.Errorf("session idempotency key = %q, want the caller's", session.IdempotencyKey)
	}
	for field, want := range map[string]string{
		"mode":                          "subscription",
		"client_reference_id":           ws,
		"metadata[atrium_plan]":         "pro",
		"metadata[atrium_workspace_id]": ws,
		"subscription_data[metadata][atrium_workspace_id]": ws,
		"subscription_data[metadata][atrium_plan]":         "pro",
		"line_items[0][quantity]":                          "1",
		"success_url":                                      "https://atrium.example/billing/done",
		"cancel_url":                                       "https://atrium.example/billing?checkout=canceled",
	} {
		if got := f.Get(field); got != want {
			t.Errorf("session %s = %q, want %q", field, got, want)
		}
	}
	if f.Get("customer") == "" || f.Get("line_items[0][price]") == "" {
		t.Errorf("session without customer or price: %v", f)
	}
	trial, _ := strconv.ParseInt(f.Get("subscription_data[trial_end]"), 10, 64)
	if min := time.Now().Add(48 * time.Hour).Unix(); trial < min {
		t.Errorf("trial_end = %d, want at least 48 hours ahead (%d)", trial, min)
	}

	// The price is known now: a second checkout neither looks it up nor creates it.
	rec.Reset()
	if _, err := p.Checkout(ctx, billing.CheckoutRequest{WorkspaceID: workspace, CustomerID: "cus_known", Plan: *cat.Plan("pro"),
		Interval: billing.Monthly, Currency: "usd", IdempotencyKey: "checkout-key-2"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Calls() {
		if c.Path != "/v1/checkout/sessions" {
			t.Errorf("second checkout also sent %s %s", c.Method, c.Path)
		}
	}
	if c, _ := rec.Find(http.MethodPost, "/v1/checkout/sessions"); c.Form.Get("customer") != "cus_known" || c.Form.Get("subscription_data[trial_end]") != "" {
		t.Errorf("second session = %v, want the known customer and no trial", c.Form)
	}
}

func TestCheckoutUsesConfiguredPriceID(t *testing.T) {
	t.Parallel()
	cat := catalog(t)
	pro := cat.Plan("pro")
	for i := range pro.Prices {
		if pro.Prices[i].Currency == "eur" && pro.Prices[i].Interval == billing.Yearly {
			pro.Prices[i].ProviderIDs = map[string]string{"stripe": "price_configured_pro_eur_year"}
		}
	}
	p, rec := stripetest.New(t, cat)
	if _, err := p.Checkout(context.Background(), billing.CheckoutRequest{WorkspaceID: kernel.NewID(), CustomerID: "cus_1",
		Plan: *pro, Interval: billing.Yearly, Currency: "EUR", IdempotencyKey: "k"}); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	if len(calls) != 1 || calls[0].Form.Get("line_items[0][price]") != "price_configured_pro_eur_year" {
		t.Errorf("calls = %+v, want one session with the configured price", calls)
	}
}

func TestCheckoutRefusesBadRequests(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	cat := catalog(t)
	for name, req := range map[string]billing.CheckoutRequest{
		"no workspace":  {Plan: *cat.Plan("pro"), Interval: billing.Monthly, Currency: "usd"},
		"free plan":     {WorkspaceID: uuid.New(), Plan: *cat.Plan("free"), Interval: billing.Monthly, Currency: "usd"},
		"no such price": {WorkspaceID: uuid.New(), Plan: *cat.Plan("pro"), Interval: billing.Monthly, Currency: "gbp"},
	} {
		if _, err := p.Checkout(context.Background(), req); !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("bad requests reached Stripe: %+v", calls)
	}
}

func TestPortal(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	url, err := p.Portal(context.Background(), "cus_123", "/settings/billing")
	if err != nil {
		t.Fatal(err)
	}
	if url == "" {
		t.Fatal("no portal URL")
	}
	c, ok := rec.Find(http.MethodPost, "/v1/billing_portal/sessions")
	if !ok || c.Form.Get("customer") != "cus_123" || c.Form.Get("return_url") != "https://atrium.example/settings/billing" {
		t.Errorf("portal request = %+v", c)
	}
	if c.IdempotencyKey == "" {
		t.Error("the portal session was created without an idempotency key")
	}
	rec.Reset()
	if _, err := p.Portal(context.Background(), "", ""); !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Errorf("no customer: err = %v, want invalid", err)
	}
	if _, err := p.Portal(context.Background(), "cus_123", "https://elsewhere.example/"); !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Errorf("a return URL of another origin: err = %v, want invalid", err)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("refused portal requests reached Stripe: %+v", calls)
	}
}

// TestStripeErrorsMapToCodes answers with Stripe's error bodies, which
// stripe-mock cannot be made to send.
func TestStripeErrorsMapToCodes(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		status int
		body   string
		want   kernel.Code
	}{
		"missing":        {404, `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such customer: 'cus_x'"}}`, kernel.CodeNotFound},
		"card declined":  {402, `{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}`, kernel.CodePaymentRequired},
		"idempotency":    {400, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}`, kernel.CodeConflict},
		"our mistake":    {400, `{"error":{"type":"invalid_request_error","message":"Received unknown parameter: foo"}}`, kernel.CodeInternal},
		"bad key":        {401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_***"}}`, kernel.CodeInternal},
		"too many":       {429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests"}}`, kernel.CodeUnavailable},
		"Stripe is down": {503, `{"error":{"type":"api_error","message":"Try again"}}`, kernel.CodeUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Stripe-Should-Retry", "false")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			p, err := stripepay.New(stripepay.Config{SecretKey: "sk_test_x", WebhookSecret: "whsec_x", APIBase: srv.URL,
				Catalog: catalog(t), PublicBaseURL: "https://atrium.example"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Portal(context.Background(), "cus_x", "")
			if kernel.CodeOf(err) != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
			if tc.want == kernel.CodePaymentRequired && kernel.As(err).Message != "Your card was declined." {
				t.Errorf("message %q, want Stripe's words for the customer", kernel.As(err).Message)
			}
			if tc.want == kernel.CodeInternal && kernel.As(err).Message != "internal error" {
				t.Errorf("message %q shows Stripe's detail", kernel.As(err).Message)
			}
		})
	}
}

func TestPreviewChange(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	cat := catalog(t)
	preview, err := p.PreviewChange(context.Background(), billing.ChangeRequest{SubscriptionID: "sub_123", CustomerID: "cus_123",
		Plan: *cat.Plan("enterprise"), Interval: billing.Yearly, Currency: "usd", IdempotencyKey: "change-1"})
	if err != nil {
		t.Fatal(err)
	}
	if preview.NextAmount != 499000 || preview.Currency == "" || preview.NextBilledAt.IsZero() || preview.Lines == nil {
		t.Errorf("preview = %+v", preview)
	}
	c, ok := rec.Find(http.MethodPost, "/v1/invoices/create_preview")
	if !ok {
		t.Fatal("no preview was asked for")
	}
	if c.Form.Get("subscription") != "sub_123" || c.Form.Get("subscription_details[proration_behavior]") != "always_invoice" ||
		c.Form.Get("subscription_details[items][0][id]") == "" || c.Form.Get("subscription_details[items][0][price]") == "" ||
		c.Form.Get("subscription_details[proration_date]") == "" {
		t.Errorf("preview request = %v", c.Form)
	}
	if c.IdempotencyKey == "change-1" {
		t.Error("the preview reused the change's idempotency key")
	}
}

func TestChange(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	cat := catalog(t)
	sub, err := p.Change(context.Background(), billing.ChangeRequest{SubscriptionID: "sub_123", Plan: *cat.Plan("enterprise"),
		Interval: billing.Monthly, Currency: "usd", IdempotencyKey: "change-2"})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Provider != billing.ProviderStripe || sub.ID != "sub_123" || sub.Version == 0 {
		t.Errorf("subscription = %+v", sub)
	}
	c, ok := rec.Find(http.MethodPost, "/v1/subscriptions/sub_123")
	if !ok {
		t.Fatal("the subscription was not updated")
	}
	if c.IdempotencyKey != "change-2" || c.Form.Get("items[0][id]") == "" || c.Form.Get("items[0][price]") == "" ||
		c.Form.Get("proration_behavior") != "always_invoice" || c.Form.Get("payment_behavior") != "pending_if_incomplete" {
		t.Errorf("update request = %+v", c)
	}
}

func TestCancelAndResume(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	ctx := context.Background()

	sub, err := p.Cancel(ctx, "sub_123", true, "cancel-1")
	if err != nil {
		t.Fatal(err)
	}
	if !sub.CancelAtPeriodEnd {
		t.Errorf("after cancel at period end: %+v", sub)
	}
	c, _ := rec.Find(http.MethodPost, "/v1/subscriptions/sub_123")
	if c.IdempotencyKey != "cancel-1" || c.Form.Get("cancel_at_period_end") != "true" {
		t.Errorf("cancel at period end request = %+v", c)
	}

	if _, err := p.Cancel(ctx, "sub_123", false, "cancel-2"); err != nil {
		t.Fatal(err)
	}
	if c, ok := rec.Find(http.MethodDelete, "/v1/subscriptions/sub_123"); !ok || c.IdempotencyKey != "cancel-2" {
		t.Errorf("cancel now request = %+v (sent: %v)", c, ok)
	}

	rec.Reset()
	sub, err = p.Resume(ctx, "sub_123", "resume-1")
	if err != nil {
		t.Fatal(err)
	}
	if sub.CancelAtPeriodEnd {
		t.Errorf("after resume: %+v", sub)
	}
	c, _ = rec.Find(http.MethodPost, "/v1/subscriptions/sub_123")
	if c.IdempotencyKey != "resume-1" || c.Form.Get("cancel_at_period_end") != "false" {
		t.Errorf("resume request = %+v", c)
	}
	if _, err := p.Cancel(ctx, "", true, "k"); !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Errorf("no subscription: err = %v, want invalid", err)
	}
}

func TestSubscriptionReadsStripesStateWithRisingVersions(t *testing.T) {
	t.Parallel()
	p, rec := stripetest.New(t, nil)
	before := time.Now().UnixMicro()
	first, err := p.Subscription(context.Background(), "sub_abc")
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Subscription(context.Background(), "sub_abc")
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != "sub_abc" || first.Provider != billing.ProviderStripe || first.CustomerID == "" || first.Status == "" ||
		first.CurrentPeriodEnd.IsZero() || first.Quantity < 1 || first.Interval == "" {
		t.Errorf("subscription = %+v", first)
	}
	if first.Version < before || second.Version <= first.Version {
		t.Errorf("versions %d then %d, want both from the clock (>= %d) and rising", first.Version, second.Version, before)
	}
	if c, ok := rec.Find(http.MethodGet, "/v1/subscriptions/sub_abc"); !ok || c.Form.Get("expand[0]") != "customer" {
		t.Errorf("retrieve request = %+v", c)
	}
}

func TestStatusMapping(t *testing.T) {
	t.Parallel()
	for stripeStatus, want := range map[string]billing.Status{
		"trialing": billing.StatusTrialing, "active": billing.StatusActive, "past_due": billing.StatusPastDue,
		"canceled": billing.StatusCanceled, "unpaid": billing.StatusPastDue, "incomplete": billing.StatusPastDue,
		"incomplete_expired": billing.StatusCanceled, "paused": billing.StatusPastDue, "something_new": billing.StatusPastDue,
	} {
		if got := stripepay.Status(stripe.SubscriptionStatus(stripeStatus)); got != want {
			t.Errorf("Status(%s) = %s, want %s", stripeStatus, got, want)
		}
	}
}
