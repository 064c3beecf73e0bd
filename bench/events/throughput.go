package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/events"
	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
)

// benchEventType is the type of the events the throughput runs commit, a
// documented one (the app installs the catalogue, and Append checks every
// event against it); the counting subscriber listens to it alone.
const benchEventType = tenancy.EventWorkspaceUpdated

// throughputRun is what one commit-to-consumer run observed.
type throughputRun struct {
	events    int
	arrived   int           // distinct events that arrived; less than events when the run was cut short
	elapsed   time.Duration // first commit (or publish) to last first arrival, or to the cut
	committed time.Duration // first commit to last commit (publish acknowledged, for the bare loop)
	dups      int           // arrivals of an event already seen
}

func (t throughputRun) perSecond() float64 { return float64(t.arrived) / t.elapsed.Seconds() }

func (t throughputRun) cut() bool { return t.arrived < t.events }

func (t throughputRun) commitPerSecond() float64 { return float64(t.events) / t.committed.Seconds() }

// arrivals counts first arrivals of distinct events and notes when the last
// awaited one came.
type arrivals struct {
	mu   sync.Mutex
	seen map[string]struct{}
	want int
	dups int
	last time.Time
	done chan struct{}
}

func newArrivals(want int) *arrivals {
	return &arrivals{seen: make(map[string]struct{}, want), want: want, done: make(chan struct{})}
}

func (a *arrivals) add(id string) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.seen[id]; dup {
		a.dups++
		return
	}
	a.seen[id] = struct{}{}
	if len(a.seen) == a.want {
		a.last = now
		close(a.done)
	}
}

// wait blocks until every awaited event has arrived, ctx ends or the
// deadline passes, and completes run: how many arrived, the time from start
// to the last of them (or to the deadline) and the duplicates.
func (a *arrivals) wait(ctx context.Context, start, deadline time.Time, run *throughputRun) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	end := deadline
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.seen) == a.want {
		end = a.last
	}
	run.arrived, run.elapsed, run.dups = len(a.seen), end.Sub(start), a.dups
	return nil
}

// eventPayload is what a committed event carries: a workspace.updated
// payload, its name numbered.
func eventPayload(workspace uuid.UUID, seq int) tenancy.WorkspaceEvent {
	return tenancy.WorkspaceEvent{ID: kernel.FormatID(kernel.PrefixWorkspace, workspace), Slug: "bench-workspace",
		Name: fmt.Sprintf("Bench Workspace %06d", seq)}
}

// commitEvents commits n events through events.Append from writers
// goroutines, perTx events to a transaction, each transaction in the next of
// workspaces. It returns when every transaction has committed.
func commitEvents(ctx context.Context, db store.DB, workspaces []uuid.UUID, n, perTx, writers int) error {
	txs := (n + perTx - 1) / perTx
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= txs {
					return
				}
				ws := workspaces[i%len(workspaces)]
				err := db.InWorkspace(ctx, ws, func(tx store.Tx) error {
					for k := i * perTx; k < min((i+1)*perTx, n); k++ {
						if _, err := events.Append(ctx, tx, events.Event{Type: benchEventType, Payload: eventPayload(ws, k)}); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// runEvents measures one commit-to-consumer run: a fresh runtime (relay and
// one counting subscriber with the default options) runs while n events are
// committed; it ends when every event has reached the subscriber.
func runEvents(ctx context.Context, r *busRig, name string, n, perTx, writers int, limit time.Duration, prof func() func()) (throughputRun, error) {
	if err := r.fresh(ctx); err != nil {
		return throughputRun{}, err
	}
	got := newArrivals(n)
	rt := r.newRuntime()
	rt.Subscribe(name, []string{benchEventType}, events.SubscribeOptions{}, func(_ context.Context, e events.Envelope) error {
		got.add(e.ID)
		return nil
	})
	stop := running(rt)
	defer func() {
		stop()
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.bus.JS.DeleteConsumer(dctx, natsbus.EventsStream, "sub_"+name)
	}()
	if err := r.waitConsumer(ctx, natsbus.EventsStream, "sub_"+name); err != nil {
		return throughputRun{}, err
	}
	runtime.GC()
	stopProfile := prof()
	defer stopProfile()
	start := time.Now()
	if err := commitEvents(ctx, r.db, r.workspaces, n, perTx, writers); err != nil {
		return throughputRun{}, fmt.Errorf("commit: %w", err)
	}
	run := throughputRun{events: n, committed: time.Since(start)}
	err := got.wait(ctx, start, start.Add(limit), &run)
	return run, err
}

// runDrain measures the relay and the subscriber alone: n events wait in
// the outbox, committed one to a transaction while no runtime ran, and a
// run lasts from the runtime's start to the last arrival. The subscriber's
// consumer is made beforehand by a runtime started and stopped at once, so
// it receives everything published after that.
func runDrain(ctx context.Context, r *busRig, name string, n, writers int, limit time.Duration, prof func() func()) (throughputRun, error) {
	if err := r.fresh(ctx); err != nil {
		return throughputRun{}, err
	}
	got := newArrivals(n)
	handler := func(_ context.Context, e events.Envelope) error {
		got.add(e.ID)
		return nil
	}
	rt := r.newRuntime()
	rt.Subscribe(name, []string{benchEventType}, events.SubscribeOptions{}, handler)
	stop := running(rt)
	err := r.waitConsumer(ctx, natsbus.EventsStream, "sub_"+name)
	stop()
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.bus.JS.DeleteConsumer(dctx, natsbus.EventsStream, "sub_"+name)
	}()
	if err != nil {
		return throughputRun{}, err
	}
	begin := time.Now()
	if err := commitEvents(ctx, r.db, r.workspaces, n, 1, writers); err != nil {
		return throughputRun{}, fmt.Errorf("commit: %w", err)
	}
	committed := time.Since(begin)
	rt = r.newRuntime()
	rt.Subscribe(name, []string{benchEventType}, events.SubscribeOptions{}, handler)
	runtime.GC()
	stopProfile := prof()
	defer stopProfile()
	start := time.Now()
	stop = running(rt)
	defer stop()
	run := throughputRun{events: n, committed: committed}
	err = got.wait(ctx, start, start.Add(limit), &run)
	return run, err
}

// bareStream is the baseline's stream: the events stream's settings
// (file storage, one replica, the same de-duplication window and limits) on
// its own subjects.
const bareStream = "BENCH_BARE"

func ensureBareStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bareStream, Subjects: []string{"bare.>"},
		Retention: jetstream.LimitsPolicy, MaxAge: natsbus.EventsMaxAge, Storage: jetstream.FileStorage,
		Duplicates: natsbus.DuplicateWindow, Replicas: 1, Discard: jetstream.DiscardOld})
	return err
}

