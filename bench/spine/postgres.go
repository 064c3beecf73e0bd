package main

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
