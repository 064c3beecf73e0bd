package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"atrium/internal/events/scheduler"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// ttl is the lease lifetime of the test nodes: ten minutes of the fake clock,
// renewed every third of it, so a test that moves the clock a minute at a
// time keeps one leader.
const ttl = 10 * time.Minute

// world is a store shared by several nodes, the fake clock they read, and a
// journal of what their tasks did.
type world struct {
	db      store.SystemDB
	clock   *testkit.Clock
	journal *journal
}

func newWorld(t *testing.T, d store.Dialect) world {
	t.Helper()
	clock := testkit.NewClock()
	return world{db: testkit.OpenStore(t, d, clock), clock: clock, journal: &journal{}}
}

// execution is one call of a task's Run.
type execution struct {
	task, node string
	at         time.Time
}

// journal records every execution of every task on every node.
type journal struct {
	mu   sync.Mutex
	runs []execution
}

func (j *journal) add(e execution) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.runs = append(j.runs, e)
}

func (j *journal) of(task string) []execution {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []execution
	for _, e := range j.runs {
		if e.task == task {
			out = append(out, e)
		}
	}
	return out
}

// node is one running scheduler.
type node struct {
	name  string
	sched *scheduler.Scheduler
	stop  context.CancelFunc
	done  chan struct{}
}

// newNode builds a scheduler named name over db, ticking every five
// milliseconds, with tasks registered by register (recorded ones when nil).
func (w world) newNode(name string, db store.DB, register func(*scheduler.Scheduler, string)) *scheduler.Scheduler {
	s := scheduler.New(scheduler.Config{DB: db, Logger: testkit.DiscardLogger(), Clock: w.clock, Node: name,
		LeaseTTL: ttl, Tick: 5 * time.Millisecond})
	if register == nil {
		register = w.recordedTasks
	}
	register(s, name)
	return s
}

// recordedTasks registers two tasks that only write to the journal: one
// every minute, one every five.
func (w world) recordedTasks(s *scheduler.Scheduler, name string) {
	for _, t := range []struct {
		name  string
		every time.Duration
	}{{"test.minutely", time.Minute}, {"test.five_minutes", 5 * time.Minute}} {
		s.Register(scheduler.Task{Name: t.name, Every: t.every, Run: func(context.Context) error {
			w.journal.add(execution{task: t.name, node: name, at: w.clock.Now()})
			return nil
		}})
	}
}

// start runs s until the test ends or stop is called.
func start(t *testing.T, name string, s *scheduler.Scheduler) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{name: name, sched: s, stop: cancel, done: make(chan struct{})}
	go func() { defer close(n.done); s.Run(ctx) }()
	t.Cleanup(func() { n.halt(t) })
	return n
}

// halt stops the node and waits until Run has returned.
func (n *node) halt(t *testing.T) {
	t.Helper()
	n.stop()
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("node %s: Run did not return within 10s of cancel", n.name)
	}
}

// waitFor polls cond every millisecond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holder returns the node holding the lease, or "" when nobody does.
func holder(t *testing.T, db store.DB) string {
	t.Helper()
	var h string
	err := db.ReadTx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT holder FROM scheduler_lease WHERE name = 'scheduler'").Scan(&h)
	})
	if err != nil && !kernel.IsCode(err, kernel.CodeNotFound) {
		t.Fatal(err)
	}
	return h
}

// runs returns every recorded run of task, oldest first.
func runs(t *testing.T, s *scheduler.Scheduler, task string) []scheduler.Run {
	t.Helper()
	page, err := s.Runs(context.Background(), task, nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(page)-1; i < j; i, j = i+1, j-1 {
		page[i], page[j] = page[j], page[i]
	}
	return page
}

// finished waits until task has n finished runs and returns them, oldest first.
func finished(t *testing.T, s *scheduler.Scheduler, task string, n int) []scheduler.Run {
	t.Helper()
	var got []scheduler.Run
	waitFor(t, fmt.Sprintf("%d finished runs of %s", n, task), func() bool {
		got = runs(t, s, task)
		done := 0
		for _, r := range got {
			if r.FinishedAt != nil {
				done++
			}
		}
		return done >= n
	})
	return got
}

// cuttable is a store a test can cut a node off from, as a network
// partition would: every call fails until it is restored.
type cuttable struct {
	store.DB
	cut atomic.Bool
}

var errCut = kernel.Unavailable("store", errors.New("cut off by the test"))

func (c *cuttable) Tx(ctx context.Context, fn func(store.Tx) error) error {
	if c.cut.Load() {
		return errCut
	}
	return c.DB.Tx(ctx, fn)
}

func (c *cuttable) ReadTx(ctx context.Context, fn func(store.Tx) error) error {
	if c.cut.Load() {
		return errCut
	}
	return c.DB.ReadTx(ctx, fn)
}

func (c *cuttable) PlatformRow(ctx context.Context, sql string, args ...any) store.Row {
	if c.cut.Load() {
		return failedRow{}
	}
	return c.DB.PlatformRow(ctx, sql, args...)
}

type failedRow struct{}

func (failedRow) Scan(...any) error { return errCut }
