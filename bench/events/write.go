package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/bench/benchkit"
	"atrium/internal/app"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// writeOptions shape the write scenarios.
type writeOptions struct {
	concurrency      []int
	duration, warmup time.Duration
	rounds           int
}

// The write scenarios, in the order a round runs them.
const (
	scenarioPlain = "PLAIN"
	scenarioEvent = "EVENT"
	scenarioReal  = "REAL"
)

var writeScenarios = []string{scenarioPlain, scenarioEvent, scenarioReal}

// writeWorkspaces is how many workspaces the writes spread over: enough that
// concurrent writers rarely wait on one row's lock on PostgreSQL.
const writeWorkspaces = 200

// writeSample is what the load runs of one scenario at one concurrency saw.
type writeSample struct {
	requests  int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration
	p50s      []time.Duration // p50 of each round
	rates     []float64       // requests per second of each round
	tx        []time.Duration // the route's transaction times (PLAIN and EVENT only)
}

func (s *writeSample) add(o writeSample) {
	s.requests += o.requests
	s.errors += o.errors
	if s.firstErr == "" {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
	s.tx = append(s.tx, o.tx...)
	s.p50s = append(s.p50s, percentile(o.latencies, 50))
	s.rates = append(s.rates, float64(o.requests)/o.elapsed.Seconds())
}

func (s writeSample) throughput() float64 { return float64(s.requests) / s.elapsed.Seconds() }

// writeResult is every scenario's sample by concurrency, then by name.
type writeResult struct {
	dialect store.Dialect
	samples map[int]map[string]*writeSample
}

// measureWrites boots Atrium with the benchmark's route and runs the write
// scenarios, round by round, at each concurrency.
func measureWrites(ctx context.Context, dialect store.Dialect, o writeOptions, p *profiler) (writeResult, error) {
	var db store.DB
	in, err := benchkit.Boot(ctx, dialect, app.Options{Auth: testkit.TestAuth{}, Routes: []func(huma.API){renameRoute(&db)}})
	if err != nil {
		return writeResult{}, err
	}
	defer in.Close()
	db = in.App.DB
	ids := make([]uuid.UUID, 0, writeWorkspaces)
	for i := range writeWorkspaces {
		ws, err := in.App.Services.Workspaces.Create(ctx, fmt.Sprintf("Bench Workspace %04d", i), fmt.Sprintf("bench-%04d", i))
		if err != nil {
			return writeResult{}, fmt.Errorf("seed workspace %d: %w", i, err)
		}
		ids = append(ids, ws.ID)
	}
	res := writeResult{dialect: dialect, samples: map[int]map[string]*writeSample{}}
	for _, c := range o.concurrency {
		client := &http.Client{Transport: &http.Transport{MaxIdleConns: c * 4, MaxIdleConnsPerHost: c * 2,
			IdleConnTimeout: time.Minute, DisableCompression: true}}
		res.samples[c] = map[string]*writeSample{}
		for round := range o.rounds {
			order := slices.Clone(writeScenarios)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, name := range order {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				t := writeTarget{client: client, base: in.App.URL(), scenario: name, workspaces: ids}
				runWrites(t, c, o.warmup, uint64(round))
				runtime.GC()
				takeTxTimes()
				stopProfile := p.start(string(dialect), fmt.Sprintf("%s-c%d", name, c))
				s := runWrites(t, c, o.duration, uint64(round))
				stopProfile()
				s.tx = takeTxTimes()
				if res.samples[c][name] == nil {
					res.samples[c][name] = &writeSample{}
				}
				res.samples[c][name].add(s)
			}
		}
		client.CloseIdleConnections()
		for _, s := range res.samples[c] {
			slices.Sort(s.latencies)
			slices.Sort(s.tx)
		}
	}
	return res, nil
}

// writeTarget is one scenario as the load generator sees it.
type writeTarget struct {
	client     *http.Client
	base       string
	scenario   string
	workspaces []uuid.UUID
}

// names makes every request's name new, so every request writes.
var names atomic.Int64

// path is the URL path of the scenario's request for workspace id.
func (t writeTarget) path(id uuid.UUID) string {
	ws := kernel.FormatID(kernel.PrefixWorkspace, id)
	switch t.scenario {
	case scenarioPlain:
		return "/api/v1/workspaces/" + ws + "/bench-rename/plain"
	case scenarioEvent:
		return "/api/v1/workspaces/" + ws + "/bench-rename/event"
	}
	return "/api/v1/workspaces/" + ws
}

// runWrites drives t with concurrency workers in a closed loop for d. Each
// worker picks workspaces from its own generator seeded with (seed, worker),
// so every scenario writes the same sequence of rows.
func runWrites(t writeTarget, concurrency int, d time.Duration, seed uint64) writeSample {
	results := make([]writeSample, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range concurrency {
		wg.Go(func() {
			results[w] = writeLoop(t, deadline, rand.New(rand.NewPCG(seed, uint64(w))))
		})
	}
	wg.Wait()
	out := writeSample{elapsed: time.Since(start)}
	for _, r := range results {
		out.requests += r.requests
		out.errors += r.errors
		if out.firstErr == "" {
			out.firstErr = r.firstErr
		}
		out.latencies = append(out.latencies, r.latencies...)
	}
	slices.Sort(out.latencies)
	return out
}

func writeLoop(t writeTarget, deadline time.Time, rng *rand.Rand) writeSample {
	s := writeSample{latencies: make([]time.Duration, 0, 1<<14)}
	var buf bytes.Buffer
	for {
		id := t.workspaces[rng.IntN(len(t.workspaces))]
		name := "Bench " + strconv.FormatInt(names.Add(1), 10)
		body := []byte(`{"name":"` + name + `"}`)
		req, err := http.NewRequest(http.MethodPatch, t.base+t.path(id), bytes.NewReader(body))
		if err != nil {
			panic(err) // a malformed URL is this program's bug
		}
		req.Header.Set("Authorization", testkit.KeyFor(id))
		req.Header.Set("Content-Type", "application/json")
		begin := time.Now()
		if !begin.Before(deadline) {
			return s
		}
		err = benchkit.Expect(t.client, req, []byte(`"name":"`+name+`"`), &buf)
		s.latencies = append(s.latencies, time.Since(begin))
		s.requests++
		if err != nil {
			s.errors++
			if s.firstErr == "" {
				s.firstErr = err.Error()
			}
		}
	}
}

// report prints the write scenarios' table, ratios and target. It returns
// false if any request failed.
func (res writeResult) report(w io.Writer, o writeOptions) bool {
	fmt.Fprintf(w, "write with and without its event: %s same transaction without the event, %s with events.Append,\n", scenarioPlain, scenarioEvent)
	fmt.Fprintf(w, "   %s Atrium's PATCH /api/v1/workspaces/{id}; %d round(s) of %s each, alternating order, over loopback;\n",
		scenarioReal, o.rounds, o.duration)
	fmt.Fprintf(w, "   tx p50: the route's transaction alone, from asking for it to commit (on SQLite with the wait for the one writer)\n")
	ok := true
	for _, c := range o.concurrency {
		samples := res.samples[c]
		fmt.Fprintf(w, "  concurrency %d:\n", c)
		fmt.Fprintf(w, "    %-6s %8s %9s %9s %9s %6s   %s\n", "", "req/s", "p50", "p99", "tx p50", "errors", "p50 by round")
		for _, name := range writeScenarios {
			s := samples[name]
			rounds := make([]string, len(s.p50s))
			for i, p := range s.p50s {
				rounds[i] = roundDur(p).String()
			}
			tx := "-"
			if len(s.tx) > 0 {
				tx = roundDur(percentile(s.tx, 50)).String()
			}
			fmt.Fprintf(w, "    %-6s %8.0f %9s %9s %9s %6d   %v\n", name, s.throughput(), roundDur(percentile(s.latencies, 50)),
				roundDur(percentile(s.latencies, 99)), tx, s.errors, rounds)
			if s.errors > 0 {
				ok = false
				fmt.Fprintf(w, "    FAILED %s: %d of %d requests failed; first: %s\n", name, s.errors, s.requests, s.firstErr)
			}
		}
		ev, plain, full := samples[scenarioEvent], samples[scenarioPlain], samples[scenarioReal]
		var byRound []float64
		for i := range min(len(ev.p50s), len(plain.p50s)) {
			byRound = append(byRound, float64(ev.p50s[i])/float64(plain.p50s[i]))
		}
		p50 := float64(percentile(ev.latencies, 50)) / float64(percentile(plain.latencies, 50))
		fmt.Fprintf(w, "    EVENT/PLAIN p50 %.3f× (by round %s, spread %s), p99 %.2f×, req/s %.2f×; REAL/EVENT p50 %.2f×\n",
			p50, list(byRound, "%.2f"), spread(byRound, "%.2f"),
			float64(percentile(ev.latencies, 99))/float64(percentile(plain.latencies, 99)), ev.throughput()/plain.throughput(),
			float64(percentile(full.latencies, 50))/float64(percentile(ev.latencies, 50)))
		verdict(w, fmt.Sprintf("target at concurrency %d: EVENT p50 ≤ 1.10× PLAIN", c), p50, 1.10, false, ok)
	}
	return ok
}
