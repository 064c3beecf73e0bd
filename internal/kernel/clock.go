package kernel

import "time"

// Clock tells the time. Services and stores take one so that tests can move time
// (trials, grace periods, token expiry) without sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock, in UTC with microsecond precision so that a
// time survives a round trip through either database unchanged.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
