package tenancy

import (
	"context"
	"fmt"
	"time"

	"atrium/internal/store"
)

// ExpiredInviteRetention is how long an invitation that was never accepted
// (it expired, or was revoked) stays in its workspace's list after its
// expiry, before DeleteExpiredInvites removes it. Accepted invitations stay:
// they tell who invited whom.
const ExpiredInviteRetention = 30 * 24 * time.Hour

// deleteExpiredInvitesSQL deletes a batch, served by the invite_expires index.
const deleteExpiredInvitesSQL = `DELETE FROM invite WHERE id IN (
    SELECT id FROM invite WHERE accepted_at IS NULL AND expires_at < $1 LIMIT $2)`

// cleanupBatch is how many rows one cleanup transaction deletes at most.
const cleanupBatch = 500

// DeleteExpiredInvites deletes, across workspaces and through the system
// path, the invitations never accepted whose expiry passed more than
// ExpiredInviteRetention ago, a batch per transaction. It returns how many
// it deleted, with the store's error or ctx's.
func DeleteExpiredInvites(ctx context.Context, db store.SystemDB) (int64, error) {
	n, err := store.DeleteInBatches(ctx, cleanupBatch, func(ctx context.Context, limit int) (int64, error) {
		var n int64
		err := db.System(ctx, "delete expired invitations", func(tx store.Tx) error {
			var err error
			n, err = tx.Exec(ctx, deleteExpiredInvitesSQL, tx.Now().Add(-ExpiredInviteRetention), limit)
			return err
		})
		return n, err
	})
	if err != nil {
		return n, fmt.Errorf("tenancy: delete expired invitations: %w", err)
	}
	return n, nil
}
