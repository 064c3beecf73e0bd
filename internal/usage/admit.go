package usage

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// lockWorkspaceSQL serialises a workspace's admissions: the second of two
// transactions admitting into one workspace waits for the first to end and
// then counts what it added. SQLite's BEGIN IMMEDIATE already holds the only
// write lock, and it has no FOR UPDATE.
var lockWorkspaceSQL = map[store.Dialect]string{
	store.Postgres: "SELECT id FROM workspace WHERE id = $1 FOR UPDATE",
	store.SQLite:   "SELECT id FROM workspace WHERE id = $1",
}

// countMembersSQL counts the members gauge: memberships and the invitations
// still pending (neither accepted nor revoked, and unexpired at $2), since
// each holds a seat until it is accepted or lapses.
const countMembersSQL = `SELECT (SELECT count(*) FROM membership WHERE workspace_id = $1)
     + (SELECT count(*) FROM invite WHERE workspace_id = $1
          AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2)`

// Admit decides whether the workspace may grow its gauge metric (members,
// storage_bytes) by delta units. Call it inside the write transaction that
// adds them (tx, bound to workspaceID), before the statement that adds
// them: it locks the workspace's row, so that concurrent admissions into one
// workspace run one after the other, counts the gauge as it stands, and
// applies the quota rules to the count plus delta. Of many transactions
// racing for the last unit, exactly one is admitted. An admission that goes
// past a threshold or the limit records it in tx (warning, grace), so it
// commits or rolls back with the growth.
//
// It returns quota_exceeded (Fields metric, current and limit) when the
// growth would take the metric to a blocked state, an internal error for a
// metric that is not a gauge or a tx bound elsewhere, and the errors of
// PlanLimits and the store. A delta of zero or less, or an unlimited
// metric, is always admitted. PlanLimits and Periods are asked while the
// caller's transaction holds its connection: they must answer from memory
// (billing.Entitlements caches), or take a connection of their own.
func (s *Service) Admit(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, metricName string, delta int64) error {
	m, ok := lookupMetric(metricName)
	if !ok || m.Counter {
		return kernel.Internal(fmt.Errorf("usage: admit %q: not a gauge", metricName))
	}
	if tx.WorkspaceID() != workspaceID || workspaceID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("usage: admit into %s in a transaction bound to %s", workspaceID, tx.WorkspaceID()))
	}
	if delta <= 0 {
		return nil
	}
	limit, err := s.limit(ctx, workspaceID, m)
	if err != nil || limit < 0 {
		return err
	}
	if err := lockWorkspace(ctx, tx, workspaceID); err != nil {
		return err
	}
	used, err := s.gauge(ctx, tx, m, workspaceID)
	if err != nil {
		return err
	}
	key, err := s.period(ctx, workspaceID, m.Name, tx.Now())
	if err != nil {
		return err
	}
	over, err := readOverage(ctx, tx, workspaceID, m.Name)
	if err != nil {
		return err
	}
	if over != nil && used <= limit {
		// The workspace came back within its limit since the overage was
		// recorded (members left): going past it again starts afresh.
		if _, err := tx.Exec(ctx, deleteOverageSQL, workspaceID, m.Name); err != nil {
			return fmt.Errorf("usage: end the overage: %w", err)
		}
		over = nil
	}
	if judge(used+delta, limit, over, tx.Now()).State == StateBlocked {
		return quotaExceeded(m, used, limit)
	}
	if err := upsertGauge(ctx, tx, key, used+delta, tx.Now()); err != nil {
		return err
	}
	_, err = s.record(ctx, tx, m, key, used+delta, limit)
	return err
}

// ApplyLimits holds workspaceID to its plan's current limits at once.
// Billing calls it after a plan change takes effect: a metric whose usage is
// past its new limit is blocked straight away, with neither buffer nor grace
// (usage.blocked, reason plan_changed); a metric within its limit is
// released from any grace or block; thresholds reached under the new limits
// are warned as usual. api_calls is judged on this node's live count; other
// nodes see the change within their overage cache's 30 seconds. It returns
// the errors of PlanLimits and the store.
func (s *Service) ApplyLimits(ctx context.Context, workspaceID uuid.UUID) error {
	calls, err := s.meter.Count(ctx, workspaceID, APICalls)
	if err != nil {
		return err
	}
	limits := map[string]int64{}
	for _, m := range metrics {
		if limits[m.Name], err = s.limit(ctx, workspaceID, m); err != nil {
			return err
		}
	}
	recs := map[string]recorded{}
	var keys map[string]Key
	err = s.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		if err := lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
		keys = map[string]Key{}
		for _, m := range metrics {
			key, err := s.period(ctx, workspaceID, m.Name, tx.Now())
			if err != nil {
				return err
			}
			keys[m.Name] = key
			used := calls
			if !m.Counter {
				if used, err = s.gauge(ctx, tx, m, workspaceID); err != nil {
					return err
				}
				if err := upsertGauge(ctx, tx, key, used, tx.Now()); err != nil {
					return err
				}
			}
			if limit := limits[m.Name]; limit >= 0 && used > limit {
				if err := s.blockWithoutGrace(ctx, tx, m, key, used, limit); err != nil {
					return err
				}
			}
			if recs[m.Name], err = s.record(ctx, tx, m, key, used, limits[m.Name]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("usage: apply the limits of %s: %w", workspaceID, err)
	}
	now := s.clock.Now()
	for name, rec := range recs {
		s.cache.set(workspaceID, name, keys[name].PeriodStart, rec.warned, rec.over, now)
	}
	return nil
}

// lockWorkspace locks the workspace's row for the rest of tx. It returns
// not_found for a workspace that does not exist.
func lockWorkspace(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) error {
	var id uuid.UUID
	if err := tx.QueryRow(ctx, lockWorkspaceSQL[tx.Dialect()], workspaceID).Scan(&id); err != nil {
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return kernel.NotFound("workspace")
		}
		return fmt.Errorf("usage: lock workspace %s: %w", workspaceID, err)
	}
	return nil
}

// gauge measures a gauge metric now, in tx: members counted from tenancy's
// tables, storage summed over the storage sources.
func (s *Service) gauge(ctx context.Context, tx store.Tx, m metric, workspaceID uuid.UUID) (int64, error) {
	if m.Name == Members {
		return countMembers(ctx, tx, workspaceID)
	}
	var total int64
	for _, src := range s.storage {
		n, err := src.StorageBytes(ctx, tx, workspaceID)
		if err != nil {
			return 0, fmt.Errorf("usage: storage of %s: %w", workspaceID, err)
		}
		total += n
	}
	return total, nil
}

// countMembers counts the members gauge in tx.
func countMembers(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) (int64, error) {
	var n int64
	if err := tx.QueryRow(ctx, countMembersSQL, workspaceID, tx.Now()).Scan(&n); err != nil {
		return 0, fmt.Errorf("usage: count the members of %s: %w", workspaceID, err)
	}
	return n, nil
}
