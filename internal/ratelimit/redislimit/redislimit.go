// Package redislimit keeps rate-limit counters in Redis, for deployments that
// set ATRIUM_REDIS_URL: hot counters stay off the database, and every node
// pointed at the same Redis counts together.
//
// Every key is one string holding its TAT in microseconds (see package
// ratelimit), under the prefix atrium:rl:, expiring when its bucket empties.
// A Hit is one Lua script, so it is atomic in Redis; Peek (GET) and Reset
// (DEL) are single commands and atomic already. Time is the caller's clock,
// passed into the script, never Redis's own: the nodes and the tests agree
// on what "now" is.
package redislimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
)

// KeyPrefix starts every key this package writes.
const KeyPrefix = "atrium:rl:"

// hitScript is ratelimit.HitTAT in Lua. ARGV: now, interval, full TAT (all
// microseconds). Numbers are formatted with %.0f: Lua's tostring would print
// a 16-digit microsecond count in exponent form and lose digits. It returns
// the stored TAT.
var hitScript = redis.NewScript(`
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local now, interval, full = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat
if stored <= now then
  tat = now + interval
elseif stored + interval <= full then
  tat = stored + interval
else
  tat = full + 1
end
local ttl = math.floor((tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', ttl)
return tat
`)

// Limiter is a ratelimit.Limiter over a Redis client. It is safe for
// concurrent use.
type Limiter struct {
	client redis.UniversalClient
	clock  kernel.Clock
	prefix string
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New returns a Limiter on client that reads the time from clock
// (kernel.SystemClock when nil). Its keys start with KeyPrefix.
func New(client redis.UniversalClient, clock kernel.Clock) *Limiter {
	return NewWithPrefix(client, clock, KeyPrefix)
}

// NewWithPrefix is New with another key prefix, so that test runs sharing
// one Redis do not collide.
func NewWithPrefix(client redis.UniversalClient, clock kernel.Clock, prefix string) *Limiter {
	if clock == nil {
		clock = kernel.SystemClock{}
	}
	return &Limiter{client: client, clock: clock, prefix: prefix}
}

// Open connects to the Redis at rawURL (redis:// or rediss://) and checks it
// answers. It returns an error naming the URL's host, never its password.
func Open(ctx context.Context, rawURL string) (*redis.Client, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, errors.New("redis: the URL is not a redis:// or rediss:// URL")
	}
	// Without it go-redis ignores context deadlines: a Redis that stops
	// answering would hold every caller for the socket timeout instead of
	// the caller's deadline (fallback.Limiter gives up after 250 ms).
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	return client, nil
}

// Hit counts one event for key; see ratelimit.Limiter. It returns
// ratelimit.ErrKeyTooLong, an error for a malformed limit, or an unavailable
// *kernel.Error when Redis does not answer.
func (l *Limiter) Hit(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if err := ratelimit.Check(key, limit); err != nil {
		return ratelimit.Decision{}, err
	}
	now := l.clock.Now()
	a := ratelimit.NewHitArgs(limit, now)
	tat, err := hitScript.Run(ctx, l.client, []string{l.prefix + key},
		strconv.FormatInt(a.Now, 10), strconv.FormatInt(a.Interval, 10), strconv.FormatInt(a.Full, 10)).Int64()
	if err != nil {
		return ratelimit.Decision{}, unavailable("hit", err)
	}
	return ratelimit.HitDecision(limit, now, tat), nil
}

// Peek reports whether one more event for key would be admitted, without
// counting it. It returns the errors Hit does.
func (l *Limiter) Peek(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if err := ratelimit.Check(key, limit); err != nil {
		return ratelimit.Decision{}, err
	}
	now := l.clock.Now()
	tat, err := l.client.Get(ctx, l.prefix+key).Int64()
	if errors.Is(err, redis.Nil) {
		tat, err = 0, nil
	}
	if err != nil {
		return ratelimit.Decision{}, unavailable("peek", err)
	}
	return ratelimit.PeekDecision(limit, now, tat), nil
}

// Reset forgets key. It returns ratelimit.ErrKeyTooLong, or an unavailable
// *kernel.Error when Redis does not answer.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if key == "" || len(key) > ratelimit.MaxKeyLength {
		return ratelimit.ErrKeyTooLong
	}
	if err := l.client.Del(ctx, l.prefix+key).Err(); err != nil {
		return unavailable("reset", err)
	}
	return nil
}

func unavailable(op string, err error) error {
	return kernel.Unavailable("the rate limiter", fmt.Errorf("ratelimit: redis %s: %w", op, err))
}
