package usage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// MeterConfig configures NewMeter.
type MeterConfig struct {
	// Counters is where counts go at each flush: storemeter or redismeter.
	Counters Counters
	// Periods says which period an increment falls in; nil is CalendarMonths.
	// It is asked on every Increment, so it must answer from memory.
	Periods Periods
	Clock   kernel.Clock
	Logger  *slog.Logger
	// FlushEvery is how often buffered increments are flushed; 0 is once a
	// second. A negative value flushes only when Flush or Close is called
	// (tests that look between the two).
	FlushEvery time.Duration
	// AfterFlush, when set, is called after every flush that added to some
	// counters, with their totals, on the flushing goroutine: the quota
	// rules watch the meter through it.
	AfterFlush func(ctx context.Context, flushed []Flushed)
}

// Meter counts growth on the hot path without a database write per call.
// Increments go to an in-process buffer, sharded by workspace so that
// concurrent callers rarely meet on a lock; a flush, at least once a second
// and on Close, hands every counter's pending delta to Counters as one batch
// (one upsert per workspace, metric and period).
//
// The live count a node sees is the total Counters returned at this node's
// last flush (or read on first use), plus the increments this node has not
// flushed yet. Each node sees every other node's increments once they are
// flushed, and reads the totals of the counters it uses again at each flush:
// so two nodes agree within one flush interval.
//
// What can be lost: increments are in memory until their flush succeeds.
// Close flushes them, retrying until it succeeds or its context ends, so a
// graceful restart loses none. A process that dies without Close (SIGKILL,
// a crash, power loss) loses what it had not flushed: at most one flush
// interval's increments, plus any batch a down backend kept refusing. A
// batch whose outcome is unknown is retried as it was under the same ID, and
// Counters applies a batch once, so nothing is counted twice.
//
// A Meter is safe for concurrent use.
type Meter struct {
	counters   Counters
	periods    Periods
	clock      kernel.Clock
	logger     *slog.Logger
	afterFlush func(ctx context.Context, flushed []Flushed)
	shards     [shardCount]shard

	// flushMu makes flushes one at a time; it guards retry and retryID.
	flushMu sync.Mutex
	// retry is a batch whose Add failed: the next flush sends it again, as
	// it was and under the same ID, before taking anything new.
	retry   []Delta
	retryID uuid.UUID
	// flushes counts completed flushes, so that a total read on first use
	// while a flush was settling is not taken as the base.
	flushes atomic.Uint64

	closed atomic.Bool
	stop   context.CancelFunc
	done   chan struct{}
}

const (
	shardCount = 64
	// evictAfter is how many flushes a counter nobody touched stays
	// cached before it is forgotten (ten minutes at one a second).
	evictAfter = 600
)

// ErrMeterClosed is returned by Increment after Close.
var ErrMeterClosed = errors.New("usage: the meter is closed")

var metricName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// bucket is a counter's map key: Key without times, which compare badly.
type bucket struct {
	workspace uuid.UUID
	metric    string
	start     int64 // PeriodStart in Unix microseconds
}

// entry is one counter as this node sees it.
type entry struct {
	key      Key
	base     int64 // the total Counters last reported
	hasBase  bool
	pending  int64 // increments not flushed yet
	inflight int64 // increments of the batch being flushed (or to retry)
	touched  bool  // used since the last flush
	idle     int   // flushes since it was last used
}

type shard struct {
	mu      sync.Mutex
	entries map[bucket]*entry
	_       [40]byte // keep shards on separate cache lines
}

// NewMeter returns a Meter over cfg.Counters and starts its flushing, which
// Close stops.
func NewMeter(cfg MeterConfig) *Meter {
	m := &Meter{counters: cfg.Counters, periods: cfg.Periods, clock: cfg.Clock, logger: cfg.Logger,
		afterFlush: cfg.AfterFlush, done: make(chan struct{})}
	if m.periods == nil {
		m.periods = CalendarMonths{}
	}
	if m.clock == nil {
		m.clock = kernel.SystemClock{}
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	for i := range m.shards {
		m.shards[i].entries = map[bucket]*entry{}
	}
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	every := cfg.FlushEvery
	if every == 0 {
		every = time.Second
	}
	if every < 0 {
		close(m.done)
		return m
	}
	go m.run(ctx, every)
	return m
}

func (m *Meter) run(ctx context.Context, every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Flush(ctx); err != nil && ctx.Err() == nil {
				m.logger.Warn("usage: flush failed; its increments are kept and retried", "error", err.Error())
			}
		}
	}
}

// Increment adds n to workspaceID's metric in the period the clock is in.
// It does no I/O. It returns invalid for a nil workspace, a malformed metric
// name or a negative n, ErrMeterClosed (internal) after Close, or the error
// of Periods.
func (m *Meter) Increment(ctx context.Context, workspaceID uuid.UUID, metric string, n int64) error {
	if n == 0 {
		return nil
	}
	_, _, err := m.add(ctx, workspaceID, metric, n, nil)
	return err
}

