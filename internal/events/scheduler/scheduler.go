// Package scheduler runs periodic tasks (hard deletes, cleanups, and later
// trial ends, dunning steps and usage recalculation) on one node of many.
//
// Every node runs a Scheduler with the same tasks. The nodes elect a leader
// through a lease row in the store (scheduler_lease): a node takes it when it
// is free, expired or already its own, the leader renews it every third of
// its lifetime, and a leader that cannot renew it stops running tasks before
// it expires. Only the leader runs tasks.
//
// Leadership alone does not make a run unique: a leader cut off from the
// store, or two nodes given one name, may both believe they lead for a
// while. Each run is therefore claimed in the store as well, by moving the
// task's next_run_at from the tick the claimer read to the following one
// (compare and set) while it holds the lease; of any number of claimers one
// wins each tick, and a unique (task, tick) index on the run records backs
// that up. Ticks advance from the scheduled time, not from when a run ended,
// and ticks missed while no node led are skipped, not run as a backlog.
//
// Every run is recorded (scheduler_run) with its node, start, end, duration
// and error; a task that panics is recovered and recorded as failed.
//
// The scheduler's own tables are platform tables, so its bookkeeping runs in
// ordinary transactions. Tasks that cross workspaces use the store's system
// path themselves, under reasons of their own.
package scheduler

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Defaults of Config.
const (
	DefaultLeaseTTL = 30 * time.Second
	DefaultTick     = time.Second
)

const (
	// leaseName names the one lease all tasks share.
	leaseName = "scheduler"
	// bookkeepingTimeout bounds the writes that record a run's end and give
	// the lease back; they run even while the scheduler stops.
	bookkeepingTimeout = 5 * time.Second
	// maxNodeLength bounds a node name, as scheduler_lease.holder does.
	maxNodeLength = 200
)

// Config is what a Scheduler needs.
type Config struct {
	// DB holds the lease, the tasks' next ticks and the run records.
	DB     store.DB
	Logger *slog.Logger
	// Clock tells the time of leases and ticks; kernel.SystemClock when nil.
	// It must be the store's clock, so that tests move both together.
	Clock kernel.Clock
	// Node names this node in the lease and in run records. Required; two
	// nodes must not share a name.
	Node string
	// LeaseTTL is how long a lease lasts unless renewed (default 30 s): after
	// the leader dies, another node takes over within it. It must dwarf the
	// clock skew between nodes.
	LeaseTTL time.Duration
	// Tick is how often a node looks at its lease and for due tasks (default
	// 1 s); it bounds how late a run starts after its time.
	Tick time.Duration
}

// Task is a periodic task.
type Task struct {
	// Name identifies the task across nodes and releases: lower-case words
	// separated by dots or underscores, such as "workspace.hard_delete".
	Name string
	// Every is the interval between ticks, at least a millisecond. A task's
	// first tick is when a leader first records it (on a fresh deployment,
	// at once), and each tick follows the one before by Every, however long
	// the runs take.
	Every time.Duration
	// Run does the work. Its context ends when the scheduler stops or loses
	// its lease; it carries the system actor and a logger naming the task
	// and the run (kernel.Logger). A returned error, or a panic, is recorded
	// on the run and logged; the next tick runs as usual.
	Run func(ctx context.Context) error
}

var taskName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Scheduler runs registered tasks while this node leads. Register tasks
// before Run; the reading methods (Tasks, Runs) are safe at any time.
type Scheduler struct {
	db     store.DB
	logger *slog.Logger
	clock  kernel.Clock
	node   string
	ttl    time.Duration
	tick   time.Duration

	mu      sync.Mutex
	tasks   map[string]Task
	started bool
	term    term // guarded by mu
}

