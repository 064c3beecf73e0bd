package usage

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Key names one counter: a workspace's metric in one period.
type Key struct {
	WorkspaceID uuid.UUID
	Metric      string
	PeriodStart time.Time
	PeriodEnd   time.Time // exclusive
}

// Delta is an amount to add to one counter.
type Delta struct {
	Key Key
	N   int64
}

// Counters is where a Meter's counts go at each flush and are read back
// from: the store alone (package storemeter, the embedded default), or Redis
// in front of the store (package redismeter, with ATRIUM_REDIS_URL). Every
// implementation passes the conformance suite in package metertest.
type Counters interface {
	// Add adds each delta of a batch to its counter and returns every
	// counter's total after it, in the order of deltas, as all nodes see it.
	// A batch is applied once: Add called again with the same batchID and
	// deltas (a retry after an error whose outcome was unknown) does not add
	// them again but returns the totals. On error the batch may or may not
	// have been applied; the caller retries it as it was. Add runs in the
	// background: it may use the store's system path.
	Add(ctx context.Context, batchID uuid.UUID, deltas []Delta) ([]int64, error)
	// Totals returns each counter's total, 0 for one never counted, in the
	// order of keys. It runs in the background, like Add.
	Totals(ctx context.Context, keys []Key) ([]int64, error)
	// Total returns one counter's total, 0 when it was never counted. It may
	// be called from a request (it reads one workspace only).
	Total(ctx context.Context, key Key) (int64, error)
}

// Flushed is a counter's total after a flush that added to it.
type Flushed struct {
	Key   Key
	Total int64
}
