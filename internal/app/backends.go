package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"atrium/internal/config"
	"atrium/internal/events/natsbus"
	"atrium/internal/httpapi"
	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
	"atrium/internal/mail/mailqueue"
	"atrium/internal/mail/smtpmail"
	"atrium/internal/ratelimit"
	"atrium/internal/ratelimit/fallback"
	"atrium/internal/ratelimit/memlimit"
	"atrium/internal/ratelimit/redislimit"
	"atrium/internal/ratelimit/storelimit"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
)

// openStore is the one place the store dialect is chosen. It opens, migrates
// (when ATRIUM_AUTO_MIGRATE is on) and, on PostgreSQL, checks that the role
// cannot see across tenants: in production any such risk stops the start.
func openStore(ctx context.Context, cfg config.Config, clock kernel.Clock, logger *slog.Logger) (store.SystemDB, error) {
	if cfg.DatabaseURL == "" {
		db, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: cfg.SQLitePath(), Clock: clock, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("open the embedded database: %w", err)
		}
		if cfg.AutoMigrate {
			applied, err := db.Migrate(ctx)
			if err != nil {
				db.Close()
				return nil, fmt.Errorf("migrate: %w", err)
			}
			logMigrations(logger, applied)
		}
		return db, nil
	}
	db, err := pgstore.Open(ctx, pgstore.Options{URL: cfg.DatabaseURL, Clock: clock, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (ATRIUM_DATABASE_URL): %w", err)
	}
	if err := preparePostgres(ctx, cfg, db, logger); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func preparePostgres(ctx context.Context, cfg config.Config, db *pgstore.DB, logger *slog.Logger) error {
	if cfg.AutoMigrate {
		role, err := db.InspectRole(ctx)
		if err != nil {
			return fmt.Errorf("inspect database role: %w", err)
		}
		url, appRole := cfg.DatabaseURL, ""
		if cfg.MigrateDatabaseURL != "" {
			url, appRole = cfg.MigrateDatabaseURL, role.Name
		}
		applied, err := pgstore.Migrate(ctx, url, appRole)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		logMigrations(logger, applied)
	}
	role, err := db.InspectRole(ctx)
	if err != nil {
		return fmt.Errorf("inspect database role: %w", err)
	}
	risks := role.Risks()
	for _, r := range risks {
		logger.Warn("tenant isolation risk", "risk", r)
	}
	if cfg.Production() && len(risks) > 0 {
		return errors.New("refusing to start in production: " + strings.Join(risks, "; "))
	}
	return nil
}

// newAuthCache builds the cache of sessions, bearer secrets and roles (see
// package authcache) with the invalidation source that matches the store,
// chosen here next to it: SQLite's auth epoch, read before each lookup, or
// PostgreSQL's notifications, through a listener that runs until the
// returned close. Another store gets no cache (nil reads the store always).
func newAuthCache(db store.SystemDB, clock kernel.Clock, logger *slog.Logger) (*authcache.Cache, func(context.Context) error) {
	switch db := db.(type) {
	case *sqlitestore.DB:
		return authcache.New(authcache.Options{Clock: clock, Epoch: db, Logger: logger}), func(context.Context) error { return nil }
	case *pgstore.DB:
		cache := authcache.New(authcache.Options{Clock: clock, Logger: logger})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			db.ListenAuth(ctx, cache)
		}()
		return cache, func(context.Context) error {
			stop()
			<-done
			return nil
		}
	}
	return nil, func(context.Context) error { return nil }
}

// openRedis connects to ATRIUM_REDIS_URL, when set, for the rate-limit
// counters and the usage meter. It returns the client (nil without Redis),
// the readiness check it adds and what closes it, or an error naming
// ATRIUM_REDIS_URL, never its password, if Redis does not answer.
func openRedis(ctx context.Context, cfg config.Config) (*redis.Client, []httpapi.Check, func(context.Context) error, error) {
	if cfg.RedisURL == "" {
		return nil, nil, func(context.Context) error { return nil }, nil
	}
	client, err := redislimit.Open(ctx, cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to Redis (ATRIUM_REDIS_URL): %w", err)
	}
	ping := func(ctx context.Context) error { return client.Ping(ctx).Err() }
	return client, []httpapi.Check{{Name: "redis", Ping: ping}}, func(context.Context) error { return client.Close() }, nil
}

