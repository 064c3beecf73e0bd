package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/billing/sandboxpay"
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// The sandbox payment provider's pages: GET /sandbox/checkout/{id} shows a
// checkout (or the portal) as a small self-contained HTML page, and POST
// takes a test card from its form. They need no login: the session's ID,
// 128 random bits, is the capability, as a Stripe Checkout URL is. An HTML
// form posts form-encoded bodies, which the API's JSON body check refuses,
// so the pages are served from the middleware chain just before that check
// (after recovery, request ID, logging, tracing and CORS). The POST must
// carry the page's token, an HMAC of the session ID under
// SandboxPages.TokenKey, and come from the same origin (Sec-Fetch-Site or
// Origin, as csrf checks cookie-authenticated calls): a cross-site form
// cannot complete someone's checkout.

// SandboxCheckout is what the pages need of the sandbox provider
// (sandboxpay.Provider).
type SandboxCheckout interface {
	CheckoutPage(ctx context.Context, checkoutID string) (sandboxpay.Page, error)
	CompleteCheckout(ctx context.Context, checkoutID, cardNumber string) (redirectURL string, err error)
}

// SandboxPages serves the sandbox provider's checkout and portal pages
// (Deps.Sandbox).
type SandboxPages struct {
	Provider SandboxCheckout
	// TokenKey signs the token each page's form carries: at least 32
	// bytes, derived from the application's secret for this use alone.
	TokenKey []byte
}

// maxSandboxFormBytes caps a page's form: a card number and a token.
const maxSandboxFormBytes = 4 << 10

// sandboxPagePolicy lets the page render its inline style and post its
// form to its own origin, and nothing else.
const sandboxPagePolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// sandboxPages serves the pages ahead of the JSON body check, and passes
// every other request on. It returns nil (no middleware) without pages. It
// panics when pages lack a provider or a key of 32 bytes: a wiring mistake.
func sandboxPages(pages *SandboxPages, trustedOrigins []string) func(http.Handler) http.Handler {
	if pages == nil {
		return nil
	}
	if pages.Provider == nil || len(pages.TokenKey) < 32 {
		panic("httpapi: Deps.Sandbox needs a Provider and a TokenKey of at least 32 bytes")
	}
	cop := http.NewCrossOriginProtection()
	for _, o := range trustedOrigins {
		_ = cop.AddTrustedOrigin(o) // validated by config
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := strings.CutPrefix(r.URL.Path, sandboxpay.CheckoutPath)
			if !ok || id == "" || strings.Contains(id, "/") {
				next.ServeHTTP(w, r)
				return
			}
			switch r.Method {
			case http.MethodGet, http.MethodHead:
				stateFrom(r.Context()).route = "GET " + sandboxpay.CheckoutPath + "{id}"
				pages.show(w, r, id)
			case http.MethodPost:
				stateFrom(r.Context()).route = "POST " + sandboxpay.CheckoutPath + "{id}"
				if err := cop.Check(r); err != nil {
					pages.refuse(w, r, http.StatusForbidden, "This form was sent from another site, and refused.")
					return
				}
				pages.submit(w, r, id)
			default:
				w.Header().Set("Allow", "GET, HEAD, POST")
				WriteError(w, r, &kernel.Error{Code: kernel.CodeMethodNotAllowed, Message: r.Method + " is not allowed here"})
			}
		})
	}
}

