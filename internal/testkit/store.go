package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
)

// Environment variables that turn on the PostgreSQL tests.
const (
	EnvPostgresURL     = "ATRIUM_TEST_POSTGRES_URL"     // an owner role that may create schemas
	EnvPostgresAppURL  = "ATRIUM_TEST_POSTGRES_APP_URL" // optional; default: the same URL as role atrium_test_app
	EnvRequirePostgres = "ATRIUM_REQUIRE_POSTGRES"      // "1": fail instead of skipping without PostgreSQL
	defaultAppRole     = "atrium_test_app"
)

// PostgresURL returns the owner URL for PostgreSQL tests. Without one the test
// is skipped with a line saying how to enable it, or fails when
// ATRIUM_REQUIRE_POSTGRES=1 (as CI sets).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvPostgresURL)
	if u == "" {
		if os.Getenv(EnvRequirePostgres) == "1" {
			t.Fatalf("%s=1 but %s is not set", EnvRequirePostgres, EnvPostgresURL)
		}
		t.Skipf("PostgreSQL tests skipped: set %s (see README, \"Tests on PostgreSQL\")", EnvPostgresURL)
	}
	return u
}

// Dialects lists the dialects a store test runs on: SQLite always, PostgreSQL
// when configured (skipped or failed per PostgresURL otherwise).
var Dialects = []store.Dialect{store.SQLite, store.Postgres}

// OpenStore opens a fresh, migrated store of the dialect for this test alone and
// closes it when the test ends.
func OpenStore(t testing.TB, dialect store.Dialect, clock kernel.Clock) store.SystemDB {
	t.Helper()
	switch dialect {
	case store.SQLite:
		return OpenSQLite(t, clock)
	case store.Postgres:
		return OpenPostgres(t, clock)
	}
	t.Fatalf("unknown dialect %q", dialect)
	return nil
}

// OpenSQLite opens a migrated SQLite store in a temporary directory.
func OpenSQLite(t testing.TB, clock kernel.Clock) *sqlitestore.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(t.TempDir(), "atrium.db"), Clock: clock, Logger: DiscardLogger()})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate sqlite: %v", err)
	}
	return db
}

// PostgresSchema is a fresh schema with Atrium's migrations applied by the owner
// role, and URLs for the owner and for the application role inside it.
type PostgresSchema struct {
	Name     string
	OwnerURL string
	AppURL   string
	AppRole  string
}

// NewPostgresSchema creates a schema that lives as long as the test. The
// application role is a non-superuser without BYPASSRLS that owns nothing, so
// row-level security is really in force.
func NewPostgresSchema(t testing.TB) PostgresSchema {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ownerURL := PostgresURL(t)
	appURL, appRole, err := appURL(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := pgx.Connect(ctx, ownerURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvPostgresURL, err)
	}
	defer owner.Close(context.Background())
	if err := ensureAppRole(ctx, owner, appRole); err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := owner.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ownerURL)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	s := PostgresSchema{Name: schema, OwnerURL: withSearchPath(ownerURL, schema), AppURL: withSearchPath(appURL, schema), AppRole: appRole}
	if _, err := pgstore.Migrate(ctx, s.OwnerURL, appRole); err != nil {
		t.Fatalf("migrate postgres: %v", err)
	}
	return s
}

// OpenPostgres opens a migrated PostgreSQL store, connected as the application role.
func OpenPostgres(t testing.TB, clock kernel.Clock) *pgstore.DB {
	t.Helper()
	s := NewPostgresSchema(t)
	db, err := pgstore.Open(context.Background(), pgstore.Options{URL: s.AppURL, Clock: clock, Logger: DiscardLogger()})
	if err != nil {
		t.Fatalf("open postgres as %s: %v", s.AppRole, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func appURL(ownerURL string) (string, string, error) {
	if u := os.Getenv(EnvPostgresAppURL); u != "" {
		parsed, err := url.Parse(u)
		if err != nil || parsed.User == nil {
			return "", "", fmt.Errorf("%s must be a postgres:// URL with a user", EnvPostgresAppURL)
		}
		return u, parsed.User.Username(), nil
	}
	parsed, err := url.Parse(ownerURL)
	if err != nil || parsed.Scheme == "" {
		return "", "", fmt.Errorf("%s must be a postgres:// URL", EnvPostgresURL)
	}
	parsed.User = url.User(defaultAppRole)
	return parsed.String(), defaultAppRole, nil
}

// ensureAppRole creates the application role when missing and refuses one that
// would make the tests pass without row-level security.
func ensureAppRole(ctx context.Context, owner *pgx.Conn, role string) error {
	var super, bypass bool
	err := owner.QueryRow(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", role).Scan(&super, &bypass)
	if err == pgx.ErrNoRows {
		if _, err := owner.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"); err != nil {
			return fmt.Errorf("test role %s is missing and could not be created (create it with: CREATE ROLE %s LOGIN): %v", role, role, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up test role %s: %v", role, err)
	}
	if super || bypass {
		return fmt.Errorf("test role %s must be neither superuser nor BYPASSRLS, or row-level security is not tested", role)
	}
	return nil
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
