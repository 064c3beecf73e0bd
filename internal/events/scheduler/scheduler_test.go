package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atrium/internal/events/scheduler"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestScheduler(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			for name, test := range map[string]func(*testing.T, store.Dialect){
				"OncePerTickAcrossThreeNodes":       testOncePerTickAcrossThreeNodes,
				"OncePerTickWhenAllBelieveTheyLead": testOncePerTickWhenAllBelieveTheyLead,
				"ShutdownHandsOverAtOnce":           testShutdownHandsOverAtOnce,
				"CutOffLeaderHandsOverAfterExpiry":  testCutOffLeaderHandsOverAfterExpiry,
				"LosingTheLeaseStopsTheTask":        testLosingTheLeaseStopsTheTask,
				"FailuresAndPanicsAreRecorded":      testFailuresAndPanicsAreRecorded,
				"TicksFollowTheScheduleAndSkip":     testTicksFollowTheScheduleAndSkip,
				"ReadsTasksAndPagesRuns":            testReadsTasksAndPagesRuns,
				"ChangedIntervalRunsAtOnce":         testChangedIntervalRunsAtOnce,
			} {
				t.Run(name, func(t *testing.T) { t.Parallel(); test(t, d) })
			}
		})
	}
}

// stepMinutes moves the clock a minute at a time, steps times, and after
// each step waits until both recorded tasks have run as often as their
// schedules say, starting from the tick at the clock's start.
func stepMinutes(t *testing.T, w world, steps int) {
	t.Helper()
	origin := w.clock.Now()
	for i := 0; ; i++ {
		wantMinutely, wantFive := i+1, i/5+1
		waitFor(t, fmt.Sprintf("minute %d's runs", i), func() bool {
			return len(w.journal.of("test.minutely")) >= wantMinutely && len(w.journal.of("test.five_minutes")) >= wantFive
		})
		if i == steps {
			break
		}
		w.clock.Set(origin.Add(time.Duration(i+1) * time.Minute))
	}
}

// assertOncePerTick checks the journal after steps minutes: each task ran
// once per tick of its own, at that tick, and the store recorded each run
// once, finished and successful.
func assertOncePerTick(t *testing.T, w world, s *scheduler.Scheduler, origin time.Time, steps int) map[string]bool {
	t.Helper()
	time.Sleep(50 * time.Millisecond) // ten more ticks: room for a second run, if anything would start one
	nodes := map[string]bool{}
	for _, task := range []struct {
		name  string
		every time.Duration
	}{{"test.minutely", time.Minute}, {"test.five_minutes", 5 * time.Minute}} {
		got := w.journal.of(task.name)
		want := steps/int(task.every/time.Minute) + 1
		if len(got) != want {
			t.Fatalf("%s ran %d times in %d minutes, want %d: %+v", task.name, len(got), steps, want, got)
		}
		for i, e := range got {
			if tick := origin.Add(time.Duration(i) * task.every); !e.at.Equal(tick) {
				t.Fatalf("%s run %d at %s, want at its tick %s", task.name, i, e.at, tick)
			}
			nodes[e.node] = true
		}
		recorded := finished(t, s, task.name, want) // a run is in the journal before its end is recorded
		if len(recorded) != want {
			t.Fatalf("%s has %d run records, want %d", task.name, len(recorded), want)
		}
		for i, r := range recorded {
			if !r.Succeeded() || !r.ScheduledAt.Equal(origin.Add(time.Duration(i)*task.every)) || r.Node == "" {
				t.Fatalf("%s record %d: %+v", task.name, i, r)
			}
		}
	}
	return nodes
}

func testOncePerTickAcrossThreeNodes(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	origin := w.clock.Now()
	var nodes []*node
	for _, name := range []string{"node-a", "node-b", "node-c"} {
		nodes = append(nodes, start(t, name, w.newNode(name, w.db, nil)))
	}
	const steps = 12
	stepMinutes(t, w, steps)
	ran := assertOncePerTick(t, w, nodes[0].sched, origin, steps)
	if h := holder(t, w.db); len(ran) != 1 || !ran[h] {
		t.Fatalf("tasks ran on %v while %q held the lease; want only on the leader", ran, h)
	}
}

// testOncePerTickWhenAllBelieveTheyLead gives three nodes one name, so each
// takes the lease as its own and all three lead at once: only the claim of
// each tick keeps the runs unique.
func testOncePerTickWhenAllBelieveTheyLead(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	origin := w.clock.Now()
	var first *node
	for i := range 3 {
		n := start(t, "twin", w.newNode("twin", w.db, func(s *scheduler.Scheduler, _ string) {
			w.recordedTasks(s, fmt.Sprintf("twin-%d", i))
		}))
		if first == nil {
			first = n
		}
	}
	const steps = 12
	stepMinutes(t, w, steps)
	assertOncePerTick(t, w, first.sched, origin, steps)
}

// leader waits until one of nodes holds the lease and returns it.
func leader(t *testing.T, w world, nodes []*node) *node {
	t.Helper()
	var found *node
	waitFor(t, "a leader", func() bool {
		h := holder(t, w.db)
		for _, n := range nodes {
			if n.name == h {
				found = n
			}
		}
		return found != nil
	})
	return found
}

