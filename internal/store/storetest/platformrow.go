package storetest

import (
	"context"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// runPlatformRow checks the one-shot platform read: it sees platform rows,
// answers not_found for none, shows no tenant rows on PostgreSQL, and leaves
// the store usable after a failed statement or a cancelled context.
func runPlatformRow(t *testing.T, setup func(t *testing.T) (store.SystemDB, context.Context)) {
	t.Run("PlatformRowReadsPlatformTables", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		ada := CreateUser(t, db, "ada@example.com")
		var email string
		if err := db.PlatformRow(ctx, "SELECT email FROM app_user WHERE id = $1", ada).Scan(&email); err != nil || email != "ada@example.com" {
			t.Fatalf("PlatformRow: %q %v", email, err)
		}
		err := db.PlatformRow(ctx, "SELECT email FROM app_user WHERE id = $1", kernel.NewID()).Scan(&email)
		if !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("PlatformRow on no row: %v, want not_found", err)
		}
	})

	t.Run("PlatformRowSeesNoTenantRows", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		ws := CreateWorkspace(t, db, "acme")
		if db.Dialect() != store.Postgres {
			t.Skip("SQLite has no row-level security: its statements name their tables")
		}
		// The same connection may just have served a workspace read; its
		// settings must not carry over.
		for range 4 {
			var name string
			if err := db.WorkspaceRow(ctx, ws, "SELECT name FROM workspace WHERE id = $1", ws).Scan(&name); err != nil {
				t.Fatal(err)
			}
			var n int
			var setting string
			err := db.PlatformRow(ctx, "SELECT count(*), coalesce(current_setting('app.workspace_id', true), '') FROM workspace").Scan(&n, &setting)
			if err != nil || n != 0 || setting != "" {
				t.Fatalf("platform read of workspace: %d rows, setting %q, %v; want none", n, setting, err)
			}
		}
	})

	t.Run("PlatformRowFailureLeavesStoreUsable", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		ada := CreateUser(t, db, "ada@example.com")
		var x int
		if err := db.PlatformRow(context.Background(), "SELECT no_such_column FROM app_user").Scan(&x); err == nil {
			t.Fatal("a failing statement reported no error")
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if err := db.PlatformRow(cancelled, "SELECT 1").Scan(&x); err == nil {
			t.Fatal("a cancelled context ran a statement")
		}
		var email string
		for range 8 { // more than one pooled connection's worth
			if err := db.PlatformRow(context.Background(), "SELECT email FROM app_user WHERE id = $1", ada).Scan(&email); err != nil {
				t.Fatalf("after a failure: %v", err)
			}
		}
	})
}
