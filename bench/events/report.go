package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// verdict prints one target beside what was measured. A target that is not
// met is reported, never fatal: speed depends on the machine.
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
	fmt.Fprintf(w, "  %s: %s  %s\n", what, trimFloat(got), word)
}

func trimFloat(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
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

// spread is "min–max" of xs in format f, the honest width of a figure on a
// shared machine.
func spread(xs []float64, f string) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf(f+"–"+f, slices.Min(xs), slices.Max(xs))
}

// list formats xs one by one in format f.
func list(xs []float64, f string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(f, x)
	}
	return strings.Join(parts, " ")
}

// percentile returns the nearest-rank percentile p (0-100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(float64(n)*p/100+0.999999) - 1
	return sorted[min(max(i, 0), n-1)]
}

// roundDur trims a duration to about three significant figures.
func roundDur(d time.Duration) time.Duration {
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

// profiler writes a CPU profile of the named runs when asked to: the first
// run of each listed scenario, to path with the dialect and the scenario
// inserted before the extension (cpu.pprof → cpu.sqlite.EVENTS-1.pprof).
type profiler struct {
	path      string
	scenarios []string
	done      map[string]bool
}

func newProfiler(path, scenarios string) *profiler {
	return &profiler{path: path, scenarios: strings.Split(scenarios, ","), done: map[string]bool{}}
}

// start begins profiling scenario on dialect if it is wanted and not yet
// profiled, and returns the function that stops it (a no-op otherwise).
func (p *profiler) start(dialect, scenario string) func() {
	key := dialect + "." + scenario
	if p == nil || p.path == "" || p.done[key] || !slices.Contains(p.scenarios, scenario) {
		return func() {}
	}
	p.done[key] = true
	path, ext := p.path, ".pprof"
	if i := strings.LastIndex(path, "."); i > strings.LastIndex(path, "/") {
		path, ext = path[:i], path[i:]
	}
	path += "." + key + ext
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "events bench: cpuprofile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		fmt.Fprintln(os.Stderr, "events bench: cpuprofile:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		fmt.Fprintf(os.Stderr, "events bench: CPU profile of %s on %s in %s\n", scenario, dialect, path)
	}
}
