package redismeter_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"atrium/internal/kernel"
	"atrium/internal/ratelimit/redislimit"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
	"atrium/internal/usage"
	"atrium/internal/usage/metertest"
	"atrium/internal/usage/redismeter"
)

// Environment variables that turn on the Redis tests, as for redislimit.
const (
	envRedisURL     = "ATRIUM_TEST_REDIS_URL" // such as redis://127.0.0.1:6379/15
	envRequireRedis = "ATRIUM_REQUIRE_REDIS"  // "1": fail instead of skipping without Redis
)

// client returns a client of the tests' Redis, or skips (fails when
// ATRIUM_REQUIRE_REDIS=1) with one line saying how to enable them.
func client(t *testing.T) *redis.Client {
	t.Helper()
	u := os.Getenv(envRedisURL)
	if u == "" {
		if os.Getenv(envRequireRedis) == "1" {
			t.Fatalf("%s=1 but %s is not set", envRequireRedis, envRedisURL)
		}
		t.Skipf("Redis tests skipped: set %s=redis://127.0.0.1:6379/15 (or run: eval \"$(bash .ci/setup-services)\")", envRedisURL)
	}
	c, err := redislimit.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix is a key prefix of this test's own, deleted when it ends.
func prefix(t *testing.T, c *redis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "atrium:{usage-test-" + hex.EncodeToString(b[:]) + "}:"
	t.Cleanup(func() { deleteKeys(t, c, p) })
	return p
}

// deleteKeys deletes every key under p, as a Redis restart without
// persistence would.
func deleteKeys(t *testing.T, c *redis.Client, p string) {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, p+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConformance(t *testing.T) {
	c := client(t)
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			metertest.Run(t, func(t *testing.T) metertest.Backend {
				clock := testkit.NewClock()
				db := testkit.OpenStore(t, d, clock)
				p := prefix(t, c)
				return metertest.Backend{DB: db, Clock: clock, New: func(*testing.T) usage.Counters {
					return redismeter.New(c, db, redismeter.Options{Prefix: p, Clock: clock, Logger: testkit.DiscardLogger()})
				}}
			})
		})
	}
}

// setup is one workspace in a fresh store, and Counters on a prefix of its own.
func setup(t *testing.T, d store.Dialect) (store.SystemDB, *redis.Client, string, uuid.UUID, *testkit.Clock) {
	t.Helper()
	c := client(t)
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, d, clock)
	ws, err := tenancy.NewService(db, nil).Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	return db, c, prefix(t, c), ws.ID, clock
}

func stored(t *testing.T, db store.SystemDB, key usage.Key) int64 {
	t.Helper()
	var v int64
	err := db.ReadWorkspace(context.Background(), key.WorkspaceID, func(tx store.Tx) error {
		err := tx.QueryRow(context.Background(), `SELECT value FROM usage_counter WHERE workspace_id = $1 AND metric = $2 AND period_start = $3`,
			key.WorkspaceID, key.Metric, key.PeriodStart).Scan(&v)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func keyOf(ws uuid.UUID, clock *testkit.Clock) usage.Key {
	start, end, _ := usage.CalendarMonths{}.Period(context.Background(), ws, clock.Now())
	return usage.Key{WorkspaceID: ws, Metric: "api_calls", PeriodStart: start, PeriodEnd: end}
}

// TestRedisLosingItsDataStartsAgainFromTheStore: after Redis lost every key
// (a restart without persistence), counters start again from the history.
func TestRedisLosingItsDataStartsAgainFromTheStore(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, c, p, ws, clock := setup(t, d)
			counters := redismeter.New(c, db, redismeter.Options{Prefix: p, Clock: clock})
			key := keyOf(ws, clock)
			ctx := context.Background()
			if _, err := counters.Add(ctx, kernel.NewID(), []usage.Delta{{Key: key, N: 10}}); err != nil {
				t.Fatal(err)
			}
			deleteKeys(t, c, p)
			if got, err := counters.Total(ctx, key); err != nil || got != 10 {
				t.Fatalf("Total with Redis empty: %d %v, want the store's 10", got, err)
			}
			totals, err := counters.Add(ctx, kernel.NewID(), []usage.Delta{{Key: key, N: 1}})
			if err != nil || totals[0] != 11 {
				t.Fatalf("Add after the loss: %v %v, want [11]", totals, err)
			}
			if got := stored(t, db, key); got != 11 {
				t.Fatalf("stored %d, want 11", got)
			}
		})
	}
}

// TestANodeDyingBeforeTheStoreIsSwept: increments a node added to Redis but
// did not write to the store (it died in between) reach the store through
// another node's sweep, once.
func TestANodeDyingBeforeTheStoreIsSwept(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			db, c, p, ws, clock := setup(t, d)
			key := keyOf(ws, clock)
			ctx := context.Background()
			dead := redismeter.New(c, db, redismeter.Options{Prefix: p, Clock: clock})
			if _, err := redismeter.ApplyOnly(ctx, dead, kernel.NewID(), []usage.Delta{{Key: key, N: 42}}); err != nil {
				t.Fatal(err)
			}
			if got := stored(t, db, key); got != 0 {
				t.Fatalf("stored %d before any sweep", got)
			}
			other := redismeter.New(c, db, redismeter.Options{Prefix: p, Clock: clock})
			for i, want := range []int{1, 0} { // the second sweep finds nothing dirty
				n, err := other.Sweep(ctx)
				if err != nil || n != want {
					t.Fatalf("sweep %d wrote %d counters (%v), want %d", i+1, n, err, want)
				}
				if got := stored(t, db, key); got != 42 {
					t.Fatalf("sweep %d: stored %d, want 42", i+1, got)
				}
			}
		})
	}
}
