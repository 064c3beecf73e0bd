// Command usage measures metering (issue 5): how many increments a second
// Atrium's usage.Meter sustains, beside the baseline it must be judged
// against, and whether a graceful restart loses any.
//
// throughput: -concurrency goroutines (16) increment counters of
// -workspaces workspaces (1,000) × 3 metrics, round-robin, for -duration:
//
//	METER        usage.Meter over storemeter, flushing every second as
//	             Atrium does; the figure counts the increments made during
//	             the run and the final flush at Close (so a buffer that
//	             cannot keep up shows).
//	METER-redis  the same over redismeter (ATRIUM_TEST_REDIS_URL set), which
//	             also writes the history to the store.
//	BARE         the baseline: the same counters written without the meter,
//	             one upsert (value = value + 1) per increment in a
//	             transaction of its own, through the same store, at the same
//	             concurrency: what counting without a buffer costs.
//
// After every run the store's counters are summed: a run whose sum differs
// from the increments it made is reported as LOST, never judged. Rounds
// alternate the scenarios' order. Target: METER ≥ 10,000 increments/s.
//
// restart: -restart-increments (200,000) through a meter, then Close (a
// graceful shutdown), then a new meter on the same store (and Redis): the
// counters it reads, and the store's rows, must sum to exactly the number
// made.
//
// SQLite always; PostgreSQL when ATRIUM_TEST_POSTGRES_URL is set (as the
// tests use it: the non-superuser app role under row-level security).
//
//	go run ./bench/usage
//	go run ./bench/usage -dialects postgres -duration 10s -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"atrium/bench/benchkit"
	"atrium/internal/kernel"
	"atrium/internal/ratelimit/redislimit"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
	"atrium/internal/usage"
	"atrium/internal/usage/redismeter"
	"atrium/internal/usage/storemeter"
)

// target is the floor for METER, in increments a second.
const target = 10000

// envRedisURL turns on METER-redis, as it turns on the Redis tests.
const envRedisURL = "ATRIUM_TEST_REDIS_URL"

type options struct {
	dialects          []string
	duration          time.Duration
	rounds            int
	concurrency       int
	workspaces        int
	restartIncrements int
}

func main() {
	var o options
	var dialects string
	flag.StringVar(&dialects, "dialects", "sqlite,postgres", "comma-separated store dialects (postgres runs when "+testkit.EnvPostgresURL+" is set)")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time per scenario per round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the throughput scenarios")
	flag.IntVar(&o.concurrency, "concurrency", 16, "goroutines incrementing")
	flag.IntVar(&o.workspaces, "workspaces", 1000, "workspaces counted (each with 3 metrics)")
	flag.IntVar(&o.restartIncrements, "restart-increments", 200000, "increments made before the graceful restart")
	flag.Parse()
	o.dialects = strings.Split(dialects, ",")
	if o.duration <= 0 || o.rounds < 1 || o.concurrency < 1 || o.workspaces < 1 || o.restartIncrements < 1 {
		fmt.Fprintln(os.Stderr, "usage: durations, rounds and counts must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "usage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	fmt.Fprintf(w, "atrium usage benchmark: metering throughput beside a bare loop of upserts, and a graceful restart\n")
	fmt.Fprintf(w, "machine: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())
	var rdb *redis.Client
	if u := os.Getenv(envRedisURL); u != "" {
		c, err := redislimit.Open(ctx, u)
		if err != nil {
			return err
		}
		defer c.Close()
		rdb = c
	} else {
		fmt.Fprintf(w, "METER-redis skipped: set %s, e.g. eval \"$(bash .ci/setup-services)\"\n", envRedisURL)
	}
	bad := false
	for _, name := range o.dialects {
		dialect := store.Dialect(strings.TrimSpace(name))
		if dialect == store.Postgres && os.Getenv(testkit.EnvPostgresURL) == "" {
			fmt.Fprintf(w, "\n== postgres: skipped; set %s, e.g. eval \"$(bash .ci/setup-services)\" ==\n", testkit.EnvPostgresURL)
			continue
		}
		r, err := newRig(ctx, dialect, o.workspaces, rdb)
		if err != nil {
			return fmt.Errorf("%s: %w", dialect, err)
		}
		ok, err := r.measure(ctx, o, w)
		r.close()
		if err != nil {
			return fmt.Errorf("%s: %w", dialect, err)
		}
		bad = bad || !ok
	}
	if bad {
		return fmt.Errorf("a run lost increments; its numbers mean nothing")
	}
	return nil
}

// rig is one dialect's store with its workspaces, and Redis when configured.
type rig struct {
	dialect    store.Dialect
	db         store.SystemDB
	redis      *redis.Client
	prefix     string // this run's Redis keys
	workspaces []uuid.UUID
	logger     *slog.Logger
	closers    []func()
}

func (r *rig) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

func newRig(ctx context.Context, dialect store.Dialect, n int, rdb *redis.Client) (_ *rig, err error) {
	r := &rig{dialect: dialect, redis: rdb, logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	switch dialect {
	case store.SQLite:
		dir, err := os.MkdirTemp("", "atrium-usage-bench-")
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { os.RemoveAll(dir) })
		db, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(dir, "atrium.db"), Logger: r.logger})
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { db.Close() })
		if _, err := db.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		r.db = db
	case store.Postgres:
		schema, err := benchkit.NewPostgresSchema(ctx)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, schema.Drop)
		db, err := pgstore.Open(ctx, pgstore.Options{URL: schema.AppURL, Logger: r.logger})
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { db.Close() })
		r.db = db
	default:
		return nil, fmt.Errorf("unknown dialect %q (want sqlite or postgres)", dialect)
	}
	if rdb != nil {
		r.prefix = "atrium:{usage-bench-" + kernel.NewID().String()[24:] + "}:"
		r.closers = append(r.closers, func() { deleteKeys(rdb, r.prefix) })
	}
	svc := tenancy.NewService(r.db, nil)
	for i := range n {
		ws, err := svc.Create(ctx, fmt.Sprintf("Bench Workspace %04d", i), fmt.Sprintf("bench-%04d", i))
		if err != nil {
			return nil, fmt.Errorf("workspace %d: %w", i, err)
		}
		r.workspaces = append(r.workspaces, ws.ID)
	}
	return r, nil
}

