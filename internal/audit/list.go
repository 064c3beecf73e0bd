package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/store"
)

// StoredEntry is an audit entry as stored.
type StoredEntry struct {
	ID         uuid.UUID
	ActorType  string
	ActorID    string
	Action     string
	TargetType string
	TargetID   string
	Metadata   []byte // JSON object
	IP         string
	UserAgent  string
	RequestID  string
	CreatedAt  time.Time
}

// Position is where a page of the log ends: the sort key of its last entry.
type Position struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

// The log reads newest first, by (created_at, id) descending, served by the
// audit_log_workspace_created index. Both dialects compare row values.
const (
	listFirstSQL = `SELECT id, actor_type, actor_id, action, target_type, target_id, metadata, ip, user_agent, request_id, created_at
        FROM audit_log WHERE workspace_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2`
	listAfterSQL = `SELECT id, actor_type, actor_id, action, target_type, target_id, metadata, ip, user_agent, request_id, created_at
        FROM audit_log WHERE workspace_id = $1 AND (created_at, id) < ($3, $4)
        ORDER BY created_at DESC, id DESC LIMIT $2`
)

// List returns up to limit entries of the workspace's log, newest first,
// starting after position (nil for the first page). Callers ask for one more
// than they show to learn whether there is a next page; nothing is counted.
func List(ctx context.Context, db store.DB, workspaceID uuid.UUID, after *Position, limit int) ([]StoredEntry, error) {
	var out []StoredEntry
	err := db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == nil {
			rows, err = tx.Query(ctx, listFirstSQL, workspaceID, limit)
		} else {
			rows, err = tx.Query(ctx, listAfterSQL, workspaceID, limit, after.CreatedAt, after.ID)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (StoredEntry, error) {
			var r StoredEntry
			err := row.Scan(&r.ID, &r.ActorType, &r.ActorID, &r.Action, &r.TargetType, &r.TargetID,
				&r.Metadata, &r.IP, &r.UserAgent, &r.RequestID, &r.CreatedAt)
			return r, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}
