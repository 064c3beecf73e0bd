// Package memlimit keeps rate-limit counters in the process's memory: the
// limiter of a single node, and the one every node falls back to while Redis
// is away (see package fallback). A Hit is a map update under one of many
// small locks, well under a microsecond and free of allocations once a key
// exists; nothing is shared with other processes, so N nodes each admit the
// limit on their own.
//
// Every key holds its TAT in microseconds (see package ratelimit), in one of
// shardCount maps chosen by a hash of the key, each behind its own mutex, so
// concurrent Hits on different keys rarely wait for each other. Keys whose
// bucket has emptied mean nothing any more; at most once every SweepEvery the
// first Hit past that time deletes them from every shard, so memory follows
// the keys in use rather than every key ever seen.
package memlimit

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
)

// SweepEvery is how often, at most, a Limiter deletes the keys whose bucket
// has emptied.
const SweepEvery = time.Minute

// shardCount is the number of independently locked maps; a power of two, so
// that a hash picks one with a mask. 64 keeps contention negligible at the
// concurrency one process serves, at about 8 KiB of empty shards.
const shardCount = 64

// shrinkFloor is the size under which a shard's map is never rebuilt: Go
// maps do not shrink when keys are deleted, so a shard that once held many
// keys is copied into a fresh map once most of them are gone.
const shrinkFloor = 1024

// Limiter is a ratelimit.Limiter in memory. It is safe for concurrent use;
// the zero value is not usable, call New.
type Limiter struct {
	clock     kernel.Clock
	seed      maphash.Seed
	nextSweep atomic.Int64 // microseconds since the Unix epoch, on clock
	shards    [shardCount]shard
}

// shard is one map of keys to TATs (microseconds since the Unix epoch) and
// the lock that guards it, padded to a cache line of its own so that two
// cores locking neighbouring shards do not slow each other down.
type shard struct {
	mu   sync.Mutex
	tats map[string]int64
	// peak is the most keys the map has held since it was made, for the
	// decision to rebuild it smaller after a sweep.
	peak int
	_    [40]byte
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New returns an empty Limiter that reads the time from clock
// (kernel.SystemClock when nil).
func New(clock kernel.Clock) *Limiter {
	if clock == nil {
		clock = kernel.SystemClock{}
	}
	l := &Limiter{clock: clock, seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tats = make(map[string]int64)
	}
	l.nextSweep.Store(clock.Now().Add(SweepEvery).UnixMicro())
	return l
}

// Hit counts one event for key; see ratelimit.Limiter. It returns
// ratelimit.ErrKeyTooLong or an error for a malformed limit, and no other:
// memory does not go away.
func (l *Limiter) Hit(_ context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if err := ratelimit.Check(key, limit); err != nil {
		return ratelimit.Decision{}, err
	}
	now := l.clock.Now()
	a := ratelimit.NewHitArgs(limit, now)
	s := l.shard(key)
	s.mu.Lock()
	stored, ok := s.tats[key]
	if !ok {
		// The map outlives the request: keep a copy, not the caller's
		// string, which may share memory with something larger.
		key = strings.Clone(key)
	}
	tat := ratelimit.HitTAT(a, stored)
	s.tats[key] = tat
	if !ok && len(s.tats) > s.peak {
		s.peak = len(s.tats)
	}
	s.mu.Unlock()
	l.maybeSweep(a.Now)
	return ratelimit.HitDecision(limit, now, tat), nil
}

// Peek reports whether one more event for key would be admitted, without
// counting it. It returns the errors Hit does.
func (l *Limiter) Peek(_ context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if err := ratelimit.Check(key, limit); err != nil {
		return ratelimit.Decision{}, err
	}
	now := l.clock.Now()
	s := l.shard(key)
	s.mu.Lock()
	tat := s.tats[key]
	s.mu.Unlock()
	return ratelimit.PeekDecision(limit, now, tat), nil
}

// Reset forgets key. It returns ratelimit.ErrKeyTooLong for a key that is
// empty or too long, and no other error.
func (l *Limiter) Reset(_ context.Context, key string) error {
	if key == "" || len(key) > ratelimit.MaxKeyLength {
		return ratelimit.ErrKeyTooLong
	}
	s := l.shard(key)
	s.mu.Lock()
	delete(s.tats, key)
	s.mu.Unlock()
	return nil
}

// Len returns the number of keys held, emptied buckets not yet swept
// included; for tests and metrics.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}

// Sweep deletes every key whose bucket has emptied by the clock's now, as the
// Hits do once every SweepEvery on their own.
func (l *Limiter) Sweep() {
	now := l.clock.Now().UnixMicro()
	l.nextSweep.Store(now + SweepEvery.Microseconds())
	l.sweep(now)
}

func (l *Limiter) shard(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)&(shardCount-1)]
}

// maybeSweep sweeps when the time for it has come; of the Hits that find it
// has, the one that moves the next sweep forward does the work, so it runs
// once per period.
func (l *Limiter) maybeSweep(now int64) {
	next := l.nextSweep.Load()
	if now < next || !l.nextSweep.CompareAndSwap(next, now+SweepEvery.Microseconds()) {
		return
	}
	l.sweep(now)
}

// sweep deletes the keys whose TAT is not after now: their bucket is empty,
// and a missing key answers exactly the same. It locks one shard at a time,
// so Hits on the others go on meanwhile.
func (l *Limiter) sweep(now int64) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for key, tat := range s.tats {
			if tat <= now {
				delete(s.tats, key)
			}
		}
		if s.peak >= shrinkFloor && len(s.tats) < s.peak/4 {
			live := make(map[string]int64, len(s.tats))
			for key, tat := range s.tats {
				live[key] = tat
			}
			s.tats, s.peak = live, len(live)
		}
		s.mu.Unlock()
	}
}
