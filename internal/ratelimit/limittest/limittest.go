// Package limittest is the conformance suite every ratelimit.Limiter passes:
// storelimit on each store dialect, redislimit on a real Redis. A change to
// the interface or its semantics starts here.
package limittest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/ratelimit"
	"atrium/internal/testkit"
)

// Factory returns a limiter under test and the clock it reads time from.
// Each call may return a fresh limiter or the same backend: every subtest
// uses keys of its own.
type Factory func(t *testing.T) (ratelimit.Limiter, *testkit.Clock)

// Run runs the suite against the limiters newLimiter returns.
func Run(t *testing.T, newLimiter Factory) {
	prefix := "lt:" + randomHex() + ":"
	tests := []struct {
		name string
		fn   func(t *testing.T, l ratelimit.Limiter, clock *testkit.Clock, key func(string) string)
	}{
		{"LimitReached", limitReached},
		{"RetryAfterAdmitsAgain", retryAfterAdmitsAgain},
		{"BucketRefills", bucketRefills},
		{"HammeringStaysLimited", hammeringStaysLimited},
		{"PeekDoesNotCount", peekDoesNotCount},
		{"ResetClears", resetClears},
		{"KeysAreIndependent", keysAreIndependent},
		{"SingleEventLock", singleEventLock},
		{"ConcurrentHitsNeverExceed", concurrentHits},
		{"BadKeysAndLimitsRefused", badKeysAndLimits},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clock := newLimiter(t)
			tc.fn(t, l, clock, func(s string) string { return prefix + tc.name + ":" + s })
		})
	}
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var fivePerMinute = ratelimit.Limit{Events: 5, Window: time.Minute}

func hit(t *testing.T, l ratelimit.Limiter, key string, limit ratelimit.Limit) ratelimit.Decision {
	t.Helper()
	d, err := l.Hit(context.Background(), key, limit)
	if err != nil {
		t.Fatalf("Hit(%s): %v", key, err)
	}
	if d.Limit != limit {
		t.Fatalf("Hit(%s): decision against %+v, want %+v", key, d.Limit, limit)
	}
	return d
}

func peek(t *testing.T, l ratelimit.Limiter, key string, limit ratelimit.Limit) ratelimit.Decision {
	t.Helper()
	d, err := l.Peek(context.Background(), key, limit)
	if err != nil {
		t.Fatalf("Peek(%s): %v", key, err)
	}
	return d
}

// fill spends the whole bucket of key, checking each decision on the way.
func fill(t *testing.T, l ratelimit.Limiter, key string, limit ratelimit.Limit) {
	t.Helper()
	for i := 1; i <= limit.Events; i++ {
		d := hit(t, l, key, limit)
		if !d.Allowed || d.Remaining != limit.Events-i || d.RetryAfter != 0 {
			t.Fatalf("hit %d of %d: %+v, want allowed with %d remaining", i, limit.Events, d, limit.Events-i)
		}
	}
}

func limitReached(t *testing.T, l ratelimit.Limiter, clock *testkit.Clock, key func(string) string) {
	k := key("k")
	fill(t, l, k, fivePerMinute)
	now := clock.Now()
	d := hit(t, l, k, fivePerMinute)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("hit over the limit: %+v, want refused with 0 remaining", d)
	}
	interval := fivePerMinute.Window / time.Duration(fivePerMinute.Events)
	if d.RetryAfter < interval || d.RetryAfter > interval+time.Millisecond {
		t.Fatalf("RetryAfter %s, want about one interval (%s)", d.RetryAfter, interval)
	}
	if d.ResetAt.Before(now.Add(fivePerMinute.Window)) || d.ResetAt.After(now.Add(fivePerMinute.Window+time.Millisecond)) {
		t.Fatalf("ResetAt %s, want about %s (a full window from now)", d.ResetAt, now.Add(fivePerMinute.Window))
	}
	if p := peek(t, l, k, fivePerMinute); p.Allowed || p.RetryAfter <= 0 {
		t.Fatalf("Peek over the limit: %+v, want refused with a RetryAfter", p)
	}
}

func retryAfterAdmitsAgain(t *testing.T, l ratelimit.Limiter, clock *testkit.Clock, key func(string) string) {
	k := key("k")
	fill(t, l, k, fivePerMinute)
	p := peek(t, l, k, fivePerMinute)
	if p.Allowed {
		t.Fatalf("Peek of a full bucket: %+v", p)
	}
	clock.Advance(p.RetryAfter - time.Millisecond)
	if d := peek(t, l, k, fivePerMinute); d.Allowed {
		t.Fatalf("admitted before RetryAfter: %+v", d)
	}
	clock.Advance(time.Millisecond)
	if d := hit(t, l, k, fivePerMinute); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("hit after RetryAfter: %+v, want the one freed event", d)
	}
	if d := hit(t, l, k, fivePerMinute); d.Allowed {
		t.Fatalf("second hit after RetryAfter: %+v, want refused", d)
	}
}

func bucketRefills(t *testing.T, l ratelimit.Limiter, clock *testkit.Clock, key func(string) string) {
	k := key("k")
	fill(t, l, k, fivePerMinute)
	clock.Advance(fivePerMinute.Window / 2)
	if d := peek(t, l, k, fivePerMinute); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("half a window later: %+v, want 2 of 5 free again", d)
	}
	clock.Advance(fivePerMinute.Window / 2)
	d := peek(t, l, k, fivePerMinute)
	if !d.Allowed || d.Remaining != fivePerMinute.Events || d.ResetAt.After(clock.Now()) {
		t.Fatalf("a window later: %+v, want an empty bucket", d)
	}
	fill(t, l, k, fivePerMinute)
}