// sampleMessage is an event envelope as the relay publishes it, for the
// bare loop to send messages of the same size.
func sampleMessage(workspace uuid.UUID) ([]byte, error) {
	data, err := json.Marshal(eventPayload(workspace, 12345))
	if err != nil {
		return nil, err
	}
	return json.Marshal(events.Envelope{ID: kernel.FormatID(kernel.PrefixEvent, kernel.NewID()), Type: benchEventType,
		WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, workspace), CreatedAt: time.Now().UTC(), Data: data})
}

// runBare is the baseline: on the same embedded server and connection, one
// goroutine publishes n messages of an event's size with PublishMsgAsync and
// a message ID (as the relay does, so de-duplication costs the same), while a
// durable pull consumer with explicit acks and the client's default
// Consume settings counts them. It runs from the first publish to the last
// arrival.
func runBare(ctx context.Context, r *busRig, name string, n int, limit time.Duration, prof func() func()) (throughputRun, error) {
	if err := r.purge(ctx, bareStream); err != nil {
		return throughputRun{}, err
	}
	data, err := sampleMessage(r.workspaces[0])
	if err != nil {
		return throughputRun{}, err
	}
	cons, err := r.bus.JS.CreateOrUpdateConsumer(ctx, bareStream, jetstream.ConsumerConfig{Durable: name,
		FilterSubject: "bare.>", DeliverPolicy: jetstream.DeliverNewPolicy, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return throughputRun{}, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.bus.JS.DeleteConsumer(dctx, bareStream, name)
	}()
	got := newArrivals(n)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		_ = msg.Ack()
		got.add(msg.Headers().Get(jetstream.MsgIDHeader))
	})
	if err != nil {
		return throughputRun{}, err
	}
	defer cc.Stop()
	subject := events.EventSubject(r.workspaces[0], benchEventType)
	subject = "bare." + subject[len("ws."):]
	runtime.GC()
	stopProfile := prof()
	defer stopProfile()
	start := time.Now()
	for range n {
		msg := nats.NewMsg(subject)
		msg.Data = data
		if _, err := r.bus.JS.PublishMsgAsync(msg, jetstream.WithMsgID(kernel.NewID().String())); err != nil {
			return throughputRun{}, fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case <-r.bus.JS.PublishAsyncComplete():
	case <-time.After(time.Minute):
		return throughputRun{}, fmt.Errorf("publish: no acknowledgement in a minute")
	}
	run := throughputRun{events: n, committed: time.Since(start)}
	err = got.wait(ctx, start, start.Add(limit), &run)
	return run, err
}

// throughputOptions shape the commit-to-consumer runs.
type throughputOptions struct {
	events  int
	rounds  int
	writers int
	batch   int
	// limit cuts a run short: its rate is then what arrived by the limit.
	limit time.Duration
}

// throughputResult holds every run of each scenario, by name.
type throughputResult struct {
	runs map[string][]throughputRun
}

