// Package storemeter keeps a usage.Meter's counters in the store: the
// embedded default, and the history redismeter persists to.
//
// A flush is one system-path transaction: it records the batch's ID in
// usage_flush and adds every delta to its usage_counter row (value = value +
// delta), returning the totals. A batch retried after an error whose outcome
// was unknown (a commit whose answer was lost) finds its ID and adds nothing
// again. On PostgreSQL a batch is one statement per 1,000 counters (arrays
// through unnest); on SQLite, whose statements cost no round trip, one
// statement per counter in the same transaction.
package storemeter

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/usage"
)

// Counters is usage.Counters over a store. It is safe for concurrent use.
type Counters struct {
	db store.SystemDB
	// mu guards pruned, when usage_flush was last pruned by this node.
	mu     sync.Mutex
	pruned time.Time
}

var _ usage.Counters = (*Counters)(nil)

// New returns Counters kept in db.
func New(db store.SystemDB) *Counters { return &Counters{db: db} }

const (
	// chunk is how many counters one PostgreSQL statement carries.
	chunk = 1000
	// flushRetention is how long a batch's ID is remembered: a batch
	// retried later than that would be counted again.
	flushRetention = 24 * time.Hour
	pruneEvery     = time.Hour
)

const (
	insertFlushSQL = `INSERT INTO usage_flush (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING`
	pruneFlushSQL  = `DELETE FROM usage_flush WHERE created_at < $1`

	// addPostgres adds a chunk of deltas, given as parallel arrays.
	addPostgres = `INSERT INTO usage_counter (workspace_id, metric, period_start, period_end, value, updated_at)
        SELECT b.workspace_id, b.metric, b.period_start, b.period_end, b.value, $6
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[])
            AS b (workspace_id, metric, period_start, period_end, value)
        ON CONFLICT (workspace_id, metric, period_start)
            DO UPDATE SET value = usage_counter.value + excluded.value, updated_at = excluded.updated_at
        RETURNING workspace_id, metric, period_start, value`
	// addSQLite adds one delta.
	addSQLite = `INSERT INTO usage_counter (workspace_id, metric, period_start, period_end, value, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (workspace_id, metric, period_start)
            DO UPDATE SET value = usage_counter.value + excluded.value, updated_at = excluded.updated_at
        RETURNING value`

	// raisePostgres and raiseSQLite set counters to totals counted
	// elsewhere (Redis), never lowering one: applying the same totals twice,
	// or an older total after a newer one, changes nothing.
	raisePostgres = `INSERT INTO usage_counter (workspace_id, metric, period_start, period_end, value, updated_at)
        SELECT b.workspace_id, b.metric, b.period_start, b.period_end, b.value, $6
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[])
            AS b (workspace_id, metric, period_start, period_end, value)
        ON CONFLICT (workspace_id, metric, period_start)
            DO UPDATE SET value = greatest(usage_counter.value, excluded.value), updated_at = excluded.updated_at`
	raiseSQLite = `INSERT INTO usage_counter (workspace_id, metric, period_start, period_end, value, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (workspace_id, metric, period_start)
            DO UPDATE SET value = max(usage_counter.value, excluded.value), updated_at = excluded.updated_at`

	// totalsPostgres reads a chunk of counters; ordinality says which.
	totalsPostgres = `SELECT b.i, c.value
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS b (workspace_id, metric, period_start, i)
        JOIN usage_counter c ON c.workspace_id = b.workspace_id AND c.metric = b.metric AND c.period_start = b.period_start`
	// totalSQL reads one counter; the workspace_id filter is what binds it
	// on SQLite, which has no row-level security.
	totalSQL = `SELECT value FROM usage_counter WHERE workspace_id = $1 AND metric = $2 AND period_start = $3`
)

