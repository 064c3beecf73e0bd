package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// The statements of the quota rules' records. Every one names its
// workspace, for SQLite, which has no row-level security.
const (
	insertWarningSQL = `INSERT INTO usage_warning (workspace_id, metric, period_start, threshold, used, limit_value, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (workspace_id, metric, period_start, threshold) DO NOTHING`
	selectOverageSQL = `SELECT period_start, over_since, blocked_at, without_grace FROM usage_overage
        WHERE workspace_id = $1 AND metric = $2`
	selectOveragesSQL = `SELECT metric, period_start, over_since, blocked_at, without_grace FROM usage_overage
        WHERE workspace_id = $1`
	insertOverageSQL = `INSERT INTO usage_overage (workspace_id, metric, period_start, over_since, updated_at)
        VALUES ($1, $2, $3, $4, $4) ON CONFLICT (workspace_id, metric) DO NOTHING`
	insertBlockedOverageSQL = `INSERT INTO usage_overage (workspace_id, metric, period_start, over_since, blocked_at, without_grace, updated_at)
        VALUES ($1, $2, $3, $4, $4, true, $4) ON CONFLICT (workspace_id, metric) DO NOTHING`
	blockWithoutGraceSQL = `UPDATE usage_overage SET without_grace = true, blocked_at = coalesce(blocked_at, $3), updated_at = $3
        WHERE workspace_id = $1 AND metric = $2 AND without_grace = false`
	markBlockedSQL = `UPDATE usage_overage SET blocked_at = $3, updated_at = $3
        WHERE workspace_id = $1 AND metric = $2 AND blocked_at IS NULL`
	deleteOverageSQL      = `DELETE FROM usage_overage WHERE workspace_id = $1 AND metric = $2`
	deleteStaleOverageSQL = `DELETE FROM usage_overage WHERE workspace_id = $1 AND metric = $2 AND period_start <> $3`
	upsertGaugeSQL        = `INSERT INTO usage_counter (workspace_id, metric, period_start, period_end, value, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (workspace_id, metric, period_start) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`
	// The last value a gauge was measured at, whatever the period: a gauge
	// carries over from one period to the next until it is measured again.
	selectLatestGaugeSQL = `SELECT value FROM usage_counter WHERE workspace_id = $1 AND metric = $2
        ORDER BY period_start DESC LIMIT 1`
)

// recorded is what record left in the store.
type recorded struct {
	// warned is the highest threshold recorded in the period, 0 for none.
	warned int
	// over is the metric's overage, nil when it is within its limit.
	over *overage
}

// record applies the quota rules' records to used, the usage of key's
// metric, against limit, in tx, a transaction bound to the workspace: every
// threshold reached is recorded once per period (the first node to record
// one emits usage.warning for the highest it recorded); going past the limit
// starts the grace period (usage.grace_started); a blocked verdict is
// recorded once (usage.blocked); usage back within the limit ends the
// overage. It returns the store's error.
func (s *Service) record(ctx context.Context, tx store.Tx, m metric, key Key, used, limit int64) (recorded, error) {
	warned, err := s.recordWarnings(ctx, tx, m, key, used, limit)
	if err != nil {
		return recorded{}, err
	}
	over, err := s.recordOverage(ctx, tx, m, key, used, limit)
	return recorded{warned: warned, over: over}, err
}

// recordWarnings records the thresholds used reaches, and returns the
// highest; it emits usage.warning for the highest one it recorded first.
func (s *Service) recordWarnings(ctx context.Context, tx store.Tx, m metric, key Key, used, limit int64) (int, error) {
	warned, fresh := 0, 0
	for _, t := range Thresholds {
		if !reached(used, limit, t) {
			break
		}
		n, err := tx.Exec(ctx, insertWarningSQL, key.WorkspaceID, m.Name, key.PeriodStart, t, used, limit, tx.Now())
		if err != nil {
			return 0, fmt.Errorf("usage: record the %d %% warning: %w", t, err)
		}
		if n == 1 {
			fresh = t
		}
		warned = t
	}
	if fresh > 0 {
		e := WarningEvent{Metric: m.Name, Threshold: fresh, Used: used, Limit: limit, PeriodStart: key.PeriodStart, PeriodEnd: key.PeriodEnd}
		if _, err := events.Append(ctx, tx, events.Event{Type: EventWarning, Payload: e}); err != nil {
			return 0, err
		}
	}
	return warned, nil
}