func testShutdownHandsOverAtOnce(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	var nodes []*node
	for _, name := range []string{"node-a", "node-b", "node-c"} {
		nodes = append(nodes, start(t, name, w.newNode(name, w.db, nil)))
	}
	stepMinutes(t, w, 0)
	old := leader(t, w, nodes)
	old.halt(t)
	if h := holder(t, w.db); h == old.name {
		t.Fatalf("the stopped leader %s still holds the lease", h)
	}
	// No time passes on the clock: the lease was given back, not left to expire.
	next := leader(t, w, nodes)
	if next == old {
		t.Fatal("the stopped node leads again")
	}
	w.clock.Advance(time.Minute)
	waitFor(t, "the next minute's run", func() bool { return len(w.journal.of("test.minutely")) == 2 })
	if got := w.journal.of("test.minutely"); got[1].node != next.name {
		t.Fatalf("the second run went to %s, want the new leader %s", got[1].node, next.name)
	}
}

func testCutOffLeaderHandsOverAfterExpiry(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	link := &cuttable{DB: w.db}
	a := start(t, "node-a", w.newNode("node-a", link, nil))
	stepMinutes(t, w, 0) // node-a leads: it ran the first tick
	b := start(t, "node-b", w.newNode("node-b", w.db, nil))
	link.cut.Store(true)

	w.clock.Advance(time.Minute)
	time.Sleep(50 * time.Millisecond)
	if n := len(w.journal.of("test.minutely")); n != 1 {
		t.Fatalf("%d runs while the leader was cut off and its lease still held, want none but the first", n-1)
	}
	if h := holder(t, w.db); h != a.name {
		t.Fatalf("lease held by %q before it expired, want still %s", h, a.name)
	}
	w.clock.Advance(ttl) // node-a's lease runs out; it missed ten ticks
	waitFor(t, "node-b to take over", func() bool { return holder(t, w.db) == b.name })
	waitFor(t, "the late tick's run", func() bool { return len(w.journal.of("test.minutely")) == 2 })
	link.cut.Store(false)
	time.Sleep(50 * time.Millisecond)
	got := w.journal.of("test.minutely")
	if len(got) != 2 || got[1].node != b.name {
		t.Fatalf("runs after the takeover: %+v; want one, on %s, the missed ticks skipped", got[1:], b.name)
	}
	if h := holder(t, w.db); h != b.name {
		t.Fatalf("node-a took the lease back from %s when reconnected (holder %q)", b.name, h)
	}
}

func testLosingTheLeaseStopsTheTask(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	started := make(chan struct{})
	s := w.newNode("node-a", w.db, func(s *scheduler.Scheduler, _ string) {
		s.Register(scheduler.Task{Name: "test.long", Every: 30 * time.Minute, Run: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		}})
	})
	start(t, "node-a", s)
	<-started
	err := w.db.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Exec(context.Background(), "UPDATE scheduler_lease SET holder = 'intruder', expires_at = $1", w.clock.Now().Add(time.Hour))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(ttl / 2) // time to renew: the renewal finds another holder
	got := finished(t, s, "test.long", 1)
	if !strings.Contains(got[0].Error, "context canceled") {
		t.Fatalf("the run that lost its lease ended with %q, want its context canceled", got[0].Error)
	}
}

func testFailuresAndPanicsAreRecorded(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	var calls atomic.Int32
	s := w.newNode("node-a", w.db, func(s *scheduler.Scheduler, _ string) {
		s.Register(scheduler.Task{Name: "test.flaky", Every: time.Minute, Run: func(context.Context) error {
			switch calls.Add(1) {
			case 1:
				panic("boom")
			case 2:
				return errors.New("the disk is full")
			}
			return nil
		}})
	})
	start(t, "node-a", s)
	for i := 1; i <= 3; i++ {
		finished(t, s, "test.flaky", i)
		w.clock.Advance(time.Minute)
	}
	got := runs(t, s, "test.flaky")[:3]
	if got[0].Error != "panic: boom" || got[1].Error != "the disk is full" || !got[2].Succeeded() {
		t.Fatalf("errors recorded: %q, %q, %q; want the panic, the error, then none", got[0].Error, got[1].Error, got[2].Error)
	}
	for _, r := range got {
		if r.Node != "node-a" || r.FinishedAt == nil || r.FinishedAt.Before(r.StartedAt) {
			t.Fatalf("run record: %+v", r)
		}
	}
}