// Count returns the live count of workspaceID's metric in the period the
// clock is in: this node's view (see Meter). It reads Counters the first
// time a counter is asked for, and returns that read's error.
func (m *Meter) Count(ctx context.Context, workspaceID uuid.UUID, metric string) (int64, error) {
	live, _, err := m.add(ctx, workspaceID, metric, 0, nil)
	return live, err
}

// peek returns the live count as Count does, but without keeping a counter
// this node does not hold cached: for a sweep over every workspace, which
// would otherwise have the next flush read them all again.
func (m *Meter) peek(ctx context.Context, workspaceID uuid.UUID, metric string) (int64, error) {
	key, err := m.key(ctx, workspaceID, metric)
	if err != nil {
		return 0, err
	}
	sh := &m.shards[binary.LittleEndian.Uint64(workspaceID[8:])%shardCount]
	sh.mu.Lock()
	_, held := sh.entries[bucket{workspace: workspaceID, metric: metric, start: key.PeriodStart.UnixMicro()}]
	sh.mu.Unlock()
	if held {
		return m.Count(ctx, workspaceID, metric)
	}
	total, err := m.counters.Total(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("usage: read %s of %s: %w", metric, workspaceID, err)
	}
	return total, nil
}

// IncrementUpTo adds n to workspaceID's metric unless that would take its
// live count past most, and returns the live count after it and whether n
// was added. The check and the addition are one step: of many callers
// racing for the last unit, exactly one gets it on this node (across nodes,
// within one flush interval). It reads the counter's total the first time
// it is asked for, and returns the errors of Increment and of that read.
func (m *Meter) IncrementUpTo(ctx context.Context, workspaceID uuid.UUID, metric string, n, most int64) (int64, bool, error) {
	return m.add(ctx, workspaceID, metric, n, func(next int64) bool { return next <= most })
}

// add adds n to the counter and returns the live count after it. With allow
// set, it first asks allow whether the count may become live+n, under the
// counter's lock, and adds nothing (returning false) when not: of many
// callers racing for the last unit, exactly one gets it on this node. With
// allow nil and n > 0 it does no I/O; otherwise it reads the counter's
// total the first time it is asked for.
func (m *Meter) add(ctx context.Context, workspaceID uuid.UUID, metric string, n int64, allow func(next int64) bool) (int64, bool, error) {
	if workspaceID == uuid.Nil || !metricName.MatchString(metric) || n < 0 {
		return 0, false, kernel.Errorf(kernel.CodeInvalid, "usage: cannot count %d of %q in workspace %s", n, metric, workspaceID)
	}
	key, err := m.key(ctx, workspaceID, metric)
	if err != nil {
		return 0, false, err
	}
	b := bucket{workspace: workspaceID, metric: metric, start: key.PeriodStart.UnixMicro()}
	sh := &m.shards[binary.LittleEndian.Uint64(workspaceID[8:])%shardCount]
	needBase := allow != nil || n == 0
	for attempt := 0; ; attempt++ {
		sh.mu.Lock()
		if n > 0 && m.closed.Load() {
			sh.mu.Unlock()
			return 0, false, kernel.Internal(ErrMeterClosed)
		}
		e := sh.entries[b]
		if e == nil {
			e = &entry{key: key}
			sh.entries[b] = e
		}
		e.touched, e.idle = true, 0
		if needBase && !e.hasBase {
			busy, gen := e.inflight != 0, m.flushes.Load()
			sh.mu.Unlock()
			if err := m.loadBase(ctx, sh, b, key, busy, gen, attempt); err != nil {
				return 0, false, err
			}
			continue
		}
		live := e.base + e.inflight + e.pending
		if allow != nil && n > 0 && !allow(live+n) {
			sh.mu.Unlock()
			return live, false, nil
		}
		e.pending += n
		sh.mu.Unlock()
		return live + n, true, nil
	}
}

