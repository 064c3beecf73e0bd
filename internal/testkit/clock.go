// Package testkit opens real backends for tests: a fresh store per test on each
// dialect, a fake clock, and the whole app booted in-process on port 0.
package testkit

import (
	"sync"
	"time"
)

// Clock is a fake clock that moves only when told. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at a fixed instant in UTC.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)}
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.UTC()
}
