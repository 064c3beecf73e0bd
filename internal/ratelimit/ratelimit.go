// Package ratelimit counts events per key in a window and says when a limit is
// reached. Login throttling uses it now; the request rate-limit middleware
// (issue 5) will use the same interface.
//
// The backends are chosen in one place (internal/app): storelimit keeps the
// counters in the database, so they survive a restart and hold across every
// node sharing that database (the default); redislimit keeps them in Redis
// when ATRIUM_REDIS_URL is set. Both pass the conformance suite in
// ratelimit/limittest.
//
// Keys carry what they count: "login:ip:203.0.113.9", "login:acct:<sha256>",
// "ws:ws_…:api". A key is at most MaxKeyLength bytes. Use one Limit per key:
// the stored state is interpreted against the limit of each call.
//
// The algorithm is GCRA, a token bucket (see gcra.go).
package ratelimit

import (
	"context"
	"time"
)

// MaxKeyLength bounds a key; longer keys are refused with ErrKeyTooLong.
const MaxKeyLength = 200

// Limit admits Events events at once and then one more every Window/Events:
// a bucket of Events that refills completely in Window. Over any period P a
// key gets at most Events + P*Events/Window events.
type Limit struct {
	Events int
	Window time.Duration
}

// Decision is what a limiter says about a key after a Hit or a Peek.
type Decision struct {
	// Allowed is false when the event is over the limit (Hit) or when the next
	// one would be (Peek).
	Allowed bool
	// Limit is the limit the decision was taken against.
	Limit Limit
	// Remaining is how many more events the bucket admits now (0 when none).
	Remaining int
	// RetryAfter is how long until one more event would be admitted; zero
	// when Allowed.
	RetryAfter time.Duration
	// ResetAt is when the bucket is empty again: no counted event matters
	// any more.
	ResetAt time.Time
}

// Limiter counts events against limits. Implementations are safe for
// concurrent use and consistent across every process sharing the backend: N
// nodes counting the same key count together.
type Limiter interface {
	// Hit counts one event for key and reports whether it is within limit. An
	// event over the limit is still counted: it leaves the bucket full, so a
	// client that keeps hammering stays limited. It returns ErrKeyTooLong or
	// an error for a malformed limit (see Check), or the backend's error;
	// callers decide whether to fail open or closed.
	Hit(ctx context.Context, key string, limit Limit) (Decision, error)
	// Peek reports whether one more event for key would be within limit,
	// without counting it.
	Peek(ctx context.Context, key string, limit Limit) (Decision, error)
	// Reset forgets every event counted for key. Resetting a key that has
	// none is not an error.
	Reset(ctx context.Context, key string) error
}