func testTicksFollowTheScheduleAndSkip(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	origin := w.clock.Now()
	s := w.newNode("node-a", w.db, func(s *scheduler.Scheduler, _ string) {
		s.Register(scheduler.Task{Name: "test.slow", Every: time.Minute, Run: func(context.Context) error {
			w.clock.Advance(20 * time.Second) // the run takes 20 s of the clock
			return nil
		}})
	})
	start(t, "node-a", s)
	first := finished(t, s, "test.slow", 1)[0]
	if first.Duration != 20*time.Second {
		t.Fatalf("duration %s, want 20s", first.Duration)
	}
	w.clock.Set(origin.Add(time.Minute)) // the next tick counts from 9:30, not from the end at 9:30:20
	finished(t, s, "test.slow", 2)
	w.clock.Set(origin.Add(10*time.Minute + 30*time.Second)) // eight ticks missed
	got := finished(t, s, "test.slow", 3)
	time.Sleep(50 * time.Millisecond)
	if got = runs(t, s, "test.slow"); len(got) != 3 {
		t.Fatalf("%d runs after a long gap, want one: missed ticks are skipped", len(got)-2)
	}
	if want := origin.Add(2 * time.Minute); !got[2].ScheduledAt.Equal(want) {
		t.Fatalf("the late run is for %s, want the first missed tick %s", got[2].ScheduledAt, want)
	}
	tasks, err := s.Tasks(context.Background())
	if err != nil || len(tasks) != 1 || tasks[0].NextRunAt == nil || !tasks[0].NextRunAt.Equal(origin.Add(11*time.Minute)) {
		t.Fatalf("tasks: %+v %v; want the next run at the first tick ahead, 9:41", tasks, err)
	}
}

func testReadsTasksAndPagesRuns(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	s := w.newNode("node-a", w.db, nil)
	tasks, err := s.Tasks(context.Background())
	if err != nil || len(tasks) != 2 || tasks[0].Name != "test.five_minutes" || tasks[0].NextRunAt != nil || tasks[0].LastRun != nil {
		t.Fatalf("tasks before any run: %+v %v", tasks, err)
	}
	start(t, "node-a", s)
	stepMinutes(t, w, 5)
	var all []scheduler.Run
	var after *scheduler.RunPosition
	for {
		page, err := s.Runs(context.Background(), "", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 3 {
			break
		}
		last := page[len(page)-1]
		after = &scheduler.RunPosition{StartedAt: last.StartedAt, ID: last.ID}
	}
	if len(all) != 8 { // six minutely, two five-minutely
		t.Fatalf("paged %d runs, want 8", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].StartedAt.After(all[i-1].StartedAt) {
			t.Fatalf("runs not newest first: %s after %s", all[i].StartedAt, all[i-1].StartedAt)
		}
	}
	tasks, err = s.Tasks(context.Background())
	if err != nil || tasks[1].Name != "test.minutely" || tasks[1].LastRun == nil || tasks[1].LastRun.ID != all[0].ID && tasks[1].LastRun.ID != all[1].ID {
		t.Fatalf("tasks after runs: %+v %v", tasks, err)
	}
	n, err := s.DeleteRunsOlderThan(context.Background(), 2*time.Minute+time.Second)
	if err != nil || n != 4 { // the minutely runs of 9:30, 9:31 and 9:32, the five-minutely one of 9:30
		t.Fatalf("deleted %d old runs (%v), want 4", n, err)
	}
}

// testChangedIntervalRunsAtOnce runs a task under one interval, then, as a
// new release would, under another: the task is due at once, and its next
// tick counts the new interval from there.
func testChangedIntervalRunsAtOnce(t *testing.T, d store.Dialect) {
	w := newWorld(t, d)
	origin := w.clock.Now()
	every := func(interval time.Duration) func(*scheduler.Scheduler, string) {
		return func(s *scheduler.Scheduler, name string) {
			s.Register(scheduler.Task{Name: "test.resized", Every: interval, Run: func(context.Context) error {
				w.journal.add(execution{task: "test.resized", node: name, at: w.clock.Now()})
				return nil
			}})
		}
	}
	first := start(t, "release-1", w.newNode("release-1", w.db, every(time.Hour)))
	waitFor(t, "the first run", func() bool { return len(w.journal.of("test.resized")) == 1 })
	first.halt(t)
	w.clock.Advance(time.Minute)
	s := w.newNode("release-2", w.db, every(5*time.Minute))
	start(t, "release-2", s)
	waitFor(t, "a run under the new interval", func() bool { return len(w.journal.of("test.resized")) == 2 })
	tasks, err := s.Tasks(context.Background())
	if err != nil || len(tasks) != 1 || tasks[0].NextRunAt == nil || !tasks[0].NextRunAt.Equal(origin.Add(6*time.Minute)) {
		t.Fatalf("tasks: %+v %v; want the next run five minutes after the re-scheduled one", tasks, err)
	}
}

func TestRegisterRefusesMistakes(t *testing.T) {
	s := scheduler.New(scheduler.Config{DB: &cuttable{}, Node: "node-a"}) // Register never reaches the store
	ok := scheduler.Task{Name: "test.ok", Every: time.Minute, Run: func(context.Context) error { return nil }}
	s.Register(ok)
	for name, task := range map[string]scheduler.Task{
		"duplicate":     ok,
		"bad name":      {Name: "Test Task", Every: time.Minute, Run: ok.Run},
		"tiny interval": {Name: "test.tiny", Every: time.Microsecond, Run: ok.Run},
		"no run":        {Name: "test.empty", Every: time.Minute},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("Register(%+v) did not panic", task)
				}
			}()
			s.Register(task)
		})
	}
}
