// Command spine measures what Atrium's request spine costs, beside the
// baselines it must be judged against, in one run on one machine.
//
// The scenario is the cheapest tenant read there is: GET one workspace by ID.
// Three servers answer it with the same JSON body, from the same store pool:
//
//	B0    bare net/http handler, one plain SELECT of the row: the floor for
//	      this driver, with no tenant binding at all.
//	B1    bare net/http handler, the same read tenant-scoped in the cheapest
//	      correct way the driver allows (PostgreSQL: BEGIN READ ONLY,
//	      set_config, SELECT, COMMIT as one pipeline under row-level
//	      security; SQLite: an explicit read transaction). B1 − B0 is the
//	      price of isolation itself; FULL − B1 is the price of Atrium.
//	FULL  the real app (app.New, app.Run) with its whole middleware chain,
//	      huma, the tenancy service and the store, access log formatted at
//	      level info and thrown away. Its caller is testkit.TestAuth, an API
//	      key that costs no store read: FULL − B1 is the spine alone.
//	FULL-session  the same app and request, authenticated by a real session
//	      cookie (a person signed up, verified and logged in through the API,
//	      owner of every workspace): the session read and the membership
//	      read come on top of FULL.
//	FULL-key  the same, with a real API key per workspace (created through
//	      the API) sent as Authorization: Bearer: the key read comes on top.
//
// Each round runs the scenarios in turn (warm-up, then measurement), B0, B1,
// FULL, FULL-session, FULL-key and then the reverse in the next, so that
// drift on the machine that grows steadily over the run falls on all alike. Speed is
// reported as ratios against the baselines with the targets beside them; a
// slow machine never makes the run fail, only a broken one does (a scenario
// that answers anything but 200 with the expected ID).
//
// The run also times start to ready on embedded defaults, in process and as a
// built binary, and reads the binary's resident memory.
//
//	go run ./bench/spine -duration 5s
//
// To see where FULL's time goes, profile it beside B1 and divide the profile
// values by the request count the run prints:
//
//	go run ./bench/spine -dialects postgres -rounds 1 -duration 15s -startup-runs 0 \
//	    -cpuprofile /tmp/cpu.pprof -profile B1,FULL
//	go tool pprof -top -cum /tmp/cpu.postgres.FULL.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"atrium/internal/store"
	"atrium/internal/testkit"
)

// scenarios are the targets in the order a round runs them and the tables
// list them.
var scenarios = []string{"B0", "B1", "FULL", "FULL-session", "FULL-key"}

type options struct {
	duration, warmup time.Duration
	concurrency      int
	rounds           int
	workspaces       int
	seed             uint64
	dialects         []string
	startupRuns      int
	cpuprofile       string
	memprofile       string
	profileScenario  string
}