func hammeringStaysLimited(t *testing.T, l ratelimit.Limiter, clock *testkit.Clock, key func(string) string) {
	k := key("k")
	fill(t, l, k, fivePerMinute)
	for range 30 { // a refused hit every 5s for 2.5 minutes, faster than one interval (12s)
		clock.Advance(5 * time.Second)
		if d := hit(t, l, k, fivePerMinute); d.Allowed {
			t.Fatalf("a client hitting every 5s was admitted at %s", clock.Now())
		}
	}
	clock.Advance(fivePerMinute.Window/time.Duration(fivePerMinute.Events) + time.Millisecond)
	if d := hit(t, l, k, fivePerMinute); !d.Allowed {
		t.Fatalf("after pausing one interval: %+v, want admitted", d)
	}
}

func peekDoesNotCount(t *testing.T, l ratelimit.Limiter, _ *testkit.Clock, key func(string) string) {
	k := key("k")
	for range 20 {
		if d := peek(t, l, k, fivePerMinute); !d.Allowed || d.Remaining != fivePerMinute.Events {
			t.Fatalf("Peek of an unused key: %+v, want allowed with %d remaining", d, fivePerMinute.Events)
		}
	}
	hit(t, l, k, fivePerMinute)
	for range 20 {
		if d := peek(t, l, k, fivePerMinute); !d.Allowed || d.Remaining != fivePerMinute.Events-1 {
			t.Fatalf("Peek after one hit: %+v, want %d remaining", d, fivePerMinute.Events-1)
		}
	}
	fill(t, l, key("other"), fivePerMinute)
}

func resetClears(t *testing.T, l ratelimit.Limiter, _ *testkit.Clock, key func(string) string) {
	k := key("k")
	fill(t, l, k, fivePerMinute)
	if err := l.Reset(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	fill(t, l, k, fivePerMinute)
	if err := l.Reset(context.Background(), key("never-used")); err != nil {
		t.Fatalf("Reset of an unused key: %v", err)
	}
}

func keysAreIndependent(t *testing.T, l ratelimit.Limiter, _ *testkit.Clock, key func(string) string) {
	a, b := key("a"), key("b")
	fill(t, l, a, fivePerMinute)
	if d := hit(t, l, a, fivePerMinute); d.Allowed {
		t.Fatal("key a admitted over its limit")
	}
	fill(t, l, b, fivePerMinute)
	if err := l.Reset(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if d := peek(t, l, a, fivePerMinute); d.Allowed {
		t.Fatal("resetting key b freed key a")
	}
}

// singleEventLock is how the login throttle keeps a lockout: one Hit with a
// limit of one event per lock length, and a Peek that answers exactly when
// it ends, whatever window the Peek names.
func singleEventLock(t *testing.T, l ratelimit.Limiter, clock *testkit.Clock, key func(string) string) {
	k := key("lock")
	lock := ratelimit.Limit{Events: 1, Window: 15 * time.Minute}
	if d := hit(t, l, k, lock); !d.Allowed {
		t.Fatalf("first lock hit: %+v", d)
	}
	if d := hit(t, l, k, lock); d.Allowed {
		t.Fatalf("second lock hit admitted: %+v; one lockout must start once", d)
	}
	clock.Advance(5 * time.Minute)
	d := peek(t, l, k, ratelimit.Limit{Events: 1, Window: time.Hour})
	if d.Allowed || d.RetryAfter < 10*time.Minute || d.RetryAfter > 10*time.Minute+time.Millisecond {
		t.Fatalf("Peek 5 minutes into a 15-minute lock: %+v, want refused for 10 more minutes", d)
	}
	clock.Advance(d.RetryAfter)
	if d := peek(t, l, k, lock); !d.Allowed {
		t.Fatalf("Peek after the lock: %+v, want allowed", d)
	}
}

func concurrentHits(t *testing.T, l ratelimit.Limiter, _ *testkit.Clock, key func(string) string) {
	k := key("k")
	var mu sync.Mutex
	var wg sync.WaitGroup
	admitted, errs := 0, []error{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := l.Hit(context.Background(), k, fivePerMinute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if d.Allowed {
				admitted++
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent hits failed: %v", errs)
	}
	if admitted != fivePerMinute.Events {
		t.Fatalf("20 concurrent hits admitted %d, want exactly %d", admitted, fivePerMinute.Events)
	}
}

func badKeysAndLimits(t *testing.T, l ratelimit.Limiter, _ *testkit.Clock, key func(string) string) {
	ctx := context.Background()
	for _, k := range []string{"", key(strings.Repeat("x", ratelimit.MaxKeyLength))} {
		if _, err := l.Hit(ctx, k, fivePerMinute); !errors.Is(err, ratelimit.ErrKeyTooLong) {
			t.Errorf("Hit with a key of %d bytes: %v, want ErrKeyTooLong", len(k), err)
		}
		if _, err := l.Peek(ctx, k, fivePerMinute); !errors.Is(err, ratelimit.ErrKeyTooLong) {
			t.Errorf("Peek with a key of %d bytes: %v, want ErrKeyTooLong", len(k), err)
		}
		if err := l.Reset(ctx, k); !errors.Is(err, ratelimit.ErrKeyTooLong) {
			t.Errorf("Reset with a key of %d bytes: %v, want ErrKeyTooLong", len(k), err)
		}
	}
	for _, limit := range []ratelimit.Limit{{Events: 0, Window: time.Minute}, {Events: 5, Window: 0}, {Events: 1000, Window: time.Second / 2}} {
		if _, err := l.Hit(ctx, key("k"), limit); err == nil {
			t.Errorf("Hit with limit %+v: no error", limit)
		}
	}
	if d := peek(t, l, key(strings.Repeat("y", 100)), fivePerMinute); !d.Allowed {
		t.Error("a key within the bound was refused")
	}
}