// recordOverage keeps the metric's overage in step with used: none within
// the limit; past it, one started now unless there is one, and its block
// recorded once it is due. It returns the overage, nil for none.
func (s *Service) recordOverage(ctx context.Context, tx store.Tx, m metric, key Key, used, limit int64) (*overage, error) {
	workspaceID, now := key.WorkspaceID, tx.Now()
	over, err := s.currentOverage(ctx, tx, m, key)
	if err != nil {
		return nil, err
	}
	if limit < 0 || used <= limit {
		if over != nil {
			if _, err := tx.Exec(ctx, deleteOverageSQL, workspaceID, m.Name); err != nil {
				return nil, fmt.Errorf("usage: end the overage: %w", err)
			}
		}
		return nil, nil
	}
	started := false
	if over == nil {
		n, err := tx.Exec(ctx, insertOverageSQL, workspaceID, m.Name, key.PeriodStart, now)
		if err != nil {
			return nil, fmt.Errorf("usage: start the grace period: %w", err)
		}
		started = n == 1
		if over, err = readOverage(ctx, tx, workspaceID, m.Name); err != nil {
			return nil, err
		}
		if over == nil {
			return nil, kernel.Internal(fmt.Errorf("usage: the overage of %s %s vanished", workspaceID, m.Name))
		}
	}
	v := judge(used, limit, over, now)
	if started && v.State != StateBlocked {
		e := GraceStartedEvent{Metric: m.Name, Used: used, Limit: limit, BufferLimit: ceiling(limit), GraceEndsAt: *v.GraceEndsAt}
		if _, err := events.Append(ctx, tx, events.Event{Type: EventGraceStarted, Payload: e}); err != nil {
			return nil, err
		}
	}
	if v.State == StateBlocked && over.BlockedAt == nil {
		n, err := tx.Exec(ctx, markBlockedSQL, workspaceID, m.Name, now)
		if err != nil {
			return nil, fmt.Errorf("usage: record the block: %w", err)
		}
		if n == 1 {
			over.BlockedAt = &now
			e := BlockedEvent{Metric: m.Name, Used: used, Limit: limit, Reason: v.Reason}
			if _, err := events.Append(ctx, tx, events.Event{Type: EventBlocked, Payload: e}); err != nil {
				return nil, err
			}
		}
	}
	return over, nil
}

// blockWithoutGrace puts key's metric straight into blocked, as a plan
// change does when usage is past the new limit, and emits usage.blocked
// unless it already was so. It returns the store's error.
func (s *Service) blockWithoutGrace(ctx context.Context, tx store.Tx, m metric, key Key, used, limit int64) error {
	if _, err := s.currentOverage(ctx, tx, m, key); err != nil { // drops a counter's overage of an earlier period
		return err
	}
	now := tx.Now()
	n, err := tx.Exec(ctx, insertBlockedOverageSQL, key.WorkspaceID, m.Name, key.PeriodStart, now)
	if err != nil {
		return fmt.Errorf("usage: block %s: %w", m.Name, err)
	}
	if n == 0 {
		if n, err = tx.Exec(ctx, blockWithoutGraceSQL, key.WorkspaceID, m.Name, now); err != nil {
			return fmt.Errorf("usage: block %s: %w", m.Name, err)
		}
	}
	if n == 0 {
		return nil // blocked without grace already
	}
	e := BlockedEvent{Metric: m.Name, Used: used, Limit: limit, Reason: BlockedPlanChanged}
	_, err = events.Append(ctx, tx, events.Event{Type: EventBlocked, Payload: e})
	return err
}

// currentOverage reads key's metric's overage in tx, deleting and ignoring
// a counter's overage of an earlier period (its count started again).
func (s *Service) currentOverage(ctx context.Context, tx store.Tx, m metric, key Key) (*overage, error) {
	over, err := readOverage(ctx, tx, key.WorkspaceID, m.Name)
	if err != nil || over == nil || !m.Counter || over.PeriodStart.Equal(key.PeriodStart) {
		return over, err
	}
	if _, err := tx.Exec(ctx, deleteStaleOverageSQL, key.WorkspaceID, m.Name, key.PeriodStart); err != nil {
		return nil, fmt.Errorf("usage: drop the overage of an earlier period: %w", err)
	}
	return nil, nil
}

// readOverage reads a metric's overage in tx; nil when it has none.
func readOverage(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, metricName string) (*overage, error) {
	over, err := scanOverage(tx.QueryRow(ctx, selectOverageSQL, workspaceID, metricName))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("usage: read the overage of %s: %w", metricName, err)
	}
	return over, nil
}

// scanOverage reads the overage columns of selectOverageSQL, in UTC.
func scanOverage(row store.Row, extra ...any) (*overage, error) {
	var o overage
	if err := row.Scan(append(extra, &o.PeriodStart, &o.OverSince, &o.BlockedAt, &o.WithoutGrace)...); err != nil {
		return nil, err
	}
	o.PeriodStart, o.OverSince = o.PeriodStart.UTC(), o.OverSince.UTC()
	if o.BlockedAt != nil {
		t := o.BlockedAt.UTC()
		o.BlockedAt = &t
	}
	return &o, nil
}

// overages reads every overage of a workspace, by metric.
func overages(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) (map[string]*overage, error) {
	rows, err := tx.Query(ctx, selectOveragesSQL, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("usage: read overages: %w", err)
	}
	defer rows.Close()
	out := map[string]*overage{}
	for rows.Next() {
		var name string
		o, err := scanOverage(rows, &name)
		if err != nil {
			return nil, err
		}
		out[name] = o
	}
	return out, rows.Err()
}

// upsertGauge records a gauge's value in the period's history.
func upsertGauge(ctx context.Context, tx store.Tx, key Key, value int64, now time.Time) error {
	if _, err := tx.Exec(ctx, upsertGaugeSQL, key.WorkspaceID, key.Metric, key.PeriodStart, key.PeriodEnd, value, now); err != nil {
		return fmt.Errorf("usage: record %s: %w", key.Metric, err)
	}
	return nil
}