// Add adds a batch of deltas once and returns the totals after it; see
// usage.Counters. It returns the store's error, after which the batch may
// or may not have been applied.
func (c *Counters) Add(ctx context.Context, batchID uuid.UUID, deltas []usage.Delta) ([]int64, error) {
	var totals []int64
	err := c.db.System(store.Polling(ctx), "usage: flush the meter", func(tx store.Tx) error {
		n, err := tx.Exec(ctx, insertFlushSQL, batchID, tx.Now())
		if err != nil {
			return err
		}
		keys := keysOf(deltas)
		if n == 0 { // applied before: its answer was lost
			totals, err = readTotals(ctx, tx, keys)
			return err
		}
		if totals, err = add(ctx, tx, deltas); err != nil {
			return err
		}
		return c.prune(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("storemeter: add a batch of %d: %w", len(deltas), err)
	}
	return totals, nil
}

// prune forgets batch IDs older than flushRetention, once an hour per node.
func (c *Counters) prune(ctx context.Context, tx store.Tx) error {
	c.mu.Lock()
	due := tx.Now().Sub(c.pruned) >= pruneEvery
	if due {
		c.pruned = tx.Now()
	}
	c.mu.Unlock()
	if !due {
		return nil
	}
	_, err := tx.Exec(ctx, pruneFlushSQL, tx.Now().Add(-flushRetention))
	return err
}

func add(ctx context.Context, tx store.Tx, deltas []usage.Delta) ([]int64, error) {
	totals := make([]int64, len(deltas))
	if tx.Dialect() == store.SQLite {
		for i, d := range deltas {
			k := d.Key
			if err := tx.QueryRow(ctx, addSQLite, k.WorkspaceID, k.Metric, k.PeriodStart, k.PeriodEnd, d.N, tx.Now()).Scan(&totals[i]); err != nil {
				return nil, err
			}
		}
		return totals, nil
	}
	for from := 0; from < len(deltas); from += chunk {
		part := deltas[from:min(from+chunk, len(deltas))]
		a := arraysOf(tx.Dialect(), keysOf(part))
		values := make([]int64, len(part))
		for i, d := range part {
			values[i] = d.N
		}
		rows, err := tx.Query(ctx, addPostgres, a.workspaces, a.metrics, a.starts, a.ends, values, tx.Now())
		if err != nil {
			return nil, err
		}
		index := indexOf(part, from)
		err = scanTotals(rows, totals, func(r store.Row) (int, int64, error) {
			var k position
			var start time.Time
			var v int64
			if err := r.Scan(&k.workspace, &k.metric, &start, &v); err != nil {
				return 0, 0, err
			}
			k.start = start.UnixMicro()
			i, ok := index[k]
			if !ok {
				return 0, 0, kernel.Internal(fmt.Errorf("storemeter: an upsert returned a counter it was not given"))
			}
			return i, v, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return totals, nil
}

// Totals returns each counter's total, 0 for one never counted; see
// usage.Counters. It reads through the system path and returns the store's
// error.
func (c *Counters) Totals(ctx context.Context, keys []usage.Key) ([]int64, error) {
	var totals []int64
	err := c.db.System(store.Polling(ctx), "usage: read the meter's counters", func(tx store.Tx) error {
		var err error
		totals, err = readTotals(ctx, tx, keys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("storemeter: read %d counters: %w", len(keys), err)
	}
	return totals, nil
}

func readTotals(ctx context.Context, tx store.Tx, keys []usage.Key) ([]int64, error) {
	totals := make([]int64, len(keys))
	if tx.Dialect() == store.SQLite {
		for i, k := range keys {
			err := tx.QueryRow(ctx, totalSQL, k.WorkspaceID, k.Metric, k.PeriodStart).Scan(&totals[i])
			if err != nil && !kernel.IsCode(err, kernel.CodeNotFound) {
				return nil, err
			}
		}
		return totals, nil
	}
	for from := 0; from < len(keys); from += chunk {
		part := keys[from:min(from+chunk, len(keys))]
		a := arraysOf(tx.Dialect(), part)
		rows, err := tx.Query(ctx, totalsPostgres, a.workspaces, a.metrics, a.starts)
		if err != nil {
			return nil, err
		}
		err = scanTotals(rows, totals, func(r store.Row) (int, int64, error) {
			var ordinal, v int64
			if err := r.Scan(&ordinal, &v); err != nil {
				return 0, 0, err
			}
			return from + int(ordinal) - 1, v, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return totals, nil
}

// Total returns one counter's total, 0 when it was never counted, in one
// read bound to the counter's workspace; it returns the store's error.
func (c *Counters) Total(ctx context.Context, key usage.Key) (int64, error) {
	var v int64
	err := c.db.WorkspaceRow(ctx, key.WorkspaceID, totalSQL, key.WorkspaceID, key.Metric, key.PeriodStart).Scan(&v)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storemeter: read %s of %s: %w", key.Metric, key.WorkspaceID, err)
	}
	return v, nil
}

// Raise sets each counter to at least its value in values, in one
// system-path transaction: redismeter persists Redis's totals with it.
// Raising a counter to a total it already has, or to an older one, changes
// nothing, so it may be repeated. It returns the store's error.
func (c *Counters) Raise(ctx context.Context, keys []usage.Key, values []int64) error {
	err := c.db.System(store.Polling(ctx), "usage: persist the meter's counters", func(tx store.Tx) error {
		if tx.Dialect() == store.SQLite {
			for i, k := range keys {
				if _, err := tx.Exec(ctx, raiseSQLite, k.WorkspaceID, k.Metric, k.PeriodStart, k.PeriodEnd, values[i], tx.Now()); err != nil {
					return err
				}
			}
			return nil
		}
		for from := 0; from < len(keys); from += chunk {
			to := min(from+chunk, len(keys))
			a := arraysOf(tx.Dialect(), keys[from:to])
			if _, err := tx.Exec(ctx, raisePostgres, a.workspaces, a.metrics, a.starts, a.ends, values[from:to], tx.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storemeter: persist %d counters: %w", len(keys), err)
	}
	return nil
}

// position is a counter's identity in a result: Key without times, which
// compare badly.
type position struct {
	workspace uuid.UUID
	metric    string
	start     int64 // Unix microseconds
}

func indexOf(deltas []usage.Delta, offset int) map[position]int {
	index := make(map[position]int, len(deltas))
	for i, d := range deltas {
		index[position{d.Key.WorkspaceID, d.Key.Metric, d.Key.PeriodStart.UnixMicro()}] = offset + i
	}
	return index
}

func keysOf(deltas []usage.Delta) []usage.Key {
	keys := make([]usage.Key, len(deltas))
	for i, d := range deltas {
		keys[i] = d.Key
	}
	return keys
}

// arrays are keys as the parallel arrays PostgreSQL's unnest takes.
type arrays struct {
	workspaces   any
	metrics      []string
	starts, ends []time.Time
}

func arraysOf(dialect store.Dialect, keys []usage.Key) arrays {
	ids := make([]uuid.UUID, len(keys))
	a := arrays{metrics: make([]string, len(keys)), starts: make([]time.Time, len(keys)), ends: make([]time.Time, len(keys))}
	for i, k := range keys {
		ids[i], a.metrics[i], a.starts[i], a.ends[i] = k.WorkspaceID, k.Metric, k.PeriodStart, k.PeriodEnd
	}
	a.workspaces = store.IDList(dialect, ids)
	return a
}

// scanTotals reads rows into totals at the index each row names.
func scanTotals(rows store.Rows, totals []int64, scan func(store.Row) (int, int64, error)) error {
	defer rows.Close()
	for rows.Next() {
		i, v, err := scan(rows)
		if err != nil {
			return err
		}
		totals[i] = v
	}
	return rows.Err()
}
