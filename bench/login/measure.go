package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"atrium/bench/benchkit"
	"atrium/internal/app"
	"atrium/internal/identity"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// benchPassword is the password of the benchmark's people.
const benchPassword = "login bench correct horse battery"

// result is one dialect's measurements, merged over the rounds.
type result struct {
	bare          hashRun
	logins        loadRun
	alone, flood  probeRun
	floodDuring   loadRun
	gcAlone, gcIn gcStats
	// Per-round ratios: logins/s over bare hashes/s, and probe p99 during the
	// flood over p99 alone.
	throughputRatios, p99Ratios []float64
}

// gcStats is what the collector did during a phase.
type gcStats struct {
	cycles int
	pause  time.Duration
}

func (g *gcStats) add(o gcStats) { g.cycles += o.cycles; g.pause += o.pause }

func gcDuring(fn func()) gcStats {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return gcStats{cycles: int(after.NumGC - before.NumGC), pause: time.Duration(after.PauseTotalNs - before.PauseTotalNs)}
}

// measure boots Atrium on dialect with default hashing, makes a flood
// person and a probe person through the API, and runs o.rounds rounds of
// the phases, each round's pair back to back so that drift on the machine
// falls on both sides of a ratio: the bare loop at the hasher's concurrency
// then the login flood alone; the probe alone then the probe during the
// flood.
func measure(ctx context.Context, dialect store.Dialect, o options, params password.Params, slots int) (result, error) {
	limits := identity.DefaultLoginLimits()
	// Every benchmark request comes from 127.0.0.1: one address may try
	// 1,000 times a second (the finest limit the limiter takes), far more than
	// a machine hashes; the per-account limits stay the defaults.
	limits.PerIP = ratelimit.Limit{Events: 60000, Window: time.Minute}
	in, err := benchkit.Boot(ctx, dialect, app.Options{LoginLimits: &limits, PasswordParams: &params})
	if err != nil {
		return result{}, err
	}
	defer in.Close()
	f, p, err := people(ctx, in.App, o)
	if err != nil {
		return result{}, err
	}
	var res result
	f.run(ctx, o.warmup)
	p.run(ctx, o.warmup)
	for range o.rounds {
		if ctx.Err() != nil {
			return result{}, ctx.Err()
		}
		runtime.GC()
		bare := bareLoop(ctx, params, slots, o.duration)
		runtime.GC()
		logins := f.run(ctx, o.duration)
		res.bare.add(bare)
		res.logins.add(logins)
		res.throughputRatios = append(res.throughputRatios, logins.perSecond()/bare.perSecond())

		runtime.GC()
		var alone, flooded probeRun
		res.gcAlone.add(gcDuring(func() { alone = p.run(ctx, o.duration) }))
		runtime.GC()
		res.gcIn.add(gcDuring(func() {
			var wg sync.WaitGroup
			floodCtx, stop := context.WithCancel(ctx)
			wg.Go(func() { res.floodDuring.add(f.run(floodCtx, o.duration+o.warmup)) })
			time.Sleep(o.warmup / 2) // let the flood fill the hasher first
			flooded = p.run(ctx, o.duration)
			stop()
			wg.Wait()
		}))
		res.alone.add(alone)
		res.flood.add(flooded)
		res.p99Ratios = append(res.p99Ratios, float64(flooded.percentile(99))/float64(alone.percentile(99)))
	}
	res.logins.latencies = sorted(res.logins.latencies)
	res.floodDuring.latencies = sorted(res.floodDuring.latencies)
	res.alone.latencies, res.flood.latencies = sorted(res.alone.latencies), sorted(res.flood.latencies)
	return res, nil
}

// people signs up the flood's person and the probe's through the API, makes
// the probe's person a member of a workspace, and returns the flood and the
// probe ready to run.
func people(ctx context.Context, a *app.App, o options) (flood, prober, error) {
	flooder, err := benchkit.SignUp(ctx, a, "flood@example.com", benchPassword)
	if err != nil {
		return flood{}, prober{}, err
	}
	member, err := benchkit.SignUp(ctx, a, "probe@example.com", benchPassword)
	if err != nil {
		return flood{}, prober{}, err
	}
	ws, err := a.Services.Workspaces.Create(ctx, "Probe Workspace", "probe")
	if err != nil {
		return flood{}, prober{}, err
	}
	if _, err := a.Services.Workspaces.AddMember(ctx, ws.ID, member.ID, policy.Member); err != nil {
		return flood{}, prober{}, err
	}
	wsID := kernel.FormatID(kernel.PrefixWorkspace, ws.ID)
	req, err := http.NewRequest(http.MethodGet, a.URL()+"/api/v1/workspaces/"+wsID, nil)
	if err != nil {
		return flood{}, prober{}, err
	}
	req.Header.Set("Cookie", member.Cookie())
	req.Header.Set("Accept", "application/json")
	f := flood{url: a.URL() + "/api/v1/auth/login", body: fmt.Sprintf(`{"email":%q,"password":%q}`, flooder.Email, benchPassword), conns: o.flood}
	return f, prober{req: req, expect: []byte(`"id":"` + wsID + `"`), rate: o.probeRate}, nil
}

