package benchkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5"

	"atrium/internal/store/pgstore"
	"atrium/internal/testkit"
)

// PGSchema is a fresh schema migrated by the owner role, as
// testkit.NewPostgresSchema makes for tests (which needs a testing.TB).
type PGSchema struct {
	Name, OwnerURL, AppURL, AppRole string
	Drop                            func()
}

// NewPostgresSchema creates and migrates a schema on the database of
// testkit.EnvPostgresURL, for the non-superuser app role the tests use. It
// returns an error if the role is missing, is a superuser or has BYPASSRLS
// (row-level security would not be measured), or if migrating fails.
func NewPostgresSchema(ctx context.Context) (PGSchema, error) {
	owner := os.Getenv(testkit.EnvPostgresURL)
	appURL, appRole := os.Getenv(testkit.EnvPostgresAppURL), "atrium_test_app"
	if appURL != "" {
		u, err := url.Parse(appURL)
		if err != nil || u.User == nil {
			return PGSchema{}, fmt.Errorf("%s must be a postgres:// URL with a user", testkit.EnvPostgresAppURL)
		}
		appRole = u.User.Username()
	} else {
		u, err := url.Parse(owner)
		if err != nil {
			return PGSchema{}, fmt.Errorf("%s must be a postgres:// URL", testkit.EnvPostgresURL)
		}
		u.User = url.User(appRole)
		appURL = u.String()
	}
	conn, err := pgx.Connect(ctx, owner)
	if err != nil {
		return PGSchema{}, fmt.Errorf("connect as %s: %w", testkit.EnvPostgresURL, err)
	}
	defer conn.Close(context.Background())
	var super, bypass bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", appRole).Scan(&super, &bypass); err != nil {
		return PGSchema{}, fmt.Errorf("app role %s (run .ci/setup-services): %w", appRole, err)
	}
	if super || bypass {
		return PGSchema{}, fmt.Errorf("app role %s is superuser or BYPASSRLS: row-level security would not be measured", appRole)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := PGSchema{Name: "bench_" + hex.EncodeToString(b[:]), AppRole: appRole}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+s.Name); err != nil {
		return PGSchema{}, fmt.Errorf("create schema: %w", err)
	}
	s.Drop = func() {
		c, err := pgx.Connect(context.Background(), owner)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: drop schema %s: %v\n", s.Name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+s.Name+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "bench: drop schema %s: %v\n", s.Name, err)
		}
	}
	s.OwnerURL, s.AppURL = withSearchPath(owner, s.Name), withSearchPath(appURL, s.Name)
	if _, err := pgstore.Migrate(ctx, s.OwnerURL, appRole); err != nil {
		s.Drop()
		return PGSchema{}, fmt.Errorf("migrate: %w", err)
	}
	return s, nil
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
