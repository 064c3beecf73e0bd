// Package authcache is a short-lived in-process cache of what authentication
// and the membership check read on every request: a session by its token hash,
// an API key or personal access token by its hash, a role by (workspace,
// person). It lets a request skip those store round trips; its entries die
// when the access they stand for is revoked, on every node.
//
// Revocation is learnt from the database, never from the code paths that
// revoke, so that no path can forget (migration 0012_auth_invalidation):
//
//   - On PostgreSQL, triggers on user_session, api_key, personal_token,
//     membership and app_user send NOTIFY atrium_auth with a tag naming what
//     changed (session:<id>, key:<id>, pat:<id>, member:<ws>:<user>,
//     user:<id>); PostgreSQL delivers it at commit to every node. pgstore's
//     listener hands each payload to Invalidate. While the listener is not
//     listening (at start, after a lost connection) the cache is flushed and
//     bypassed, so a missed notification never leaves revoked access usable.
//     This is the Feed side: no read per request.
//   - On SQLite the same triggers bump a counter, auth_epoch, in the revoking
//     transaction. Before each lookup the cache reads it (Options.Epoch) and
//     drops every entry when it moved. Notifications cannot reach Go from a
//     SQLite trigger, and in-process invalidation from the write paths would
//     miss a CLI command writing the same file; reading a local one-row table
//     costs microseconds, so SQLite trades one cheap read for the session,
//     membership or key read it saves.
//
// A lookup that misses reads the store and Puts what it found with the
// Ticket it took before reading: an invalidation that arrives in between
// (the read may have seen the row before the revoking commit) makes the Put a
// no-op, so a stale row never outlives its revocation in the cache. Failures
// and "not found" are never cached, so a session just created works at once.
package authcache

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// TTL bounds how long an entry lives without any invalidation. Revocation
// does not depend on it (notifications and the epoch do that); it bounds
// how long a node serves a row that changed in a way no trigger reports
// (such as last_used_at written by another node) and how long memory is held
// by secrets nobody uses any more. Fifteen seconds keeps nearly every request
// of an active client a hit while keeping that drift short.
const TTL = 15 * time.Second

// MaxEntries bounds memory: about 100k live clients per node. When it is
// reached, the cache empties itself: a crude but O(1)-amortised eviction that
// costs at most one extra read per client.
const MaxEntries = 100_000

// Epoch reads a counter that every revocation moves (SQLite's auth_epoch).
type Epoch interface {
	AuthEpoch(ctx context.Context) (int64, error)
}

// Options configures New.
type Options struct {
	// Clock dates entries; kernel.SystemClock when nil. It must be the
	// store's clock so that tests move expiries and the TTL together.
	Clock kernel.Clock
	// Epoch, when set, is read before every lookup, and a change drops
	// everything (SQLite). Without it the cache relies on Invalidate, Flush
	// and SetLive from a feed (PostgreSQL) and starts bypassed until the feed
	// says it is live.
	Epoch  Epoch
	Logger *slog.Logger
}

// Cache is safe for concurrent use. A nil *Cache caches nothing.
type Cache struct {
	clock  kernel.Clock
	epoch  Epoch
	logger *slog.Logger

	mu        sync.Mutex
	entries   map[string]entry
	gen       uint64 // moves at every invalidation, flush or change of liveness
	live      bool
	lastEpoch int64
	haveEpoch bool
}

type entry struct {
	value   any
	expires time.Time
	tags    []string
}

// Ticket is taken before a store read and given to Put after it.
type Ticket struct {
	gen uint64
}

