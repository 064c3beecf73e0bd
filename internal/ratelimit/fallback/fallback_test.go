package fallback_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"atrium/internal/ratelimit"
	"atrium/internal/ratelimit/fallback"
	"atrium/internal/ratelimit/limittest"
	"atrium/internal/ratelimit/memlimit"
	"atrium/internal/ratelimit/redislimit"
	"atrium/internal/testkit"
)

// Environment variables that turn on the Redis tests (as in redislimit).
const (
	envRedisURL     = "ATRIUM_TEST_REDIS_URL" // such as redis://127.0.0.1:6379/15
	envRequireRedis = "ATRIUM_REQUIRE_REDIS"  // "1": fail instead of skipping without Redis
)

// redisOptions returns the options of the tests' Redis, or skips (fails when
// ATRIUM_REQUIRE_REDIS=1) with one line saying how to enable the tests.
func redisOptions(t *testing.T) *redis.Options {
	t.Helper()
	u := os.Getenv(envRedisURL)
	if u == "" {
		if os.Getenv(envRequireRedis) == "1" {
			t.Fatalf("%s=1 but %s is not set", envRequireRedis, envRedisURL)
		}
		t.Skipf("Redis tests skipped: set %s=redis://127.0.0.1:6379/15 (or run: eval \"$(bash .ci/setup-services)\")", envRedisURL)
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("%s: %v", envRedisURL, err)
	}
	return opts
}

// rig is a fallback Limiter over Redis, reached through a proxy the test
// controls, and memlimit, on one fake clock, with its log kept.
type rig struct {
	limiter *fallback.Limiter
	proxy   *proxy
	clock   *testkit.Clock
	logs    *testkit.SyncBuffer
}

func newRig(t *testing.T, o fallback.Options) rig {
	t.Helper()
	opts := redisOptions(t)
	p := startProxy(t, opts.Addr)
	opts.Addr = p.addr()
	// As Atrium builds its client: a silent Redis is noticed within the
	// fallback's timeout, not the client's ReadTimeout of seconds.
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	clock := testkit.NewClock()
	logs := &testkit.SyncBuffer{}
	o.Name = "redis"
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	primary := redislimit.NewWithPrefix(client, clock, redislimit.KeyPrefix+"test:fallback:")
	return rig{limiter: fallback.New(primary, memlimit.New(clock), o), proxy: p, clock: clock, logs: logs}
}

// TestConformance runs the limiter suite through a healthy Redis.
func TestConformance(t *testing.T) {
	r := newRig(t, fallback.Options{})
	limittest.Run(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) { return r.limiter, r.clock })
	if r.limiter.Degraded() {
		t.Fatalf("degraded with Redis up: %s", r.logs)
	}
}

// TestConformanceWithRedisDown runs the suite with a Redis client pointed at
// a port nobody listens on: every answer comes from memory, and the limits
// hold exactly as they do on Redis.
func TestConformanceWithRedisDown(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	clock := testkit.NewClock()
	logs := &testkit.SyncBuffer{}
	l := fallback.New(redislimit.New(client, clock), memlimit.New(clock),
		fallback.Options{Name: "redis", Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	limittest.Run(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) { return l, clock })
	if !l.Degraded() {
		t.Fatal("not degraded with Redis unreachable")
	}
	if n := strings.Count(logs.String(), "fall back to in-process"); n != 1 {
		t.Fatalf("the switch was logged %d times, want once:\n%s", n, logs)
	}
}

// TestRedisGoesAwayAndComesBack takes Redis away in the middle of counting:
// the limits go on from memory (never lifted), the switch is logged once,
// Ping reports it, and once Redis answers again its counts are used again.
func TestRedisGoesAwayAndComesBack(t *testing.T) {
	r := newRig(t, fallback.Options{RetryEvery: 50 * time.Millisecond})
	ctx := context.Background()
	limit := ratelimit.Limit{Events: 3, Window: time.Minute}
	run := time.Now().Format(time.RFC3339Nano)
	key, untouched := "away:"+run, "untouched:"+run
	for _, k := range []string{key, untouched} {
		for i := range limit.Events {
			if d, err := r.limiter.Hit(ctx, k, limit); err != nil || !d.Allowed {
				t.Fatalf("hit %d of %s on Redis: %+v, %v", i+1, k, d, err)
			}
		}
	}
	if err := r.limiter.Ping(ctx); err != nil {
		t.Fatalf("Ping with Redis up: %v", err)
	}

	r.proxy.setMode(refuse)
	for i := range limit.Events {
		d, err := r.limiter.Hit(ctx, key, limit)
		if err != nil || !d.Allowed {
			t.Fatalf("hit %d with Redis away: %+v, %v; want admitted from memory", i+1, d, err)
		}
	}
	if d, err := r.limiter.Hit(ctx, key, limit); err != nil || d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("hit over the limit with Redis away: %+v, %v; want refused with a RetryAfter", d, err)
	}
	if !r.limiter.Degraded() {
		t.Fatal("not degraded with Redis away")
	}
	err := r.limiter.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "degraded: redis unreachable, in-process limits in use") {
		t.Fatalf("Ping with Redis away: %v", err)
	}
	if n := strings.Count(r.logs.String(), `"level":"WARN","msg":"rate limits fall back to in-process counters`); n != 1 {
		t.Fatalf("the switch was logged %d times, want once:\n%s", n, r.logs)
	}

	// Back: a call past RetryEvery starts a probe, whose answer switches back.
	r.proxy.setMode(forward)
	for deadline := time.Now().Add(5 * time.Second); r.limiter.Degraded(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still degraded 5s after Redis came back:\n%s", r.logs)
		}
		if _, err := r.limiter.Hit(ctx, key, limit); err != nil {
			t.Fatal(err)
		}
	}
	// Memory never counted this key; Redis has it full.
	if d, err := r.limiter.Hit(ctx, untouched, limit); err != nil || d.Allowed {
		t.Fatalf("back on Redis: %+v, %v; want refused by the count Redis kept", d, err)
	}
	if err := r.limiter.Ping(ctx); err != nil {
		t.Fatalf("Ping after Redis is back: %v", err)
	}
	if n := strings.Count(r.logs.String(), `"level":"INFO","msg":"rate limits are shared again"`); n != 1 {
		t.Fatalf("the recovery was logged %d times, want once:\n%s", n, r.logs)
	}
}

