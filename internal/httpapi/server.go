// Package httpapi is Atrium's HTTP surface: the middleware spine every request
// passes through, the one error envelope, and the API routes, documented as
// OpenAPI 3.1 by huma from the Go types.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"go.opentelemetry.io/otel/trace"

	"atrium/internal/account"
	"atrium/internal/billing"
	"atrium/internal/events"
	"atrium/internal/events/catalog"
	"atrium/internal/events/realtime"
	"atrium/internal/httpapi/cursor"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/mail/devmail"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/usage"
	"atrium/internal/webhooks"
)

// Check is one dependency /readyz probes.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
	// Optional checks are reported but do not make the node unready.
	Optional bool
}

// Deps is everything the HTTP layer needs. Zero values pick safe defaults:
// no tracer exports, every caller is anonymous, and only API keys reach a
// workspace (their own). Atrium wires Access to an ActorAccess that admits
// people through their memberships as well.
type Deps struct {
	Logger *slog.Logger
	// Tracer records a span per request; nil leaves tracing out of the chain.
	Tracer       trace.Tracer
	Version      string
	MaxBodyBytes int64
	CORSOrigins  []string
	Ready        []Check
	Auth         Authenticator
	Access       WorkspaceAccess
	Idempotency  IdempotencyStore
	Workspaces   *tenancy.Service
	// Identity serves sign-up, login, sessions and /me; nil leaves those routes out.
	Identity *identity.Service
	// Account serves the rest of /me (profile, password, export, deletion)
	// and email-change confirmation; nil leaves those routes out.
	Account *account.Service
	// DB serves the read-only views that need no service of their own: the
	// audit log, whose actors Identity names (both are needed for it).
	DB store.DB
	// Cursors signs pagination cursors; required with DB, Workspaces and Identity.
	Cursors *cursor.Signer
	// Routes registers further operations: a fork's own product, or a test's.
	Routes []func(api huma.API)
	// DevMailbox serves /dev/mailbox, the developer's view of the mail the app
	// "sent"; nil (production, or mail through SMTP) leaves those routes out.
	DevMailbox *devmail.Mailbox
	// Jobs serves the background jobs' records; nil leaves those routes out.
	Jobs *events.Jobs
	// EventCatalog documents every event type in the OpenAPI document (a
	// webhook per type); nil leaves them out.
	EventCatalog *catalog.Catalog
	// EventStream serves the workspaces' event streams; it needs
	// EventCatalog, and nil leaves the route out.
	EventStream *realtime.Hub
	// Admin serves the platform admins' routes (scheduler runs, relay lag);
	// nil leaves them out. It needs Cursors.
	Admin *AdminDeps
	// Webhooks serves webhook endpoints and their delivery logs; nil leaves
	// those routes out.
	Webhooks *webhooks.Service
	// Billing serves the plans, subscriptions, trials and invoices; nil
	// leaves those routes out.
	Billing *billing.Service
	// Suspensions makes workspaces suspended for non-payment read-only;
	// nil suspends nothing.
	Suspensions Suspensions
	// Usage meters API calls and serves the usage route; nil leaves both out.
	Usage *usage.Service
	// StripeWebhooks serves Stripe's webhook endpoint, whose events
	// BillingLedger applies (it needs one); nil (Stripe not configured)
	// leaves the endpoint out.
	StripeWebhooks StripeWebhooks
	BillingLedger  LedgerApplier
	// Sandbox serves the sandbox payment provider's checkout and portal
	// pages (see sandboxPages); nil (Stripe configured) leaves them out.
	Sandbox *SandboxPages
	// RateLimiter counts API calls per workspace against PlanLimits'
	// api_calls_per_hour (see planRateLimit); with either nil, calls are not
	// limited.
	RateLimiter ratelimit.Limiter
	PlanLimits  PlanLimits
}

var hookOnce sync.Once

