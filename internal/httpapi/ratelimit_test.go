package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
	"atrium/internal/ratelimit/fallback"
	"atrium/internal/ratelimit/memlimit"
	"atrium/internal/ratelimit/redislimit"
	"atrium/internal/testkit"
)

// fixedPlans is a stand-in for billing.Entitlements: each workspace's
// api_calls_per_hour, fixed when the test starts.
type fixedPlans map[uuid.UUID]int64

func (p fixedPlans) Limit(_ context.Context, workspaceID uuid.UUID, metric string) (int64, error) {
	if metric != "api_calls_per_hour" {
		return 0, fmt.Errorf("fixedPlans: no metric %q", metric)
	}
	limit, ok := p[workspaceID]
	if !ok {
		return 0, fmt.Errorf("fixedPlans: no plan for workspace %s", workspaceID)
	}
	return limit, nil
}

// limiterFactory returns a fresh limiter on a fresh fake clock.
type limiterFactory func(t *testing.T) (ratelimit.Limiter, *testkit.Clock)

// forEachLimiter runs fn over the in-process limiter and over Redis (skipped
// without ATRIUM_TEST_REDIS_URL, failed without it when
// ATRIUM_REQUIRE_REDIS=1).
func forEachLimiter(t *testing.T, fn func(t *testing.T, newLimiter limiterFactory)) {
	t.Run("memlimit", func(t *testing.T) {
		fn(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) {
			clock := testkit.NewClock()
			return memlimit.New(clock), clock
		})
	})
	t.Run("redis", func(t *testing.T) {
		u := os.Getenv("ATRIUM_TEST_REDIS_URL")
		if u == "" {
			if os.Getenv("ATRIUM_REQUIRE_REDIS") == "1" {
				t.Fatal("ATRIUM_REQUIRE_REDIS=1 but ATRIUM_TEST_REDIS_URL is not set")
			}
			t.Skip("Redis tests skipped: set ATRIUM_TEST_REDIS_URL=redis://127.0.0.1:6379/15 (or run: eval \"$(bash .ci/setup-services)\")")
		}
		client, err := redislimit.Open(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		var b [6]byte
		_, _ = rand.Read(b[:])
		prefix := redislimit.KeyPrefix + "test:" + hex.EncodeToString(b[:]) + ":"
		fn(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) {
			clock := testkit.NewClock()
			return redislimit.NewWithPrefix(client, clock, prefix), clock
		})
	})
}

// limitedAPI is the HTTP layer with the plan rate limit over a limiter, one
// workspace route (GET …/ping) and testkit.TestAuth for callers.
type limitedAPI struct {
	url   string
	clock *testkit.Clock
}

func newLimitedAPI(t *testing.T, newLimiter limiterFactory, plans fixedPlans) limitedAPI {
	t.Helper()
	limiter, clock := newLimiter(t)
	type pingInput struct {
		WorkspaceID string `path:"workspace_id"`
	}
	type pingOutput struct {
		Body struct {
			OK bool `json:"ok"`
		}
	}
	ping := func(api huma.API) {
		huma.Get(api, "/api/v1/workspaces/{workspace_id}/ping", func(context.Context, *pingInput) (*pingOutput, error) {
			out := &pingOutput{}
			out.Body.OK = true
			return out, nil
		})
	}
	srv := httptest.NewServer(httpapi.NewHandler(httpapi.Deps{Logger: testkit.DiscardLogger(), Auth: testkit.TestAuth{},
		RateLimiter: limiter, PlanLimits: plans, Routes: []func(huma.API){ping}}))
	t.Cleanup(srv.Close)
	return limitedAPI{url: srv.URL, clock: clock}
}

func pingPath(workspaceID uuid.UUID) string {
	return "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + "/ping"
}

func bearerOf(workspaceID uuid.UUID) map[string]string {
	return map[string]string{"Authorization": testkit.KeyFor(workspaceID)}
}

// assertLimitHeaders checks the three X-RateLimit headers; reset is a range
// of seconds, since rounding up may add one.
func assertLimitHeaders(t *testing.T, r response, limit, remaining int, resetMin, resetMax int64) {
	t.Helper()
	h := r.header
	if got := h.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Fatalf("X-RateLimit-Limit %q, want %d (status %d)", got, limit, r.status)
	}
	if got := h.Get("X-RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		t.Fatalf("X-RateLimit-Remaining %q, want %d (status %d)", got, remaining, r.status)
	}
	reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil || reset < resetMin || reset > resetMax {
		t.Fatalf("X-RateLimit-Reset %q, want %d to %d seconds", h.Get("X-RateLimit-Reset"), resetMin, resetMax)
	}
}

func assertNoLimitHeaders(t *testing.T, r response) {
	t.Helper()
	for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"} {
		if v := r.header.Get(name); v != "" {
			t.Fatalf("%s: %q on an answer that is not limited", name, v)
		}
	}
}

