package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// The backends share one algorithm, the generic cell rate algorithm (GCRA,
// a token bucket kept as a single time): each key stores its "theoretical
// arrival time" (TAT), the instant at which its bucket would be empty again.
// An event moves the TAT forward by the emission interval Window/Events; it
// is admitted while the TAT stays within Events intervals of now. So Events
// events are admitted at once, and after that one more every Window/Events.
//
// One integer per key (microseconds since the Unix epoch) is all a backend
// keeps, a Hit is one atomic read-modify-write, and a lock of any length is a
// Limit with Events 1 whose Peek answers exactly when it ends. The backends
// do the atomic update in SQL or Lua with the Go arithmetic of HitTAT below;
// the Decision is computed here, once, for both.
//
// A Hit over the limit is still counted in one sense: it leaves the bucket
// full (TAT one microsecond past Events intervals from now), so a client that
// keeps hammering stays limited until it pauses for one interval.

// ErrKeyTooLong is returned for a key longer than MaxKeyLength bytes or empty.
var ErrKeyTooLong = errors.New("ratelimit: key is empty or longer than the maximum")

// Check returns ErrKeyTooLong for a key that is empty or longer than
// MaxKeyLength, and an error for a limit that admits nothing or whose
// interval (Window/Events) is under a millisecond.
func Check(key string, limit Limit) error {
	if key == "" || len(key) > MaxKeyLength {
		return ErrKeyTooLong
	}
	if limit.Events < 1 || limit.Window < time.Millisecond || limit.Window/time.Duration(limit.Events) < time.Millisecond {
		return fmt.Errorf("ratelimit: limit %d per %s is not one: want at least one event and an interval of 1ms or more", limit.Events, limit.Window)
	}
	return nil
}

// Interval is the emission interval of limit in microseconds: the time one
// event occupies in the bucket.
func Interval(limit Limit) int64 {
	return limit.Window.Microseconds() / int64(limit.Events)
}

// HitArgs are the numbers a backend's atomic Hit needs, in microseconds since
// the Unix epoch (now, Full) or microseconds (Interval).
type HitArgs struct {
	Now      int64
	Interval int64
	// Full is the TAT of a full bucket: an event is admitted when the TAT it
	// leads to is at most Full.
	Full int64
}

// NewHitArgs returns the arguments of a Hit at now against limit.
func NewHitArgs(limit Limit, now time.Time) HitArgs {
	iv := Interval(limit)
	n := now.UnixMicro()
	return HitArgs{Now: n, Interval: iv, Full: n + iv*int64(limit.Events)}
}

// HitTAT is the TAT a Hit stores, given the stored one (zero when the key has
// none). The backends implement exactly this, atomically, in their own
// language; it is here for reference and for the tests.
func HitTAT(a HitArgs, stored int64) int64 {
	switch {
	case stored <= a.Now:
		return a.Now + a.Interval
	case stored+a.Interval <= a.Full:
		return stored + a.Interval
	default:
		return a.Full + 1 // over the limit: full, and marked as refused
	}
}

// HitDecision is the decision of a Hit at now that stored tat.
func HitDecision(limit Limit, now time.Time, tat int64) Decision {
	a := NewHitArgs(limit, now)
	if tat > a.Full {
		return Decision{Allowed: false, Limit: limit, RetryAfter: micros(tat + a.Interval - a.Full), ResetAt: fromMicros(tat)}
	}
	return Decision{Allowed: true, Limit: limit, Remaining: int((a.Full - tat) / a.Interval), ResetAt: fromMicros(tat)}
}

// PeekDecision is what Peek at now answers for a key whose stored TAT is tat
// (zero when it has none).
func PeekDecision(limit Limit, now time.Time, tat int64) Decision {
	a := NewHitArgs(limit, now)
	base := max(tat, a.Now)
	d := Decision{Limit: limit, ResetAt: fromMicros(base)}
	if next := base + a.Interval; next <= a.Full {
		d.Allowed = true
		d.Remaining = int((a.Full - base) / a.Interval)
	} else {
		d.RetryAfter = micros(next - a.Full)
	}
	return d
}

// KeyTTL is how long a backend must keep a key whose TAT is tat at now: after
// that its bucket is empty and the key means nothing. It is at least a
// millisecond.
func KeyTTL(now time.Time, tat int64) time.Duration {
	return max(micros(tat-now.UnixMicro()), 0) + time.Millisecond
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
