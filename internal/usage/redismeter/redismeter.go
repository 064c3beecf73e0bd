// Package redismeter keeps a usage.Meter's live counters in Redis, for
// deployments that set ATRIUM_REDIS_URL: every node adds its flushes to the
// same counters, so all nodes see the same live count within a flush, and
// the store keeps the history.
//
// A flush (Add) takes three steps:
//
//  1. One Lua script per 500 counters adds the deltas (INCRBY), marks each
//     counter dirty (a set of counters the store may lag) and records the
//     batch's ID, atomically: a batch retried after an error whose outcome
//     was unknown finds its ID and adds nothing again. A counter Redis does
//     not hold (new, or lost by a Redis restart) is first seeded with the
//     store's total.
//  2. The counters' new totals are written to the store as history, never
//     lowering a row (storemeter.Counters.Raise): writing a total twice, or
//     an older one after a newer one, changes nothing.
//  3. A counter whose Redis total is still the one written is no longer
//     dirty.
//
// A node that dies between the steps loses nothing and counts nothing
// twice: its increments are in Redis from step 1 on, and whichever node
// sweeps the dirty set next (every node does every 10 seconds, see Sweep)
// writes them to the store. A store that fails at step 2 delays the history,
// not the flush. What Redis itself loses is lost: run it with persistence
// (appendonly) to lose nothing; without, a Redis restart loses the
// increments of the last flushes that the store had not yet received (step
// 2 follows step 1 by milliseconds, so usually none).
//
// Every key starts with the prefix, whose {hash tag} keeps all of them in one
// slot of a Redis Cluster, as the scripts need.
package redismeter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/usage"
	"atrium/internal/usage/storemeter"
)

// KeyPrefix starts every key this package writes.
const KeyPrefix = "atrium:{usage}:"

const (
	// chunk is how many counters one script call carries.
	chunk = 500
	// batchTTL is how long a batch's ID is remembered.
	batchTTL = 24 * time.Hour
	// keepAfterPeriod is how long a counter stays in Redis after its
	// period ends; the store answers for it after that.
	keepAfterPeriod = 7 * 24 * time.Hour
	// sweepEvery is how often a node writes the dirty counters it finds to
	// the store, whoever counted them.
	sweepEvery = 10 * time.Second
	// sweepCount is how many dirty counters one sweep takes.
	sweepCount = 1000
)

// applyScript is step 1. KEYS: the batch's marker, the dirty set, then the
// counters. ARGV: the marker's TTL in seconds, then four per counter: the
// delta, the seed ("" for none), its TTL in seconds and its member in the
// dirty set. It answers {0, totals} when it applied the
// batch, {1, totals} when the batch was applied before (-1 for a counter no
// longer held), or {2, indexes} naming the counters (from 1) that need a
// seed, having changed nothing.
var applyScript = redis.NewScript(`
local n = #KEYS - 2
local out = {}
if redis.call('EXISTS', KEYS[1]) == 1 then
  for i = 1, n do out[i] = tonumber(redis.call('GET', KEYS[i+2]) or '-1') end
  return {1, out}
end
local missing = {}
for i = 1, n do
  if ARGV[3+4*(i-1)] == '' and redis.call('EXISTS', KEYS[i+2]) == 0 then missing[#missing+1] = i end
end
if #missing > 0 then return {2, missing} end
for i = 1, n do
  local a, k = 2+4*(i-1), KEYS[i+2]
  if redis.call('EXISTS', k) == 0 then redis.call('SET', k, ARGV[a+1]) end
  out[i] = redis.call('INCRBY', k, ARGV[a])
  redis.call('EXPIRE', k, ARGV[a+2])
  redis.call('SADD', KEYS[2], ARGV[a+3])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return {0, out}
`)

// cleanScript is step 3. KEYS: the dirty set, then the counters. ARGV: the
// totals written to the store, then the counters' members. A counter that
// grew since (or expired) is left dirty (or removed).
var cleanScript = redis.NewScript(`
local n = #KEYS - 1
local removed = 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i+1])
  if (not v) or tonumber(v) <= tonumber(ARGV[i]) then
    removed = removed + redis.call('SREM', KEYS[1], ARGV[n+i])
  end
end
return removed
`)

