// Package metertest is the conformance suite every usage.Counters passes,
// exercised through a usage.Meter as Atrium runs it: storemeter on each store
// dialect, redismeter on a real Redis in front of each. A change to the
// interface or to its guarantees starts here.
package metertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
	"atrium/internal/usage"
)

// Backend is one backend under test: a store, the clock it reads, and a way
// to open Counters on it, as a node does at start. Counters opened by two
// calls of New are two nodes sharing the backend.
type Backend struct {
	DB    store.SystemDB
	Clock *testkit.Clock
	New   func(t *testing.T) usage.Counters
}

// Factory returns a fresh backend for one subtest.
type Factory func(t *testing.T) Backend

// Run runs the suite against the backends newBackend returns.
func Run(t *testing.T, newBackend Factory) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"IncrementIsLiveAtOnce", incrementIsLive},
		{"FlushPersistsOneRowPerCounter", flushPersists},
		{"ConcurrentIncrementsAreExact", concurrentIncrements},
		{"GracefulRestartLosesNothing", gracefulRestart},
		{"PeriodsAreKeptApart", periodsApart},
		{"NodesSeeEachOtherWithinAFlush", nodesSeeEachOther},
		{"RetriedBatchCountsOnce", retriedBatch},
		{"RacersForTheLastUnitOneWins", lastUnit},
		{"ClosedMeterRefuses", closedRefuses},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

// meter opens a meter on a new node of b that flushes only when told.
func meter(t *testing.T, b Backend) *usage.Meter {
	t.Helper()
	m := usage.NewMeter(usage.MeterConfig{Counters: b.New(t), Clock: b.Clock, FlushEvery: -1, Logger: testkit.DiscardLogger()})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// workspaces creates n workspaces in b's store.
func workspaces(t *testing.T, b Backend, n int) []uuid.UUID {
	t.Helper()
	svc := tenancy.NewService(b.DB, nil)
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ws, err := svc.Create(context.Background(), fmt.Sprintf("Workspace %d", i), fmt.Sprintf("ws-%d-%s", i, kernel.NewID().String()[:8]))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = ws.ID
	}
	return ids
}

