package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"atrium/internal/config"
	"atrium/internal/kernel"
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
