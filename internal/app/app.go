// Package app wires Atrium together: configuration in, backends chosen, services
// built, the HTTP server run. cmd/atrium and the tests both boot it the same way.
package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"go.opentelemetry.io/otel/trace"

	"atrium/internal/account"
	"atrium/internal/billing"
	"atrium/internal/billing/sandboxpay"
	"atrium/internal/billing/stripepay"
	"atrium/internal/config"
	"atrium/internal/events"
	"atrium/internal/events/catalog"
	"atrium/internal/events/natsbus"
	"atrium/internal/events/realtime"
	"atrium/internal/events/scheduler"
	"atrium/internal/httpapi"
	"atrium/internal/httpapi/cursor"
	"atrium/internal/idempotency"
	"atrium/internal/identity"
	"atrium/internal/identity/authcache"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
	"atrium/internal/mail/mailqueue"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/usage"
	"atrium/internal/webhooks"
)

// Version is set at build time with -ldflags "-X atrium/internal/app.Version=…".
var Version = "dev"

// Options are the seams tests and forks use; the zero value is production's.
type Options struct {
	// LogOutput receives the JSON log; nil means standard error.
	LogOutput io.Writer
	// Clock replaces the real clock (tests move time with it).
	Clock kernel.Clock
	// Auth, when set, is tried after the session cookie: tests put their bearer
	// test keys here until API keys exist.
	Auth httpapi.Authenticator
	// PasswordParams replaces password.DefaultParams(); tests use cheap ones.
	PasswordParams *password.Params
	// Routes registers extra API operations.
	Routes []func(api huma.API)
	// LoginLimits replaces identity.DefaultLoginLimits(); tests, whose
	// requests all come from one address, raise the per-address limit.
	LoginLimits *identity.LoginLimits
	// ManualScheduler leaves App.Scheduler stopped while Run runs: tests
	// that move the clock across days are not raced by hard deletes and
	// cleanups, and those that want the scheduler run it themselves.
	ManualScheduler bool
}

// App is a running Atrium: its store, services and HTTP server.
type App struct {
	Config   config.Config
	Logger   *slog.Logger
	DB       store.SystemDB
	Services Services
	// AuthCache keeps sessions, bearer secrets and roles for a few seconds;
	// tests watch it.
	AuthCache *authcache.Cache

	handler  http.Handler
	server   *http.Server
	listener net.Listener
	closers  []func(context.Context) error
	// mailWorker delivers queued mail while Run runs; nil with the dev mailbox.
	mailWorker *mailqueue.Worker
	// Bus is the NATS connection (and the embedded server, by default).
	Bus *natsbus.Bus
	// Events relays the outbox and runs jobs and subscribers while Run runs.
	Events *events.Runtime
	// NodeID names this node in leases and run records.
	NodeID string
	// Realtime serves the workspaces' event streams while Run runs.
	Realtime *realtime.Hub
	// Scheduler runs periodic tasks while Run runs, on one node at a time.
	Scheduler *scheduler.Scheduler
	// relayLag measures the relay's lag for the platform admins' view.
	relayLag *relayLagMonitor
	// manualScheduler is Options.ManualScheduler.
	manualScheduler bool
	// planLimiter counts API calls against the plans' hourly limits.
	planLimiter ratelimit.Limiter
	// stripe receives Stripe's webhooks when ATRIUM_STRIPE_SECRET_KEY is set.
	stripe *stripepay.Provider
	// sandbox takes payments when Stripe does not; sandboxTokenKey signs
	// its pages' forms.
	sandbox         *sandboxpay.Provider
	sandboxTokenKey []byte
}

// Services are the domain services, for tests and for a fork's own handlers.
type Services struct {
	Workspaces  *tenancy.Service
	Idempotency *idempotency.Store
	Identity    *identity.Service
	// Account serves a person's own account across identity and tenancy.
	Account *account.Service
	// Mailbox is the dev mailbox every email goes to, or nil when
	// ATRIUM_SMTP_URL sends mail through SMTP.
	Mailbox *devmail.Mailbox
	// Jobs reads and cancels background jobs' records.
	Jobs *events.Jobs
	// Webhooks manages webhook endpoints and delivers events to them.
	Webhooks *webhooks.Service
	// Billing keeps the subscription ledger and answers what plans allow.
	Billing *billing.Service
	// Usage meters usage and applies the plans' quotas.
	Usage *usage.Service
}

