package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// flood logs one person in over and over, from conns keep-alive connections.
type flood struct {
	url, body string
	conns     int
}

// loadRun is what a flood did.
type loadRun struct {
	ok, errors int
	firstErr   string
	elapsed    time.Duration
	latencies  []time.Duration
}

func (r *loadRun) add(o loadRun) {
	r.ok += o.ok
	r.errors += o.errors
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
}

func (r loadRun) perSecond() float64                 { return float64(r.ok) / r.elapsed.Seconds() }
func (r loadRun) percentile(p float64) time.Duration { return percentile(r.latencies, p) }

// run sends logins for d or until ctx ends, whichever is first.
func (f flood) run(ctx context.Context, d time.Duration) loadRun {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: f.conns, DisableCompression: true}}
	defer client.CloseIdleConnections()
	results := make([]loadRun, f.conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := range f.conns {
		wg.Go(func() {
			r := &results[c]
			var buf bytes.Buffer
			for time.Now().Before(deadline) && ctx.Err() == nil {
				begin := time.Now()
				err := f.login(ctx, client, &buf)
				if ctx.Err() != nil {
					return // cut short on purpose: neither a login nor an error
				}
				r.latencies = append(r.latencies, time.Since(begin))
				if err != nil {
					r.errors++
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
					continue
				}
				r.ok++
			}
		})
	}
	wg.Wait()
	out := loadRun{elapsed: time.Since(start)}
	for _, r := range results {
		out.ok += r.ok
		out.errors += r.errors
		if out.firstErr == "" {
			out.firstErr = r.firstErr
		}
		out.latencies = append(out.latencies, r.latencies...)
	}
	out.latencies = sorted(out.latencies)
	return out
}

func (f flood) login(ctx context.Context, client *http.Client, buf *bytes.Buffer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, strings.NewReader(f.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	return check(resp, nil, buf)
}

// prober sends one cheap authenticated request at a fixed rate.
type prober struct {
	req    *http.Request
	expect []byte
	rate   int
}

// probeRun is what a probe saw: every request's latency from when it was
// due, sorted.
type probeRun struct {
	latencies []time.Duration
	errors    int
	firstErr  string
}

func (r *probeRun) add(o probeRun) {
	r.latencies = append(r.latencies, o.latencies...)
	r.errors += o.errors
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}

func (r probeRun) percentile(p float64) time.Duration { return percentile(r.latencies, p) }

// run sends rate requests a second for d, each in its own goroutine at its
// due time, whether or not earlier ones have been answered (an open loop).
func (p prober) run(ctx context.Context, d time.Duration) probeRun {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	defer client.CloseIdleConnections()
	interval := time.Second / time.Duration(p.rate)
	n := int(d / interval)
	latencies := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		if ctx.Err() != nil {
			n = i
			break
		}
		wg.Go(func() {
			var buf bytes.Buffer
			resp, err := client.Do(p.req)
			if err == nil {
				err = check(resp, p.expect, &buf)
			}
			latencies[i], errs[i] = time.Since(due), err
		})
	}
	wg.Wait()
	out := probeRun{latencies: sorted(latencies[:n])}
	for _, err := range errs[:n] {
		if err != nil {
			out.errors++
			if out.firstErr == "" {
				out.firstErr = err.Error()
			}
		}
	}
	return out
}