// TestPingSwitchesWithoutTraffic checks that readiness alone notices Redis
// going away and coming back, with no call to count meanwhile.
func TestPingSwitchesWithoutTraffic(t *testing.T) {
	r := newRig(t, fallback.Options{})
	ctx := context.Background()
	if err := r.limiter.Ping(ctx); err != nil {
		t.Fatalf("Ping with Redis up: %v", err)
	}
	r.proxy.setMode(refuse)
	if err := r.limiter.Ping(ctx); err == nil || !r.limiter.Degraded() {
		t.Fatalf("Ping with Redis away: %v, degraded %t", err, r.limiter.Degraded())
	}
	r.proxy.setMode(forward)
	if err := r.limiter.Ping(ctx); err != nil || r.limiter.Degraded() {
		t.Fatalf("Ping with Redis back: %v, degraded %t", err, r.limiter.Degraded())
	}
	logs := r.logs.String()
	if strings.Count(logs, `"level":"WARN"`) != 1 || strings.Count(logs, `"level":"INFO","msg":"rate limits are shared again"`) != 1 {
		t.Fatalf("want one warning and one recovery line:\n%s", logs)
	}
}

// TestRedisStopsAnswering leaves the connections open but silent, the worst
// kind of outage: a call gives up after Options.Timeout, far sooner than the
// client's ReadTimeout of seconds, and later calls do not wait at all.
func TestRedisStopsAnswering(t *testing.T) {
	const timeout = 100 * time.Millisecond
	r := newRig(t, fallback.Options{Timeout: timeout, RetryEvery: time.Hour})
	ctx := context.Background()
	limit := ratelimit.Limit{Events: 2, Window: time.Minute}
	if _, err := r.limiter.Hit(ctx, "silent:warm", limit); err != nil {
		t.Fatal(err)
	}
	r.proxy.setMode(silent)
	start := time.Now()
	d, err := r.limiter.Hit(ctx, "silent:k", limit)
	if err != nil || !d.Allowed {
		t.Fatalf("first hit with Redis silent: %+v, %v; want admitted from memory", d, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the first hit with Redis silent took %s; want about %s", took, timeout)
	}
	if !r.limiter.Degraded() {
		t.Fatal("not degraded with Redis silent")
	}
	start = time.Now()
	admitted := 0
	for range 20 {
		d, err := r.limiter.Hit(ctx, "silent:k", limit)
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			admitted++
		}
	}
	if took := time.Since(start); took > timeout {
		t.Fatalf("20 hits while degraded took %s; they must not wait for Redis", took)
	}
	if admitted != limit.Events-1 {
		t.Fatalf("%d more hits admitted while degraded, want %d: the limit holds", admitted, limit.Events-1)
	}
}

// TestCallerErrorsAreNotOutages checks the errors that say nothing about the
// backend: a malformed key is refused as such, and a caller who gives up
// gets its context's error, with the limiter still on Redis.
func TestCallerErrorsAreNotOutages(t *testing.T) {
	r := newRig(t, fallback.Options{Timeout: time.Second})
	ctx := context.Background()
	limit := ratelimit.Limit{Events: 2, Window: time.Minute}
	if _, err := r.limiter.Hit(ctx, "", limit); !errors.Is(err, ratelimit.ErrKeyTooLong) {
		t.Fatalf("Hit with an empty key: %v, want ErrKeyTooLong", err)
	}
	r.proxy.setMode(silent)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := r.limiter.Hit(short, "gives-up", limit); err == nil {
		t.Fatal("Hit by a caller who gave up, with Redis silent: no error")
	}
	if r.limiter.Degraded() {
		t.Fatal("degraded by a caller's deadline")
	}
	if r.logs.String() != "" {
		t.Fatalf("logged: %s", r.logs)
	}
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// mode is what the proxy does with traffic.
type mode int

const (
	forward mode = iota // pass it on both ways
	refuse              // close every connection, and every new one at once
	silent              // keep connections open, pass nothing on
)

// proxy stands between a Redis client and the Redis the tests share, so that
// a test can take "Redis" away without touching the server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	mode   mode
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setMode(refuse)
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) current() mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// setMode switches the proxy; refuse also closes the connections open now.
func (p *proxy) setMode(m mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if m == refuse {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

func (p *proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.current() == refuse {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[server] = true, true
		p.mu.Unlock()
		go p.pump(server, client)
		go p.pump(client, server)
	}
}

// pump copies src to dst while the proxy forwards, drops what it reads while
// it is silent, and closes both when either side ends.
func (p *proxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.current() == forward {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// BenchmarkOverhead is what the fallback adds to each call of a healthy
// primary (a context with the deadline), measured over memlimit so that the
// primary itself costs next to nothing.
func BenchmarkOverhead(b *testing.B) {
	clock := testkit.NewClock()
	l := fallback.New(memlimit.New(clock), memlimit.New(clock), fallback.Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	limit := ratelimit.Limit{Events: 1000, Window: time.Millisecond * 1000 * 1000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Hit(ctx, "k", limit); err != nil {
			b.Fatal(err)
		}
	}
}