// report prints one dialect's figures and verdicts. It returns false if a
// phase saw errors.
func (r result) report(w io.Writer, dialect store.Dialect, every hashRun) bool {
	fmt.Fprintf(w, "\n== %s ==\n", dialect)
	ok := r.logins.errors == 0 && r.alone.errors == 0 && r.flood.errors == 0 && r.floodDuring.errors == 0
	fmt.Fprintf(w, "bare loop, %d goroutine(s):   %7.1f hashes/s  (%.1f ms a hash)\n", r.bare.goroutines, r.bare.perSecond(), r.bare.meanMillis())
	fmt.Fprintf(w, "logins through the app:      %7.1f /s       p50 %s  p99 %s  (%d ok, %d errors)\n",
		r.logins.perSecond(), r.logins.percentile(50), r.logins.percentile(99), r.logins.ok, r.logins.errors)
	fmt.Fprintf(w, "probe alone:                 p50 %s  p99 %s  p99.9 %s  (%d requests, %d errors; GC %d cycles, %s paused)\n",
		r.alone.percentile(50), r.alone.percentile(99), r.alone.percentile(99.9), len(r.alone.latencies), r.alone.errors, r.gcAlone.cycles, r.gcAlone.pause.Round(time.Microsecond))
	fmt.Fprintf(w, "probe during the flood:      p50 %s  p99 %s  p99.9 %s  (%d requests, %d errors; GC %d cycles, %s paused)\n",
		r.flood.percentile(50), r.flood.percentile(99), r.flood.percentile(99.9), len(r.flood.latencies), r.flood.errors, r.gcIn.cycles, r.gcIn.pause.Round(time.Microsecond))
	fmt.Fprintf(w, "  the flood meanwhile:       %7.1f logins/s (%d errors)\n", r.floodDuring.perSecond(), r.floodDuring.errors)
	for _, e := range []struct {
		name string
		err  string
	}{{"logins", r.logins.firstErr}, {"probe alone", r.alone.firstErr}, {"probe during the flood", r.flood.firstErr}, {"flood", r.floodDuring.firstErr}} {
		if e.err != "" {
			fmt.Fprintf(w, "FAILED %s: first error: %s\n", e.name, e.err)
		}
	}
	fmt.Fprintf(w, "ratios by round: logins/bare %s; probe p99 flood/alone %s\n", joinRatios(r.throughputRatios), joinRatios(r.p99Ratios))
	fmt.Fprintf(w, "targets (whole run; the median of the rounds beside it):\n")
	verdict(w, fmt.Sprintf("login throughput ≥ 0.90× bare loop at the hasher's concurrency (%d)", r.bare.goroutines),
		r.logins.perSecond()/r.bare.perSecond(), median(r.throughputRatios), 0.90, true, ok)
	fmt.Fprintf(w, "  (for scale: %.2f× the bare loop on all %d cores, which would leave nothing for other requests)\n",
		r.logins.perSecond()/every.perSecond(), every.goroutines)
	verdict(w, "probe p99 during the flood ≤ 2.00× alone", float64(r.flood.percentile(99))/float64(r.alone.percentile(99)),
		median(r.p99Ratios), 2.0, false, ok)
	return ok
}

func joinRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func verdict(w io.Writer, what string, got, med, limit float64, atLeast, valid bool) {
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
	fmt.Fprintf(w, "  %s: %.2f× (median %.2f×)  %s\n", what, got, med, word)
}

// percentile returns the nearest-rank percentile p (0-100) of sorted
// latencies, rounded for printing.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(float64(n)*p/100+0.999999) - 1
	d := sorted[min(max(i, 0), n-1)]
	if d >= time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// check reads resp to the end and returns an error unless it is a 200 whose
// body contains expect (when given).
func check(resp *http.Response, expect []byte, buf *bytes.Buffer) error {
	buf.Reset()
	_, err := buf.ReadFrom(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("read body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, strings.TrimSpace(buf.String()))
	case expect != nil && !bytes.Contains(buf.Bytes(), expect):
		return fmt.Errorf("body lacks %s: %.200s", expect, buf.Bytes())
	}
	return nil
}

func sorted(xs []time.Duration) []time.Duration {
	slices.Sort(xs)
	return xs
}
