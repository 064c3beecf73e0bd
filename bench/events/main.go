// Command events measures what Atrium's events cost, each beside the
// baseline it must be judged against, in one run on one machine (issue 4).
//
// write: an event's cost to a write request. The same write (lock and read
// the workspace row, UPDATE its name, an audit entry: what PATCH
// /api/v1/workspaces/{id} does) is answered through the whole app (app.New,
// app.Run, its middleware chain, huma, the store; the outbox relay and every
// consumer running as in production) by a route registered through
// app.Options.Routes, as a fork registers its own:
//
//	PLAIN  the write without an event
//	EVENT  the same write with events.Append in its transaction
//	REAL   Atrium's own PATCH /api/v1/workspaces/{id} (tenancy.Service.Rename),
//	       to show that the route above does what the real one does
//
// in short rounds whose order alternates, at each -write-concurrency, over
// loopback. Target: EVENT's p50 at most 1.10× PLAIN's.
//
// throughput: commit to consumer with the embedded NATS server. While an
// events.Runtime runs (the outbox relay and one Subscribe handler counting
// distinct arrivals), N events are committed through events.Append from
// several writers, one to a transaction (EVENTS-1) and in batches
// (EVENTS-batch); a run lasts from the first commit to the last arrival.
// DRAIN times the relay and the subscriber alone, on N events committed
// before the runtime starts. The baseline (BARE-JS) publishes N messages of
// the same size with PublishMsgAsync and a message ID on the same server and
// connection, and a durable pull consumer acknowledges them. Target:
// ≥ 5,000 events/s.
//
// webhook: N deliveries of a webhook.test event wait as jobs (made with
// webhooks.Service.SendTest and relayed before the clock starts); the
// runtime's webhook.deliver job (webhooks.Service.Register: load, sign,
// POST, record) sends them to a loopback receiver at its own concurrency
// (WH). The baseline (BARE-POST) is a bare net/http loop posting the same
// body and headers at the same concurrency to the same receiver;
// BARE-POST+sign also signs each request. Target: WH ≥ 0.7× BARE-POST.
//
// sse: a child process opens -sse-connections idle event streams to Atrium,
// then to a bare net/http SSE handler, and this process (the node) reports
// its resident memory, heap and stacks with and without them.
//
// A slow machine never makes the run fail, only a broken one does (a request
// answered with anything unexpected, a stream that does not open).
//
//	go run ./bench/events
//	go run ./bench/events -only throughput -events 20000 -throughput-rounds 5 -cpuprofile /tmp/cpu.pprof -profile EVENTS-1
//	go tool pprof -top -cum /tmp/cpu.sqlite.EVENTS-1.pprof
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
	"strconv"
	"strings"
	"time"

	"atrium/internal/store"
	"atrium/internal/testkit"
)

type options struct {
	only        []string
	dialects    []string
	busDialects []string
	write       writeOptions
	throughput  throughputOptions
	webhook     webhookOptions
	sse         sseOptions
	cpuprofile  string
	profileRuns string
}

var parts = []string{"write", "throughput", "webhook", "sse"}

