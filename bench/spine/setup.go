package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"atrium/internal/app"
	"atrium/internal/config"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
)

// rig is one dialect ready to measure: Atrium running on loopback, the two
// bare baseline servers on the same store pool, and the three targets.
type rig struct {
	dialect store.Dialect
	targets []target // B0, B1, FULL: the order each round runs them in
	notes   []string
	closers []func()
}

func (r *rig) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// newRig boots Atrium on dialect exactly as cmd/atrium would (config.Load,
// app.New, app.Run), with TestAuth and the JSON log at level info written to
// io.Discard, so every access line is still built and formatted. It then seeds
// n workspaces through tenancy.Service.Create and starts the baselines.
func newRig(ctx context.Context, dialect store.Dialect, n int) (r *rig, err error) {
	r = &rig{dialect: dialect}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	dir, err := os.MkdirTemp("", "atrium-spine-")
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() { os.RemoveAll(dir) })
	env := map[string]string{
		"ATRIUM_ADDR":      "127.0.0.1:0",
		"ATRIUM_DATA_DIR":  filepath.Join(dir, "data"),
		"ATRIUM_LOG_LEVEL": "info",
	}
	var schema pgSchema
	if dialect == store.Postgres {
		if schema, err = newPostgresSchema(ctx); err != nil {
			return nil, err
		}
		r.closers = append(r.closers, schema.drop)
		env["ATRIUM_DATABASE_URL"] = schema.appURL
		env["ATRIUM_AUTO_MIGRATE"] = "false" // migrated as the owner, like testkit
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		return nil, err
	}
	a, err := app.New(ctx, cfg, app.Options{LogOutput: io.Discard, Auth: testkit.TestAuth{}})
	if err != nil {
		return nil, fmt.Errorf("boot atrium: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	r.closers = append(r.closers, func() { cancel(); <-done; a.Close() })

	ids, err := seed(ctx, a.Services.Workspaces, n)
	if err != nil {
		return nil, err
	}

	var plain, tenant readFunc
	switch db := a.DB.(type) {
	case *sqlitestore.DB:
		plain, tenant = sqlitePlainRead(db.Reader()), sqliteTxRead(db.Reader())
		r.notes = append(r.notes, fmt.Sprintf("store pool: SQLite reader pool, %d connections, shared by all three", db.Reader().Stats().MaxOpenConnections))
	case *pgstore.DB:
		if err := copyPlainTable(ctx, schema, n); err != nil {
			return nil, err
		}
		plain, tenant = pgPlainRead(db.Pool()), pgTenantRead(db.Pool())
		r.notes = append(r.notes,
			fmt.Sprintf("store pool: the app's pgxpool (MaxConns %d, role %s), shared by all three", db.Pool().Config().MaxConns, schema.appRole),
			"B0 reads "+plainTable+", an identical copy of workspace (same rows, columns, primary key) without RLS:",
			"   the RLS table shows the app role nothing without app.workspace_id, and FORCE RLS binds the owner too")
	default:
		return nil, fmt.Errorf("unexpected store %T", a.DB)
	}

	bare := func(id string) string { return "/workspaces/" + id }
	for _, b := range []struct {
		name string
		read readFunc
	}{{"B0", plain}, {"B1", tenant}} {
		base, stop, err := serveBare(bareHandler(b.read))
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, stop)
		t, err := newTarget(b.name, base, bare, ids)
		if err != nil {
			return nil, err
		}
		r.targets = append(r.targets, t)
	}
	full, err := newTarget("FULL", a.URL(), func(id string) string { return "/api/v1/workspaces/" + id }, ids)
	if err != nil {
		return nil, err
	}
	r.targets = append(r.targets, full)
	return r, nil
}

// seed creates n workspaces through the service, so the rows (and their audit
// and outbox rows) are what Atrium itself writes.
func seed(ctx context.Context, svc *tenancy.Service, n int) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, n)
	for i := range n {
		ws, err := svc.Create(ctx, fmt.Sprintf("Bench Workspace %04d", i), fmt.Sprintf("bench-%04d", i))
		if err != nil {
			return nil, fmt.Errorf("seed workspace %d: %w", i, err)
		}
		ids = append(ids, ws.ID)
	}
	return ids, nil
}

// pgSchema is a fresh schema migrated by the owner role, as
// testkit.NewPostgresSchema makes for tests (which needs a testing.TB).
type pgSchema struct {
	name, ownerURL, appURL, appRole string
	drop                            func()
}

func newPostgresSchema(ctx context.Context) (pgSchema, error) {
	owner := os.Getenv(testkit.EnvPostgresURL)
	appURL, appRole := os.Getenv(testkit.EnvPostgresAppURL), "atrium_test_app"
	if appURL != "" {
		u, err := url.Parse(appURL)
		if err != nil || u.User == nil {
			return pgSchema{}, fmt.Errorf("%s must be a postgres:// URL with a user", testkit.EnvPostgresAppURL)
		}
		appRole = u.User.Username()
	} else {
		u, err := url.Parse(owner)
		if err != nil {
			return pgSchema{}, fmt.Errorf("%s must be a postgres:// URL", testkit.EnvPostgresURL)
		}
		u.User = url.User(appRole)
		appURL = u.String()
	}
	conn, err := pgx.Connect(ctx, owner)
	if err != nil {
		return pgSchema{}, fmt.Errorf("connect as %s: %w", testkit.EnvPostgresURL, err)
	}
	defer conn.Close(context.Background())
	var super, bypass bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", appRole).Scan(&super, &bypass); err != nil {
		return pgSchema{}, fmt.Errorf("app role %s (run .ci/setup-services): %w", appRole, err)
	}
	if super || bypass {
		return pgSchema{}, fmt.Errorf("app role %s is superuser or BYPASSRLS: row-level security would not be measured", appRole)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := pgSchema{name: "bench_" + hex.EncodeToString(b[:]), appRole: appRole}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+s.name); err != nil {
		return pgSchema{}, fmt.Errorf("create schema: %w", err)
	}
	s.drop = func() {
		c, err := pgx.Connect(context.Background(), owner)
		if err != nil {
			fmt.Fprintf(os.Stderr, "spine: drop schema %s: %v\n", s.name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+s.name+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "spine: drop schema %s: %v\n", s.name, err)
		}
	}
	s.ownerURL, s.appURL = withSearchPath(owner, s.name), withSearchPath(appURL, s.name)
	if _, err := pgstore.Migrate(ctx, s.ownerURL, appRole); err != nil {
		s.drop()
		return pgSchema{}, fmt.Errorf("migrate: %w", err)
	}
	return s, nil
}

// copyPlainTable makes B0's table: workspace's definition and rows, without
// its policies. The owner reads the rows through the bypass setting, in one
// transaction-local scope, as the store's system path does.
func copyPlainTable(ctx context.Context, s pgSchema, want int) error {
	conn, err := pgx.Connect(ctx, s.ownerURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			"SELECT set_config('app.bypass_rls', 'on', true)",
			"CREATE TABLE " + plainTable + " (LIKE workspace INCLUDING ALL)",
			"INSERT INTO " + plainTable + " SELECT * FROM workspace",
			"GRANT SELECT ON " + plainTable + " TO " + pgx.Identifier{s.appRole}.Sanitize(),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		var got int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+plainTable).Scan(&got); err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s has %d rows, want %d", plainTable, got, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy workspace to %s: %w", plainTable, err)
	}
	_, err = conn.Exec(ctx, "ANALYZE workspace, "+plainTable)
	return err
}

func withSearchPath(rawURL, schema string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
