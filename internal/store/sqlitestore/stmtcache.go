package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds the cache. Atrium's SQL is constant text, so the
// bound is only reached by a fork that builds SQL dynamically; statements past
// it run unprepared, as they would without a cache.
const maxCachedStatements = 512

// stmtCache keeps one prepared statement per SQL text for the read pool, as pgx
// does for PostgreSQL: SQLite's parser and planner then run once per connection
// instead of once per query, which is about a third of a simple read's cost.
// database/sql prepares each statement lazily on every connection that uses it.
type stmtCache struct {
	db    *sql.DB
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt)}
}

// lookup returns the cached statement for query, or nil; it never prepares.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stmts[query]
}

// get returns the prepared statement for query, or nil when the cache is full
// or preparing failed (the caller then runs query directly and reports the
// error the way an unprepared query would).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.RLock()
	s, ok := c.stmts[query]
	full := len(c.stmts) >= maxCachedStatements
	c.mu.RUnlock()
	if ok || full {
		return s
	}
	// Prepare outside the lock: it takes a connection from the pool, which may
	// wait, and other queries must not wait behind it.
	s, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[query]; ok {
		_ = s.Close() // another caller prepared it first
		return prev
	}
	c.stmts[query] = s
	return s
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stmts {
		_ = s.Close()
		delete(c.stmts, q)
	}
}
