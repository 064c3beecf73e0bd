package usage

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/store"
)

// recalcPage is how many workspaces RecalculateGauges lists at a time.
const recalcPage = 500

const listLiveWorkspacesSQL = `SELECT id FROM workspace WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2`

// RecalculateGauges is the hourly scheduled task of usage: for every live
// workspace, in a transaction of its own, it sums storage_bytes over the
// storage sources and counts members, records both in the period's history,
// and applies the quota rules to every metric (api_calls at its live count).
// So a threshold or a grace period that ends without any growth is noticed
// within the hour, and an overage ends once usage is back within the limit.
// It lists workspaces through db's system path. It returns how many
// workspaces it recalculated, and the errors met (a failing workspace does
// not stop the others).
func (s *Service) RecalculateGauges(ctx context.Context, db store.SystemDB) (int, error) {
	var errs []error
	done, after := 0, uuid.Nil
	for {
		var page []uuid.UUID
		err := db.System(ctx, "usage: list workspaces to recalculate their usage", func(tx store.Tx) error {
			rows, err := tx.Query(ctx, listLiveWorkspacesSQL, after, recalcPage)
			if err != nil {
				return err
			}
			page, err = store.Collect(rows, func(row store.Row) (uuid.UUID, error) {
				var id uuid.UUID
				return id, row.Scan(&id)
			})
			return err
		})
		if err != nil {
			return done, errors.Join(append(errs, fmt.Errorf("usage: list workspaces: %w", err))...)
		}
		for _, id := range page {
			if err := s.recalculate(ctx, db, id); err != nil {
				errs = append(errs, err)
				continue
			}
			done++
		}
		if len(page) < recalcPage || ctx.Err() != nil {
			return done, errors.Join(append(errs, ctx.Err())...)
		}
		after = page[len(page)-1]
	}
}

// recalculate measures and judges one workspace's usage.
func (s *Service) recalculate(ctx context.Context, db store.DB, workspaceID uuid.UUID) error {
	// The live count, not the flushed one: with Redis the two may differ,
	// and an overage must not end because the history lags.
	calls, err := s.meter.peek(ctx, workspaceID, APICalls)
	if err != nil {
		return fmt.Errorf("usage: recalculate %s: %w", workspaceID, err)
	}
	limits := map[string]int64{}
	for _, m := range metrics {
		l, err := s.limit(ctx, workspaceID, m)
		if err != nil {
			return err
		}
		limits[m.Name] = l
	}
	recs := map[string]recorded{}
	keys := map[string]Key{}
	err = db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		if err := lockWorkspace(ctx, tx, workspaceID); err != nil {
			return err
		}
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
			if recs[m.Name], err = s.record(ctx, tx, m, key, used, limits[m.Name]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("usage: recalculate %s: %w", workspaceID, err)
	}
	now := s.clock.Now()
	for name, rec := range recs {
		s.cache.set(workspaceID, name, keys[name].PeriodStart, rec.warned, rec.over, now)
	}
	return nil
}
