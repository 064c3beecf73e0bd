package authcache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity/authcache"
	"atrium/internal/testkit"
)

func live(t *testing.T) (*authcache.Cache, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock()
	c := authcache.New(authcache.Options{Clock: clock, Logger: testkit.DiscardLogger()})
	c.SetLive(true)
	return c, clock
}

func begin(t *testing.T, c *authcache.Cache) authcache.Ticket {
	t.Helper()
	ticket, ok := c.Begin(context.Background())
	if !ok {
		t.Fatal("Begin bypassed a live cache")
	}
	return ticket
}

func TestEntriesLiveUntilTheirTTLOrBound(t *testing.T) {
	c, clock := live(t)
	c.Put(begin(t, c), "a", 1, time.Time{})
	c.Put(begin(t, c), "b", 2, clock.Now().Add(time.Second))
	clock.Advance(time.Second)
	if _, ok := c.Get("b"); ok {
		t.Fatal("an entry outlived its bound")
	}
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %v, %v", v, ok)
	}
	clock.Advance(authcache.TTL)
	if _, ok := c.Get("a"); ok {
		t.Fatal("an entry outlived the TTL")
	}
}

func TestInvalidateDropsTaggedEntriesOnly(t *testing.T) {
	c, _ := live(t)
	s1, s2, u := uuid.New(), uuid.New(), uuid.New()
	c.Put(begin(t, c), "one", 1, time.Time{}, authcache.SessionTag(s1), authcache.UserTag(u))
	c.Put(begin(t, c), "two", 2, time.Time{}, authcache.SessionTag(s2))
	c.Invalidate(authcache.SessionTag(s2))
	if _, ok := c.Get("two"); ok {
		t.Fatal("an invalidated entry survived")
	}
	if _, ok := c.Get("one"); !ok {
		t.Fatal("an unrelated entry was dropped")
	}
	c.Invalidate(authcache.UserTag(u))
	if _, ok := c.Get("one"); ok {
		t.Fatal("a user's entry survived the user's invalidation")
	}
	c.Put(begin(t, c), "three", 3, time.Time{}, authcache.KeyTag(s1))
	c.Invalidate("something:new")
	if c.Len() != 0 {
		t.Fatal("an unknown payload did not drop everything")
	}
}

// A read that began before an invalidation may have seen the row before the
// revoking commit: its Put must not bring the row back.
func TestPutAfterAnInvalidationIsDropped(t *testing.T) {
	c, _ := live(t)
	ticket := begin(t, c)
	c.Invalidate(authcache.SessionTag(uuid.New()))
	c.Put(ticket, "stale", 1, time.Time{})
	if _, ok := c.Get("stale"); ok {
		t.Fatal("a Put older than an invalidation was kept")
	}
	c.Put(begin(t, c), "fresh", 1, time.Time{})
	ticket = begin(t, c)
	c.Flush()
	c.Update(ticket, "fresh", 2)
	if c.Len() != 0 {
		t.Fatal("Update brought back a flushed entry")
	}
}

func TestNotLiveBypasses(t *testing.T) {
	c, _ := live(t)
	ticket := begin(t, c)
	c.Put(ticket, "a", 1, time.Time{})
	c.SetLive(false)
	if _, ok := c.Begin(context.Background()); ok {
		t.Fatal("Begin used a cache whose feed is down")
	}
	if c.Len() != 0 {
		t.Fatal("losing the feed kept entries")
	}
	c.Put(ticket, "b", 1, time.Time{})
	if c.Len() != 0 {
		t.Fatal("Put while the feed is down stored an entry")
	}
	var none *authcache.Cache
	if _, ok := none.Begin(context.Background()); ok {
		t.Fatal("a nil cache did not bypass")
	}
}

type epoch struct {
	n   int64
	err error
}

func (e *epoch) AuthEpoch(context.Context) (int64, error) { return e.n, e.err }

func TestEpochChangeFlushes(t *testing.T) {
	e := &epoch{n: 7}
	c := authcache.New(authcache.Options{Clock: testkit.NewClock(), Epoch: e, Logger: testkit.DiscardLogger()})
	c.Put(begin(t, c), "a", 1, time.Time{})
	begin(t, c)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("an unchanged epoch dropped the entry")
	}
	e.n++
	ticket := begin(t, c)
	if _, ok := c.Get("a"); ok {
		t.Fatal("a new epoch kept the entry")
	}
	c.Put(ticket, "a", 2, time.Time{})
	e.err = errors.New("disk gone")
	if _, ok := c.Begin(context.Background()); ok {
		t.Fatal("an unreadable epoch did not bypass")
	}
}

func TestFullCacheStartsOver(t *testing.T) {
	c, _ := live(t)
	ticket := begin(t, c)
	for i := range authcache.MaxEntries {
		c.Put(ticket, uuid.NewString(), i, time.Time{})
	}
	if c.Len() != authcache.MaxEntries {
		t.Fatalf("Len = %d", c.Len())
	}
	c.Put(ticket, "one more", 0, time.Time{})
	if c.Len() != 1 {
		t.Fatalf("a full cache did not start over: Len = %d", c.Len())
	}
}

// TestRequestScopeReadsTheEpochOnce checks that the lookups of one request
// share one epoch reading, and that the next request reads it afresh.
func TestRequestScopeReadsTheEpochOnce(t *testing.T) {
	epoch := &countingEpoch{}
	c := authcache.New(authcache.Options{Epoch: epoch})
	ctx := authcache.WithRequestScope(context.Background())
	for range 3 {
		if _, ok := c.Begin(ctx); !ok {
			t.Fatal("bypassed")
		}
	}
	if epoch.reads != 1 {
		t.Fatalf("one request read the epoch %d times, want 1", epoch.reads)
	}
	epoch.value = 7
	next := authcache.WithRequestScope(context.Background())
	ticket, _ := c.Begin(next)
	c.Put(ticket, "k", 1, time.Time{})
	if epoch.reads != 2 {
		t.Fatalf("the next request read the epoch %d times in all, want 2", epoch.reads)
	}
	if _, ok := c.Get("k"); !ok {
		t.Fatal("an entry put after the epoch moved is missing")
	}
}

type countingEpoch struct {
	value int64
	reads int
}

func (e *countingEpoch) AuthEpoch(context.Context) (int64, error) {
	e.reads++
	return e.value, nil
}
