package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/billing/sandboxpay"
	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

const sandboxBase = "https://atrium.example"

// sandboxSite serves the sandbox's pages through the whole middleware
// chain, over a real store, sandbox provider and ledger.
type sandboxSite struct {
	url    string
	clock  *testkit.Clock
	db     store.SystemDB
	ledger *billing.Ledger
	p      *sandboxpay.Provider
	ctx    context.Context
}

func newSandboxSite(t *testing.T, d store.Dialect) *sandboxSite {
	t.Helper()
	s := &sandboxSite{clock: testkit.NewClock(), ctx: kernel.WithLogger(context.Background(), testkit.DiscardLogger())}
	s.db = testkit.OpenStore(t, d, s.clock)
	catalog, err := billing.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := billing.SyncPlans(s.ctx, s.db, catalog)
	if err != nil {
		t.Fatal(err)
	}
	s.ledger = billing.NewLedger(billing.LedgerConfig{DB: s.db, Catalog: catalog, Versions: versions, Logger: testkit.DiscardLogger()})
	if s.p, err = sandboxpay.New(sandboxpay.Config{DB: s.db, Catalog: catalog, Ledger: s.ledger, PublicBaseURL: sandboxBase}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{Logger: testkit.DiscardLogger(),
		Sandbox: &httpapi.SandboxPages{Provider: s.p, TokenKey: bytes.Repeat([]byte{7}, 32)}}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// checkout starts a checkout of Pro for a fresh workspace and returns it
// with the session's path.
func (s *sandboxSite) checkout(t *testing.T, trialEnd time.Time) (uuid.UUID, string) {
	t.Helper()
	ws := storetest.CreateWorkspace(t, s.db, "ws-"+uuid.NewString()[:8])
	catalog := s.ledger.Catalog()
	session, err := s.p.Checkout(s.ctx, billing.CheckoutRequest{WorkspaceID: ws, Plan: *catalog.Plan("pro"), Interval: billing.Monthly,
		Currency: "usd", TrialEnd: trialEnd, Email: "billing@acme.example", SuccessURL: "/billing?done={CHECKOUT_SESSION_ID}"})
	if err != nil {
		t.Fatal(err)
	}
	return ws, strings.TrimPrefix(session.URL, sandboxBase)
}

type page struct {
	status int
	header http.Header
	body   string
}

// send makes one request and does not follow redirects.
func (s *sandboxSite) send(t *testing.T, method, path string, form url.Values, headers map[string]string) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

var tokenField = regexp.MustCompile(`name="token" value="([^"]+)"`)

// token reads the form token off a page.
func token(t *testing.T, p page) string {
	t.Helper()
	m := tokenField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no token on the page: %s", p.body)
	}
	return m[1]
}

func (s *sandboxSite) plan(t *testing.T, ws uuid.UUID) string {
	t.Helper()
	sub, err := s.ledger.Subscription(s.ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	return sub.PlanKey
}

// sameOrigin is what a browser sends with a form posted from the page.
var sameOrigin = map[string]string{"Sec-Fetch-Site": "same-origin"}

func TestSandboxCheckoutPages(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		s := newSandboxSite(t, d)
		t.Run("the page shows the plan, the price, the test cards and a form", func(t *testing.T) {
			_, path := s.checkout(t, time.Time{})
			p := s.send(t, "GET", path, nil, nil)
			if p.status != 200 || !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") ||
				!strings.Contains(p.header.Get("Content-Security-Policy"), "default-src 'none'") ||
				p.header.Get("Cache-Control") != "no-store" || p.header.Get("X-Request-ID") == "" {
				t.Fatalf("%d %v", p.status, p.header)
			}
			for _, want := range []string{"Subscribe to Pro", "29.00 USD", "per month", "4242 4242 4242 4242", "4000 0000 0000 0002",
				"4000 0000 0000 0341", `action="` + path + `"`, `name="card_number"`, "billing@acme.example", "no real payment"} {
				if !strings.Contains(p.body, want) {
					t.Errorf("the page lacks %q", want)
				}
			}
			if strings.Contains(p.body, "<script") || strings.Contains(p.body, "http://") {
				t.Error("the page loads something")
			}
		})
		t.Run("a trial's page says when the first charge is made", func(t *testing.T) {
			_, path := s.checkout(t, s.clock.Now().Add(10*24*time.Hour))
			if p := s.send(t, "GET", path, nil, nil); !strings.Contains(p.body, "Your trial runs until 25 January 2026") {
				t.Fatalf("%s", p.body)
			}
		})
		t.Run("a declined card shows the error and changes nothing", func(t *testing.T) {
			ws, path := s.checkout(t, time.Time{})
			tok := token(t, s.send(t, "GET", path, nil, nil))
			p := s.send(t, "POST", path, url.Values{"token": {tok}, "card_number": {"4000 0000 0000 0002"}}, sameOrigin)
			if p.status != http.StatusPaymentRequired || !strings.Contains(p.body, "Your card was declined.") ||
				!strings.Contains(p.body, `name="card_number"`) {
				t.Fatalf("%d %s", p.status, p.body)
			}
			p = s.send(t, "POST", path, url.Values{"token": {tok}, "card_number": {"5555 5555 5555 4444"}}, sameOrigin)
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, "Unknown test card") {
				t.Fatalf("%d %s", p.status, p.body)
			}
			if plan := s.plan(t, ws); plan != "free" {
				t.Fatalf("plan %s after a decline", plan)
			}
		})
		t.Run("a good card redirects to the success URL, once", func(t *testing.T) {
			ws, path := s.checkout(t, time.Time{})
			id := strings.TrimPrefix(path, "/sandbox/checkout/")
			tok := token(t, s.send(t, "GET", path, nil, nil))
			p := s.send(t, "POST", path, url.Values{"token": {tok}, "card_number": {"4242424242424242"}}, sameOrigin)
			if p.status != http.StatusSeeOther || p.header.Get("Location") != sandboxBase+"/billing?done="+id {
				t.Fatalf("%d %v %s", p.status, p.header, p.body)
			}
			if plan := s.plan(t, ws); plan != "pro" {
				t.Fatalf("plan %s", plan)
			}
			p = s.send(t, "GET", path, nil, nil)
			if p.status != http.StatusConflict || !strings.Contains(p.body, "This checkout is complete.") || strings.Contains(p.body, "<form") {
				t.Fatalf("%d %s", p.status, p.body)
			}
			p = s.send(t, "POST", path, url.Values{"token": {tok}, "card_number": {"4242424242424242"}}, sameOrigin)
			if p.status != http.StatusConflict || !strings.Contains(p.body, "This checkout is complete.") {
				t.Fatalf("second submission %d %s", p.status, p.body)
			}
		})
		t.Run("a missing or wrong token, or another site, is refused", func(t *testing.T) {
			ws, path := s.checkout(t, time.Time{})
			other, otherPath := s.checkout(t, time.Time{})
			tok := token(t, s.send(t, "GET", path, nil, nil))
			otherTok := token(t, s.send(t, "GET", otherPath, nil, nil))
			for name, tc := range map[string]struct {
				form    url.Values
				headers map[string]string
			}{
				"no token":            {url.Values{"card_number": {"4242424242424242"}}, sameOrigin},
				"another page's":      {url.Values{"token": {otherTok}, "card_number": {"4242424242424242"}}, sameOrigin},
				"a forged one":        {url.Values{"token": {strings.Repeat("A", len(tok))}, "card_number": {"4242424242424242"}}, sameOrigin},
				"from another site":   {url.Values{"token": {tok}, "card_number": {"4242424242424242"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
				"from another origin": {url.Values{"token": {tok}, "card_number": {"4242424242424242"}}, map[string]string{"Origin": "https://evil.example"}},
			} {
				if p := s.send(t, "POST", path, tc.form, tc.headers); p.status != http.StatusForbidden || strings.Contains(p.body, "<form") {
					t.Errorf("%s: %d %s", name, p.status, p.body)
				}
			}
			if s.plan(t, ws) != "free" || s.plan(t, other) != "free" {
				t.Fatal("a refused form subscribed")
			}
			big := url.Values{"token": {tok}, "card_number": {strings.Repeat("4", 5000)}}
			if p := s.send(t, "POST", path, big, sameOrigin); p.status != http.StatusBadRequest {
				t.Errorf("an oversized form: %d %s", p.status, p.body)
			}
		})
		t.Run("an expired page takes no card", func(t *testing.T) {
			ws, path := s.checkout(t, time.Time{})
			tok := token(t, s.send(t, "GET", path, nil, nil))
			s.clock.Advance(24 * time.Hour)
			p := s.send(t, "GET", path, nil, nil)
			if p.status != http.StatusConflict || !strings.Contains(p.body, "expired") || strings.Contains(p.body, "<form") {
				t.Fatalf("%d %s", p.status, p.body)
			}
			p = s.send(t, "POST", path, url.Values{"token": {tok}, "card_number": {"4242424242424242"}}, sameOrigin)
			if p.status != http.StatusConflict || s.plan(t, ws) != "free" {
				t.Fatalf("%d %s", p.status, p.body)
			}
		})
		t.Run("hostile IDs find no page and are not echoed", func(t *testing.T) {
			_, path := s.checkout(t, time.Time{})
			for _, id := range []string{"x", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "cs_sbx_" + strings.Repeat("z", 52),
				strings.TrimPrefix(path, "/sandbox/checkout/") + "0", "..%2f..%2fetc", strings.Repeat("a", 5000), "cs_sbx_%00"} {
				p := s.send(t, "GET", "/sandbox/checkout/"+id, nil, nil)
				if p.status != http.StatusNotFound || strings.Contains(p.body, "<script") || strings.Contains(p.body, "alert") {
					t.Errorf("%.40s: %d %.300s", id, p.status, p.body)
				}
			}
			for _, p := range []string{"/sandbox/checkout/", "/sandbox/checkout/a/b", "/sandbox/other"} {
				if r := s.send(t, "GET", p, nil, nil); r.status != http.StatusNotFound || !strings.Contains(r.body, `"not_found"`) {
					t.Errorf("%s: %d %s", p, r.status, r.body)
				}
			}
			if p := s.send(t, "PUT", path, nil, nil); p.status != http.StatusMethodNotAllowed || p.header.Get("Allow") != "GET, HEAD, POST" {
				t.Errorf("PUT: %d %v", p.status, p.header)
			}
			if p := s.send(t, "GET", "/healthz", nil, nil); p.status != 200 {
				t.Errorf("the rest of the API: %d", p.status)
			}
		})
		t.Run("the portal lists the invoices and changes the card", func(t *testing.T) {
			s.clock.Set(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
			ws, path := s.checkout(t, time.Time{})
			tok := token(t, s.send(t, "GET", path, nil, nil))
			if p := s.send(t, "POST", path, url.Values{"token": {tok}, "card_number": {"4000000000000341"}}, sameOrigin); p.status != 303 {
				t.Fatalf("checkout: %d %s", p.status, p.body)
			}
			sub, _ := s.ledger.Subscription(s.ctx, ws)
			s.clock.Set(*sub.CurrentPeriodEnd)
			if _, err := s.p.Renew(s.ctx, s.db); err != nil {
				t.Fatal(err)
			}
			portal, err := s.p.Portal(s.ctx, sub.ProviderCustomerID, "/billing")
			if err != nil {
				t.Fatal(err)
			}
			portalPath := strings.TrimPrefix(portal, sandboxBase)
			p := s.send(t, "GET", portalPath, nil, nil)
			for _, want := range []string{"Your Pro subscription", "past due", "•••• 0341", "SBX-", "open", "paid", "Update card"} {
				if !strings.Contains(p.body, want) {
					t.Errorf("the portal lacks %q: %s", want, p.body)
				}
			}
			p = s.send(t, "POST", portalPath, url.Values{"token": {token(t, p)}, "card_number": {"4242 4242 4242 4242"}}, sameOrigin)
			if p.status != http.StatusSeeOther || p.header.Get("Location") != sandboxBase+"/billing" {
				t.Fatalf("%d %v %s", p.status, p.header, p.body)
			}
			if sub, _ := s.ledger.Subscription(s.ctx, ws); sub.Status != billing.StatusActive {
				t.Fatalf("after the new card %+v", sub)
			}
		})
	})
}

func TestSandboxFailNextChargeRoute(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		// The app wires the sandbox, and this development route, by default.
		f := setup(t, d, testkit.AppOptions{})
		ctx := kernel.WithLogger(context.Background(), testkit.DiscardLogger())
		ledger := f.app.Services.Billing.Ledger
		p := f.app.Services.Billing.Provider.(*sandboxpay.Provider)
		owner, admin, member := f.app.SignUp(t, "owner@acme.example"), f.app.SignUp(t, "admin@acme.example"), f.app.SignUp(t, "member@acme.example")
		ws, err := f.app.Services.Workspaces.CreateOwned(ctx, owner.ID, "Paying", "paying")
		if err != nil {
			t.Fatal(err)
		}
		for person, role := range map[*testkit.Person]policy.Role{&admin: policy.Admin, &member: policy.Member} {
			if _, err := f.app.Services.Workspaces.AddMember(ctx, ws.ID, person.ID, role); err != nil {
				t.Fatal(err)
			}
		}
		route := "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, ws.ID) + "/subscription/sandbox/fail-next-charge"
		assertEnvelope(t, call(t, f.url, "POST", route, owner.Headers(), ""), 404, kernel.CodeNotFound)

		session, err := p.Checkout(ctx, billing.CheckoutRequest{WorkspaceID: ws.ID, Plan: *ledger.Catalog().Plan("pro"),
			Interval: billing.Monthly, Currency: "usd"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.CompleteCheckout(ctx, session.ID, "4242 4242 4242 4242"); err != nil {
			t.Fatal(err)
		}
		assertEnvelope(t, call(t, f.url, "POST", route, member.Headers(), ""), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "POST", route, f.bearer, ""), 404, kernel.CodeNotFound) // another workspace's key
		assertEnvelope(t, call(t, f.url, "POST", route, nil, ""), 401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "POST", route, admin.Headers(), ""); r.status != 204 {
			t.Fatalf("admin: %d %s", r.status, r.raw)
		}
		sub, err := ledger.Subscription(ctx, ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		f.app.Clock.Set(*sub.CurrentPeriodEnd)
		if rep, err := p.Renew(ctx, f.app.DB); err != nil || rep.Failed != 1 {
			t.Fatalf("renewal after the route: %+v, %v", rep, err)
		}
		if sub, _ := ledger.Subscription(ctx, ws.ID); sub.Status != billing.StatusPastDue {
			t.Fatalf("ledger %+v", sub)
		}
		r := call(t, f.url, "GET", "/api/openapi.json", nil, "")
		if strings.Contains(r.raw, "fail-next-charge") {
			t.Fatal("the development route is in the OpenAPI document")
		}
	})
}
