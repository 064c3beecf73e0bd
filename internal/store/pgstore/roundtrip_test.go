package pgstore_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

// tripConn counts round trips on one connection: a write that follows a read
// (or comes first) starts a new one, however many writes and reads it takes.
type tripConn struct {
	net.Conn
	mu      *sync.Mutex
	trips   *int
	reading bool
}

func (c *tripConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.reading || *c.trips == 0 {
		*c.trips++
	}
	c.reading = false
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *tripConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// TestRoundTrips counts what each read shape costs on the wire, so the cost
// of authenticating a request (one PlatformRow) and of admitting it to a
// workspace (one WorkspaceRow) is a measured fact, not a belief.
func TestRoundTrips(t *testing.T) {
	s := testkit.NewPostgresSchema(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(s.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	trips := 0
	dialer := &net.Dialer{}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &tripConn{Conn: conn, mu: &mu, trips: &trips}, nil
	}
	cfg.MaxConns = 1
	// An idle connection is pinged on acquire after a second; that is not a
	// cost of the read shapes measured here.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db := pgstore.NewForTest(pool, nil)
	ws := storetest.CreateWorkspace(t, db, "acme")
	user := storetest.CreateUser(t, db, "ada@example.com")

	warm := false
	count := func(name string, want int, run func() error) {
		t.Helper()
		mu.Lock()
		before := trips
		mu.Unlock()
		if err := run(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		mu.Lock()
		got := trips - before
		mu.Unlock()
		if warm && got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	var email, slug string
	// The first pass prepares each statement (pgx's statement cache costs one
	// round trip the first time a connection sees a statement); the second
	// measures the steady state.
	for _, w := range []bool{false, true} {
		warm = w
		count("PlatformRow", 1, func() error {
			return db.PlatformRow(ctx, "SELECT email FROM app_user WHERE id = $1", user).Scan(&email)
		})
		count("WorkspaceRow", 1, func() error {
			return db.WorkspaceRow(ctx, ws, "SELECT slug FROM workspace WHERE id = $1", ws).Scan(&slug)
		})
		count("ReadTx with one QueryRow", 2, func() error {
			return db.ReadTx(ctx, func(tx store.Tx) error {
				return tx.QueryRow(ctx, "SELECT email FROM app_user WHERE id = $1", user).Scan(&email)
			})
		})
	}
}