// New returns a Scheduler over cfg's store. It panics if cfg has no store
// or no valid node name: both are wiring mistakes.
func New(cfg Config) *Scheduler {
	if cfg.DB == nil {
		panic("scheduler: Config.DB is required")
	}
	if cfg.Node == "" || len(cfg.Node) > maxNodeLength {
		panic(fmt.Sprintf("scheduler: Config.Node must be 1 to %d bytes, got %q", maxNodeLength, cfg.Node))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.SystemClock{}
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Tick <= 0 {
		cfg.Tick = DefaultTick
	}
	return &Scheduler{db: cfg.DB, logger: cfg.Logger.With("node", cfg.Node), clock: cfg.Clock, node: cfg.Node,
		ttl: cfg.LeaseTTL, tick: cfg.Tick, tasks: map[string]Task{}}
}

// Register adds a task. It panics, as for any wiring mistake, on a bad name,
// an interval under a millisecond, a nil Run, a name registered already, or
// a call after Run.
func (s *Scheduler) Register(t Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.started:
		panic(fmt.Sprintf("scheduler: task %q registered after Run", t.Name))
	case len(t.Name) > 100 || !taskName.MatchString(t.Name):
		panic(fmt.Sprintf("scheduler: task name %q: want dotted lower-case words of at most 100 bytes", t.Name))
	case t.Every < time.Millisecond:
		panic(fmt.Sprintf("scheduler: task %q: interval %s is under a millisecond", t.Name, t.Every))
	case t.Run == nil:
		panic(fmt.Sprintf("scheduler: task %q has no Run", t.Name))
	}
	if _, dup := s.tasks[t.Name]; dup {
		panic(fmt.Sprintf("scheduler: task %q registered twice", t.Name))
	}
	s.tasks[t.Name] = t
}

// registered returns the tasks by name, in name order.
func (s *Scheduler) registered() []Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Task, 0, len(s.tasks))
	for _, t := range s.tasks {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Task) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Run keeps the lease and, while this node leads, runs due tasks one at a
// time, until ctx ends. It returns once the task under way has returned (its
// context ends with ctx) and the lease has been given back, so that another
// node takes over at its next tick rather than after the lease expires. It
// panics if called twice.
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		panic("scheduler: Run called twice")
	}
	s.started = true
	s.mu.Unlock()
	ctx = kernel.WithActor(ctx, kernel.SystemActor)
	var wg sync.WaitGroup
	wg.Go(func() { s.keepLease(ctx) })
	wg.Go(func() { s.runTasks(ctx) })
	wg.Wait()
	s.endTerm()
	s.release(ctx)
}

// every calls fn at once and then every Tick until ctx ends.
func (s *Scheduler) every(ctx context.Context, fn func()) {
	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// runTasks runs due tasks at every tick this node leads, until ctx ends.
func (s *Scheduler) runTasks(ctx context.Context) {
	var failing trouble
	s.every(ctx, func() {
		termCtx, synced, ok := s.leading(s.clock.Now())
		if !ok {
			return
		}
		err := s.runDue(termCtx, synced)
		if termCtx.Err() == nil {
			failing.report(s.logger, "scheduler: cannot run due tasks", err)
		}
	})
}

// runDue records the tasks if this term has not yet (synced false), then
// claims and runs, one after the other, the tasks whose tick has come, while
// ctx (the term's) lasts. It returns the store's error; a failed task is no
// error here, but its run's.
func (s *Scheduler) runDue(ctx context.Context, synced bool) error {
	if !synced {
		if err := s.syncTasks(ctx); err != nil {
			return err
		}
		s.markSynced(ctx)
	}
	due, err := s.dueTasks(ctx)
	if err != nil {
		return err
	}
	tasks := s.registered()
	for _, d := range due {
		i := slices.IndexFunc(tasks, func(t Task) bool { return t.Name == d.name })
		if i < 0 || ctx.Err() != nil {
			continue // a task of another release, or the term has ended
		}
		run, err := s.claim(ctx, tasks[i], d.nextRunAt)
		if err != nil {
			return err
		}
		if run != nil {
			s.execute(ctx, tasks[i], *run)
		}
	}
	return nil
}

// trouble tracks the consecutive failures of one loop, so that a store
// outage is logged when it starts, every twentieth tick while it lasts and
// when it ends, rather than at every tick.
type trouble struct{ failures int }

// report records the outcome of one tick: err, or nil for a success.
func (t *trouble) report(logger *slog.Logger, msg string, err error) {
	switch {
	case err != nil:
		t.failures++
		if t.failures == 1 || t.failures%20 == 0 {
			logger.Warn(msg, "error", err.Error(), "failures", t.failures)
		}
	case t.failures > 0:
		logger.Info(msg+": working again", "failures", t.failures)
		t.failures = 0
	}
}
