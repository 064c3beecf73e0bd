package storelimit_test

import (
	"context"
	"testing"
	"time"

	"atrium/internal/ratelimit"
	"atrium/internal/ratelimit/limittest"
	"atrium/internal/ratelimit/storelimit"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestConformance(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := testkit.NewClock()
			l := storelimit.New(testkit.OpenStore(t, d, clock))
			limittest.Run(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) { return l, clock })
		})
	}
}

func TestEmptiedBucketsArePruned(t *testing.T) {
	clock := testkit.NewClock()
	db := testkit.OpenSQLite(t, clock)
	l := storelimit.New(db)
	ctx := context.Background()
	limit := ratelimit.Limit{Events: 5, Window: time.Minute}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := l.Hit(ctx, k, limit); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	if _, err := l.Hit(ctx, "d", limit); err != nil {
		t.Fatal(err)
	}
	var keys []string
	err := db.ReadTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, "SELECT key FROM rate_limit ORDER BY key")
		if err != nil {
			return err
		}
		keys, err = store.Collect(rows, func(r store.Row) (string, error) {
			var k string
			return k, r.Scan(&k)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "d" {
		t.Fatalf("rows left: %v, want only the live key d", keys)
	}
}