func deleteKeys(c *redis.Client, prefix string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

// counters opens a node's backend: the store's, or Redis in front of it.
func (r *rig) counters(redisToo bool) usage.Counters {
	if redisToo {
		return redismeter.New(r.redis, r.db, redismeter.Options{Prefix: r.prefix, Logger: r.logger})
	}
	return storemeter.New(r.db)
}

// result is one run: increments made, the time they took, and what the
// store holds afterwards.
type result struct {
	made    int64
	elapsed time.Duration
	stored  int64
}

func (x result) perSecond() float64 { return float64(x.made) / x.elapsed.Seconds() }
func (x result) lossless() bool     { return x.made == x.stored }

// metrics are a run's three metric names, its own so that runs do not add up.
func metrics(run string) []string {
	return []string{run + "_api_calls", run + "_exports", run + "_reports"}
}

// load runs concurrency goroutines calling inc round-robin over the rig's
// counters until the duration ends, and returns how many calls succeeded.
// A call under way when the time is up finishes (its context is not the
// deadline's): one cut short might count in the store and not here.
func (r *rig) load(ctx context.Context, o options, names []string, inc func(ctx context.Context, ws uuid.UUID, metric string) error) (int64, error) {
	deadline, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var made atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for g := range o.concurrency {
		wg.Go(func() {
			n := int64(0)
			for i := g; deadline.Err() == nil; i += o.concurrency {
				if err := inc(ctx, r.workspaces[i%len(r.workspaces)], names[(i/len(r.workspaces))%len(names)]); err != nil {
					first.CompareAndSwap(nil, err)
					break
				}
				n++
			}
			made.Add(n)
		})
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return 0, err
	}
	return made.Load(), nil
}

// meterRun is METER or METER-redis.
func (r *rig) meterRun(ctx context.Context, o options, run string, redisToo bool) (result, error) {
	names := metrics(run)
	m := usage.NewMeter(usage.MeterConfig{Counters: r.counters(redisToo), Logger: r.logger})
	start := time.Now()
	made, err := r.load(ctx, o, names, func(ctx context.Context, ws uuid.UUID, metric string) error {
		return m.Increment(ctx, ws, metric, 1)
	})
	if cerr := m.Close(context.Background()); err == nil {
		err = cerr
	}
	res := result{made: made, elapsed: time.Since(start)}
	if err != nil {
		return res, err
	}
	res.stored, err = r.stored(ctx, names)
	return res, err
}

// upsertOne is BARE's statement: the meter's upsert, one increment at a time.
const upsertOne = `INSERT INTO usage_counter (workspace_id, metric, period_start, period_end, value, updated_at)
    VALUES ($1, $2, $3, $4, 1, $5)
    ON CONFLICT (workspace_id, metric, period_start) DO UPDATE SET value = usage_counter.value + 1, updated_at = excluded.updated_at`

// bareRun is BARE: every increment is its own workspace transaction.
func (r *rig) bareRun(ctx context.Context, o options, run string) (result, error) {
	names := metrics(run)
	start := time.Now()
	made, err := r.load(ctx, o, names, func(ctx context.Context, ws uuid.UUID, metric string) error {
		return r.db.InWorkspace(ctx, ws, func(tx store.Tx) error {
			from, to, _ := usage.CalendarMonths{}.Period(ctx, ws, tx.Now())
			_, err := tx.Exec(ctx, upsertOne, ws, metric, from, to, tx.Now())
			return err
		})
	})
	res := result{made: made, elapsed: time.Since(start)}
	if err != nil {
		return res, err
	}
	res.stored, err = r.stored(ctx, names)
	return res, err
}

// stored sums the store's counters of the named metrics, through the
// system path.
func (r *rig) stored(ctx context.Context, names []string) (int64, error) {
	var sum int64
	err := r.db.System(ctx, "usage bench: sum the counters", func(tx store.Tx) error {
		for _, name := range names {
			var v int64
			if err := tx.QueryRow(ctx, "SELECT coalesce(sum(value), 0) FROM usage_counter WHERE metric = $1", name).Scan(&v); err != nil {
				return err
			}
			sum += v
		}
		return nil
	})
	return sum, err
}

// restart counts n increments through a meter, closes it and opens
// another: it returns what the second meter and the store count.
func (r *rig) restart(ctx context.Context, o options, redisToo bool) (live, stored int64, took time.Duration, err error) {
	names := metrics("restart" + map[bool]string{false: "", true: "_redis"}[redisToo])
	first := usage.NewMeter(usage.MeterConfig{Counters: r.counters(redisToo), Logger: r.logger})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.concurrency {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(o.restartIncrements); i = next.Add(1) - 1 {
				if ierr := first.Increment(ctx, r.workspaces[int(i)%len(r.workspaces)], names[int(i)%3], 1); ierr != nil {
					err = ierr
					return
				}
			}
		})
	}
	wg.Wait()
	start := time.Now()
	if cerr := first.Close(context.Background()); err == nil {
		err = cerr
	}
	took = time.Since(start)
	if err != nil {
		return 0, 0, took, err
	}
	second := usage.NewMeter(usage.MeterConfig{Counters: r.counters(redisToo), Logger: r.logger, FlushEvery: -1})
	defer second.Close(context.Background())
	for _, ws := range r.workspaces {
		for _, name := range names {
			n, err := second.Count(ctx, ws, name)
			if err != nil {
				return 0, 0, took, err
			}
			live += n
		}
	}
	stored, err = r.stored(ctx, names)
	return live, stored, took, err
}