// New builds the app: it opens and migrates the store, checks the database role,
// builds services and binds the listen address (port 0 picks a free port). On
// failure everything opened so far is closed again.
func New(ctx context.Context, cfg config.Config, opts Options) (a *App, err error) {
	out := opts.LogOutput
	if out == nil {
		out = os.Stderr
	}
	logger := NewLogger(out, cfg.LogLevel)
	clock := opts.Clock
	if clock == nil {
		clock = kernel.SystemClock{}
	}
	built := &App{Config: cfg, Logger: logger}
	a = built
	defer func() {
		if err != nil {
			built.Close() // the error returns set a to nil; built keeps what was opened
			a = nil
		}
	}()

	db, err := openStore(ctx, cfg, clock, logger)
	if err != nil {
		return nil, err
	}
	a.DB = db
	a.closers = append(a.closers, func(context.Context) error { return db.Close() })
	authCache, closeAuthCache := newAuthCache(db, clock, logger)
	a.AuthCache = authCache
	a.closers = append(a.closers, closeAuthCache)

	a.NodeID = nodeID(cfg)
	bus, err := openBus(cfg, logger)
	if err != nil {
		return nil, err
	}
	a.Bus = bus
	a.closers = append(a.closers, func(context.Context) error { return bus.Close() })
	a.Events = events.New(events.Config{DB: db, Bus: bus, Logger: logger, Clock: clock})

	secret, err := config.EnsureSecret(cfg, logger)
	if err != nil {
		return nil, err
	}
	cursors := cursor.NewSigner(deriveKey(secret, "atrium/cursor/v1"))
	if err := a.initEventStream(secret); err != nil {
		return nil, err
	}

	tracer, shutdownTracing, err := newTracer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, shutdownTracing)

	mailer, err := newMailer(cfg, db, logger)
	if err != nil {
		return nil, err
	}
	a.mailWorker = mailer.worker
	a.Services = Services{
		Idempotency: idempotency.New(db, idempotency.Options{}),
		Mailbox:     mailer.mailbox,
		Jobs:        events.NewJobs(db),
	}
	redisClient, redisReady, closeRedis, err := openRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, closeRedis)
	limiter := newLimiter(redisClient, db, clock)
	planLimiter, planLimiterReady := newPlanLimiter(redisClient, clock, logger)
	redisReady = append(redisReady, planLimiterReady...)
	a.planLimiter = planLimiter
	if a.Services.Identity, err = newIdentity(cfg, opts, clock, db, mailer.mailer, logger, deriveKey(secret, "atrium/mfa/v1"), limiter, authCache); err != nil {
		return nil, err
	}
	a.Services.Workspaces = tenancy.NewService(db, a.Services.Identity).WithAuthCache(authCache)
	a.Services.Account = account.New(a.Services.Identity, a.Services.Workspaces, clock)
	a.sandboxTokenKey = deriveKey(secret, "atrium/sandbox-checkout/v1")
	if err := a.initBilling(ctx, cfg, clock, mailer.mailer); err != nil {
		return nil, err
	}
	if err := a.initUsage(clock, mailer.mailer, redisClient); err != nil {
		return nil, err
	}
	if a.Services.Webhooks, err = newWebhooks(cfg, db, clock, logger, deriveKey(secret, "atrium/webhooks/v1"), mailer.mailer,
		a.Services.Workspaces, a.Events); err != nil {
		return nil, err
	}
	a.Services.Webhooks.WithPlans(a.Services.Billing.Entitlements)
	a.initScheduled(clock, opts.ManualScheduler)
	a.handler = a.newHandler(opts, tracer, cursors, redisReady)

	if err := a.listen(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// newHandler builds the HTTP chain over the app's services.
func (a *App) newHandler(opts Options, tracer trace.Tracer, cursors *cursor.Signer, limiterReady []httpapi.Check) http.Handler {
	return httpapi.NewHandler(httpapi.Deps{
		Logger:         a.Logger,
		Tracer:         tracer,
		Version:        Version,
		MaxBodyBytes:   a.Config.MaxBodyBytes,
		CORSOrigins:    a.Config.CORSOrigins,
		Ready:          append([]httpapi.Check{{Name: "store", Ping: a.DB.Ping}, {Name: "nats", Ping: a.Bus.Ping, Optional: true}}, limiterReady...),
		Auth:           authenticator(a.Services.Identity, opts.Auth),
		Access:         access(a.Services.Workspaces),
		Idempotency:    a.Services.Idempotency,
		Workspaces:     a.Services.Workspaces,
		Identity:       a.Services.Identity,
		Account:        a.Services.Account,
		DB:             a.DB,
		Cursors:        cursors,
		Routes:         a.sandboxRoutes(opts.Routes),
		DevMailbox:     devMailbox(a.Config, a.Services.Mailbox),
		Jobs:           a.Services.Jobs,
		EventCatalog:   catalog.Atrium,
		EventStream:    a.Realtime,
		Admin:          a.adminDeps(),
		Webhooks:       a.Services.Webhooks,
		Billing:        a.Services.Billing,
		Suspensions:    a.Services.Billing.Entitlements,
		Usage:          a.Services.Usage,
		RateLimiter:    a.planLimiter,
		Sandbox:        a.sandboxPages(),
		PlanLimits:     a.Services.Billing.Entitlements,
		StripeWebhooks: stripeWebhooks(a.stripe),
		BillingLedger:  a.Services.Billing.Ledger,
	})
}

// listen binds the configured address and builds the HTTP server around the
// handler. It returns an error naming ATRIUM_ADDR if the address is taken.
func (a *App) listen(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (ATRIUM_ADDR): %w", a.Config.Addr, err)
	}
	a.listener = ln
	a.server = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	return nil
}

