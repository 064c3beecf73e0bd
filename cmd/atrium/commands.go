package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"atrium/internal/app"
	"atrium/internal/config"
	"atrium/internal/events/natsbus"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
)

func (m *Main) usage(w io.Writer) {
	fmt.Fprint(w, `Usage: atrium [command] [flags]

Commands:
  serve            serve the API and console (default)
  migrate up       apply pending database migrations
  migrate status   list migrations and when they were applied
  doctor           check the configuration and every backend; report risks
  admin grant      make a person a platform admin: admin grant EMAIL
  admin revoke     take the platform-admin right back: admin revoke EMAIL
  version          print the version

Configuration (environment variable, flag, meaning):
`)
	config.Usage(w)
}

func versionString() string {
	v := app.Version
	if info, ok := debug.ReadBuildInfo(); ok {
		v += " (" + info.GoVersion + ")"
	}
	return "atrium " + v
}

func (m *Main) serve(ctx context.Context, args []string) error {
	cfg, err := config.Load(args, m.Getenv)
	if err != nil {
		return err
	}
	start := time.Now()
	a, err := app.New(ctx, cfg, app.Options{LogOutput: m.Stderr})
	if err != nil {
		return err
	}
	defer a.Close()
	a.Logger.Info("ready", "startup_ms", time.Since(start).Milliseconds())
	return a.Run(ctx)
}