// measure runs the rounds and the restart on one dialect and reports them.
// It returns false when a run lost increments.
func (r *rig) measure(ctx context.Context, o options, w io.Writer) (bool, error) {
	scenarios := []string{"METER", "BARE"}
	if r.redis != nil {
		scenarios = append(scenarios, "METER-redis")
	}
	fmt.Fprintf(w, "\n== %s: increments/s, concurrency %d, %d workspaces × 3 metrics, %s per run, %d rounds ==\n",
		r.dialect, o.concurrency, len(r.workspaces), o.duration, o.rounds)
	runs := map[string][]result{}
	for round := range o.rounds {
		order := slices.Clone(scenarios)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			name := strings.ToLower(strings.ReplaceAll(s, "-", "_")) + fmt.Sprintf("_r%d", round)
			var res result
			var err error
			switch s {
			case "METER":
				res, err = r.meterRun(ctx, o, name, false)
			case "METER-redis":
				res, err = r.meterRun(ctx, o, name, true)
			case "BARE":
				res, err = r.bareRun(ctx, o, name)
			}
			if err != nil {
				return false, fmt.Errorf("%s round %d: %w", s, round+1, err)
			}
			runs[s] = append(runs[s], res)
		}
	}
	ok := true
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tincrements/s (each round)\tmedian\t× BARE\tstored = made\t")
	bare := median(perSecond(runs["BARE"]))
	for _, s := range scenarios {
		rates := perSecond(runs[s])
		lossless := "yes"
		for _, x := range runs[s] {
			if !x.lossless() {
				lossless, ok = fmt.Sprintf("LOST %d of %d", x.made-x.stored, x.made), false
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%s\t\n", s, list(rates), median(rates), median(rates)/bare, lossless)
	}
	tw.Flush()
	for _, s := range scenarios {
		if strings.HasPrefix(s, "METER") {
			m := median(perSecond(runs[s]))
			verdict(w, fmt.Sprintf("target %s ≥ %d increments/s", s, target), m, m/target, ok)
		}
	}

	for _, redisToo := range []bool{false, true} {
		if redisToo && r.redis == nil {
			continue
		}
		label := map[bool]string{false: "METER", true: "METER-redis"}[redisToo]
		live, stored, took, err := r.restart(ctx, o, redisToo)
		if err != nil {
			return false, fmt.Errorf("restart (%s): %w", label, err)
		}
		word := "LOSSLESS"
		if live != int64(o.restartIncrements) || stored != int64(o.restartIncrements) {
			word, ok = "LOST INCREMENTS", false
		}
		fmt.Fprintf(w, "  graceful restart (%s): %d increments, Close took %s, reopened: %d counted, %d stored: %s\n",
			label, o.restartIncrements, took.Round(time.Millisecond), live, stored, word)
	}
	return ok, nil
}

func perSecond(xs []result) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x.perSecond()
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func list(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(parts, " ")
}

// verdict prints a target beside the figure and their ratio. A target not
// met is reported, never fatal: speed depends on the machine.
func verdict(w io.Writer, what string, got, ratio float64, valid bool) {
	word := "MET"
	switch {
	case !valid:
		word = "NOT JUDGED (lost increments)"
	case ratio < 1:
		word = "NOT MET"
	}
	fmt.Fprintf(w, "  %s: %.0f (%.1f× the target)  %s\n", what, got, ratio, word)
}