// Options configures New.
type Options struct {
	// Prefix replaces KeyPrefix, so that test runs sharing one Redis do not
	// collide; it must hold a {hash tag}.
	Prefix string
	Clock  kernel.Clock
	Logger *slog.Logger
}

// Counters is usage.Counters in Redis, with the store as history. It is
// safe for concurrent use.
type Counters struct {
	client redis.UniversalClient
	store  *storemeter.Counters
	prefix string
	clock  kernel.Clock
	logger *slog.Logger

	mu    sync.Mutex // guards swept
	swept time.Time
}

var _ usage.Counters = (*Counters)(nil)

// New returns Counters in client's Redis that write their history to db.
func New(client redis.UniversalClient, db store.SystemDB, opts Options) *Counters {
	c := &Counters{client: client, store: storemeter.New(db), prefix: opts.Prefix, clock: opts.Clock, logger: opts.Logger}
	if c.prefix == "" {
		c.prefix = KeyPrefix
	}
	if c.clock == nil {
		c.clock = kernel.SystemClock{}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

func (c *Counters) counterKey(k usage.Key) string {
	return c.prefix + "c:" + k.WorkspaceID.String() + ":" + k.Metric + ":" + strconv.FormatInt(k.PeriodStart.UnixMicro(), 10)
}

func (c *Counters) dirtyKey() string { return c.prefix + "dirty" }

// member names a counter in the dirty set, with what the store needs.
func member(k usage.Key) string {
	return k.WorkspaceID.String() + "|" + k.Metric + "|" + strconv.FormatInt(k.PeriodStart.UnixMicro(), 10) + "|" +
		strconv.FormatInt(k.PeriodEnd.UnixMicro(), 10)
}

func parseMember(s string) (usage.Key, error) {
	parts := strings.Split(s, "|")
	if len(parts) != 4 {
		return usage.Key{}, fmt.Errorf("redismeter: malformed dirty counter %q", s)
	}
	ws, err := uuid.Parse(parts[0])
	if err != nil {
		return usage.Key{}, fmt.Errorf("redismeter: malformed dirty counter %q", s)
	}
	start, err1 := strconv.ParseInt(parts[2], 10, 64)
	end, err2 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil {
		return usage.Key{}, fmt.Errorf("redismeter: malformed dirty counter %q", s)
	}
	return usage.Key{WorkspaceID: ws, Metric: parts[1], PeriodStart: time.UnixMicro(start).UTC(), PeriodEnd: time.UnixMicro(end).UTC()}, nil
}

// Add adds a batch once and returns the totals all nodes see; see the
// package comment for its steps. It returns an unavailable error when Redis
// fails (the batch may or may not have been applied) and the store's error
// when a counter's seed cannot be read; a store that fails to take the
// history is logged, and the counters stay dirty for a later sweep.
func (c *Counters) Add(ctx context.Context, batchID uuid.UUID, deltas []usage.Delta) ([]int64, error) {
	totals := make([]int64, 0, len(deltas))
	for i := 0; i*chunk < len(deltas); i++ {
		part := deltas[i*chunk : min((i+1)*chunk, len(deltas))]
		got, err := c.apply(ctx, c.prefix+"b:"+batchID.String()+":"+strconv.Itoa(i), part)
		if err != nil {
			return nil, err
		}
		totals = append(totals, got...)
	}
	keys := make([]usage.Key, len(deltas))
	for i, d := range deltas {
		keys[i] = d.Key
	}
	if err := c.persist(ctx, keys, totals); err != nil {
		c.logger.Warn("redismeter: the store did not take the counters' history; a sweep will retry", "counters", len(keys), "error", err.Error())
	}
	c.maybeSweep(ctx)
	return totals, nil
}

// apply runs step 1 for one chunk, seeding from the store the counters
// Redis lacks.
func (c *Counters) apply(ctx context.Context, marker string, deltas []usage.Delta) ([]int64, error) {
	keys := make([]string, 0, len(deltas)+2)
	keys = append(keys, marker, c.dirtyKey())
	args := make([]any, 0, 1+4*len(deltas))
	args = append(args, int64(batchTTL/time.Second))
	for _, d := range deltas {
		keys = append(keys, c.counterKey(d.Key))
		args = append(args, d.N, "", c.ttl(d.Key), member(d.Key))
	}
	for attempt := 0; attempt < 3; attempt++ {
		reply, err := applyScript.Run(ctx, c.client, keys, args...).Slice()
		if err != nil {
			return nil, kernel.Unavailable("redis", fmt.Errorf("redismeter: add: %w", err))
		}
		status, _ := reply[0].(int64)
		values, _ := reply[1].([]any)
		switch status {
		case 0, 1:
			return c.totalsOf(ctx, deltas, values)
		case 2:
			if err := c.seed(ctx, deltas, values, args); err != nil {
				return nil, err
			}
		default:
			return nil, kernel.Internal(fmt.Errorf("redismeter: the add script answered %v", reply))
		}
	}
	return nil, kernel.Unavailable("redis", errors.New("redismeter: counters kept vanishing while being seeded"))
}

// ttl is how long Redis keeps a counter from now: until keepAfterPeriod
// after its period ends, by the clock (Redis's own may differ), and at
// least an hour.
func (c *Counters) ttl(k usage.Key) int64 {
	return int64(max(k.PeriodEnd.Add(keepAfterPeriod).Sub(c.clock.Now()), time.Hour) / time.Second)
}

// seed puts the store's totals of the counters Redis lacks (indexes, from
// 1) into the script's arguments.
func (c *Counters) seed(ctx context.Context, deltas []usage.Delta, indexes []any, args []any) error {
	keys := make([]usage.Key, len(indexes))
	for j, v := range indexes {
		i, _ := v.(int64)
		if i < 1 || int(i) > len(deltas) {
			return kernel.Internal(fmt.Errorf("redismeter: the add script named counter %v of %d", v, len(deltas)))
		}
		keys[j] = deltas[i-1].Key
	}
	totals, err := c.store.Totals(ctx, keys)
	if err != nil {
		return fmt.Errorf("redismeter: seed %d counters: %w", len(keys), err)
	}
	for j, v := range indexes {
		args[2+4*(int(v.(int64))-1)] = totals[j]
	}
	return nil
}

// totalsOf reads the script's totals; -1 (a counter of a batch applied
// before that Redis no longer holds) is read from the store.
func (c *Counters) totalsOf(ctx context.Context, deltas []usage.Delta, values []any) ([]int64, error) {
	if len(values) != len(deltas) {
		return nil, kernel.Internal(fmt.Errorf("redismeter: %d totals for %d counters", len(values), len(deltas)))
	}
	totals := make([]int64, len(values))
	for i, v := range values {
		totals[i], _ = v.(int64)
		if totals[i] < 0 {
			n, err := c.store.Total(ctx, deltas[i].Key)
			if err != nil {
				return nil, err
			}
			totals[i] = n
		}
	}
	return totals, nil
}

// persist runs steps 2 and 3 for counters whose Redis totals are totals.
func (c *Counters) persist(ctx context.Context, keys []usage.Key, totals []int64) error {
	if len(keys) == 0 {
		return nil
	}
	if err := c.store.Raise(ctx, keys, totals); err != nil {
		return err
	}
	for from := 0; from < len(keys); from += chunk {
		to := min(from+chunk, len(keys))
		redisKeys := make([]string, 0, to-from+1)
		redisKeys = append(redisKeys, c.dirtyKey())
		args := make([]any, 0, 2*(to-from))
		for i := from; i < to; i++ {
			redisKeys = append(redisKeys, c.counterKey(keys[i]))
			args = append(args, totals[i])
		}
		for i := from; i < to; i++ {
			args = append(args, member(keys[i]))
		}
		if err := cleanScript.Run(ctx, c.client, redisKeys, args...).Err(); err != nil {
			return kernel.Unavailable("redis", fmt.Errorf("redismeter: clean: %w", err))
		}
	}
	return nil
}

// maybeSweep sweeps when this node has not for sweepEvery.
func (c *Counters) maybeSweep(ctx context.Context) {
	c.mu.Lock()
	now := c.clock.Now()
	due := now.Sub(c.swept) >= sweepEvery || now.Before(c.swept)
	if due {
		c.swept = now
	}
	c.mu.Unlock()
	if !due {
		return
	}
	if _, err := c.Sweep(ctx); err != nil {
		c.logger.Warn("redismeter: sweep the dirty counters", "error", err.Error())
	}
}

// Sweep writes to the store up to 1,000 dirty counters, whichever node
// counted them: those a node left dirty by dying between Redis and the
// store, or that the store refused. Every node calls it every 10 seconds
// from Add; calling it more is harmless. It returns how many counters it
// wrote, and the errors of Redis and the store.
func (c *Counters) Sweep(ctx context.Context) (int, error) {
	members, err := c.client.SRandMemberN(ctx, c.dirtyKey(), sweepCount).Result()
	if err != nil {
		return 0, kernel.Unavailable("redis", fmt.Errorf("redismeter: sweep: %w", err))
	}
	if len(members) == 0 {
		return 0, nil
	}
	var keys []usage.Key
	var malformed []string
	for _, m := range members {
		k, err := parseMember(m)
		if err != nil {
			malformed = append(malformed, m)
			continue
		}
		keys = append(keys, k)
	}
	if len(malformed) > 0 {
		c.client.SRem(ctx, c.dirtyKey(), malformed)
	}
	redisKeys := make([]string, len(keys))
	for i, k := range keys {
		redisKeys[i] = c.counterKey(k)
	}
	values, err := c.client.MGet(ctx, redisKeys...).Result()
	if err != nil {
		return 0, kernel.Unavailable("redis", fmt.Errorf("redismeter: sweep: %w", err))
	}
	var live []usage.Key
	var totals []int64
	var gone []string
	for i, v := range values {
		n, ok := parseTotal(v)
		if !ok {
			gone = append(gone, member(keys[i])) // expired: nothing left to write
			continue
		}
		live, totals = append(live, keys[i]), append(totals, n)
	}
	if len(gone) > 0 {
		c.client.SRem(ctx, c.dirtyKey(), gone)
	}
	if err := c.persist(ctx, live, totals); err != nil {
		return 0, err
	}
	return len(live), nil
}

// Totals returns each counter's live total from Redis, or from the store
// for one Redis does not hold; see usage.Counters. It returns an unavailable
// error when Redis fails, and the store's error.
func (c *Counters) Totals(ctx context.Context, keys []usage.Key) ([]int64, error) {
	totals := make([]int64, len(keys))
	var missing []int
	for from := 0; from < len(keys); from += chunk {
		to := min(from+chunk, len(keys))
		redisKeys := make([]string, 0, to-from)
		for _, k := range keys[from:to] {
			redisKeys = append(redisKeys, c.counterKey(k))
		}
		values, err := c.client.MGet(ctx, redisKeys...).Result()
		if err != nil {
			return nil, kernel.Unavailable("redis", fmt.Errorf("redismeter: read: %w", err))
		}
		for i, v := range values {
			n, ok := parseTotal(v)
			if !ok {
				missing = append(missing, from+i)
				continue
			}
			totals[from+i] = n
		}
	}
	if len(missing) == 0 {
		return totals, nil
	}
	fallback := make([]usage.Key, len(missing))
	for j, i := range missing {
		fallback[j] = keys[i]
	}
	stored, err := c.store.Totals(ctx, fallback)
	if err != nil {
		return nil, err
	}
	for j, i := range missing {
		totals[i] = stored[j]
	}
	return totals, nil
}

// Total returns one counter's live total from Redis, or from the store when
// Redis does not hold it; it may be called from a request. It returns an
// unavailable error when Redis fails, and the store's error.
func (c *Counters) Total(ctx context.Context, key usage.Key) (int64, error) {
	v, err := c.client.Get(ctx, c.counterKey(key)).Int64()
	if errors.Is(err, redis.Nil) {
		return c.store.Total(ctx, key)
	}
	if err != nil {
		return 0, kernel.Unavailable("redis", fmt.Errorf("redismeter: read: %w", err))
	}
	return v, nil
}

// parseTotal reads an MGET value: a decimal string, or nil for none.
func parseTotal(v any) (int64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