// loadBase reads a counter's total into its entry, unless a flush raced the
// read: a total read while this node's batch was in flight may or may not
// hold it. A busy counter waits for the flush, which sets its base itself.
func (m *Meter) loadBase(ctx context.Context, sh *shard, b bucket, key Key, busy bool, gen uint64, attempt int) error {
	if attempt >= 5 {
		return kernel.Unavailable("usage counters", fmt.Errorf("usage: no settled total for %s %s after %d reads", key.WorkspaceID, key.Metric, attempt))
	}
	if busy {
		m.flushMu.Lock() // held by the flush settling the batch
		m.flushMu.Unlock()
		return nil
	}
	total, err := m.counters.Total(ctx, key)
	if err != nil {
		return fmt.Errorf("usage: read %s of %s: %w", key.Metric, key.WorkspaceID, err)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.entries[b]; e != nil && !e.hasBase && e.inflight == 0 && m.flushes.Load() == gen {
		e.base, e.hasBase = total, true
	}
	return nil
}

func (m *Meter) key(ctx context.Context, workspaceID uuid.UUID, metric string) (Key, error) {
	start, end, err := m.periods.Period(ctx, workspaceID, m.clock.Now())
	if err != nil {
		return Key{}, fmt.Errorf("usage: period of %s: %w", workspaceID, err)
	}
	return Key{WorkspaceID: workspaceID, Metric: metric, PeriodStart: start.UTC(), PeriodEnd: end.UTC()}, nil
}

// Flush hands every pending increment to Counters as one batch, then reads
// the totals of the counters used since the last flush that had nothing to
// add, so that this node sees other nodes' increments. A batch that fails
// is kept and sent again, as it was, by the next flush (which sends nothing
// else); its increments stay in the live count meanwhile. It returns the
// error of Counters.
func (m *Meter) Flush(ctx context.Context) error {
	m.flushMu.Lock()
	defer m.flushMu.Unlock()
	var refresh []Key
	if m.retry == nil {
		m.retryID = kernel.NewID()
		m.retry, refresh = m.collect()
	}
	var flushed []Flushed
	if len(m.retry) > 0 {
		totals, err := m.counters.Add(ctx, m.retryID, m.retry)
		if err != nil {
			return fmt.Errorf("usage: flush %d counters: %w", len(m.retry), err)
		}
		flushed = m.settle(m.retry, totals)
	}
	m.retry = nil
	m.flushes.Add(1)
	var err error
	if len(refresh) > 0 {
		err = m.refresh(ctx, refresh)
	}
	if m.afterFlush != nil && len(flushed) > 0 {
		m.afterFlush(ctx, flushed)
	}
	return err
}

// collect moves every counter's pending increments into flight and returns
// them as a batch, with the counters used since the last flush that have
// nothing to add. It forgets counters nobody used for evictAfter flushes.
func (m *Meter) collect() (batch []Delta, refresh []Key) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for b, e := range sh.entries {
			switch {
			case e.pending != 0:
				batch = append(batch, Delta{Key: e.key, N: e.pending})
				e.inflight += e.pending
				e.pending = 0
			case e.touched && e.hasBase:
				refresh = append(refresh, e.key)
			case !e.touched && e.inflight == 0:
				if e.idle++; e.idle >= evictAfter {
					delete(sh.entries, b)
				}
			}
			e.touched = false
		}
		sh.mu.Unlock()
	}
	return batch, refresh
}

// settle records the totals of a batch Counters has applied.
func (m *Meter) settle(batch []Delta, totals []int64) []Flushed {
	flushed := make([]Flushed, len(batch))
	for i, d := range batch {
		flushed[i] = Flushed{Key: d.Key, Total: totals[i]}
		sh := &m.shards[binary.LittleEndian.Uint64(d.Key.WorkspaceID[8:])%shardCount]
		sh.mu.Lock()
		if e := sh.entries[bucket{workspace: d.Key.WorkspaceID, metric: d.Key.Metric, start: d.Key.PeriodStart.UnixMicro()}]; e != nil {
			e.base, e.hasBase = totals[i], true
			e.inflight -= d.N
		}
		sh.mu.Unlock()
	}
	return flushed
}

// refresh reads the totals of keys, which had nothing in flight.
func (m *Meter) refresh(ctx context.Context, keys []Key) error {
	totals, err := m.counters.Totals(ctx, keys)
	if err != nil {
		return fmt.Errorf("usage: read %d counters: %w", len(keys), err)
	}
	for i, k := range keys {
		sh := &m.shards[binary.LittleEndian.Uint64(k.WorkspaceID[8:])%shardCount]
		sh.mu.Lock()
		if e := sh.entries[bucket{workspace: k.WorkspaceID, metric: k.Metric, start: k.PeriodStart.UnixMicro()}]; e != nil && e.inflight == 0 {
			e.base, e.hasBase = totals[i], true
		}
		sh.mu.Unlock()
	}
	return nil
}

// unflushed returns how many increments are not flushed yet.
func (m *Meter) unflushed() int64 {
	var n int64
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for _, e := range sh.entries {
			n += e.pending + e.inflight
		}
		sh.mu.Unlock()
	}
	return n
}

// Close stops the meter: Increment refuses from then on, and every
// increment counted before is flushed, retrying every 100 ms while Counters
// fails, until ctx ends. It returns an error saying how many increments
// were not flushed when ctx ended first; calling it again returns nil.
func (m *Meter) Close(ctx context.Context) error {
	if !m.closed.CompareAndSwap(false, true) {
		return nil
	}
	// An Increment that saw the meter open holds its shard's lock while it
	// adds: once every lock has been taken, none is still adding.
	for i := range m.shards {
		m.shards[i].mu.Lock()
		m.shards[i].mu.Unlock()
	}
	m.stop()
	<-m.done
	for {
		err := m.Flush(ctx)
		if err == nil {
			if m.unflushed() == 0 {
				return nil
			}
			continue // the flush sent a batch kept from before; now the rest
		}
		select {
		case <-ctx.Done():
			n := m.unflushed()
			m.logger.Error("usage: meter closed with increments not flushed", "increments", n, "error", err.Error())
			return fmt.Errorf("usage: %d increments not flushed at close: %w", n, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