// stored reads a counter's row as the store holds it, -1 when there is none.
func stored(t *testing.T, b Backend, workspaceID uuid.UUID, metric string, periodStart time.Time) int64 {
	t.Helper()
	v := int64(-1)
	err := b.DB.ReadWorkspace(context.Background(), workspaceID, func(tx store.Tx) error {
		err := tx.QueryRow(context.Background(), `SELECT value FROM usage_counter WHERE workspace_id = $1 AND metric = $2 AND period_start = $3`,
			workspaceID, metric, periodStart).Scan(&v)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rows counts a workspace's counter rows.
func rows(t *testing.T, b Backend, workspaceID uuid.UUID) int {
	t.Helper()
	var n int
	err := b.DB.ReadWorkspace(context.Background(), workspaceID, func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM usage_counter WHERE workspace_id = $1`, workspaceID).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func month(clock *testkit.Clock) time.Time {
	start, _, _ := usage.CalendarMonths{}.Period(context.Background(), uuid.Nil, clock.Now())
	return start
}

func count(t *testing.T, m *usage.Meter, workspaceID uuid.UUID, metric string) int64 {
	t.Helper()
	n, err := m.Count(context.Background(), workspaceID, metric)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func increment(t *testing.T, m *usage.Meter, workspaceID uuid.UUID, metric string, n int64) {
	t.Helper()
	if err := m.Increment(context.Background(), workspaceID, metric, n); err != nil {
		t.Fatal(err)
	}
}

func flush(t *testing.T, m *usage.Meter) {
	t.Helper()
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func incrementIsLive(t *testing.T, b Backend) {
	ws := workspaces(t, b, 1)[0]
	m := meter(t, b)
	increment(t, m, ws, "api_calls", 3)
	increment(t, m, ws, "api_calls", 2)
	if got := count(t, m, ws, "api_calls"); got != 5 {
		t.Fatalf("live count %d, want 5", got)
	}
	if got := stored(t, b, ws, "api_calls", month(b.Clock)); got != -1 {
		t.Fatalf("a row holding %d exists before any flush", got)
	}
}

func flushPersists(t *testing.T, b Backend) {
	ws := workspaces(t, b, 2)
	m := meter(t, b)
	for i := 0; i < 100; i++ {
		increment(t, m, ws[0], "api_calls", 1)
		increment(t, m, ws[0], "exports", 2)
		increment(t, m, ws[1], "api_calls", 1)
	}
	flush(t, m)
	start := month(b.Clock)
	for _, c := range []struct {
		ws     uuid.UUID
		metric string
		want   int64
	}{{ws[0], "api_calls", 100}, {ws[0], "exports", 200}, {ws[1], "api_calls", 100}} {
		if got := stored(t, b, c.ws, c.metric, start); got != c.want {
			t.Errorf("%s stored %d, want %d", c.metric, got, c.want)
		}
		if got := count(t, m, c.ws, c.metric); got != c.want {
			t.Errorf("%s live %d after the flush, want %d", c.metric, got, c.want)
		}
	}
	if n := rows(t, b, ws[0]); n != 2 {
		t.Errorf("workspace has %d counter rows, want 2 (one per metric and period)", n)
	}
	// Flushing again with nothing new changes nothing.
	flush(t, m)
	if got := stored(t, b, ws[0], "api_calls", start); got != 100 {
		t.Errorf("an empty flush changed the row to %d", got)
	}
}

func concurrentIncrements(t *testing.T, b Backend) {
	ws := workspaces(t, b, 10)
	metrics := []string{"api_calls", "exports", "reports"}
	m := usage.NewMeter(usage.MeterConfig{Counters: b.New(t), Clock: b.Clock, FlushEvery: 5 * time.Millisecond, Logger: testkit.DiscardLogger()})
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				if err := m.Increment(context.Background(), ws[(g+i)%len(ws)], metrics[i%len(metrics)], 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var total int64
	start := month(b.Clock)
	for _, w := range ws {
		for _, metric := range metrics {
			if v := stored(t, b, w, metric, start); v > 0 {
				total += v
			}
		}
	}
	if total != goroutines*each {
		t.Fatalf("stored %d increments in all, want %d", total, goroutines*each)
	}
}

func gracefulRestart(t *testing.T, b Backend) {
	ws := workspaces(t, b, 3)
	first := usage.NewMeter(usage.MeterConfig{Counters: b.New(t), Clock: b.Clock, FlushEvery: 20 * time.Millisecond, Logger: testkit.DiscardLogger()})
	const n = 2000
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				if err := first.Increment(context.Background(), ws[i%3], "api_calls", 1); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := meter(t, b)
	var sum int64
	for _, w := range ws {
		sum += count(t, second, w, "api_calls")
	}
	if sum != n {
		t.Fatalf("after a restart the counters hold %d, want %d", sum, n)
	}
	increment(t, second, ws[0], "api_calls", 1)
	flush(t, second)
	if got, want := stored(t, b, ws[0], "api_calls", month(b.Clock)), count(t, second, ws[0], "api_calls"); got != want {
		t.Fatalf("stored %d, live %d", got, want)
	}
}

func periodsApart(t *testing.T, b Backend) {
	ws := workspaces(t, b, 1)[0]
	m := meter(t, b)
	january := month(b.Clock)
	increment(t, m, ws, "api_calls", 7)
	b.Clock.Set(january.AddDate(0, 1, 0).Add(-time.Microsecond)) // still January
	increment(t, m, ws, "api_calls", 1)
	b.Clock.Set(january.AddDate(0, 1, 0))
	increment(t, m, ws, "api_calls", 2)
	if got := count(t, m, ws, "api_calls"); got != 2 {
		t.Fatalf("February counts %d live, want 2", got)
	}
	flush(t, m)
	if got := stored(t, b, ws, "api_calls", january); got != 8 {
		t.Errorf("January stored %d, want 8", got)
	}
	if got := stored(t, b, ws, "api_calls", january.AddDate(0, 1, 0)); got != 2 {
		t.Errorf("February stored %d, want 2", got)
	}
}

func nodesSeeEachOther(t *testing.T, b Backend) {
	ws := workspaces(t, b, 1)[0]
	a, c := meter(t, b), meter(t, b)
	increment(t, a, ws, "api_calls", 3)
	increment(t, c, ws, "api_calls", 4)
	if got := count(t, a, ws, "api_calls"); got != 3 {
		t.Fatalf("node A counts %d before any flush, want its own 3", got)
	}
	flush(t, a)
	flush(t, c)
	if got := count(t, c, ws, "api_calls"); got != 7 {
		t.Fatalf("node C counts %d after both flushed, want 7", got)
	}
	// A still sees its own total until it flushes again: a counter used
	// since the last flush has its total read at the next.
	if got := count(t, a, ws, "api_calls"); got != 3 {
		t.Fatalf("node A counts %d before its next flush, want 3", got)
	}
	flush(t, a)
	if got := count(t, a, ws, "api_calls"); got != 7 {
		t.Fatalf("node A counts %d after its next flush, want 7", got)
	}
	if got := stored(t, b, ws, "api_calls", month(b.Clock)); got != 7 {
		t.Fatalf("stored %d, want 7", got)
	}
}

func retriedBatch(t *testing.T, b Backend) {
	ws := workspaces(t, b, 2)
	counters := b.New(t)
	start, end, _ := usage.CalendarMonths{}.Period(context.Background(), uuid.Nil, b.Clock.Now())
	deltas := []usage.Delta{
		{Key: usage.Key{WorkspaceID: ws[0], Metric: "api_calls", PeriodStart: start, PeriodEnd: end}, N: 5},
		{Key: usage.Key{WorkspaceID: ws[1], Metric: "api_calls", PeriodStart: start, PeriodEnd: end}, N: 9},
	}
	id := kernel.NewID()
	for attempt := 1; attempt <= 3; attempt++ {
		totals, err := counters.Add(context.Background(), id, deltas)
		if err != nil {
			t.Fatal(err)
		}
		if totals[0] != 5 || totals[1] != 9 {
			t.Fatalf("attempt %d returned %v, want [5 9]", attempt, totals)
		}
	}
	if got := stored(t, b, ws[1], "api_calls", start); got != 9 {
		t.Fatalf("a batch sent three times stored %d, want 9", got)
	}
	totals, err := counters.Add(context.Background(), kernel.NewID(), deltas[:1])
	if err != nil || totals[0] != 10 {
		t.Fatalf("another batch: %v %v, want [10]", totals, err)
	}
	got, err := counters.Totals(context.Background(), []usage.Key{deltas[1].Key, deltas[0].Key,
		{WorkspaceID: ws[0], Metric: "never", PeriodStart: start, PeriodEnd: end}})
	if err != nil || got[0] != 9 || got[1] != 10 || got[2] != 0 {
		t.Fatalf("Totals: %v %v, want [9 10 0]", got, err)
	}
}

func lastUnit(t *testing.T, b Backend) {
	ws := workspaces(t, b, 1)[0]
	m := meter(t, b)
	increment(t, m, ws, "api_calls", 99)
	flush(t, m)
	var wins sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for g := 0; g < 32; g++ {
		wins.Go(func() {
			_, ok, err := m.IncrementUpTo(context.Background(), ws, "api_calls", 1, 100)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wins.Wait()
	if won != 1 {
		t.Fatalf("%d of 32 racers got the last unit, want exactly 1", won)
	}
	if got := count(t, m, ws, "api_calls"); got != 100 {
		t.Fatalf("count %d after the race, want 100", got)
	}
}

func closedRefuses(t *testing.T, b Backend) {
	ws := workspaces(t, b, 1)[0]
	m := meter(t, b)
	increment(t, m, ws, "api_calls", 1)
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Increment(context.Background(), ws, "api_calls", 1); err == nil {
		t.Fatal("a closed meter took an increment")
	}
	if got := stored(t, b, ws, "api_calls", month(b.Clock)); got != 1 {
		t.Fatalf("stored %d, want the 1 counted before Close", got)
	}
}
