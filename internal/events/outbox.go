// Package events holds the outbox: events are appended in the same transaction
// as the change that causes them, so an event exists exactly when its change
// does. The relay that publishes them comes with the bus.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Event is a domain event of one workspace.
type Event struct {
	// Type is "noun.verb_past": "workspace.updated", "member.invited".
	Type    string
	Payload any
}

var eventType = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// Append writes e to the outbox inside tx, which must be a workspace
// transaction, and returns the event ID (also the bus's de-duplication ID).
// It returns an internal error, and writes nothing, when e's type is
// malformed or, once a catalogue is installed (UseCatalogue), when the
// catalogue does not document e.
func Append(ctx context.Context, tx store.Tx, e Event) (uuid.UUID, error) {
	workspaceID := tx.WorkspaceID()
	if workspaceID == uuid.Nil {
		return uuid.Nil, kernel.Internal(fmt.Errorf("outbox: event %q outside a workspace transaction", e.Type))
	}
	if !eventType.MatchString(e.Type) {
		return uuid.Nil, kernel.Internal(fmt.Errorf("outbox: malformed event type %q", e.Type))
	}
	payload, err := json.Marshal(e.Payload)
	if err != nil {
		return uuid.Nil, kernel.Internal(fmt.Errorf("outbox: payload of %s: %w", e.Type, err))
	}
	if err := checkCatalogued(e.Type, payload); err != nil {
		return uuid.Nil, kernel.Internal(fmt.Errorf("outbox: %w", err))
	}
	id := kernel.NewID()
	_, err = tx.Exec(ctx, `INSERT INTO outbox (id, workspace_id, event_type, payload, created_at)
        VALUES ($1, $2, $3, $4, $5)`, id, workspaceID, e.Type, string(payload), tx.Now())
	if err != nil {
		return uuid.Nil, fmt.Errorf("outbox %s: %w", e.Type, err)
	}
	return id, nil
}
