package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"

	"atrium/internal/store"
)

// maybeProfile starts the requested profiles when this is the run they cover
// and returns the function that ends them, or nil when it is not.
func maybeProfile(o options, dialect store.Dialect, scenario string, round int) (func(), error) {
	if round != 0 || !slices.Contains(strings.Split(o.profileScenario, ","), scenario) || (o.cpuprofile == "" && o.memprofile == "") {
		return nil, nil
	}
	var stops []func()
	stop := func() {
		for _, f := range stops {
			f()
		}
	}
	if o.memprofile != "" {
		if err := writeHeap(profilePath(o.memprofile, dialect, scenario, "before")); err != nil {
			return nil, err
		}
		after := profilePath(o.memprofile, dialect, scenario, "")
		stops = append(stops, func() {
			if err := writeHeap(after); err != nil {
				fmt.Fprintln(os.Stderr, "spine: memprofile:", err)
			}
		})
	}
	if o.cpuprofile != "" {
		f, err := os.Create(profilePath(o.cpuprofile, dialect, scenario, ""))
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		stops = append([]func(){func() { pprof.StopCPUProfile(); f.Close() }}, stops...)
	}
	return stop, nil
}

// profilePath inserts the dialect, scenario (and a suffix) before the
// extension: cpu.pprof becomes cpu.postgres.FULL.pprof.
func profilePath(path string, dialect store.Dialect, scenario, suffix string) string {
	ext := ".pprof"
	if i := strings.LastIndex(path, "."); i > strings.LastIndex(path, "/") {
		path, ext = path[:i], path[i:]
	}
	path += "." + string(dialect) + "." + scenario
	if suffix != "" {
		path += "." + suffix
	}
	return path + ext
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC() // the heap profile is as of the last GC
	return pprof.Lookup("heap").WriteTo(f, 0)
}