// Addr is the address the server listens on, with the real port.
func (a *App) Addr() string { return a.listener.Addr().String() }

// URL is the base URL of the listening server.
func (a *App) URL() string { return "http://" + a.Addr() }

// Handler is the whole HTTP chain, for in-process benchmarks.
func (a *App) Handler() http.Handler { return a.handler }

// Run serves until ctx is cancelled, then stops taking connections and gives
// in-flight requests up to ShutdownTimeout to finish. The background workers
// (mail delivery) run as long as Run does: it returns only after they have
// stopped, so Close never pulls the store from under them. It returns nil
// after a clean shutdown.
func (a *App) Run(ctx context.Context) error {
	stopWorkers := a.startWorkers(ctx)
	defer stopWorkers()
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.listener) }()
	a.Logger.Info("atrium serving", "addr", a.Addr(), "base_url", a.Config.BaseURL,
		"env", a.Config.Env, "store", string(a.DB.Dialect()), "version", Version)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down", "grace", a.Config.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	if err := a.server.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startWorkers runs the background workers until ctx ends. The function it
// returns stops them and waits until they have.
func (a *App) startWorkers(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.mailWorker != nil {
		wg.Go(func() { a.mailWorker.Run(ctx) })
	}
	wg.Go(func() { a.Events.Run(ctx) })
	// Open event streams end as soon as the server starts shutting down:
	// they would otherwise hold it up for the whole grace period.
	a.server.RegisterOnShutdown(a.Realtime.Close)
	wg.Go(func() { a.Realtime.Run(ctx) })
	wg.Go(func() { a.runScheduler(ctx) })
	wg.Go(func() { a.relayLag.Run(ctx) })
	return func() { cancel(); wg.Wait() }
}

// devMailbox is the mailbox the /dev/mailbox routes read: none in production,
// where they do not exist, nor when mail goes through SMTP.
func devMailbox(cfg config.Config, box *devmail.Mailbox) *devmail.Mailbox {
	if cfg.Production() {
		return nil
	}
	return box
}

// Close releases the store and everything else New opened. It is safe to call
// after Run and more than once.
func (a *App) Close() error {
	var errs []error
	if a.listener != nil {
		_ = a.listener.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i](ctx))
	}
	a.closers = nil
	return errors.Join(errs...)
}

// newIdentity builds the identity service, sending through mailer. mfaKey
// seals TOTP secrets at rest; limiter counts login attempts.
func newIdentity(cfg config.Config, opts Options, clock kernel.Clock, db store.DB, mailer mail.Mailer, logger *slog.Logger,
	mfaKey []byte, limiter ratelimit.Limiter, authCache *authcache.Cache) (*identity.Service, error) {
	params := password.DefaultParams()
	if opts.PasswordParams != nil {
		params = *opts.PasswordParams
	}
	if err := params.Validate(); err != nil {
		return nil, err
	}
	templates, err := mail.LoadTemplates(productName)
	if err != nil {
		return nil, err
	}
	loginLimits := identity.DefaultLoginLimits()
	if opts.LoginLimits != nil {
		loginLimits = *opts.LoginLimits
	}
	return identity.NewService(identity.Config{
		DB: db, Hasher: password.New(params, 0), Mailer: mailer, Templates: templates,
		BaseURL: cfg.BaseURL, Logger: logger,
		IdleTimeout: cfg.SessionIdleTimeout, Lifetime: cfg.SessionLifetime, Clock: clock, MFAKey: mfaKey,
		Limiter: limiter, LoginLimits: loginLimits, AuthCache: authCache,
	})
}

// authenticator is the request authenticator: the session cookie first, then
// API keys and personal access tokens, then extra (tests' bearer keys), if
// any; an Authorization header none of them claims is refused.
func authenticator(ids *identity.Service, extra httpapi.Authenticator) httpapi.Authenticator {
	chain := httpapi.AuthChain{httpapi.SessionCookie{Sessions: ids}, httpapi.BearerTokens{Tokens: ids}}
	if extra != nil {
		chain = append(chain, extra)
	}
	return append(chain, httpapi.RefuseUnclaimed{})
}

// access admits people to the workspaces they are members of and API keys to
// the one they are bound to.
func access(members httpapi.RoleReader) httpapi.WorkspaceAccess {
	return httpapi.ActorAccess{
		kernel.ActorUser:   httpapi.MemberAccess{Members: members},
		kernel.ActorAPIKey: httpapi.KeyBindingAccess{},
	}
}

// productName names the product in emails.
const productName = "Atrium"

// deriveKey gives each use of the secret its own key, so that a value signed
// for one purpose (a cursor) is never valid for another (a session).
func deriveKey(secret, purpose string) []byte {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(purpose))
	return mac.Sum(nil)
}

// NewLogger returns the JSON logger Atrium uses everywhere; lines logged with a
// request's context carry its request and workspace IDs.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(kernel.NewContextHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}
