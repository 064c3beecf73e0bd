package identity_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity/password"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// countingDB counts the store calls a service makes. Each one-shot read
// (PlatformRow, WorkspaceRow) is one round trip on PostgreSQL, and a
// transaction at least two; pgstore's TestRoundTrips measures both on the wire.
type countingDB struct {
	store.SystemDB
	oneShot, transactions atomic.Int64
}

func (c *countingDB) PlatformRow(ctx context.Context, sql string, args ...any) store.Row {
	c.oneShot.Add(1)
	return c.SystemDB.PlatformRow(ctx, sql, args...)
}

func (c *countingDB) WorkspaceRow(ctx context.Context, ws uuid.UUID, sql string, args ...any) store.Row {
	c.oneShot.Add(1)
	return c.SystemDB.WorkspaceRow(ctx, ws, sql, args...)
}

func (c *countingDB) Tx(ctx context.Context, fn func(store.Tx) error) error {
	c.transactions.Add(1)
	return c.SystemDB.Tx(ctx, fn)
}

func (c *countingDB) ReadTx(ctx context.Context, fn func(store.Tx) error) error {
	c.transactions.Add(1)
	return c.SystemDB.ReadTx(ctx, fn)
}

func (c *countingDB) InWorkspace(ctx context.Context, ws uuid.UUID, fn func(store.Tx) error) error {
	c.transactions.Add(1)
	return c.SystemDB.InWorkspace(ctx, ws, fn)
}

func (c *countingDB) ReadWorkspace(ctx context.Context, ws uuid.UUID, fn func(store.Tx) error) error {
	c.transactions.Add(1)
	return c.SystemDB.ReadWorkspace(ctx, ws, fn)
}

func (c *countingDB) ReadAsUser(ctx context.Context, user uuid.UUID, fn func(store.Tx) error) error {
	c.transactions.Add(1)
	return c.SystemDB.ReadAsUser(ctx, user, fn)
}

// TestAuthenticateCostsOneRoundTrip checks the budget: a session
// adds at most one store round trip to a request, except for the write that
// moves its idle expiry at most once a minute.
func TestAuthenticateCostsOneRoundTrip(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := testkit.NewClock()
			db := &countingDB{SystemDB: testkit.OpenStore(t, d, clock)}
			b := newBundle(t, db, clock, password.New(testkit.FastPasswordParams(), 0))
			ctx := context.Background()
			signUp(t, b, "ada@example.com")
			res, err := b.svc.Login(ctx, "ada@example.com", pw, client)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				db.oneShot.Store(0)
				db.transactions.Store(0)
				if _, _, err := b.svc.Authenticate(ctx, res.Token); err != nil {
					t.Fatal(err)
				}
				if one, txs := db.oneShot.Load(), db.transactions.Load(); one != 1 || txs != 0 {
					t.Fatalf("request %d: %d one-shot reads and %d transactions, want one read", i, one, txs)
				}
				clock.Advance(time.Second)
			}
			clock.Advance(time.Minute)
			db.transactions.Store(0)
			if _, _, err := b.svc.Authenticate(ctx, res.Token); err != nil {
				t.Fatal(err)
			}
			if txs := db.transactions.Load(); txs != 1 {
				t.Fatalf("after a minute: %d transactions, want the one touch", txs)
			}
		})
	}
}
