package app

import (
	"context"
	"errors"
	"sync"
	"time"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// relayLagEvery is how often each node measures the relay's lag for the
// platform admins' view.
const relayLagEvery = 5 * time.Second

// relayLagMonitor measures the outbox relay's lag every few seconds, through
// the system path, for the platform admins' view: a request may not take the
// system path, so the route shows the latest measurement instead.
type relayLagMonitor struct {
	events *events.Runtime
	clock  kernel.Clock
	every  time.Duration

	mu     sync.Mutex
	lag    events.Lag
	at     time.Time
	failed error
}

// errNotMeasured is what the lag view answers before the first measurement.
var errNotMeasured = errors.New("the relay's lag has not been measured yet")

// Run measures the lag at once and then every m.every, until ctx ends.
func (m *relayLagMonitor) Run(ctx context.Context) {
	ctx = store.Polling(kernel.WithActor(ctx, kernel.SystemActor))
	ticker := time.NewTicker(m.every)
	defer ticker.Stop()
	for {
		lag, err := m.events.Lag(ctx)
		m.mu.Lock()
		if err == nil {
			m.lag, m.at = lag, m.clock.Now()
		}
		m.failed = err
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// RelayLag returns the latest measurement and its time. It returns
// unavailable before the first one succeeded; after that, a failed
// measurement leaves the last good one in place, its time telling its age.
func (m *relayLagMonitor) RelayLag() (events.Lag, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at.IsZero() {
		cause := errNotMeasured
		if m.failed != nil {
			cause = m.failed
		}
		return events.Lag{}, time.Time{}, kernel.Unavailable("relay lag", cause)
	}
	return m.lag, m.at, nil
}
