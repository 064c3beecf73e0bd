// Package fallback keeps rate limits in force while their shared backend is
// away. A Limiter answers from a primary limiter (Redis, shared by every
// node) and, when the primary cannot be reached, from a secondary one in the
// process (memlimit) until it can again. A limit is never lifted because of
// an outage: while degraded, each node enforces it on its own counts, so
// across N nodes a key gets at most N times its limit, never an unlimited
// number of events.
//
// The switch is logged once each way (a warning when the primary goes, an
// info line when it is back), and Ping reports the state for readiness.
// While degraded no call waits for the primary: at most once every
// RetryEvery, a call starts a probe of it in the background, and the first
// probe that is answered switches back. Counts do not move between the two:
// after a switch, either side goes on from what it held.
//
// Each call to the primary carries a deadline of Options.Timeout in its
// context. A primary must honour it for a silent backend (connections open,
// nothing answered) to be noticed that fast: a go-redis client does only
// when built with ContextTimeoutEnabled, and otherwise waits out its own
// ReadTimeout (5s by default) before the switch.
package fallback

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
)

// Defaults of Options.
const (
	DefaultTimeout    = 250 * time.Millisecond
	DefaultRetryEvery = time.Second
)

// probeKey is the key Ping and the probes peek at: reading it proves the
// primary answers and changes nothing.
const probeKey = "fallback:probe"

var probeLimit = ratelimit.Limit{Events: 1, Window: time.Second}

// Options tune a Limiter; zero values pick the defaults.
type Options struct {
	// Name names the primary in logs and in Ping's error, such as "redis".
	Name string
	// Logger receives the two lines of a switch; slog.Default() when nil.
	Logger *slog.Logger
	// Timeout is the deadline of each call to the primary: one that does
	// not answer within it counts as gone.
	Timeout time.Duration
	// RetryEvery is how often, at most, a degraded Limiter probes the
	// primary.
	RetryEvery time.Duration
}

// Limiter is a ratelimit.Limiter over a primary and an in-process secondary.
// It is safe for concurrent use.
type Limiter struct {
	primary, secondary ratelimit.Limiter
	name               string
	logger             *slog.Logger
	timeout            time.Duration
	retryEvery         time.Duration
	degraded           atomic.Bool
	nextProbe          atomic.Int64 // Unix nanoseconds: when a degraded Limiter may probe the primary again
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New returns a Limiter that answers from primary and, while primary is
// unavailable, from secondary.
func New(primary, secondary ratelimit.Limiter, o Options) *Limiter {
	if o.Name == "" {
		o.Name = "the shared rate-limit backend"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = DefaultRetryEvery
	}
	return &Limiter{primary: primary, secondary: secondary, name: o.Name, logger: o.Logger,
		timeout: o.Timeout, retryEvery: o.RetryEvery}
}

// Hit counts one event for key; see ratelimit.Limiter. It answers from the
// secondary when the primary is unavailable, so it returns only what the
// secondary returns then (ratelimit.ErrKeyTooLong, a malformed limit), the
// primary's other errors, or the primary's error when the caller's own
// context ended first.
func (l *Limiter) Hit(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if !l.degraded.Load() {
		cctx, cancel := context.WithTimeout(ctx, l.timeout)
		d, err := l.primary.Hit(cctx, key, limit)
		cancel()
		if !l.failOver(ctx, err) {
			return d, err
		}
	} else {
		l.maybeProbe()
	}
	return l.secondary.Hit(ctx, key, limit)
}

// Peek reports whether one more event for key would be admitted, without
// counting it, from wherever Hit would count it. It returns the errors Hit
// does.
func (l *Limiter) Peek(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if !l.degraded.Load() {
		cctx, cancel := context.WithTimeout(ctx, l.timeout)
		d, err := l.primary.Peek(cctx, key, limit)
		cancel()
		if !l.failOver(ctx, err) {
			return d, err
		}
	} else {
		l.maybeProbe()
	}
	return l.secondary.Peek(ctx, key, limit)
}

// Reset forgets key in the secondary and, unless degraded, in the primary:
// a primary that is away is not an error, the key is forgotten where it is
// counted now. It returns ratelimit.ErrKeyTooLong, the primary's other
// errors, or its error when the caller's own context ended first.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.secondary.Reset(ctx, key); err != nil {
		return err
	}
	if l.degraded.Load() {
		l.maybeProbe()
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	err := l.primary.Reset(cctx, key)
	cancel()
	if l.failOver(ctx, err) {
		return nil
	}
	return err
}

// Degraded reports whether limits are answered from the secondary.
func (l *Limiter) Degraded() bool { return l.degraded.Load() }

// Ping checks that the primary answers, for readiness, switching over or
// back as a call would. It returns nil when the primary answers and
// otherwise an error saying the limits are degraded to the in-process ones
// ("degraded: redis unreachable, in-process limits in use"). Limits are
// enforced either way, so readiness should count it as optional: report,
// do not fail.
func (l *Limiter) Ping(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, l.timeout)
	_, err := l.primary.Peek(cctx, probeKey, probeLimit)
	cancel()
	if l.failOver(ctx, err) {
		return fmt.Errorf("degraded: %s unreachable, in-process limits in use: %w", l.name, err)
	}
	return err
}

// failOver handles the primary's answer to a call: it reports whether the
// call must be answered from the secondary instead, because the primary is
// unavailable and the caller is still waiting, and switches state (logging
// once) when the answer says the primary went away or came back. Any other
// error stays the caller's: a malformed key is malformed everywhere, and a
// caller who gave up must not look like an outage.
func (l *Limiter) failOver(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		if l.degraded.CompareAndSwap(true, false) {
			l.logger.InfoContext(ctx, "rate limits are shared again", "backend", l.name)
		}
		return false
	case ctx.Err() != nil || !kernel.IsCode(err, kernel.CodeUnavailable):
		return false
	}
	l.nextProbe.Store(time.Now().Add(l.retryEvery).UnixNano())
	if l.degraded.CompareAndSwap(false, true) {
		l.logger.WarnContext(ctx, "rate limits fall back to in-process counters: each node now enforces them alone",
			"backend", l.name, "error", err.Error())
	}
	return true
}

// maybeProbe starts a probe of the primary in the background when the time
// for one has come; of the calls that find it has, the one that moves the
// next probe forward starts it, so there is one per period. The probe is
// bounded by the timeout (when the primary honours deadlines) and switches
// back if the primary answers.
func (l *Limiter) maybeProbe() {
	now := time.Now().UnixNano()
	next := l.nextProbe.Load()
	if now < next || !l.nextProbe.CompareAndSwap(next, now+l.retryEvery.Nanoseconds()) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		_, err := l.primary.Peek(ctx, probeKey, probeLimit)
		l.failOver(context.Background(), err)
	}()
}