// TestPlanRateLimits runs each scenario of the plan rate limit over memlimit
// and over Redis.
func TestPlanRateLimits(t *testing.T) {
	scenarios := []struct {
		name string
		fn   func(t *testing.T, newLimiter limiterFactory)
	}{
		{"AllowedAnswersCarryTheTighterBucket", planLimitAllowedAnswersCarryTheTighterBucket},
		{"BurstAnswers429", planLimitBurstAnswers429},
		{"HourBucket", planLimitHourBucket},
		{"UnlimitedPlan", planLimitUnlimitedPlan},
		{"PlanWithoutAPICalls", planLimitPlanWithoutAPICalls},
		{"CookieCallsAreNotLimited", planLimitCookieCallsAreNotLimited},
		{"WorkspacesAreIndependent", planLimitWorkspacesAreIndependent},
	}
	forEachLimiter(t, func(t *testing.T, newLimiter limiterFactory) {
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				sc.fn(t, newLimiter)
			})
		}
	})
}

// planLimitAllowedAnswersCarryTheTighterBucket checks the headers of admitted
// calls: the minute's bucket, tighter than the hour's, and on every answer of
// a limited route.
func planLimitAllowedAnswersCarryTheTighterBucket(t *testing.T, newLimiter limiterFactory) {
	ws := kernel.NewID()
	api := newLimitedAPI(t, newLimiter, fixedPlans{ws: 1000}) // a burst of 50 a minute
	r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
	if r.status != http.StatusOK || r.body["ok"] != true {
		t.Fatalf("first call: %d %s", r.status, r.raw)
	}
	// The minute's bucket is the tighter: 49 left of 50, whole again
	// in one interval (1.2s).
	assertLimitHeaders(t, r, 50, 49, 2, 2)
	if r.header.Get("Retry-After") != "" {
		t.Fatal("Retry-After on an admitted call")
	}
	// An unknown route inside the workspace is a limited answer too.
	r = call(t, api.url, "GET", pingPath(ws)+"/nothing", bearerOf(ws), "")
	assertEnvelope(t, r, http.StatusNotFound, kernel.CodeNotFound)
	assertLimitHeaders(t, r, 50, 48, 3, 3)
}

// planLimitBurstAnswers429 spends the minute's burst: the next call answers
// 429 with Retry-After and the envelope, and one is admitted once Retry-After
// has passed.
func planLimitBurstAnswers429(t *testing.T, newLimiter limiterFactory) {
	ws := kernel.NewID()
	api := newLimitedAPI(t, newLimiter, fixedPlans{ws: 1000})
	for i := 1; i <= 50; i++ {
		if r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), ""); r.status != http.StatusOK {
			t.Fatalf("call %d of the burst: %d %s", i, r.status, r.raw)
		}
	}
	r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
	assertEnvelope(t, r, http.StatusTooManyRequests, kernel.CodeRateLimited)
	// One call frees up every 1.2s; the whole minute's bucket in 60s.
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After %q, want 2", got)
	}
	assertLimitHeaders(t, r, 50, 0, 60, 61)
	api.clock.Advance(2 * time.Second)
	r = call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
	if r.status != http.StatusOK {
		t.Fatalf("after Retry-After: %d %s", r.status, r.raw)
	}
	assertLimitHeaders(t, r, 50, 0, 60, 61)
}

// planLimitHourBucket calls once a minute, within the burst, until the hour
// refuses.
func planLimitHourBucket(t *testing.T, newLimiter limiterFactory) {
	ws := kernel.NewID()
	// 20 an hour: a burst of one call a minute, and one call of the
	// hour back every 3 minutes. A call a minute spends the hour's 20
	// plus what comes back meanwhile: 29 calls, and the 30th is
	// refused by the hour.
	api := newLimitedAPI(t, newLimiter, fixedPlans{ws: 20})
	admitted := 0
	var r response
	for range 40 {
		r = call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
		if r.status != http.StatusOK {
			break
		}
		admitted++
		api.clock.Advance(time.Minute)
	}
	if admitted != 29 {
		t.Fatalf("%d calls admitted at one a minute, want 29; last: %d %s", admitted, r.status, r.raw)
	}
	assertEnvelope(t, r, http.StatusTooManyRequests, kernel.CodeRateLimited)
	assertLimitHeaders(t, r, 20, 0, 3600, 3601)
	// The hour's next call comes back in one interval, 3 minutes.
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 180 || retry > 181 {
		t.Fatalf("Retry-After %q, want 180 seconds", r.header.Get("Retry-After"))
	}
	if r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), ""); r.status != http.StatusTooManyRequests {
		t.Fatalf("before Retry-After: %d %s", r.status, r.raw)
	}
	api.clock.Advance(time.Duration(retry) * time.Second)
	if r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), ""); r.status != http.StatusOK {
		t.Fatalf("after Retry-After: %d %s", r.status, r.raw)
	}
}

