package redislimit_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"atrium/internal/ratelimit"
	"atrium/internal/ratelimit/limittest"
	"atrium/internal/ratelimit/redislimit"
	"atrium/internal/testkit"
)

// Environment variables that turn on the Redis tests.
const (
	envRedisURL     = "ATRIUM_TEST_REDIS_URL" // such as redis://127.0.0.1:6379/15
	envRequireRedis = "ATRIUM_REQUIRE_REDIS"  // "1": fail instead of skipping without Redis
)

// redisURL returns the Redis of the tests, or skips (fails when
// ATRIUM_REQUIRE_REDIS=1, as CI sets) with one line saying how to enable them.
func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv(envRedisURL)
	if u == "" {
		if os.Getenv(envRequireRedis) == "1" {
			t.Fatalf("%s=1 but %s is not set", envRequireRedis, envRedisURL)
		}
		t.Skipf("Redis tests skipped: set %s=redis://127.0.0.1:6379/15 (or run: eval \"$(bash .ci/setup-services)\")", envRedisURL)
	}
	return u
}

func TestConformance(t *testing.T) {
	client, err := redislimit.Open(context.Background(), redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	clock := testkit.NewClock()
	// limittest gives every run its own keys; the prefix keeps them apart
	// from a deployment's, should the URL point at one.
	l := redislimit.NewWithPrefix(client, clock, redislimit.KeyPrefix+"test:")
	limittest.Run(t, func(*testing.T) (ratelimit.Limiter, *testkit.Clock) { return l, clock })
}

func TestOpenRefusesBadURLsWithoutEchoingThem(t *testing.T) {
	_, err := redislimit.Open(context.Background(), "http://user:s3cret@example.com")
	if err == nil {
		t.Fatal("an http URL was accepted")
	}
	if got := err.Error(); strings.Contains(got, "s3cret") {
		t.Fatalf("the error shows the password: %s", got)
	}
}