// show renders a session's page: its form while it is open, why not
// otherwise.
func (pages *SandboxPages) show(w http.ResponseWriter, r *http.Request, id string) {
	page, err := pages.Provider.CheckoutPage(r.Context(), id)
	if err != nil {
		pages.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if page.State != sandboxpay.PageOpen {
		status = http.StatusConflict
	}
	pages.render(w, r, status, page, "")
}

// submit takes the card of a page's form and sends the customer on, or
// shows the page again with what went wrong.
func (pages *SandboxPages) submit(w http.ResponseWriter, r *http.Request, id string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSandboxFormBytes)
	if err := r.ParseForm(); err != nil {
		pages.refuse(w, r, http.StatusBadRequest, "The form could not be read: go back and send it again.")
		return
	}
	if !hmac.Equal([]byte(r.PostForm.Get("token")), []byte(pages.token(id))) {
		pages.refuse(w, r, http.StatusForbidden, "This form did not come from this page: reload the page and try again.")
		return
	}
	redirect, err := pages.Provider.CompleteCheckout(r.Context(), id, r.PostForm.Get("card_number"))
	if err == nil {
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	ke := kernel.As(err)
	switch ke.Code {
	case kernel.CodePaymentRequired, kernel.CodeInvalid, kernel.CodeConflict:
		page, perr := pages.Provider.CheckoutPage(r.Context(), id)
		if perr != nil {
			pages.fail(w, r, perr)
			return
		}
		pages.render(w, r, ke.Code.Status(), page, ke.Message)
	default:
		pages.fail(w, r, err)
	}
}

// token is the form token of a session's page.
func (pages *SandboxPages) token(id string) string {
	mac := hmac.New(sha256.New, pages.TokenKey)
	mac.Write([]byte("atrium sandbox checkout\x00" + id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// fail answers an error as a page: not_found as a missing page, anything
// unexpected logged and shown without detail.
func (pages *SandboxPages) fail(w http.ResponseWriter, r *http.Request, err error) {
	ke := kernel.As(err)
	switch ke.Code {
	case kernel.CodeNotFound:
		pages.refuse(w, r, http.StatusNotFound, "This checkout page does not exist. Start again from the billing page.")
	case kernel.CodeUnavailable:
		kernel.Logger(r.Context()).ErrorContext(r.Context(), "sandbox page failed", "error", err.Error())
		pages.refuse(w, r, http.StatusServiceUnavailable, "Something is unavailable: try again shortly.")
	default:
		kernel.Logger(r.Context()).ErrorContext(r.Context(), "sandbox page failed", "error", err.Error())
		pages.refuse(w, r, http.StatusInternalServerError, "Something went wrong on our side. Request "+kernel.RequestID(r.Context())+".")
	}
}

// refuse renders a page that only says why.
func (pages *SandboxPages) refuse(w http.ResponseWriter, r *http.Request, status int, message string) {
	writeSandboxPage(w, r, status, sandboxView{Title: "Sandbox checkout", Notice: message})
}

// render renders a session's page, with an error under its form.
func (pages *SandboxPages) render(w http.ResponseWriter, r *http.Request, status int, page sandboxpay.Page, problem string) {
	v := sandboxView{Title: "Sandbox checkout", Page: &page, Error: problem, Cards: sandboxpay.TestCards}
	if page.Mode == "setup" {
		v.Title = "Sandbox billing portal"
	}
	switch {
	case page.State == sandboxpay.PageOpen && page.Subscription != nil && !page.Subscription.CanceledAt.IsZero():
		v.Notice = "This subscription has ended: subscribe again from the billing page."
	case page.State == sandboxpay.PageOpen:
		v.Token = pages.token(page.ID)
	case page.State == sandboxpay.PageCompleted:
		v.Notice = "This checkout is complete."
	case page.State == sandboxpay.PageExpired:
		v.Notice = "This page has expired. Start again from the billing page."
	}
	writeSandboxPage(w, r, status, v)
}

// sandboxView is what the page template reads.
type sandboxView struct {
	Title  string
	Page   *sandboxpay.Page
	Token  string
	Error  string
	Notice string
	Cards  []sandboxpay.TestCard
}

func writeSandboxPage(w http.ResponseWriter, r *http.Request, status int, v sandboxView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", sandboxPagePolicy)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	var b strings.Builder
	if err := sandboxTemplate.Execute(&b, v); err != nil {
		kernel.Logger(r.Context()).ErrorContext(r.Context(), "sandbox page: render", "error", err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// zeroDecimal lists the currencies without minor units (an amount of 500
// JPY is 500 yen), as Stripe does.
var zeroDecimal = map[string]bool{"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true,
	"mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true}

// formatMoney writes an amount in minor units as "29.00 USD".
func formatMoney(amount int64, currency string) string {
	code := strings.ToUpper(currency)
	if zeroDecimal[strings.ToLower(currency)] {
		return strconv.FormatInt(amount, 10) + " " + code
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	cents := strconv.FormatInt(amount%100, 10)
	if len(cents) == 1 {
		cents = "0" + cents
	}
	return sign + strconv.FormatInt(amount/100, 10) + "." + cents + " " + code
}

func formatDate(t time.Time) string { return t.UTC().Format("2 January 2006") }

func perInterval(i billing.Interval) string {
	if i == billing.Yearly {
		return "per year"
	}
	return "per month"
}

// describeStatus says where a subscription stands, for the portal.
func describeStatus(s billing.Status) string {
	switch s {
	case billing.StatusPastDue:
		return "past due: a payment failed and is being retried"
	case billing.StatusCanceled:
		return "ended"
	}
	return string(s)
}

var sandboxTemplate = template.Must(template.New("sandbox").Funcs(template.FuncMap{
	"money": formatMoney, "date": formatDate, "per": perInterval, "status": describeStatus,
	"path": func() string { return sandboxpay.CheckoutPath },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2330;background:#f4f5f7}
main{max-width:32rem;margin:2rem auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.6rem 0 .5rem}
.badge{display:inline-block;font-size:.75rem;font-weight:600;letter-spacing:.04em;text-transform:uppercase;color:#8a5300;background:#fff2d6;border-radius:4px;padding:.1rem .5rem}
.price{font-size:1.6rem;font-weight:600;margin:0}.muted{color:#5c6475;font-size:.9rem}
.error{color:#a4161a;background:#fde8e8;border-radius:6px;padding:.6rem .8rem}
.notice{background:#eef2ff;border-radius:6px;padding:.8rem}
label{display:block;font-weight:600;margin:1.2rem 0 .3rem}
input[type=text]{box-sizing:border-box;width:100%;font:inherit;padding:.6rem .7rem;border:1px solid #c4c9d4;border-radius:6px}
button{margin-top:1rem;width:100%;font:inherit;font-weight:600;color:#fff;background:#3451d1;border:0;border-radius:6px;padding:.7rem;cursor:pointer}
table{width:100%;border-collapse:collapse;font-size:.9rem}td,th{text-align:left;padding:.35rem .3rem;border-bottom:1px solid #e6e8ec}
code{font-size:.9rem;white-space:nowrap}a{color:#3451d1}
</style>
</head>
<body>
<main>
<span class="badge">Sandbox: no real payment</span>
{{with .Page}}{{if eq .Mode "setup"}}{{with .Subscription}}
<h1>Your {{.PlanName}} subscription</h1>
<p class="price">{{money .Amount .Currency}} <span class="muted">{{per .Interval}}</span></p>
<p class="muted">Status: {{status .Status}}.{{if .CanceledAt.IsZero}}{{if .CancelAtPeriodEnd}} Ends on {{date .CurrentPeriodEnd}}.{{else}} Next charge on {{date .CurrentPeriodEnd}}.{{end}}{{else}} Ended on {{date .CanceledAt}}.{{end}}
Card on file: •••• {{.CardLast4}}.{{if .PendingPlanName}} Changes to {{.PendingPlanName}} ({{per .PendingInterval}}) on {{date .CurrentPeriodEnd}}.{{end}}{{if gt .CreditBalance 0}} Credit: {{money .CreditBalance .Currency}}.{{end}}</p>
{{end}}{{if .Invoices}}<h2>Invoices</h2>
<table><tr><th>Number</th><th>Date</th><th>Amount</th><th>Status</th></tr>
{{range .Invoices}}<tr><td>{{.Number}}</td><td>{{date .CreatedAt}}</td><td>{{money .AmountDue .Currency}}</td><td>{{.Status}}</td></tr>
{{end}}</table>{{end}}{{else}}
<h1>Subscribe to {{.PlanName}}</h1>
<p class="price">{{money .Amount .Currency}} <span class="muted">{{per .Interval}}</span></p>
{{if not .TrialEnd.IsZero}}<p>Your trial runs until {{date .TrialEnd}}: the first charge is made then.</p>{{end}}
{{if .Email}}<p class="muted">Billing contact: {{.Email}}</p>{{end}}{{end}}{{end}}
{{if .Notice}}<p class="notice" role="status">{{.Notice}}</p>{{end}}
{{if .Token}}
<form method="post" action="{{path}}{{.Page.ID}}">
<input type="hidden" name="token" value="{{.Token}}">
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<label for="card_number">{{if eq .Page.Mode "setup"}}New card number{{else}}Card number{{end}}</label>
<input type="text" id="card_number" name="card_number" inputmode="numeric" autocomplete="off" maxlength="30" placeholder="4242 4242 4242 4242" required>
<button type="submit">{{if eq .Page.Mode "setup"}}Update card{{else}}Subscribe{{end}}</button>
</form>
<p class="muted"><a href="{{.Page.CancelURL}}">{{if eq .Page.Mode "setup"}}Back{{else}}Cancel and go back{{end}}</a></p>
<h2>Test cards</h2>
<table>{{range .Cards}}<tr><td><code>{{.Number}}</code></td><td>{{.Description}}</td></tr>{{end}}</table>
<p class="muted">No real card is taken here, and only the last four digits of a test card are kept.</p>
{{else}}{{with .Page}}{{if eq .State "completed"}}<p><a href="{{.SuccessURL}}">Continue</a></p>{{else}}<p><a href="{{.CancelURL}}">Back</a></p>{{end}}{{end}}{{end}}
</main>
</body>
</html>
`))

// SandboxFailer makes a workspace's next sandbox charge fail
// (sandboxpay.Provider).
type SandboxFailer interface {
	FailNextCharge(ctx context.Context, workspaceID uuid.UUID) error
}

// SandboxDevRoutes returns the development route that makes the next
// charge of a workspace's sandbox subscription fail, for Deps.Routes:
// Atrium adds it outside production only, with the sandbox provider. Like
// /dev/mailbox it is hidden from the OpenAPI document, which stays the same
// in every environment.
func SandboxDevRoutes(sandbox SandboxFailer) func(huma.API) {
	return func(api huma.API) {
		huma.Register(api, huma.Operation{
			OperationID: "sandbox-fail-next-charge", Method: http.MethodPost,
			Path:    "/api/v1/workspaces/{workspace_id}/subscription/sandbox/fail-next-charge",
			Summary: "Make the next sandbox charge fail", Tags: []string{"Development"}, Hidden: true,
			Security: bearerOrSession, DefaultStatus: http.StatusNoContent,
			Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound},
			Description: "Development only, owners and admins: the next charge of the workspace's sandbox subscription " +
				"(a renewal, a retry, an upgrade) fails once, whatever its card, to try dunning. 404 without a sandbox subscription.",
		}, func(ctx context.Context, in *workspacePath) (*struct{}, error) {
			res, err := resourceFrom(ctx)
			if err != nil {
				return nil, err
			}
			if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
				return nil, err
			}
			return nil, sandbox.FailNextCharge(ctx, res.Workspace)
		})
	}
}