func main() {
	var o options
	var dialects string
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per scenario per round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each measured run")
	flag.IntVar(&o.concurrency, "concurrency", 16, "concurrent client connections")
	flag.IntVar(&o.rounds, "rounds", 4, "times the sequence of scenarios repeats (more, shorter rounds even out a shared machine)")
	flag.IntVar(&o.workspaces, "workspaces", 1000, "workspaces seeded; each request reads a random one")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the per-worker workspace sequences (the same for every scenario)")
	flag.StringVar(&dialects, "dialects", "sqlite,postgres", "comma-separated store dialects to measure")
	flag.IntVar(&o.startupRuns, "startup-runs", 5, "start-to-ready runs (median reported); 0 skips them")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write CPU profiles of the first round's -profile scenarios here (dialect and scenario inserted before the extension)")
	flag.StringVar(&o.memprofile, "memprofile", "", "write heap profiles before and after the same run (compare with pprof -sample_index=alloc_objects -diff_base)")
	flag.StringVar(&o.profileScenario, "profile", "FULL", "comma-separated scenarios -cpuprofile and -memprofile cover (first round)")
	flag.Parse()
	o.dialects = strings.Split(dialects, ",")
	if o.duration <= 0 || o.warmup < 0 || o.concurrency < 1 || o.rounds < 1 || o.workspaces < 1 {
		fmt.Fprintln(os.Stderr, "spine: -duration, -concurrency, -rounds and -workspaces must be positive")
		os.Exit(2)
	}
	if o.memprofile != "" {
		runtime.MemProfileRate = 4096 // fine enough to attribute a few allocations per request
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "spine:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	fmt.Fprintf(w, "atrium spine benchmark: GET one workspace by ID\n")
	fmt.Fprintf(w, "machine: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(w, "load: %d keep-alive connections, %d round(s) of %s (odd rounds reversed) × %s (warm-up %s each), %d workspaces, seed %d\n",
		o.concurrency, o.rounds, strings.Join(scenarios, ","), o.duration, o.warmup, o.workspaces, o.seed)
	fmt.Fprintf(w, "note: client and servers share this machine's CPUs, so the client's own cost per request is in every scenario\n")
	failed := false
	for _, name := range o.dialects {
		dialect := store.Dialect(strings.TrimSpace(name))
		switch dialect {
		case store.SQLite:
		case store.Postgres:
			if os.Getenv(testkit.EnvPostgresURL) == "" {
				fmt.Fprintf(w, "\n== postgres: skipped; set %s, e.g. eval \"$(bash .ci/setup-services)\" ==\n", testkit.EnvPostgresURL)
				continue
			}
		default:
			return fmt.Errorf("unknown dialect %q (want sqlite or postgres)", name)
		}
		res, notes, err := measureDialect(ctx, dialect, o)
		if err != nil {
			return fmt.Errorf("%s: %w", dialect, err)
		}
		if !report(w, dialect, notes, res) {
			failed = true
		}
	}
	if o.startupRuns > 0 {
		res, err := measureStartup(ctx, o.startupRuns)
		if err != nil {
			return err
		}
		printStartup(w, res)
	}
	if failed {
		return fmt.Errorf("a scenario answered with errors; its numbers mean nothing")
	}
	return nil
}

// measureDialect runs every round of every scenario on one dialect and
// returns the merged samples by scenario name.
func measureDialect(ctx context.Context, dialect store.Dialect, o options) (map[string]*sample, []string, error) {
	r, err := newRig(ctx, dialect, o.workspaces)
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	client := newClient(o.concurrency)
	defer client.CloseIdleConnections()
	res := map[string]*sample{}
	for round := range o.rounds {
		order := slices.Clone(r.targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			runLoad(client, t, o.concurrency, o.warmup, o.seed+1000)
			runtime.GC() // start each measurement without the last one's garbage
			stopProfile, err := maybeProfile(o, dialect, t.name, round)
			if err != nil {
				return nil, nil, err
			}
			s := runLoad(client, t, o.concurrency, o.duration, o.seed)
			if stopProfile != nil {
				stopProfile()
				fmt.Fprintf(os.Stderr, "spine: profiled %s on %s: %d requests in %s (divide profile values by this)\n",
					t.name, dialect, s.requests, s.elapsed.Round(time.Millisecond))
			}
			if res[t.name] == nil {
				res[t.name] = &sample{}
			}
			res[t.name].add(s)
		}
	}
	for _, s := range res {
		slices.Sort(s.latencies)
	}
	return res, r.notes, nil
}

// report prints one dialect's table, ratios and targets. It returns false if
// any scenario saw an error.
func report(w io.Writer, dialect store.Dialect, notes []string, res map[string]*sample) bool {
	fmt.Fprintf(w, "\n== %s ==\n", dialect)
	for _, n := range notes {
		fmt.Fprintf(w, "%s\n", n)
	}
	ok := true
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\treq/s\tp50\tp99\tp99.9\tCPU µs/req\tallocs/req\tKiB/req\terrors\treq/s by round\t\n")
	for _, name := range scenarios {
		s := res[name]
		rounds := make([]string, len(s.perRound))
		for i, v := range s.perRound {
			rounds[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%.1f\t%.0f\t%.1f\t%d\t%s\t\n", name, s.throughput(),
			round(s.percentile(50)), round(s.percentile(99)), round(s.percentile(99.9)),
			s.cpuPerRequest(), s.perRequest(s.mallocs), s.perRequest(s.heapBytes)/1024, s.errors, strings.Join(rounds, " "))
		if s.errors > 0 {
			ok = false
		}
	}
	tw.Flush()
	for _, name := range scenarios {
		if s := res[name]; s.errors > 0 {
			fmt.Fprintf(w, "FAILED %s: %d of %d requests failed; first: %s\n", name, s.errors, s.requests, s.firstErr)
		}
	}
	fmt.Fprintf(w, "(CPU, allocs and KiB per request count this whole process, load generator included, and not the database server:\n compare them between rows; they stay steady when other work on the machine moves req/s)\n")
	printRatios(w, res)
	fmt.Fprintf(w, "targets:\n")
	full, b1 := res["FULL"], res["B1"]
	if dialect == store.Postgres {
		verdict(w, "FULL throughput ≥ 0.80× B1", full.throughput()/b1.throughput(), 0.80, true, ok)
		verdict(w, "FULL p99        ≤ 1.50× B1", ratio(full.percentile(99), b1.percentile(99)), 1.50, false, ok)
	} else {
		verdict(w, "FULL throughput ≥ 0.80× B0", full.throughput()/res["B0"].throughput(), 0.80, true, ok)
	}
	// Issue 3: real authentication, one store round trip at most on top.
	verdict(w, "FULL-session throughput ≥ 0.75× B1", res["FULL-session"].throughput()/b1.throughput(), 0.75, true, ok)
	verdict(w, "FULL-key throughput     ≥ 0.75× B1", res["FULL-key"].throughput()/b1.throughput(), 0.75, true, ok)
	return ok
}

// printRatios prints FULL/B1, FULL/B0, B1/B0 and the authenticated
// scenarios against B1 and FULL over the whole run, with the
// throughput ratio of each round beside them so that noise shows.
func printRatios(w io.Writer, res map[string]*sample) {
	fmt.Fprintf(w, "ratios             throughput  p99     CPU/req  throughput by round\n")
	for _, p := range [][2]string{{"FULL", "B1"}, {"FULL", "B0"}, {"B1", "B0"}, {"FULL-session", "B1"}, {"FULL-key", "B1"}, {"FULL-session", "FULL"}} {
		a, b := res[p[0]], res[p[1]]
		var rounds []string
		var values []float64
		for i := range min(len(a.perRound), len(b.perRound)) {
			values = append(values, a.perRound[i]/b.perRound[i])
			rounds = append(rounds, fmt.Sprintf("%.2f", values[i]))
		}
		fmt.Fprintf(w, "  %-12s/%-4s  %5.2f×     %5.2f×  %5.2f×   %s  (median %.2f)\n", p[0], p[1], a.throughput()/b.throughput(),
			ratio(a.percentile(99), b.percentile(99)), a.cpuPerRequest()/b.cpuPerRequest(), strings.Join(rounds, " "), median(values))
	}
}

func verdict(w io.Writer, what string, got, limit float64, atLeast, valid bool) {
	met := got <= limit
	if atLeast {
		met = got >= limit
	}
	word := "MET"
	switch {
	case !valid:
		word = "NOT JUDGED (errors)"
	case !met:
		word = "NOT MET"
	}
	fmt.Fprintf(w, "  %s: %.2f×  %s\n", what, got, word)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

// round trims a duration to three significant figures or so for the table.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
