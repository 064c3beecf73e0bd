package app_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"atrium/internal/billing/sandboxpay"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestTheBillingJourney walks issue 5's acceptance path through the API and
// the sandbox's pages, with the clock moved by the test, on each store:
// trial → sandbox checkout → usage warnings → over the limit → grace →
// blocked → upgrade restores; then payment failure → dunning → the default
// plan's features → read-only → payment → restored.
func TestTheBillingJourney(t *testing.T) {
	plans := writeSmallPlans(t)
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			a := testkit.Boot(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_PLANS_FILE": plans}})
			billingJourney(t, a)
		})
	}
}

// writeSmallPlans is the embedded catalogue with Pro allowing 20 API calls
// a month, so that a test reaches its limit in a few requests.
func writeSmallPlans(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../billing/plans.json")
	if err != nil {
		t.Fatal(err)
	}
	small := strings.Replace(string(raw), `"api_calls_per_month": 1000000`, `"api_calls_per_month": 20`, 1)
	if small == string(raw) {
		t.Fatal("the plans file changed: the test's replacement no longer applies")
	}
	path := filepath.Join(t.TempDir(), "plans.json")
	if err := os.WriteFile(path, []byte(small), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func billingJourney(t *testing.T, a *testkit.TestApp) {
	ctx := context.Background()
	const email, password = "billing@example.com", "a long and private passphrase"
	owner := &browser{t: t, base: a.URL()}
	owner.must(http.StatusAccepted, "POST", "/api/v1/auth/signup", `{"email":"`+email+`","password":"`+password+`","name":"Bea"}`)
	owner.must(http.StatusOK, "POST", "/api/v1/auth/email/verify", `{"token":"`+owner.mailToken(email, "verify_email", "/verify-email")+`"}`)
	login := func() {
		owner.cookie = ""
		owner.must(http.StatusOK, "POST", "/api/v1/auth/login", `{"email":"`+email+`","password":"`+password+`"}`)
	}
	login()
	ws := owner.must(http.StatusCreated, "POST", "/api/v1/workspaces", `{"name":"Billed","slug":"billed"}`)
	wsPath := "/api/v1/workspaces/" + ws["id"].(string)
	sandbox := a.Services.Billing.Provider.(*sandboxpay.Provider)
	subscription := func() map[string]any { return owner.must(http.StatusOK, "GET", wsPath+"/subscription", "") }

	// A trial, then a checkout during it: the card is charged at the trial's end.
	owner.must(http.StatusOK, "POST", wsPath+"/subscription/trial", "")
	checkout := owner.must(http.StatusOK, "POST", wsPath+"/subscription/checkout", `{"plan":"pro","interval":"month"}`)
	payOnPage(t, a, checkout["url"].(string), "4242 4242 4242 4242")
	if s := subscription(); s["status"] != "trialing" || s["provider"] != "sandbox" || s["plan"] != "pro" {
		t.Fatalf("after checkout during the trial: %v", s)
	}
	a.Clock.Advance(15 * 24 * time.Hour)
	if _, err := sandbox.Renew(ctx, a.DB); err != nil {
		t.Fatal(err)
	}
	login()
	if s := subscription(); s["status"] != "active" || s["amount"] != float64(2900) || s["currency"] != "usd" {
		t.Fatalf("after the trial: %v", s)
	}
	if inv := owner.must(http.StatusOK, "GET", wsPath+"/invoices", ""); len(inv["items"].([]any)) != 1 {
		t.Fatalf("invoices: %v", inv)
	}

	// API calls against Pro's 20 a month: warnings, the buffer, the block.
	key := owner.must(http.StatusCreated, "POST", wsPath+"/api-keys", `{"name":"ci","scopes":["read","write"]}`)
	api := &browser{t: t, base: a.URL(), bearer: key["secret"].(string)}
	warnings := map[string]bool{}
	for range 20 {
		status, header := api.withHeader("GET", wsPath, "")
		if status != http.StatusOK {
			t.Fatalf("call under the limit: %d", status)
		}
		if w := header.Get("X-Atrium-Usage-Warning"); w != "" {
			warnings[w] = true
		}
	}
	for _, want := range []string{"api_calls=80", "api_calls=90", "api_calls=95", "api_calls=100"} {
		if !warnings[want] {
			t.Errorf("no %s warning among %v", want, warnings)
		}
	}
	if status, _ := api.withHeader("PATCH", wsPath, `{"name":"Within the buffer"}`); status != http.StatusOK {
		t.Fatalf("the first call past the limit, within the 5%% buffer: %d", status)
	}
	usage := owner.must(http.StatusOK, "GET", wsPath+"/usage", "")
	if m := metric(usage, "api_calls"); m["state"] != "grace" || m["grace_ends_at"] == nil {
		t.Fatalf("usage past the limit: %v", usage)
	}
	blocked := api.must(http.StatusPaymentRequired, "PATCH", wsPath, `{"name":"Past the buffer"}`)
	if blocked["code"] != "quota_exceeded" {
		t.Fatalf("past the buffer: %v", blocked)
	}
	api.must(http.StatusOK, "GET", wsPath, "") // reads are never blocked

	// An upgrade restores growth at once.
	preview := owner.must(http.StatusOK, "POST", wsPath+"/subscription/change", `{"plan":"enterprise","preview":true}`)
	if p := preview["preview"].(map[string]any); p["amount_due_now"].(float64) <= 0 || p["at_period_end"] == true {
		t.Fatalf("preview: %v", preview)
	}
	changed := owner.must(http.StatusOK, "POST", wsPath+"/subscription/change", `{"plan":"enterprise"}`)
	if s := changed["subscription"].(map[string]any); s["plan"] != "enterprise" {
		t.Fatalf("change: %v", changed)
	}
	api.must(http.StatusOK, "PATCH", wsPath, `{"name":"Upgraded"}`)

	// Payment failure: a card whose charges fail, then the renewal.
	payOnPage(t, a, owner.must(http.StatusOK, "POST", wsPath+"/subscription/portal", "")["url"].(string), "4000 0000 0000 0341")
	a.Clock.Advance(31 * 24 * time.Hour)
	if _, err := sandbox.Renew(ctx, a.DB); err != nil {
		t.Fatal(err)
	}
	login()
	if s := subscription(); s["status"] != "past_due" {
		t.Fatalf("after a failed renewal: %v", s)
	}
	dunning := func(days int) {
		a.Clock.Advance(time.Duration(days) * 24 * time.Hour)
		if _, err := sandbox.Renew(ctx, a.DB); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Services.Billing.Ledger.AdvanceDunning(ctx, a.DB); err != nil {
			t.Fatal(err)
		}
		login()
	}
	dunning(7)
	if s := subscription(); s["effective_plan"] != "free" || s["dunning_step"] != "downgraded" {
		t.Fatalf("after 7 days unpaid: %v", s)
	}
	dunning(23)
	if s := subscription(); s["dunning_step"] != "suspended" {
		t.Fatalf("after 30 days unpaid: %v", s)
	}
	if e := owner.must(http.StatusForbidden, "PATCH", wsPath, `{"name":"Suspended"}`); e["code"] != "workspace_inactive" {
		t.Fatalf("a change while suspended: %v", e)
	}

	// A payment restores everything.
	payOnPage(t, a, owner.must(http.StatusOK, "POST", wsPath+"/subscription/portal", "")["url"].(string), "4242 4242 4242 4242")
	if s := subscription(); s["status"] != "active" || s["effective_plan"] != "enterprise" || s["dunning_step"] != nil {
		t.Fatalf("after the payment: %v", s)
	}
	owner.must(http.StatusOK, "PATCH", wsPath, `{"name":"Restored"}`)
}

var formToken = regexp.MustCompile(`name="token" value="([^"]+)"`)

// payOnPage opens a sandbox page (checkout or portal) as the customer's
// browser would and submits card on it; it expects the redirect onward.
func payOnPage(t *testing.T, a *testkit.TestApp, pageURL, card string) {
	t.Helper()
	u, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	page := a.URL() + u.Path
	resp, err := http.Get(page)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formToken.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s: %d %s", u.Path, resp.StatusCode, body)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = client.PostForm(page, url.Values{"token": {string(m[1])}, "card_number": {card}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST %s with %s: %d %s", u.Path, card, resp.StatusCode, body)
	}
}

// withHeader sends the request and returns the status and the headers.
func (b *browser) withHeader(method, path, body string) (int, http.Header) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+b.bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// metric finds one metric of a usage answer.
func metric(usage map[string]any, name string) map[string]any {
	list, _ := usage["metrics"].([]any)
	for _, m := range list {
		if mm, _ := m.(map[string]any); mm["metric"] == name {
			return mm
		}
	}
	return nil
}
