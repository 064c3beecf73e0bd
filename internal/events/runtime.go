package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Config is what a Runtime needs.
type Config struct {
	DB     store.SystemDB
	Bus    *natsbus.Bus
	Logger *slog.Logger
	Clock  kernel.Clock
	// RelayInterval is how long the relay waits between looks at an empty
	// outbox (default 50 ms). A full batch is followed at once by the next.
	RelayInterval time.Duration
	// RelayBatch is how many rows one relay pass publishes (default 500).
	RelayBatch int
}

// Runtime runs the outbox relay, the job workers and the event subscribers of
// one node. Handlers are registered before Run; Run serves them until its
// context ends.
type Runtime struct {
	db     store.SystemDB
	bus    *natsbus.Bus
	logger *slog.Logger
	clock  kernel.Clock
	relay  relayConfig

	mu      sync.Mutex
	running bool
	kinds   map[string]jobKind
	subs    map[string]subscription
	stats   relayStats
}

// New builds a runtime over cfg's store and bus.
func New(cfg Config) *Runtime {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.SystemClock{}
	}
	rc := relayConfig{interval: cfg.RelayInterval, batch: cfg.RelayBatch}
	if rc.interval <= 0 {
		rc.interval = 50 * time.Millisecond
	}
	if rc.batch <= 0 {
		rc.batch = 500
	}
	return &Runtime{db: cfg.DB, bus: cfg.Bus, logger: cfg.Logger, clock: cfg.Clock, relay: rc,
		kinds: map[string]jobKind{}, subs: map[string]subscription{}}
}

// Bus is the runtime's NATS connection, for features that read the event
// stream themselves (the realtime event stream).
func (r *Runtime) Bus() *natsbus.Bus { return r.bus }

// Run ensures the streams exist (retrying while NATS cannot be reached),
// starts a consumer per job kind and per subscriber, and relays the outbox,
// until ctx ends. It returns once every handler that was running has
// finished, so the store can be closed after it. The relay starts at once:
// rows wait in the outbox, not in memory, while NATS is away.
func (r *Runtime) Run(ctx context.Context) {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { r.runRelay(ctx) })
	wg.Go(func() {
		if !r.waitForStreams(ctx) {
			return
		}
		r.runConsumers(ctx)
	})
	wg.Wait()
}

// waitForStreams creates the streams, retrying with backoff until it works
// or ctx ends; it reports whether it worked.
func (r *Runtime) waitForStreams(ctx context.Context) bool {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := r.bus.EnsureStreams(sctx)
		cancel()
		if err == nil {
			return true
		}
		if attempt == 1 || attempt%10 == 0 {
			r.logger.Warn("event streams not ready; retrying", "error", err.Error(), "attempt", attempt)
		}
		if !sleep(ctx, delay) {
			return false
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// runConsumers consumes every registered job kind and subscriber until ctx
// ends, then waits for the handlers in progress.
func (r *Runtime) runConsumers(ctx context.Context) {
	r.mu.Lock()
	kinds := make([]jobKind, 0, len(r.kinds))
	for _, k := range r.kinds {
		kinds = append(kinds, k)
	}
	subs := make([]subscription, 0, len(r.subs))
	for _, s := range r.subs {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, k := range kinds {
		wg.Go(func() {
			r.consumeUntilDone(ctx, "job "+k.kind, func(ctx context.Context) error { return r.consumeJobs(ctx, k) })
		})
	}
	for _, s := range subs {
		wg.Go(func() {
			r.consumeUntilDone(ctx, "subscriber "+s.name, func(ctx context.Context) error { return r.consumeEvents(ctx, s) })
		})
	}
	wg.Wait()
}

// consumeUntilDone runs consume, and again after a pause whenever it fails
// (the consumer could not be created while NATS was away), until ctx ends.
func (r *Runtime) consumeUntilDone(ctx context.Context, what string, consume func(context.Context) error) {
	for {
		err := consume(ctx)
		if ctx.Err() != nil {
			return
		}
		r.logger.Warn("consumer stopped; restarting", "consumer", what, "error", fmt.Sprint(err))
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

func (r *Runtime) register(what string) {
	if r.running {
		panic(fmt.Sprintf("events: %s registered after Run", what))
	}
}

// Permanent marks err as one that retrying cannot fix: the job or delivery
// fails at once and goes to the dead-letter stream.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ExponentialBackoff returns delays of base, 2·base, 4·base … capped at max,
// each moved by up to ±20 % so that retries of many jobs do not arrive together.
func ExponentialBackoff(base, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		return Jitter(min(d, max))
	}
}

// ScheduleBackoff returns the delays of a fixed schedule: after attempt n,
// schedule[n-1] (the last one repeated past its end), with jitter.
func ScheduleBackoff(schedule ...time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		i := min(max(attempt-1, 0), len(schedule)-1)
		return Jitter(schedule[i])
	}
}

// Jitter moves d by a random amount of up to ±20 %.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	spread := int64(d) / 5
	return time.Duration(int64(d) - spread + rand.Int64N(2*spread+1))
}

// sleep waits d or until ctx ends; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// safely runs fn, turning a panic into an error so a broken handler costs one
// failed attempt, never the process.
func safely(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}
