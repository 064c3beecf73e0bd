package webhooks

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// selectTargetsSQL lists the endpoints an event may go to, served by
// webhook_endpoint_workspace.
const selectTargetsSQL = `SELECT id, event_types FROM webhook_endpoint
    WHERE workspace_id = $1 AND disabled_at IS NULL ORDER BY id`

// target is an enabled endpoint and its filter.
type target struct {
	id    uuid.UUID
	types []string
}

// fanOut is the events subscriber: it writes one delivery of e to each
// enabled endpoint of e's workspace whose filter matches, and enqueues each
// delivery's job, in one workspace transaction. Run twice for one event (the
// bus may hand it over again), it writes nothing the second time. It
// returns a permanent error for an envelope it cannot read, or the store's
// error, and the runtime retries it.
func (s *Service) fanOut(ctx context.Context, e events.Envelope) error {
	workspaceID, err := e.WorkspaceUUID()
	if err != nil {
		return events.Permanent(fmt.Errorf("webhooks: event %s: %w", e.ID, err))
	}
	eventID, err := e.EventUUID()
	if err != nil {
		return events.Permanent(fmt.Errorf("webhooks: event %s: %w", e.ID, err))
	}
	if ok, err := s.planAllows(ctx, workspaceID); err != nil || !ok {
		return err // a plan without webhooks: nothing is delivered
	}
	// Most workspaces have no endpoint: find that out without taking the
	// write lock (SQLite's only writer).
	var found []target
	err = s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		found, err = targets(ctx, tx, workspaceID, e.Type)
		return err
	})
	if err != nil {
		return fmt.Errorf("webhooks: fan out %s: %w", e.ID, err)
	}
	if len(found) == 0 {
		return nil
	}
	body, err := json.Marshal(e)
	if err != nil {
		return events.Permanent(kernel.Internal(fmt.Errorf("webhooks: event %s: %w", e.ID, err)))
	}
	err = s.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		found, err := targets(ctx, tx, workspaceID, e.Type) // again: one may have been disabled since
		if err != nil {
			return err
		}
		for _, t := range found {
			d := Delivery{ID: kernel.NewID(), WorkspaceID: workspaceID, EndpointID: t.id, EventID: eventID,
				EventType: e.Type, CreatedAt: tx.Now()}
			if _, err := insertDelivery(ctx, tx, d, body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("webhooks: fan out %s: %w", e.ID, err)
	}
	return nil
}

// targets returns the workspace's enabled endpoints whose filter matches
// eventType.
func targets(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, eventType string) ([]target, error) {
	rows, err := tx.Query(ctx, selectTargetsSQL, workspaceID)
	if err != nil {
		return nil, err
	}
	all, err := store.Collect(rows, func(row store.Row) (target, error) {
		var t target
		var types string
		if err := row.Scan(&t.id, &types); err != nil {
			return t, err
		}
		return t, json.Unmarshal([]byte(types), &t.types)
	})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, t := range all {
		if matches(t.types, eventType) {
			out = append(out, t)
		}
	}
	return out, nil
}
