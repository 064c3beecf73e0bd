package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// rig is a store, a bus and a runtime for one test.
type rig struct {
	db  store.SystemDB
	bus *natsbus.Bus
	rt  *events.Runtime
	ws  uuid.UUID
}

func newRig(t *testing.T, d store.Dialect, busOpts natsbus.Options) *rig {
	t.Helper()
	db := testkit.OpenStore(t, d, testkit.NewClock())
	if busOpts.URL == "" {
		busOpts.Dir = filepath.Join(t.TempDir(), "nats")
	}
	busOpts.Logger = testkit.DiscardLogger()
	bus, err := natsbus.Open(busOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	rt := events.New(events.Config{DB: db, Bus: bus, Logger: testkit.DiscardLogger(), RelayInterval: 10 * time.Millisecond})
	return &rig{db: db, bus: bus, rt: rt, ws: storetest.CreateWorkspace(t, db, "acme")}
}

// run runs the runtime until the test ends.
func (r *rig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.rt.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the runtime did not stop in 20s")
		}
	})
}

func (r *rig) appendEvent(t *testing.T, typ string, payload any) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	err := r.db.InWorkspace(context.Background(), r.ws, func(tx store.Tx) error {
		var err error
		id, err = events.Append(context.Background(), tx, events.Event{Type: typ, Payload: payload})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (r *rig) enqueue(t *testing.T, kind string, payload any) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	err := r.db.InWorkspace(context.Background(), r.ws, func(tx store.Tx) error {
		var err error
		id, err = events.Enqueue(context.Background(), tx, kind, payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// job reads a job's record.
func (r *rig) job(t *testing.T, id uuid.UUID) events.JobRecord {
	t.Helper()
	ctx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorAPIKey, ID: kernel.NewID(),
		WorkspaceID: r.ws, Scopes: kernel.ScopeRead | kernel.ScopeWrite})
	j, err := events.NewJobs(r.db).Get(ctx, resource(r.ws), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestEventReachesSubscriberOnceWithEnvelope(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := newRig(t, d, natsbus.Options{})
		got := make(chan events.Envelope, 10)
		r.rt.Subscribe("test", []string{"workspace.updated"}, events.SubscribeOptions{}, func(_ context.Context, e events.Envelope) error {
			got <- e
			return nil
		})
		r.run(t)
		// The durable consumer starts with events published after it exists.
		eventually(t, "the subscriber's consumer", func() bool {
			_, err := r.bus.JS.Consumer(context.Background(), natsbus.EventsStream, "sub_test")
			return err == nil
		})
		r.appendEvent(t, "member.added", map[string]string{"ignored": "yes"})
		id := r.appendEvent(t, "workspace.updated", map[string]string{"name": "Acme"})
		var e events.Envelope
		select {
		case e = <-got:
		case <-time.After(15 * time.Second):
			t.Fatal("no event")
		}
		if e.ID != kernel.FormatID(kernel.PrefixEvent, id) || e.Type != "workspace.updated" ||
			e.WorkspaceID != kernel.FormatID(kernel.PrefixWorkspace, r.ws) || string(e.Data) != `{"name":"Acme"}` || e.CreatedAt.IsZero() {
			t.Fatalf("envelope %+v", e)
		}
		select {
		case extra := <-got:
			t.Fatalf("a second delivery: %+v", extra)
		case <-time.After(200 * time.Millisecond):
		}
		eventually(t, "the outbox to drain", func() bool {
			lag, err := lagOf(r)
			return err == nil && lag.Unsent == 0
		})
	})
}

func lagOf(r *rig) (events.Lag, error) {
	return r.rt.Lag(kernel.WithActor(context.Background(), kernel.SystemActor))
}

func TestJobSucceedsAndRecordsResult(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := newRig(t, d, natsbus.Options{})
		r.rt.HandleJob("test.export", events.JobOptions{}, func(ctx context.Context, j *events.Job) (any, error) {
			if err := j.Progress(ctx, 50); err != nil {
				return nil, err
			}
			var in struct{ N int }
			if err := json.Unmarshal(j.Payload, &in); err != nil {
				return nil, events.Permanent(err)
			}
			return map[string]int{"doubled": in.N * 2}, nil
		})
		r.run(t)
		id := r.enqueue(t, "test.export", map[string]int{"N": 21})
		eventually(t, "the job to succeed", func() bool { return r.job(t, id).Status == "succeeded" })
		j := r.job(t, id)
		var result map[string]int
		_ = json.Unmarshal(j.Result, &result)
		if j.Attempts != 1 || j.Progress != 100 || result["doubled"] != 42 || j.FinishedAt == nil {
			t.Fatalf("record %+v, result %s", j, j.Result)
		}
	})
}

func TestFailingJobIsRetriedThenDeadLettered(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		r := newRig(t, d, natsbus.Options{})
		var calls atomic.Int32
		r.rt.HandleJob("test.flaky", events.JobOptions{MaxAttempts: 3, Backoff: func(int) time.Duration { return 10 * time.Millisecond }},
			func(context.Context, *events.Job) (any, error) {
				if calls.Add(1) == 2 {
					panic("handler bug")
				}
				return nil, errors.New("receiver said no")
			})
		r.run(t)
		id := r.enqueue(t, "test.flaky", nil)
		eventually(t, "the job to fail", func() bool { return r.job(t, id).Status == "failed" })
		if j := r.job(t, id); j.Attempts != 3 || j.Error != "receiver said no" || calls.Load() != 3 {
			t.Fatalf("record %+v after %d calls", j, calls.Load())
		}
		msg, err := r.bus.JS.Stream(context.Background(), natsbus.DeadStream)
		if err != nil {
			t.Fatal(err)
		}
		dead, err := msg.GetLastMsgForSubject(context.Background(), "dead.jobs.test.flaky")
		if err != nil {
			t.Fatalf("no dead letter: %v", err)
		}
		if dead.Header.Get("Atrium-Reason") != "receiver said no" || dead.Header.Get("Atrium-Attempts") != "3" {
			t.Fatalf("dead letter headers %v", dead.Header)
		}
	})
}

