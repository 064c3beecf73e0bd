package pgstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

// personKeys reads, with no WHERE clause, what a transaction can see of the
// tables "my workspaces" touches: only row-level security filters them.
var personKeys = map[string]string{
	"membership": "SELECT workspace_id::text || '/' || user_id::text FROM membership",
	"workspace":  "SELECT id::text FROM workspace",
	"outbox":     "SELECT workspace_id::text FROM outbox",
	"audit_log":  "SELECT coalesce(workspace_id::text, 'platform') FROM audit_log",
}

func TestUserTransactionSeesOnlyThatPersonsMemberships(t *testing.T) {
	testkit.PostgresURL(t)
	db := openStore(t, testkit.NewPostgresSchema(t).AppURL)
	a, b := seedTwoTenants(t, db)
	c := storetest.CreateWorkspace(t, db, "charlie")
	ada, eve := storetest.CreateUser(t, db, "ada@example.com"), storetest.CreateUser(t, db, "eve@example.com")
	storetest.AddMember(t, db, a, ada, "owner")
	storetest.AddMember(t, db, a, eve, "viewer") // a co-member: Ada must not see Eve's row
	storetest.AddMember(t, db, b, eve, "owner")
	ctx := context.Background()
	pair := func(ws, user uuid.UUID) string { return ws.String() + "/" + user.String() }

	cases := map[string]struct {
		run  func(func(store.Tx) error) error
		want map[string][]string
	}{
		"ReadAsUser(ada)": {func(fn func(store.Tx) error) error { return db.ReadAsUser(ctx, ada, fn) },
			map[string][]string{"membership": {pair(a, ada)}, "workspace": keys(a)}},
		"ReadAsUser(eve)": {func(fn func(store.Tx) error) error { return db.ReadAsUser(ctx, eve, fn) },
			map[string][]string{"membership": sorted(pair(a, eve), pair(b, eve)), "workspace": keys(a, b)}},
		"ReadAsUser(nobody)": {func(fn func(store.Tx) error) error { return db.ReadAsUser(ctx, uuid.New(), fn) },
			map[string][]string{}},
		"ReadTx": {func(fn func(store.Tx) error) error { return db.ReadTx(ctx, fn) }, map[string][]string{}},
		"ReadWorkspace(a)": {func(fn func(store.Tx) error) error { return db.ReadWorkspace(ctx, a, fn) },
			map[string][]string{"membership": sorted(pair(a, ada), pair(a, eve)), "workspace": keys(a), "outbox": keys(a), "audit_log": keys(a)}},
		"ReadWorkspace(c)": {func(fn func(store.Tx) error) error { return db.ReadWorkspace(ctx, c, fn) },
			map[string][]string{"workspace": keys(c)}},
	}
	for name, tc := range cases {
		got := map[string][]string{}
		err := tc.run(func(tx store.Tx) error {
			for table, sql := range personKeys {
				rows, err := column(ctx, tx, sql)
				if err != nil {
					return err
				}
				if len(rows) > 0 {
					got[table] = rows
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for table := range personKeys {
			if !slices.Equal(got[table], tc.want[table]) {
				t.Errorf("%s sees %s rows %v, want %v", name, table, got[table], tc.want[table])
			}
		}
	}
	// The user setting never outlives its transaction on a pooled connection.
	if err := checkIdleConnection(ctx, db); err != nil {
		t.Fatal(err)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
