package main

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"atrium/bench/benchkit"
	"atrium/internal/kernel"
)

// target is one scenario as the load generator sees it: a prebuilt request per
// seeded workspace, and the bytes each response body must contain. The
// requests are built once and only read afterwards (http.Client and
// http.Transport do not modify a request), so the client spends the same small
// effort per request on every scenario.
type target struct {
	name     string
	requests []*http.Request
	expect   [][]byte
}

// newTarget builds a target whose request for workspace ids[i] is
// GET base+path(id), carrying the credential header auth(i) names.
func newTarget(name, base string, path func(id string) string, ids []uuid.UUID, auth func(i int) (header, value string)) (target, error) {
	t := target{name: name}
	for i, id := range ids {
		wsID := kernel.FormatID(kernel.PrefixWorkspace, id)
		req, err := http.NewRequest(http.MethodGet, base+path(wsID), nil)
		if err != nil {
			return target{}, err
		}
		req.Header.Set(auth(i))
		req.Header.Set("Accept", "application/json")
		t.requests = append(t.requests, req)
		t.expect = append(t.expect, []byte(`"id":"`+wsID+`"`))
	}
	return t, nil
}

// newClient returns the keep-alive client all scenarios use: one transport,
// enough idle connections that no worker ever dials twice.
func newClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        concurrency * 4,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// sample is what one or more load runs of a scenario observed.
type sample struct {
	requests  int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration
	perRound  []float64     // requests per second of each measured run
	cpu       time.Duration // user+system CPU time of the whole process, client included
	mallocs   uint64        // heap allocations in the whole process, client included
	heapBytes uint64        // bytes allocated likewise
}

func (s *sample) add(o sample) {
	s.requests += o.requests
	s.errors += o.errors
	if s.firstErr == "" {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.latencies = append(s.latencies, o.latencies...)
	s.perRound = append(s.perRound, o.throughput())
	s.cpu += o.cpu
	s.mallocs += o.mallocs
	s.heapBytes += o.heapBytes
}

// perRequest divides a process-wide allocation count by the requests served.
// The client's share is the same in every scenario, so differences between
// scenarios are the servers'.
func (s sample) perRequest(n uint64) float64 {
	if s.requests == 0 {
		return 0
	}
	return float64(n) / float64(s.requests)
}

// cpuPerRequest is the process's CPU time per request, in microseconds.
func (s sample) cpuPerRequest() float64 {
	return s.perRequest(uint64(s.cpu.Nanoseconds())) / 1000
}

func (s sample) throughput() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests) / s.elapsed.Seconds()
}

// percentile returns the nearest-rank percentile p (0-100) of the latencies,
// which must be sorted.
func (s sample) percentile(p float64) time.Duration {
	n := len(s.latencies)
	if n == 0 {
		return 0
	}
	i := int(float64(n)*p/100+0.999999) - 1
	return s.latencies[min(max(i, 0), n-1)]
}

// processCPU is the CPU time this process has used, in user and kernel mode.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runLoad drives t with concurrency workers for d. Worker w draws workspaces
// from its own generator seeded with (seed, w), so every scenario sees the
// same sequence of rows. Every latency is kept; the run's elapsed time runs
// until the last in-flight request has finished.
func runLoad(client *http.Client, t target, concurrency int, d time.Duration, seed uint64) sample {
	results := make([]sample, concurrency)
	var wg sync.WaitGroup
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpuBefore := processCPU()
	start := time.Now()
	deadline := start.Add(d)
	for w := range concurrency {
		wg.Go(func() {
			results[w] = work(client, t, deadline, rand.New(rand.NewPCG(seed, uint64(w))))
		})
	}
	wg.Wait()
	out := sample{elapsed: time.Since(start), cpu: processCPU() - cpuBefore}
	runtime.ReadMemStats(&after)
	out.mallocs = after.Mallocs - before.Mallocs
	out.heapBytes = after.TotalAlloc - before.TotalAlloc
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

func work(client *http.Client, t target, deadline time.Time, rng *rand.Rand) sample {
	s := sample{latencies: make([]time.Duration, 0, 1<<15)}
	var buf bytes.Buffer
	for {
		i := rng.IntN(len(t.requests))
		begin := time.Now()
		if !begin.Before(deadline) {
			return s
		}
		err := benchkit.Expect(client, t.requests[i], t.expect[i], &buf)
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