// New returns an empty cache.
func New(opts Options) *Cache {
	c := &Cache{clock: opts.Clock, epoch: opts.Epoch, logger: opts.Logger, entries: map[string]entry{}}
	if c.clock == nil {
		c.clock = kernel.SystemClock{}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c
}

// Begin starts a lookup. It reports false when the cache must be bypassed:
// a nil cache, a feed that is not listening, or an epoch that cannot be read.
// Otherwise the Ticket goes to Put after the store read.
func (c *Cache) Begin(ctx context.Context) (Ticket, bool) {
	if c == nil {
		return Ticket{}, false
	}
	if c.epoch != nil {
		epoch, err := c.readEpoch(ctx)
		if err != nil {
			c.logger.WarnContext(ctx, "auth cache: read epoch", "error", err.Error())
			return Ticket{}, false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.haveEpoch || epoch != c.lastEpoch {
			c.flushLocked()
			c.lastEpoch, c.haveEpoch = epoch, true
		}
		return Ticket{gen: c.gen}, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Ticket{gen: c.gen}, c.live
}

// requestMemo holds the epoch read once for a whole request.
type requestMemo struct {
	epoch atomic.Int64
	read  atomic.Bool
}

type memoKey struct{}

// WithRequestScope returns ctx carrying room for one epoch reading, so that
// the lookups of one request (its session, then its role) read the epoch
// once. A revocation that commits between them is seen by the next request,
// exactly as a request that already authenticated goes on without a cache.
// The HTTP spine calls it for every request; without it every Begin reads.
func WithRequestScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &requestMemo{})
}

// readEpoch reads the epoch, once per request scope.
func (c *Cache) readEpoch(ctx context.Context) (int64, error) {
	memo, _ := ctx.Value(memoKey{}).(*requestMemo)
	if memo != nil && memo.read.Load() {
		return memo.epoch.Load(), nil
	}
	epoch, err := c.epoch.AuthEpoch(ctx)
	if err == nil && memo != nil {
		memo.epoch.Store(epoch)
		memo.read.Store(true)
	}
	return epoch, err
}

// Get returns the live entry under key.
func (c *Cache) Get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !c.clock.Now().Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return e.value, true
}

// Put stores value under key until TTL from now or until (when not zero),
// whichever comes first, dropped early by any of tags. It does nothing if anything was
// invalidated since t was taken, since the value may predate it.
func (c *Cache) Put(t Ticket, key string, value any, until time.Time, tags ...string) {
	if c == nil {
		return
	}
	expires := c.clock.Now().Add(TTL)
	if !until.IsZero() && until.Before(expires) {
		expires = until
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.gen != c.gen || (c.epoch == nil && !c.live) {
		return
	}
	if len(c.entries) >= MaxEntries {
		c.entries = map[string]entry{}
	}
	c.entries[key] = entry{value: value, expires: expires, tags: tags}
}

// Update replaces the value under key, keeping its expiry and tags, if the
// entry is still there and nothing was invalidated since t was taken: after a
// request records a use (last_seen_at), so the next ones do not write again.
func (c *Cache) Update(t Ticket, key string, value any) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && t.gen == c.gen {
		e.value = value
		c.entries[key] = e
	}
}

// Invalidate drops every entry carrying tag. A payload that is not a known tag
// drops everything, so a newer migration's tags are never ignored.
func (c *Cache) Invalidate(tag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if !knownTag(tag) {
		c.flushLocked()
		return
	}
	// Revocations are rare next to requests: a scan beats keeping an index
	// consistent on every Put.
	for key, e := range c.entries {
		for _, t := range e.tags {
			if t == tag {
				delete(c.entries, key)
				break
			}
		}
	}
}

// Flush drops every entry.
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
}

// SetLive says whether the feed is listening. Either way everything is
// dropped: entries cached before a loss may have missed a notification, and
// none may be put while the feed is down.
func (c *Cache) SetLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	c.live = live
}

// Live reports whether the feed is listening (always true with an Epoch).
func (c *Cache) Live() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch != nil || c.live
}

// Len is the number of entries, expired ones included, for tests.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) flushLocked() {
	c.gen++
	clear(c.entries)
}

var tagPrefixes = []string{"session:", "key:", "pat:", "member:", "user:"}

func knownTag(tag string) bool {
	for _, p := range tagPrefixes {
		if strings.HasPrefix(tag, p) {
			return true
		}
	}
	return false
}

// Tag helpers name entries the way migration 0012's triggers do.

// SessionTag names a session's entries.
func SessionTag(id uuid.UUID) string { return "session:" + id.String() }

// KeyTag names an API key's entries.
func KeyTag(id uuid.UUID) string { return "key:" + id.String() }

// PATTag names a personal access token's entries.
func PATTag(id uuid.UUID) string { return "pat:" + id.String() }

// MemberTag names a membership's entries.
func MemberTag(workspaceID, userID uuid.UUID) string {
	return "member:" + workspaceID.String() + ":" + userID.String()
}

// UserTag names every entry of a person.
func UserTag(id uuid.UUID) string { return "user:" + id.String() }
