package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// traces counts the rows that say something about userID in each table
// PurgeDeletedAccounts empties.
func traces(t *testing.T, b bundle, userID uuid.UUID) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := b.db.ReadTx(context.Background(), func(tx store.Tx) error {
		for _, table := range []string{"user_session", "personal_token", "user_token", "email_change", "app_user"} {
			column := "user_id"
			if table == "app_user" {
				column = "id"
			}
			var n int
			if err := tx.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE "+column+" = $1", userID).Scan(&n); err != nil {
				return err
			}
			out[table] = n
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPurgeDeletedAccounts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		day := 24 * time.Hour
		people := map[string]uuid.UUID{}
		for _, name := range []string{"ada", "bob", "carol"} {
			id := signUp(t, b, name+"@example.com")
			people[name] = id
			ctx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorUser, ID: id, Via: kernel.ViaCookie,
				AuthenticatedAt: b.clock.Now()})
			if _, _, err := b.svc.CreatePAT(ctx, identity.NewPAT{Name: name + "'s laptop"}); err != nil {
				t.Fatal(err)
			}
			if err := b.svc.RequestEmailChange(ctx, id, name+".new@example.com"); err != nil {
				t.Fatal(err)
			}
			for table, n := range traces(t, b, id) {
				if n == 0 {
					t.Fatalf("%s has no %s row to purge", name, table)
				}
			}
		}
		if err := b.svc.DeleteAccount(context.Background(), people["ada"]); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(2 * day)
		if err := b.svc.DeleteAccount(context.Background(), people["bob"]); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(29*day + time.Minute) // ada: deleted 31 days ago; bob: 29 days ago

		deleted, err := identity.PurgeDeletedAccounts(context.Background(), b.db)
		if err != nil || deleted["personal_token"] != 1 || deleted["email_change"] != 1 {
			t.Fatalf("purge: %v %v; want ada's token and email change among them", deleted, err)
		}
		for name, id := range people {
			for table, n := range traces(t, b, id) {
				switch {
				case table == "app_user" && n != 1:
					t.Errorf("%s's account row is gone; it stays, anonymised, for the audit log", name)
				case table != "app_user" && name == "ada" && n != 0:
					t.Errorf("%d %s rows of ada, deleted 31 days ago, are left", n, table)
				case table != "app_user" && name != "ada" && n == 0:
					t.Errorf("%s's %s rows were purged, though %s", name, table, map[string]string{
						"bob": "deleted only 29 days ago", "carol": "never deleted"}[name])
				}
			}
		}
	})
}
