package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
	"atrium/internal/testkit"
)

// plans gives every workspace of the run the same api_calls_per_hour: high
// enough that no call is refused, so every request is counted and answered
// alike in each scenario.
type plans struct{ perHour int64 }

func (p plans) Limit(context.Context, uuid.UUID, string) (int64, error) { return p.perHour, nil }

// perHour is the plan of the run: the most the middleware counts (3,600,000
// an hour, a burst of 60,000 a minute), far above what one workspace of
// -workspaces gets in a run.
const perHour = 3_600_000

// server is the HTTP layer of one scenario on loopback: the whole middleware
// chain of httpapi.NewHandler with testkit.TestAuth (an API key that costs no
// store read) and one workspace route that does no work of its own, so that
// the limiter's share of a request is as large as it can be.
func server(limiter ratelimit.Limiter) *httptest.Server {
	type pingInput struct {
		WorkspaceID string `path:"workspace_id"`
	}
	type pingOutput struct {
		Body struct {
			WorkspaceID string `json:"workspace_id"`
		}
	}
	ping := func(api huma.API) {
		huma.Get(api, "/api/v1/workspaces/{workspace_id}/ping", func(_ context.Context, in *pingInput) (*pingOutput, error) {
			out := &pingOutput{}
			out.Body.WorkspaceID = in.WorkspaceID
			return out, nil
		})
	}
	d := httpapi.Deps{Logger: testkit.DiscardLogger(), Auth: testkit.TestAuth{}, Routes: []func(huma.API){ping}}
	if limiter != nil {
		d.RateLimiter, d.PlanLimits = limiter, plans{perHour: perHour}
	}
	return httptest.NewServer(httpapi.NewHandler(d))
}

// target is one scenario as the load generator sees it: a prebuilt request
// per workspace and the bytes its answer must contain.
type target struct {
	name     string
	limited  bool // answers must carry X-RateLimit-Remaining
	requests []*http.Request
	expect   [][]byte
}

func newTarget(name, base string, limited bool, workspaces []uuid.UUID) (target, error) {
	t := target{name: name, limited: limited}
	for _, ws := range workspaces {
		wsID := kernel.FormatID(kernel.PrefixWorkspace, ws)
		req, err := http.NewRequest(http.MethodGet, base+"/api/v1/workspaces/"+wsID+"/ping", nil)
		if err != nil {
			return target{}, err
		}
		req.Header.Set("Authorization", testkit.KeyFor(ws))
		t.requests = append(t.requests, req)
		t.expect = append(t.expect, []byte(`"workspace_id":"`+wsID+`"`))
	}
	return t, nil
}

// newClient returns the keep-alive client every scenario uses.
func newClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        concurrency * 4,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

// sample is what one or more load runs of a scenario observed.
type sample struct {
	requests  int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration
	perRound  []float64
	cpu       time.Duration // user+system CPU of this whole process, load generator included
	redisCPU  time.Duration // user+system CPU of the Redis server
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
	s.redisCPU += o.redisCPU
}

// cpuPerRequest is the CPU time per request of this process and of the
// Redis server, in microseconds.
func (s sample) cpuPerRequest() (process, redis float64) {
	if s.requests == 0 {
		return 0, 0
	}
	n := float64(s.requests)
	return float64(s.cpu.Microseconds()) / n, float64(s.redisCPU.Microseconds()) / n
}

func (s sample) throughput() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.requests) / s.elapsed.Seconds()
}

// percentile returns the nearest-rank percentile p (0-100) of the sorted
// latencies.
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

// serverCPU reads the CPU time a Redis server has used (INFO cpu), or zero
// without one.
func serverCPU(ctx context.Context, client *redis.Client) time.Duration {
	if client == nil {
		return 0
	}
	info, err := client.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for line := range strings.Lines(info) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_user" || name == "used_cpu_sys") {
			v, _ := strconv.ParseFloat(value, 64)
			total += v
		}
	}
	return time.Duration(total * float64(time.Second))
}

// runLoad drives t from concurrency workers in a closed loop for d, each
// drawing workspaces from its own generator seeded with (seed, worker), and
// counts the CPU this process and the Redis server behind rdb (when not nil)
// spent meanwhile.
func runLoad(ctx context.Context, client *http.Client, rdb *redis.Client, t target, concurrency int, d time.Duration, seed uint64) sample {
	results := make([]sample, concurrency)
	var wg sync.WaitGroup
	cpuBefore, redisBefore := processCPU(), serverCPU(ctx, rdb)
	start := time.Now()
	deadline := start.Add(d)
	for w := range concurrency {
		wg.Go(func() {
			results[w] = work(client, t, deadline, rand.New(rand.NewPCG(seed, uint64(w))))
		})
	}
	wg.Wait()
	out := sample{elapsed: time.Since(start), cpu: processCPU() - cpuBefore}
	if rdb != nil {
		out.redisCPU = serverCPU(ctx, rdb) - redisBefore
	}
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
		err := expect(client, t.requests[i], t.expect[i], t.limited, &buf)
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

// expect sends req and checks for a 200 whose body contains want and, when
// limited, the rate-limit headers: a scenario whose limiter was skipped or
// refused calls measures nothing.
func expect(client *http.Client, req *http.Request, want []byte, limited bool, buf *bytes.Buffer) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("read body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, buf.Bytes())
	case !bytes.Contains(buf.Bytes(), want):
		return fmt.Errorf("body lacks %s: %.200s", want, buf.Bytes())
	case limited != (resp.Header.Get("X-RateLimit-Remaining") != ""):
		return fmt.Errorf("X-RateLimit-Remaining %q on a scenario limited=%t", resp.Header.Get("X-RateLimit-Remaining"), limited)
	}
	return nil
}

// hitLoad counts events on limiter directly, one Hit at a time from each of
// concurrency goroutines for d, each on the keys in its own random order,
// and returns the Hits a second.
func hitLoad(ctx context.Context, limiter ratelimit.Limiter, keys []string, concurrency int, d time.Duration) (perSecond float64, err error) {
	hour := ratelimit.Limit{Events: perHour, Window: time.Hour}
	var wg sync.WaitGroup
	counts := make([]int, concurrency)
	errs := make([]error, concurrency)
	start := time.Now()
	deadline := start.Add(d)
	for w := range concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(1, uint64(w)))
			for time.Now().Before(deadline) {
				if _, err := limiter.Hit(ctx, keys[rng.IntN(len(keys))], hour); err != nil {
					errs[w] = err
					return
				}
				counts[w]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for w := range concurrency {
		if errs[w] != nil {
			return 0, errs[w]
		}
		total += counts[w]
	}
	return float64(total) / elapsed.Seconds(), nil
}