func (m *Main) migrate(ctx context.Context, args []string) error {
	sub := "up"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		sub, args = args[0], args[1:]
	}
	if sub != "up" && sub != "status" {
		return fmt.Errorf("unknown subcommand %q: want up or status", sub)
	}
	cfg, err := config.Load(args, m.Getenv)
	if err != nil {
		return err
	}
	cfg.AutoMigrate = sub == "up"
	db, err := openForMaintenance(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	states, err := db.MigrationStates(ctx)
	if err != nil {
		return err
	}
	for _, s := range states {
		at := "pending"
		if !s.AppliedAt.IsZero() {
			at = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(m.Stdout, "%04d_%s\t%s\n", s.Version, s.Name, at)
	}
	return nil
}

// maintenanceDB is a store with its migration history.
type maintenanceDB interface {
	store.DB
	MigrationStates(ctx context.Context) ([]store.MigrationState, error)
}

// openForMaintenance opens the configured store for migrate and doctor,
// migrating first when cfg.AutoMigrate is set.
func openForMaintenance(ctx context.Context, cfg config.Config) (maintenanceDB, error) {
	logger := app.NewLogger(io.Discard, cfg.LogLevel)
	if cfg.DatabaseURL == "" {
		if !cfg.AutoMigrate {
			if _, err := os.Stat(cfg.SQLitePath()); err != nil {
				return nil, fmt.Errorf("no database at %s yet; run atrium migrate up or atrium serve", cfg.SQLitePath())
			}
		}
		db, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: cfg.SQLitePath(), Logger: logger})
		if err != nil {
			return nil, err
		}
		if cfg.AutoMigrate {
			if _, err := db.Migrate(ctx); err != nil {
				db.Close()
				return nil, err
			}
		}
		return db, nil
	}
	db, err := pgstore.Open(ctx, pgstore.Options{URL: cfg.DatabaseURL, Logger: logger})
	if err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		role, err := db.InspectRole(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		url, appRole := cfg.DatabaseURL, ""
		if cfg.MigrateDatabaseURL != "" {
			url, appRole = cfg.MigrateDatabaseURL, role.Name
		}
		if _, err := pgstore.Migrate(ctx, url, appRole); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// doctor checks the configuration and each backend and prints what runs where.
// It exits 1 when something is broken, and also for an isolation risk in
// production; in development risks are printed as warnings.
func (m *Main) doctor(ctx context.Context, args []string) int {
	failed := false
	report := func(status, what, detail string) {
		fmt.Fprintf(m.Stdout, "%-5s %-14s %s\n", status, what, detail)
	}
	cfg, err := config.Load(args, m.Getenv)
	if err != nil {
		report("FAIL", "config", err.Error())
		return 1
	}
	report("ok", "config", "environment "+cfg.Env+", listening on "+cfg.Addr+", base URL "+cfg.BaseURL)
	switch {
	case cfg.SecretKey != "":
		report("ok", "secret key", "from ATRIUM_SECRET_KEY")
	case fileExists(filepath.Join(cfg.DataDir, "secret.key")):
		report("ok", "secret key", "development key in "+filepath.Join(cfg.DataDir, "secret.key"))
	default:
		report("info", "secret key", "a development key will be generated in "+cfg.DataDir+" at first start")
	}
	cfg.AutoMigrate = false
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	db, err := openForMaintenance(ctx, cfg)
	if err != nil {
		report("FAIL", "store", err.Error())
		return 1
	}
	defer db.Close()
	if cfg.DatabaseURL == "" {
		report("ok", "store", "embedded SQLite at "+cfg.SQLitePath())
		report("info", "isolation", "SQLite has no row-level security; use PostgreSQL for defence in depth")
	} else {
		report("ok", "store", "PostgreSQL at "+redactURL(cfg.DatabaseURL))
		if pg, ok := db.(*pgstore.DB); ok {
			failed = m.doctorRole(ctx, cfg, pg, report) || failed
		}
	}
	states, err := db.MigrationStates(ctx)
	if err != nil {
		report("FAIL", "migrations", err.Error())
		failed = true
	} else {
		pending := 0
		for _, s := range states {
			if s.AppliedAt.IsZero() {
				pending++
			}
		}
		if pending > 0 {
			report("warn", "migrations", fmt.Sprintf("%d of %d pending; atrium migrate up (or serve) applies them", pending, len(states)))
		} else {
			report("ok", "migrations", fmt.Sprintf("all %d applied", len(states)))
		}
	}
	failed = doctorBus(ctx, cfg, report) || failed
	report("info", "tracing", map[bool]string{true: "OTLP to " + cfg.OTLPEndpoint, false: "off (set ATRIUM_OTLP_ENDPOINT)"}[cfg.OTLPEndpoint != ""])
	if failed {
		return 1
	}
	return 0
}

func (m *Main) doctorRole(ctx context.Context, cfg config.Config, db *pgstore.DB, report func(string, string, string)) bool {
	role, err := db.InspectRole(ctx)
	if err != nil {
		report("FAIL", "database role", err.Error())
		return true
	}
	risks := role.Risks()
	if len(risks) == 0 {
		report("ok", "database role", fmt.Sprintf("%q: not superuser, no BYPASSRLS, owns no tables; every tenant table sealed", role.Name))
		return false
	}
	status := "warn"
	if cfg.Production() {
		status = "FAIL"
	}
	for _, r := range risks {
		report(status, "isolation", r)
	}
	return cfg.Production()
}

// doctorBus reports the event bus: the embedded server's store, or whether
// the configured NATS answers with JetStream. It reports whether that failed.
func doctorBus(ctx context.Context, cfg config.Config, report func(string, string, string)) bool {
	if cfg.NATSURL == "" {
		report("ok", "event bus", fmt.Sprintf("embedded NATS JetStream in %s (at most %d MiB on disk)", cfg.NATSDir(), cfg.NATSMaxStore>>20))
		if cfg.DatabaseURL != "" {
			report("info", "event bus", "several nodes on one PostgreSQL need one NATS (ATRIUM_NATS_URL): an embedded server carries only its own node's events")
		}
		return false
	}
	info, err := natsbus.Check(ctx, cfg.NATSURL)
	if err != nil {
		report("FAIL", "event bus", "NATS (ATRIUM_NATS_URL): "+err.Error())
		return true
	}
	report("ok", "event bus", fmt.Sprintf("NATS JetStream answers; %d streams, %d MiB stored", info.Streams, info.Store>>20))
	return false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// redactURL drops the password from a database URL for display.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
