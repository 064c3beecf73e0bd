// Package storelimit keeps rate-limit counters in Atrium's database (the
// rate_limit table), the default backend: counters survive a restart and hold
// across every node sharing the database, with nothing else to run.
//
// Every key is one row holding its TAT (see package ratelimit); a Hit is one
// upsert whose arithmetic runs in the database, so concurrent Hits on
// PostgreSQL serialise on the row and never admit more than the limit. Times
// come from the transaction's clock (store.Tx.Now), so tests move them with
// the store's clock.
package storelimit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
)

// pruneEvery is how often, at most, a Limiter deletes rows whose bucket has
// emptied. Rows past their TAT behave exactly like missing ones, so pruning
// only keeps the table small.
const pruneEvery = time.Minute

const (
	// hitSQL is ratelimit.HitTAT in SQL: $2 now, $3 now plus the interval,
	// $4 the interval, $5 the TAT of a full bucket (all in microseconds).
	// The CASTs give PostgreSQL the parameters' types.
	hitSQL = `INSERT INTO rate_limit (key, tat) VALUES ($1, CAST($3 AS BIGINT))
        ON CONFLICT (key) DO UPDATE SET tat = CASE
            WHEN rate_limit.tat <= CAST($2 AS BIGINT) THEN CAST($3 AS BIGINT)
            WHEN rate_limit.tat + CAST($4 AS BIGINT) <= CAST($5 AS BIGINT) THEN rate_limit.tat + CAST($4 AS BIGINT)
            ELSE CAST($5 AS BIGINT) + 1 END
        RETURNING tat`
	peekSQL  = "SELECT tat FROM rate_limit WHERE key = $1"
	resetSQL = "DELETE FROM rate_limit WHERE key = $1"
	pruneSQL = "DELETE FROM rate_limit WHERE tat < $1"
)

// Limiter is a ratelimit.Limiter over a store. It is safe for concurrent use.
type Limiter struct {
	db        store.DB
	lastPrune atomic.Int64 // microseconds of the store's clock
}

var _ ratelimit.Limiter = (*Limiter)(nil)

// New returns a Limiter keeping its counters in db.
func New(db store.DB) *Limiter { return &Limiter{db: db} }

// Hit counts one event for key; see ratelimit.Limiter. It returns
// ratelimit.ErrKeyTooLong, an error for a malformed limit, or the store's
// error (unavailable when the database cannot be reached).
func (l *Limiter) Hit(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if err := ratelimit.Check(key, limit); err != nil {
		return ratelimit.Decision{}, err
	}
	var d ratelimit.Decision
	err := l.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		if err := l.prune(ctx, tx, now); err != nil {
			return err
		}
		a := ratelimit.NewHitArgs(limit, now)
		var tat int64
		if err := tx.QueryRow(ctx, hitSQL, key, a.Now, a.Now+a.Interval, a.Interval, a.Full).Scan(&tat); err != nil {
			return err
		}
		d = ratelimit.HitDecision(limit, now, tat)
		return nil
	})
	if err != nil {
		return ratelimit.Decision{}, fmt.Errorf("ratelimit: hit: %w", err)
	}
	return d, nil
}

// Peek reports whether one more event for key would be admitted, without
// counting it. It returns the errors Hit does.
func (l *Limiter) Peek(ctx context.Context, key string, limit ratelimit.Limit) (ratelimit.Decision, error) {
	if err := ratelimit.Check(key, limit); err != nil {
		return ratelimit.Decision{}, err
	}
	var d ratelimit.Decision
	err := l.db.ReadTx(ctx, func(tx store.Tx) error {
		var tat int64
		err := tx.QueryRow(ctx, peekSQL, key).Scan(&tat)
		if err != nil && !kernel.IsCode(err, kernel.CodeNotFound) {
			return err
		}
		d = ratelimit.PeekDecision(limit, tx.Now(), tat)
		return nil
	})
	if err != nil {
		return ratelimit.Decision{}, fmt.Errorf("ratelimit: peek: %w", err)
	}
	return d, nil
}

// Reset forgets key. It returns ratelimit.ErrKeyTooLong or the store's error.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if key == "" || len(key) > ratelimit.MaxKeyLength {
		return ratelimit.ErrKeyTooLong
	}
	err := l.db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, resetSQL, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("ratelimit: reset: %w", err)
	}
	return nil
}

// prune deletes the rows whose bucket has emptied, at most once every
// pruneEvery per process; the first caller past the interval does it.
func (l *Limiter) prune(ctx context.Context, tx store.Tx, now time.Time) error {
	last := l.lastPrune.Load()
	if now.UnixMicro()-last < pruneEvery.Microseconds() || !l.lastPrune.CompareAndSwap(last, now.UnixMicro()) {
		return nil
	}
	_, err := tx.Exec(ctx, pruneSQL, now.UnixMicro())
	return err
}
