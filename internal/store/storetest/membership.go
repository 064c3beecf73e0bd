package storetest

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// CreateUser inserts an account (a platform row) and returns its ID.
func CreateUser(t testing.TB, db store.DB, email string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id := kernel.NewID()
	err := db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO app_user (id, email, name, password_hash, email_verified_at, created_at, updated_at)
            VALUES ($1, $2, 'Test', 'x', NULL, $3, $3)`, id, email, tx.Now())
		return err
	})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return id
}

// AddMember inserts a membership in the workspace's own transaction.
func AddMember(t testing.TB, db store.DB, workspaceID, userID uuid.UUID, role string) {
	t.Helper()
	ctx := context.Background()
	err := db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		return insertMembership(ctx, tx, workspaceID, userID, role)
	})
	if err != nil {
		t.Fatalf("add member: %v", err)
	}
}

func insertMembership(ctx context.Context, tx store.Tx, workspaceID, userID uuid.UUID, role string) error {
	_, err := tx.Exec(ctx, `INSERT INTO membership (workspace_id, user_id, role, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $4)`, workspaceID, userID, role, tx.Now())
	return err
}

// myWorkspacesSQL is how tenancy lists a person's workspaces.
const myWorkspacesSQL = `SELECT w.slug FROM membership m JOIN workspace w ON w.id = m.workspace_id
    WHERE m.user_id = $1 ORDER BY m.workspace_id`

// runMembership checks memberships are sealed like every tenant table, and
// that ReadAsUser lists a person's own workspaces and is read-only.
func runMembership(t *testing.T, setup func(t *testing.T) (store.SystemDB, context.Context)) {
	t.Run("MembershipIsATenantTable", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		a, b := CreateWorkspace(t, db, "alpha"), CreateWorkspace(t, db, "beta")
		ada, eve := CreateUser(t, db, "ada@example.com"), CreateUser(t, db, "eve@example.com")
		AddMember(t, db, a, ada, "owner")
		AddMember(t, db, b, eve, "owner")
		for name, run := range map[string]func(fn func(store.Tx) error) error{
			"another workspace": func(fn func(store.Tx) error) error { return db.InWorkspace(ctx, a, fn) },
			"no workspace":      func(fn func(store.Tx) error) error { return db.Tx(ctx, fn) },
		} {
			err := run(func(tx store.Tx) error { return insertMembership(ctx, tx, b, ada, "owner") })
			if !kernel.IsCode(err, kernel.CodeForbidden) {
				t.Errorf("membership of B written from %s: %v, want forbidden", name, err)
			}
			_ = run(func(tx store.Tx) error {
				_, err := tx.Exec(ctx, "UPDATE membership SET role = 'viewer' WHERE workspace_id = $1", b)
				return err
			})
		}
		var role string
		if err := db.WorkspaceRow(ctx, b, "SELECT role FROM membership WHERE workspace_id = $1 AND user_id = $2", b, eve).Scan(&role); err != nil || role != "owner" {
			t.Fatalf("B's owner after the attempts: %q %v", role, err)
		}
	})

	t.Run("ReadAsUserListsOwnWorkspacesOnly", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		a, b := CreateWorkspace(t, db, "alpha"), CreateWorkspace(t, db, "beta")
		ada, eve := CreateUser(t, db, "ada@example.com"), CreateUser(t, db, "eve@example.com")
		AddMember(t, db, a, ada, "owner")
		AddMember(t, db, a, eve, "viewer")
		AddMember(t, db, b, eve, "owner")
		for user, want := range map[uuid.UUID][]string{ada: {"alpha"}, eve: {"alpha", "beta"}, kernel.NewID(): nil} {
			var got []string
			err := db.ReadAsUser(ctx, user, func(tx store.Tx) error {
				rows, err := tx.Query(ctx, myWorkspacesSQL, user)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var slug string
					if err := rows.Scan(&slug); err != nil {
						return err
					}
					got = append(got, slug)
				}
				return rows.Err()
			})
			if err != nil || len(got) != len(want) || (len(want) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1])) {
				t.Errorf("workspaces of %s: %v (%v), want %v", user, got, err, want)
			}
		}
		err := db.ReadAsUser(ctx, ada, func(tx store.Tx) error { return insertMembership(ctx, tx, b, ada, "owner") })
		if err == nil {
			t.Fatal("a user transaction wrote a membership")
		}
		if err := db.ReadAsUser(ctx, uuid.Nil, func(store.Tx) error { return nil }); err == nil {
			t.Fatal("ReadAsUser without a user was accepted")
		}
	})
}