func main() {
	if addr := os.Getenv(sseClientEnv); addr != "" {
		if err := runSSEClient(addr); err != nil {
			fmt.Fprintln(os.Stderr, "events: SSE client:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var only, dialects, busDialects, concurrency string
	flag.StringVar(&only, "only", strings.Join(parts, ","), "comma-separated parts to run: "+strings.Join(parts, ", "))
	flag.StringVar(&dialects, "dialects", "sqlite,postgres", "comma-separated store dialects of the write scenarios (postgres runs when "+testkit.EnvPostgresURL+" is set)")
	flag.StringVar(&busDialects, "bus-dialects", "sqlite", "comma-separated store dialects of the throughput and webhook scenarios")
	flag.StringVar(&concurrency, "write-concurrency", "1,8", "comma-separated client concurrencies of the write scenarios")
	flag.DurationVar(&o.write.duration, "write-duration", time.Second, "measured time per write scenario per round")
	flag.DurationVar(&o.write.warmup, "write-warmup", 200*time.Millisecond, "unmeasured load before each measured write run")
	flag.IntVar(&o.write.rounds, "write-rounds", 3, "rounds of the write scenarios")
	flag.IntVar(&o.throughput.events, "events", 5000, "events committed per throughput run")
	flag.IntVar(&o.throughput.rounds, "throughput-rounds", 2, "rounds of the throughput scenarios")
	flag.IntVar(&o.throughput.writers, "writers", 8, "goroutines committing events")
	flag.IntVar(&o.throughput.batch, "batch", 100, "events per transaction in EVENTS-batch")
	flag.DurationVar(&o.throughput.limit, "run-limit", 15*time.Second, "longest throughput run: one cut short counts what arrived by then")
	flag.IntVar(&o.webhook.deliveries, "deliveries", 1000, "webhook deliveries per run")
	flag.IntVar(&o.webhook.rounds, "webhook-rounds", 2, "rounds of the webhook scenarios")
	flag.IntVar(&o.sse.connections, "sse-connections", 10000, "idle event streams the SSE part holds open")
	flag.StringVar(&o.sse.memprofile, "sse-memprofile", "", "write a heap profile here while Atrium holds the event streams")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the first run of each -profile scenario here (dialect and scenario inserted before the extension)")
	flag.StringVar(&o.profileRuns, "profile", "EVENTS-1", "comma-separated scenarios -cpuprofile covers (write scenarios by name and concurrency: EVENT-c1)")
	flag.Parse()
	o.only = strings.Split(only, ",")
	o.dialects = strings.Split(dialects, ",")
	o.busDialects = strings.Split(busDialects, ",")
	for _, c := range strings.Split(concurrency, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "events: -write-concurrency takes positive numbers")
			os.Exit(2)
		}
		o.write.concurrency = append(o.write.concurrency, n)
	}
	if o.write.duration <= 0 || o.write.rounds < 1 || o.throughput.events < 1 || o.throughput.rounds < 1 ||
		o.throughput.writers < 1 || o.throughput.batch < 1 || o.throughput.limit <= 0 || o.webhook.deliveries < 1 || o.webhook.rounds < 1 || o.sse.connections < 1 {
		fmt.Fprintln(os.Stderr, "events: durations, rounds, counts and sizes must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	fmt.Fprintf(w, "atrium events benchmark: an event's cost to a write, commit-to-consumer throughput, webhook delivery\n")
	fmt.Fprintf(w, "machine: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	prof := newProfiler(o.cpuprofile, o.profileRuns)
	failed := false
	if slices.Contains(o.only, "write") {
		err := eachDialect(w, o.dialects, func(dialect store.Dialect) error {
			fmt.Fprintf(w, "\n== %s: an event's cost to a write ==\n", dialect)
			res, err := measureWrites(ctx, dialect, o.write, prof)
			if err != nil {
				return err
			}
			if !res.report(w, o.write) {
				failed = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if slices.Contains(o.only, "throughput") {
		err := eachDialect(w, o.busDialects, func(dialect store.Dialect) error {
			fmt.Fprintf(w, "\n== %s: commit-to-consumer throughput ==\n", dialect)
			res, err := measureThroughput(ctx, dialect, o.throughput, prof)
			if err != nil {
				return err
			}
			res.report(w, o.throughput)
			return nil
		})
		if err != nil {
			return fmt.Errorf("throughput: %w", err)
		}
	}
	if slices.Contains(o.only, "webhook") {
		err := eachDialect(w, o.busDialects, func(dialect store.Dialect) error {
			fmt.Fprintf(w, "\n== %s: webhook delivery ==\n", dialect)
			res, err := measureWebhooks(ctx, dialect, o.webhook, prof)
			if err != nil {
				return err
			}
			if !res.report(w, o.webhook) {
				failed = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
	}
	if slices.Contains(o.only, "sse") {
		fmt.Fprintf(w, "\n== sqlite: idle event streams ==\n")
		res, err := measureSSE(ctx, o.sse)
		if err != nil {
			return fmt.Errorf("sse: %w", err)
		}
		res.report(w)
	}
	if failed {
		return fmt.Errorf("a scenario answered with errors; its numbers mean nothing")
	}
	return nil
}

// eachDialect runs measure on each named dialect; PostgreSQL is skipped,
// with a line saying so, when no database is configured.
func eachDialect(w io.Writer, names []string, measure func(store.Dialect) error) error {
	for _, name := range names {
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
		if err := measure(dialect); err != nil {
			return fmt.Errorf("%s: %w", dialect, err)
		}
	}
	return nil
}