// The scenarios of the throughput runs, in the order a round runs them.
const (
	scenarioEventsSingle  = "EVENTS-1"
	scenarioEventsBatched = "EVENTS-batch"
	scenarioDrain         = "DRAIN"
	scenarioBareJS        = "BARE-JS"
)

// measureThroughput runs the scenarios round after round, reversing the
// order every other round so that drift falls on all alike.
func measureThroughput(ctx context.Context, dialect store.Dialect, o throughputOptions, p *profiler) (throughputResult, error) {
	r, err := newBusRig(ctx, dialect, 16)
	if err != nil {
		return throughputResult{}, err
	}
	defer r.close()
	if err := ensureBareStream(ctx, r.bus.JS); err != nil {
		return throughputResult{}, err
	}
	res := throughputResult{runs: map[string][]throughputRun{}}
	order := []string{scenarioEventsSingle, scenarioEventsBatched, scenarioDrain, scenarioBareJS}
	for round := range o.rounds {
		for i := range order {
			name := order[i]
			if round%2 == 1 {
				name = order[len(order)-1-i]
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			prof := func() func() { return p.start(string(dialect), name) }
			consumer := fmt.Sprintf("bench_%d_%d", round, i)
			var run throughputRun
			switch name {
			case scenarioEventsSingle:
				run, err = runEvents(ctx, r, consumer, o.events, 1, o.writers, o.limit, prof)
			case scenarioEventsBatched:
				run, err = runEvents(ctx, r, consumer, o.events, o.batch, o.writers, o.limit, prof)
			case scenarioDrain:
				run, err = runDrain(ctx, r, consumer, o.events, o.writers, o.limit, prof)
			case scenarioBareJS:
				run, err = runBare(ctx, r, consumer, o.events, o.limit, prof)
			}
			if err != nil {
				return res, fmt.Errorf("%s: %w", name, err)
			}
			res.runs[name] = append(res.runs[name], run)
		}
	}
	return res, nil
}

// report prints the runs, the ratios to the bare loop and the target.
func (res throughputResult) report(w io.Writer, o throughputOptions) {
	fmt.Fprintf(w, "commit-to-consumer: %d events a run; %s one event a transaction and %s %d a transaction, from %d writers;\n",
		o.events, scenarioEventsSingle, scenarioEventsBatched, o.batch, o.writers)
	fmt.Fprintf(w, "   relay and one Subscribe handler (default options) running; %s: bare async publish + durable pull consumer\n", scenarioBareJS)
	fmt.Fprintf(w, "  %-13s %10s %12s %14s %5s   %s\n", "scenario", "events/s", "(spread)", "commit/pub /s", "dups", "events/s by run")
	bare := res.rates(scenarioBareJS, throughputRun.perSecond)
	cut := false
	for _, name := range []string{scenarioEventsSingle, scenarioEventsBatched, scenarioDrain, scenarioBareJS} {
		rates := res.rates(name, throughputRun.perSecond)
		dups := 0
		var byRun []string
		for _, run := range res.runs[name] {
			dups += run.dups
			mark := ""
			if run.cut() {
				mark, cut = "*", true
			}
			byRun = append(byRun, fmt.Sprintf("%.0f%s", run.perSecond(), mark))
		}
		fmt.Fprintf(w, "  %-13s %10.0f %12s %14.0f %5d   %s\n", name, median(rates), spread(rates, "%.0f"),
			median(res.rates(name, throughputRun.commitPerSecond)), dups, strings.Join(byRun, " "))
	}
	if cut {
		fmt.Fprintf(w, "  * cut short at %s: the rate is the events that had arrived by then\n", o.limit)
	}
	fmt.Fprintf(w, "  (medians over runs; commit/pub is the rate the writers committed, or the bare loop's publishes were acknowledged)\n")
	for _, name := range []string{scenarioEventsSingle, scenarioEventsBatched, scenarioDrain} {
		rates := res.rates(name, throughputRun.perSecond)
		ratios := make([]float64, min(len(rates), len(bare)))
		for i := range ratios {
			ratios[i] = rates[i] / bare[i]
		}
		fmt.Fprintf(w, "  ratio %-13s / %s: %.2f× (by round %s)\n", name, scenarioBareJS, median(rates)/median(bare), list(ratios, "%.2f"))
	}
	fmt.Fprintf(w, "targets:\n")
	verdict(w, fmt.Sprintf("%s commit-to-consumer ≥ 5000 events/s", scenarioEventsSingle), median(res.rates(scenarioEventsSingle, throughputRun.perSecond)), 5000, true, true)
	verdict(w, fmt.Sprintf("%s commit-to-consumer ≥ 5000 events/s", scenarioEventsBatched), median(res.rates(scenarioEventsBatched, throughputRun.perSecond)), 5000, true, true)
}

func (res throughputResult) rates(name string, f func(throughputRun) float64) []float64 {
	var out []float64
	for _, run := range res.runs[name] {
		out = append(out, f(run))
	}
	return out
}