func TestPanickingJobIsAFailedAttemptAndTheProcessGoesOn(t *testing.T) {
	r := newRig(t, store.SQLite, natsbus.Options{})
	var calls atomic.Int32
	r.rt.HandleJob("test.panics", events.JobOptions{Backoff: func(int) time.Duration { return 10 * time.Millisecond }},
		func(context.Context, *events.Job) (any, error) {
			if calls.Add(1) == 1 {
				panic("boom")
			}
			return "ok", nil
		})
	r.run(t)
	id := r.enqueue(t, "test.panics", nil)
	eventually(t, "the retry to succeed", func() bool { return r.job(t, id).Status == "succeeded" })
	if j := r.job(t, id); j.Attempts != 2 {
		t.Fatalf("record %+v", j)
	}
}

func TestCanceledJobNeverRuns(t *testing.T) {
	r := newRig(t, store.SQLite, natsbus.Options{})
	var ran atomic.Bool
	r.rt.HandleJob("test.slow", events.JobOptions{}, func(context.Context, *events.Job) (any, error) {
		ran.Store(true)
		return nil, nil
	})
	id := r.enqueue(t, "test.slow", nil) // the runtime is not running yet
	ctx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorAPIKey, ID: kernel.NewID(),
		WorkspaceID: r.ws, Scopes: kernel.ScopeRead | kernel.ScopeWrite})
	j, err := events.NewJobs(r.db).Cancel(ctx, resource(r.ws), id)
	if err != nil || j.Status != "canceled" || j.CancelRequestedAt == nil {
		t.Fatalf("cancel: %+v, %v", j, err)
	}
	if _, err := events.NewJobs(r.db).Cancel(ctx, resource(r.ws), id); !kernel.IsCode(err, kernel.CodeConflict) {
		t.Fatalf("second cancel: %v", err)
	}
	r.run(t)
	eventually(t, "the outbox to drain", func() bool {
		lag, err := lagOf(r)
		return err == nil && lag.Unsent == 0
	})
	time.Sleep(300 * time.Millisecond)
	if ran.Load() {
		t.Fatal("a canceled job ran")
	}
}

// TestRowsWaitWhileNATSIsDownAndDrainAfter takes the server away: writes go
// on, the relay keeps the rows, and when the server is back every event
// arrives, once.
func TestRowsWaitWhileNATSIsDownAndDrainAfter(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		srv := testkit.StartNATS(t)
		r := newRig(t, d, natsbus.Options{URL: srv.URL()})
		var mu sync.Mutex
		seen := map[string]int{}
		r.rt.Subscribe("counter", nil, events.SubscribeOptions{}, func(_ context.Context, e events.Envelope) error {
			mu.Lock()
			seen[e.ID]++
			mu.Unlock()
			return nil
		})
		r.run(t)
		eventually(t, "the subscriber's consumer", func() bool {
			_, err := r.bus.JS.Consumer(context.Background(), natsbus.EventsStream, "sub_counter")
			return err == nil
		})
		srv.Stop()
		var ids []uuid.UUID
		for i := range 20 {
			ids = append(ids, r.appendEvent(t, "workspace.updated", map[string]int{"i": i}))
		}
		time.Sleep(300 * time.Millisecond)
		if lag, err := lagOf(r); err != nil || lag.Unsent != 20 || lag.LastError == "" {
			t.Fatalf("lag while NATS is down: %+v, %v", lag, err)
		}
		srv.Start(t)
		eventually(t, "every event to arrive", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) == len(ids)
		})
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if n := seen[kernel.FormatID(kernel.PrefixEvent, id)]; n != 1 {
				t.Fatalf("event %s delivered %d times", id, n)
			}
		}
	})
}

// TestRepublishedRowIsDroppedByJetStream is the crash between publish and
// mark-sent: the row is published again with the same ID, and the stream
// keeps one copy.
func TestRepublishedRowIsDroppedByJetStream(t *testing.T) {
	r := newRig(t, store.SQLite, natsbus.Options{})
	ctx := kernel.WithActor(context.Background(), kernel.SystemActor)
	if err := r.bus.EnsureStreams(ctx); err != nil {
		t.Fatal(err)
	}
	r.appendEvent(t, "workspace.updated", nil)
	if n, err := r.rt.RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("relay: %d, %v", n, err)
	}
	// As if the mark had been lost with the crashed process.
	if err := r.db.System(ctx, "test: unmark", func(tx store.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE outbox SET sent_at = NULL")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := r.rt.RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("second relay: %d, %v", n, err)
	}
	stream, err := r.bus.JS.Stream(ctx, natsbus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("the stream holds %d messages, want 1", info.State.Msgs)
	}
}

func resource(ws uuid.UUID) policy.Resource { return policy.Resource{Workspace: ws} }
