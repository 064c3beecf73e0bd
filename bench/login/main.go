// Command login measures what logging in costs through Atrium, beside the
// bare Argon2id loop it must be judged against, and what a login flood does
// to everybody else's requests, in one run on one machine.
//
//	bare     argon2.IDKey with password.DefaultParams() in a loop, in as many
//	         goroutines as the app's hasher lets hash at once
//	         (password.DefaultMaxConcurrent): the most logins a second this
//	         machine can verify at that concurrency. The same loop on every
//	         core (GOMAXPROCS goroutines) is printed beside it, for scale.
//	login    POST /api/v1/auth/login with the right password through the
//	         real app (app.New, app.Run, default hashing parameters, its
//	         store-backed brute-force limiter), -flood keep-alive connections
//	         in a closed loop, all from 127.0.0.1 as one client address. The
//	         per-address limit is raised for the benchmark (app.Options
//	         LoginLimits); every other limit is the default, and only right
//	         passwords are sent, so no account limit is touched.
//	probe    GET /api/v1/workspaces/{id} with another person's session
//	         cookie, sent at a fixed rate (-probe-rate a second, open loop:
//	         latency counts from when a request was due, so a stalled server
//	         cannot hide its stall by slowing the probe down), first alone,
//	         then during the login flood.
//
// Targets (issue 3): login throughput ≥ 0.9× bare; probe p99 during the
// flood ≤ 2× its p99 alone. A slow machine never makes the run fail, only a
// broken one does (a request answered with anything unexpected).
//
//	go run ./bench/login -rounds 3 -duration 4s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"

	"atrium/internal/identity/password"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

type options struct {
	duration, warmup time.Duration
	flood            int
	probeRate        int
	rounds           int
	dialects         []string
}

func main() {
	var o options
	var dialects string
	flag.DurationVar(&o.duration, "duration", 4*time.Second, "measured time of each phase per round")
	flag.IntVar(&o.rounds, "rounds", 3, "times the phases repeat (more, shorter rounds even out a shared machine)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each app phase")
	flag.IntVar(&o.flood, "flood", 8, "concurrent login connections of the flood")
	flag.IntVar(&o.probeRate, "probe-rate", 200, "probe requests a second")
	flag.StringVar(&dialects, "dialects", "sqlite,postgres", "comma-separated store dialects to measure")
	flag.Parse()
	o.dialects = strings.Split(dialects, ",")
	if o.duration <= 0 || o.warmup < 0 || o.flood < 1 || o.probeRate < 1 || o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "login: -duration, -flood, -probe-rate and -rounds must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "login:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	params, slots := password.DefaultParams(), password.DefaultMaxConcurrent()
	fmt.Fprintf(w, "atrium login benchmark: POST /api/v1/auth/login beside a bare Argon2id loop\n")
	fmt.Fprintf(w, "machine: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(w, "argon2id: m=%d KiB, t=%d, p=%d (password.DefaultParams); hasher concurrency %d (password.DefaultMaxConcurrent)\n",
		params.Memory, params.Iterations, params.Parallelism, slots)
	fmt.Fprintf(w, "load: %d round(s), %s per phase (warm-up %s), flood of %d connections from one address, probe at %d/s\n",
		o.rounds, o.duration, o.warmup, o.flood, o.probeRate)
	every := bareLoop(ctx, params, runtime.GOMAXPROCS(0), o.duration)
	fmt.Fprintf(w, "bare loop on every core (%d goroutines): %.1f hashes/s, %.1f ms each\n",
		runtime.GOMAXPROCS(0), every.perSecond(), every.meanMillis())
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
		res, err := measure(ctx, dialect, o, params, slots)
		if err != nil {
			return fmt.Errorf("%s: %w", dialect, err)
		}
		if !res.report(w, dialect, every) {
			failed = true
		}
	}
	if failed {
		return fmt.Errorf("a phase answered with errors; its numbers mean nothing")
	}
	return nil
}