// newLimiter is the one place the login limiter's backend is chosen: Redis
// when ATRIUM_REDIS_URL is set (client not nil), else the database.
func newLimiter(client *redis.Client, db store.DB, clock kernel.Clock) ratelimit.Limiter {
	if client == nil {
		return storelimit.New(db)
	}
	return redislimit.New(client, clock)
}

// newPlanLimiter is the one place the backend of the plans' API rate limits
// is chosen: in-process by default; with Redis, Redis shared by every node,
// falling back to in-process counts (never to no limit) while Redis does not
// answer, which the optional readiness check reports as degraded.
func newPlanLimiter(client *redis.Client, clock kernel.Clock, logger *slog.Logger) (ratelimit.Limiter, []httpapi.Check) {
	if client == nil {
		return memlimit.New(clock), nil
	}
	fb := fallback.New(redislimit.New(client, clock), memlimit.New(clock), fallback.Options{Name: "redis", Logger: logger})
	return fb, []httpapi.Check{{Name: "rate_limits", Ping: fb.Ping, Optional: true}}
}

func logMigrations(logger *slog.Logger, applied []store.Migration) {
	for _, m := range applied {
		logger.Info("applied migration", "version", m.Version, "name", m.Name)
	}
}

// newTracer returns a tracer exporting over OTLP/HTTP when an endpoint is
// configured, and nil (no tracing middleware at all) otherwise.
func newTracer(ctx context.Context, cfg config.Config) (trace.Tracer, func(context.Context) error, error) {
	if cfg.OTLPEndpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint))
	if err != nil {
		return nil, nil, fmt.Errorf("ATRIUM_OTLP_ENDPOINT: %w", err)
	}
	res := sdkresource.NewSchemaless(semconv.ServiceName("atrium"), semconv.ServiceVersion(Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Tracer("atrium"), tp.Shutdown, nil
}

// mailBackend is what newMailer chose: the Mailer services send through, the
// dev mailbox when that is it, and the worker delivering queued mail when not.
type mailBackend struct {
	mailer  mail.Mailer
	mailbox *devmail.Mailbox
	worker  *mailqueue.Worker
}

// newMailer is the one place the mail backend is chosen. With ATRIUM_SMTP_URL
// set, services queue their mail (mailqueue) and a worker delivers it through
// SMTP, so no request waits on the mail server. Without it, mail goes to the dev
// mailbox; in production that is said loudly, since no email leaves the server.
// It returns an invalid error if the SMTP configuration is unusable.
func newMailer(cfg config.Config, db store.DB, logger *slog.Logger) (mailBackend, error) {
	if !cfg.SMTPConfigured() {
		if cfg.Production() {
			logger.Warn("email goes to the dev mailbox: no message leaves this server until SMTP is configured")
		}
		box := devmail.New(db)
		return mailBackend{mailer: box, mailbox: box}, nil
	}
	smtp, err := smtpmail.New(cfg.SMTP)
	if err != nil {
		return mailBackend{}, fmt.Errorf("ATRIUM_SMTP_URL: %w", err)
	}
	logger.Info("email goes through SMTP", "smtp", cfg.SMTP.String())
	queue := mailqueue.New(db)
	return mailBackend{mailer: queue, worker: mailqueue.NewWorker(queue, smtp, mailqueue.Options{Logger: logger})}, nil
}

// openBus connects to ATRIUM_NATS_URL, or starts the embedded NATS server
// with its store under the data directory.
func openBus(cfg config.Config, logger *slog.Logger) (*natsbus.Bus, error) {
	bus, err := natsbus.Open(natsbus.Options{URL: cfg.NATSURL, Dir: cfg.NATSDir(), MaxStore: cfg.NATSMaxStore,
		MaxMemory: cfg.NATSMaxMemory, Name: "atrium " + nodeID(cfg), Logger: logger})
	if err != nil {
		if cfg.NATSURL != "" {
			return nil, fmt.Errorf("NATS (ATRIUM_NATS_URL): %w", err)
		}
		return nil, fmt.Errorf("start the embedded NATS server in %s: %w", cfg.NATSDir(), err)
	}
	return bus, nil
}

// nodeID names this node: ATRIUM_NODE_ID, or the host name and process ID.
func nodeID(cfg config.Config) string {
	if cfg.NodeID != "" {
		return cfg.NodeID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