// NewHandler builds the API behind the middleware chain, in the order DESIGN.md
// fixes: recovery, request ID, logger, tracing, CORS, body checks, rate limit,
// auth, tenant, CSRF, idempotency.
func NewHandler(d Deps) http.Handler {
	hookOnce.Do(hookHumaErrors)
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Auth == nil {
		d.Auth = Anonymous{}
	}
	if d.Access == nil {
		d.Access = KeyBindingAccess{}
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = 1 << 20
	}

	mux := http.NewServeMux()
	api := humago.New(mux, apiConfig(d.Version, d.MaxBodyBytes))
	api.UseMiddleware(rejectUnknownQuery(api), rejectUnexpectedBody(api))
	registerHealth(api, d.Ready)
	if d.DB != nil && d.Cursors != nil && d.Identity != nil {
		registerAuditLog(api, d.DB, d.Identity, d.Cursors)
	}
	if d.Workspaces != nil {
		if d.Cursors == nil {
			panic("httpapi: Deps.Workspaces needs Deps.Cursors to page workspace and member lists")
		}
		registerWorkspaces(api, d.Workspaces, d.Cursors)
		registerMembers(api, d.Workspaces, d.Cursors)
		registerInvites(api, d.Workspaces, d.Cursors)
		registerTeams(api, d.Workspaces, d.Cursors)
		if d.Jobs != nil {
			registerJobs(api, d.Jobs)
		}
		if d.Webhooks != nil {
			registerWebhooks(api, d.Webhooks, d.Cursors)
		}
		if d.Billing != nil {
			registerBilling(api, d.Billing, d.Cursors)
		}
		if d.Usage != nil {
			registerUsage(api, d.Usage)
		}
	}
	if d.Identity != nil {
		if d.Cursors == nil {
			panic("httpapi: Deps.Identity needs Deps.Cursors to page session lists")
		}
		registerAuth(api, d.Identity)
		registerMFA(api, d.Identity)
		registerMe(api, d.Identity, d.Cursors)
		registerTokens(api, d.Identity, d.Cursors)
		registerAPIKeys(api, d.Identity, d.Cursors)
		if d.Account != nil {
			registerAccount(api, d.Account, d.Identity)
		}
	}
	if d.DevMailbox != nil {
		registerDevMailbox(api, d.DevMailbox)
	}
	if d.EventStream != nil && d.EventCatalog == nil {
		panic("httpapi: Deps.EventStream needs Deps.EventCatalog to document its events")
	}
	if d.EventCatalog != nil {
		registerEvents(api, d.EventCatalog, d.EventStream, d.Auth, d.Access)
	}
	if d.Admin != nil {
		registerAdmin(api, *d.Admin, d.Cursors)
	}
	if d.StripeWebhooks != nil {
		registerBillingWebhooks(api, d.StripeWebhooks, d.BillingLedger)
	}
	for _, register := range d.Routes {
		register(api)
	}
	mux.Handle("GET /api/docs", docsHandler(api))

	chain := []func(http.Handler) http.Handler{
		recovery(d.Logger),
		requestID,
		logger(d.Logger),
		tracing(d.Tracer), // nil: no exporter configured, so no middleware at all
		cors(d.CORSOrigins),
		sandboxPages(d.Sandbox, d.CORSOrigins), // HTML forms: served before the JSON body check; nil without the sandbox
		bodyCheck(d.MaxBodyBytes, []string{"/api/v1/billing/webhooks/"}),
		auth(d.Auth),
		tenant(d.Access),
		readOnlyWhenSuspended(d.Suspensions),
		planRateLimit(d.RateLimiter, d.PlanLimits), // per workspace, by plan: needs the workspace tenant resolves
		UsageMetering(d.Usage),
		csrf(d.CORSOrigins),
	}
	if d.Idempotency != nil {
		chain = append(chain, idempotent(d.Idempotency))
	}
	var h http.Handler = routed(mux)
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i] != nil {
			h = chain[i](h)
		}
	}
	return h
}

func apiConfig(version string, maxBody int64) huma.Config {
	cfg := huma.DefaultConfig("Atrium API", version)
	cfg.Info.Description = "The API of an Atrium deployment. Every error answers " +
		"`{\"error\":{\"code\",\"message\",\"fields\",\"request_id\"}}`; lists use opaque cursors; " +
		"POST accepts an `Idempotency-Key` header."
	cfg.OpenAPIPath = "/api/openapi"
	cfg.DocsPath = "" // served by docsHandler: rendered here, no CDN
	cfg.SchemasPath = "/api/schemas"
	cfg.CreateHooks = nil // no $schema links injected into response bodies
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer":  {Type: "http", Scheme: "bearer", Description: "An API key or personal access token"},
		"session": {Type: "apiKey", In: "cookie", Name: SessionCookieName, Description: "The session cookie set at login"},
	}
	return cfg
}

// routed records the matched route for logs and traces, and answers unknown
// routes and wrong methods with the envelope instead of the mux's plain text.
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// Let the mux decide between 404 and 405 (and its Allow header),
			// then answer in our own words.
			rec := &probeWriter{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if rec.code == http.StatusMethodNotAllowed {
				if allow := rec.Header().Get("Allow"); allow != "" {
					w.Header().Set("Allow", allow)
				}
				WriteError(w, r, &kernel.Error{Code: kernel.CodeMethodNotAllowed, Message: r.Method + " is not allowed here"})
				return
			}
			WriteError(w, r, kernel.NotFound("route"))
			return
		}
		stateFrom(r.Context()).route = pattern
		mux.ServeHTTP(w, r)
	})
}

// readyTimeout bounds each readiness probe.
const readyTimeout = 2 * time.Second

// probeWriter catches what the mux would answer for an unmatched request.
type probeWriter struct {
	header http.Header
	code   int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int)        { p.code = code }

// rejectUnknownQuery answers 400 naming a query parameter the operation does
// not declare, so a typo (?limt=5) is never silently ignored.
func rejectUnknownQuery(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		u := ctx.URL()
		if u.RawQuery == "" {
			next(ctx)
			return
		}
		query := u.Query()
		known := map[string]bool{}
		for _, p := range ctx.Operation().Parameters {
			if p.In == "query" {
				known[p.Name] = true
			}
		}
		for name := range query {
			if !known[name] {
				huma.WriteErr(api, ctx, http.StatusBadRequest, "unknown query parameter",
					&huma.ErrorDetail{Location: "query." + name, Message: "unknown parameter"})
				return
			}
		}
		next(ctx)
	}
}
