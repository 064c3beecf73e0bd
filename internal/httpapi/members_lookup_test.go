package httpapi_test

import (
	"context"
	"fmt"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// A full page of members (100, and the extra one that tells a next page
// follows) takes more profiles than one identity lookup gives; the names and
// addresses must still all be there.
func TestMemberListNamesAFullPage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		wsID := createWorkspace(t, f, ada, "crowd")
		ws, _ := kernel.ParseID(kernel.PrefixWorkspace, wsID)
		want := map[string]string{ada.UserID(): "ada@example.com"}
		ctx := context.Background()
		err := f.app.DB.InWorkspace(ctx, ws, func(tx store.Tx) error {
			for i := range 120 {
				id := kernel.NewID()
				email := fmt.Sprintf("member%03d@example.com", i)
				want[kernel.FormatID(kernel.PrefixUser, id)] = email
				if _, err := tx.Exec(ctx, `INSERT INTO app_user (id, email, name, password_hash, created_at, updated_at)
                    VALUES ($1, $2, $3, '', $4, $4)`, id, email, "Member "+email[6:9], tx.Now()); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO membership (workspace_id, user_id, role, created_at, updated_at)
                    VALUES ($1, $2, 'member', $3, $3)`, ws, id, tx.Now()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		path := "/api/v1/workspaces/" + wsID + "/members?limit=100"
		for page := 0; path != ""; page++ {
			r := call(t, f.url, "GET", path, ada.Headers(), "")
			if r.status != 200 || page > 1 {
				t.Fatalf("page %d: %d %.300s", page, r.status, r.raw)
			}
			for _, m := range items(r) {
				id := m["user_id"].(string)
				if m["email"] != want[id] || m["name"] == "" || seen[id] {
					t.Fatalf("member %v; want email %q, once", m, want[id])
				}
				seen[id] = true
			}
			path = ""
			if next, _ := r.body["next_cursor"].(string); next != "" {
				path = "/api/v1/workspaces/" + wsID + "/members?limit=100&cursor=" + next
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("%d members listed, want %d", len(seen), len(want))
		}
	})
}
