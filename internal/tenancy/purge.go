package tenancy

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

const (
	// The oldest workspace past its restore window, served by the
	// workspace_deleted index.
	selectPurgeableSQL = `SELECT id, deleted_at FROM workspace
        WHERE deleted_at IS NOT NULL AND deleted_at < $1 ORDER BY deleted_at, id LIMIT 1`
	// purgeWorkspaceSQL repeats the window test, so a workspace restored
	// since it was selected stays.
	purgeWorkspaceSQL = "DELETE FROM workspace WHERE id = $1 AND deleted_at IS NOT NULL AND deleted_at < $2"
)

// PurgeDeletedWorkspaces deletes for good every workspace deleted more than
// RestoreWindow ago, oldest first and each in a transaction of its own,
// through the system path. Its tenant rows (members, invitations, teams,
// keys, events, jobs, its audit log) go with it by ON DELETE CASCADE. In
// place of its audit log, each purge leaves a platform audit entry,
// workspace.purged, by the actor in ctx, and an info line in ctx's log.
//
// It stops when none is left or ctx ends, and returns how many it purged,
// with the store's error or ctx's.
func PurgeDeletedWorkspaces(ctx context.Context, db store.SystemDB) (int, error) {
	purged := 0
	for ctx.Err() == nil {
		var id uuid.UUID
		var deletedAt time.Time
		var gone bool
		err := db.System(ctx, "purge a deleted workspace", func(tx store.Tx) error {
			cutoff := tx.Now().Add(-RestoreWindow)
			if err := tx.QueryRow(ctx, selectPurgeableSQL, cutoff).Scan(&id, &deletedAt); err != nil {
				return err
			}
			n, err := tx.Exec(ctx, purgeWorkspaceSQL, id, cutoff)
			if gone = n == 1; err != nil || !gone {
				return err // restored meanwhile: it stays
			}
			_, err = audit.Record(ctx, tx, audit.Entry{Action: "workspace.purged", TargetType: "workspace",
				TargetID: kernel.FormatID(kernel.PrefixWorkspace, id), Metadata: map[string]any{"deleted_at": deletedAt.UTC()}})
			return err
		})
		switch {
		case kernel.IsCode(err, kernel.CodeNotFound):
			return purged, nil
		case err != nil:
			return purged, fmt.Errorf("tenancy: purge deleted workspaces: %w", err)
		case !gone:
			continue
		}
		purged++
		kernel.Logger(ctx).InfoContext(ctx, "workspace purged", "workspace_id", kernel.FormatID(kernel.PrefixWorkspace, id),
			"deleted_at", deletedAt.UTC())
	}
	return purged, ctx.Err()
}