// planLimitUnlimitedPlan checks that a plan of -1 is neither counted nor
// refused.
func planLimitUnlimitedPlan(t *testing.T, newLimiter limiterFactory) {
	ws := kernel.NewID()
	api := newLimitedAPI(t, newLimiter, fixedPlans{ws: -1})
	for i := range 100 {
		r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
		if r.status != http.StatusOK {
			t.Fatalf("call %d on an unlimited plan: %d %s", i+1, r.status, r.raw)
		}
		assertNoLimitHeaders(t, r)
	}
}

// planLimitPlanWithoutAPICalls checks that a plan of 0 calls answers 402.
func planLimitPlanWithoutAPICalls(t *testing.T, newLimiter limiterFactory) {
	ws := kernel.NewID()
	api := newLimitedAPI(t, newLimiter, fixedPlans{ws: 0})
	r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
	assertEnvelope(t, r, http.StatusPaymentRequired, kernel.CodePaymentRequired)
}

// planLimitCookieCallsAreNotLimited checks that people on their session cookie
// are not counted, nor routes outside a workspace.
func planLimitCookieCallsAreNotLimited(t *testing.T, newLimiter limiterFactory) {
	ws := kernel.NewID()
	api := newLimitedAPI(t, newLimiter, fixedPlans{ws: 20}) // a burst of one
	cookie := map[string]string{"Cookie": testkit.TestCookie + "=" + testkit.TestKeyPrefix + ws.String()}
	for i := range 5 {
		r := call(t, api.url, "GET", pingPath(ws), cookie, "")
		if r.status != http.StatusOK {
			t.Fatalf("cookie call %d: %d %s", i+1, r.status, r.raw)
		}
		assertNoLimitHeaders(t, r)
	}
	// They spent nothing of the workspace's calls.
	if r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), ""); r.status != http.StatusOK {
		t.Fatalf("bearer call after cookie calls: %d %s", r.status, r.raw)
	}
	assertEnvelope(t, call(t, api.url, "GET", pingPath(ws), bearerOf(ws), ""), http.StatusTooManyRequests, kernel.CodeRateLimited)
	// Routes outside a workspace are not limited by plan.
	r := call(t, api.url, "GET", "/healthz", bearerOf(ws), "")
	if r.status != http.StatusOK {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
	assertNoLimitHeaders(t, r)
}

// planLimitWorkspacesAreIndependent checks that one workspace over its limit
// leaves another alone.
func planLimitWorkspacesAreIndependent(t *testing.T, newLimiter limiterFactory) {
	a, b := kernel.NewID(), kernel.NewID()
	api := newLimitedAPI(t, newLimiter, fixedPlans{a: 20, b: 20})
	if r := call(t, api.url, "GET", pingPath(a), bearerOf(a), ""); r.status != http.StatusOK {
		t.Fatalf("a: %d %s", r.status, r.raw)
	}
	assertEnvelope(t, call(t, api.url, "GET", pingPath(a), bearerOf(a), ""), http.StatusTooManyRequests, kernel.CodeRateLimited)
	r := call(t, api.url, "GET", pingPath(b), bearerOf(b), "")
	if r.status != http.StatusOK {
		t.Fatalf("b after a is limited: %d %s", r.status, r.raw)
	}
	assertLimitHeaders(t, r, 1, 0, 60, 60)
}

// TestPlanRateLimitsWithRedisDown points the limiter at a port nobody
// listens on. Redis alone cannot answer, and the call is refused, never let
// through unlimited; through the fallback, as Atrium wires it, the limits go
// on from memory.
func TestPlanRateLimitsWithRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })

	t.Run("RedisAlone", func(t *testing.T) {
		ws := kernel.NewID()
		api := newLimitedAPI(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) {
			clock := testkit.NewClock()
			return redislimit.New(client, clock), clock
		}, fixedPlans{ws: 1000})
		r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
		assertEnvelope(t, r, http.StatusServiceUnavailable, kernel.CodeUnavailable)
		if r.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	})
	t.Run("ThroughTheFallback", func(t *testing.T) {
		ws := kernel.NewID()
		api := newLimitedAPI(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) {
			clock := testkit.NewClock()
			return fallback.New(redislimit.New(client, clock), memlimit.New(clock),
				fallback.Options{Name: "redis", Logger: testkit.DiscardLogger()}), clock
		}, fixedPlans{ws: 20}) // a burst of one
		r := call(t, api.url, "GET", pingPath(ws), bearerOf(ws), "")
		if r.status != http.StatusOK {
			t.Fatalf("first call with Redis down: %d %s", r.status, r.raw)
		}
		assertLimitHeaders(t, r, 1, 0, 60, 60)
		assertEnvelope(t, call(t, api.url, "GET", pingPath(ws), bearerOf(ws), ""), http.StatusTooManyRequests, kernel.CodeRateLimited)
	})
}
