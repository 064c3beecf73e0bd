package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/testkit"
)

// openDeployment opens the store the deployment of env uses, as the
// application does.
func openDeployment(t *testing.T, env map[string]string) store.SystemDB {
	t.Helper()
	ctx := context.Background()
	var db store.SystemDB
	var err error
	if url := env["ATRIUM_DATABASE_URL"]; url != "" {
		db, err = pgstore.Open(ctx, pgstore.Options{URL: url, Logger: testkit.DiscardLogger()})
	} else {
		db, err = sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(env["ATRIUM_DATA_DIR"], "atrium.db"), Logger: testkit.DiscardLogger()})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// adminState returns whether the account at email is a platform admin and
// how many platform audit entries record action.
func adminState(t *testing.T, db store.SystemDB, email, action string) (bool, int) {
	t.Helper()
	ctx := context.Background()
	var admin bool
	var entries int
	err := db.System(ctx, "test: read the platform admin state", func(tx store.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT platform_admin_at IS NOT NULL FROM app_user WHERE email = $1", email).Scan(&admin); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM audit_log
			WHERE workspace_id IS NULL AND action = $1 AND actor_type = 'system'`, action).Scan(&entries)
	})
	if err != nil {
		t.Fatal(err)
	}
	return admin, entries
}

func TestAdminGrantAndRevoke(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			if d == store.Postgres {
				s := testkit.NewPostgresSchema(t)
				env = with(env, "ATRIUM_DATABASE_URL", s.AppURL, "ATRIUM_AUTO_MIGRATE", "false")
			} else if r := runMain(t, env, "migrate", "up"); r.code != 0 {
				t.Fatalf("migrate up: exit %d, stderr %q", r.code, r.stderr)
			}
			db := openDeployment(t, env)
			now := time.Now().UTC().Truncate(time.Microsecond)
			err := db.Tx(context.Background(), func(tx store.Tx) error {
				_, err := tx.Exec(context.Background(), `INSERT INTO app_user (id, email, name, password_hash, created_at, updated_at)
					VALUES ($1, 'ada@example.com', 'Ada', '', $2, $2)`, kernel.NewID(), now)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}

			for range 2 { // the second grant changes and audits nothing
				r := runMain(t, env, "admin", "grant", "Ada@Example.com")
				if r.code != 0 {
					t.Fatalf("admin grant: exit %d, stderr %q", r.code, r.stderr)
				}
				mustContain(t, "stdout", r.stdout, "Ada@Example.com is a platform admin")
			}
			if admin, granted := adminState(t, db, "ada@example.com", "platform_admin.granted"); !admin || granted != 1 {
				t.Fatalf("after grant: admin %v, %d audit entries; want an admin and one entry", admin, granted)
			}
			if r := runMain(t, env, "admin", "revoke", "ada@example.com"); r.code != 0 {
				t.Fatalf("admin revoke: exit %d, stderr %q", r.code, r.stderr)
			}
			if admin, revoked := adminState(t, db, "ada@example.com", "platform_admin.revoked"); admin || revoked != 1 {
				t.Fatalf("after revoke: admin %v, %d audit entries; want no admin and one entry", admin, revoked)
			}

			r := runMain(t, env, "admin", "grant", "nobody@example.com")
			if r.code != 1 {
				t.Fatalf("grant to an unknown address: exit %d, want 1", r.code)
			}
			mustContain(t, "stderr", r.stderr, "no account has the address nobody@example.com")
			for _, args := range [][]string{{"admin"}, {"admin", "promote", "ada@example.com"}, {"admin", "grant", "--log-level", "debug"}} {
				if r := runMain(t, env, args...); r.code != 1 || !strings.Contains(r.stderr, "want: atrium admin grant|revoke EMAIL") {
					t.Fatalf("%v: exit %d, stderr %q; want 1 and the usage", args, r.code, r.stderr)
				}
			}
		})
	}
}
