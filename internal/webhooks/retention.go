package webhooks

import (
	"context"
	"fmt"
	"time"

	"atrium/internal/store"
)

// DeliveryRetention is how long a settled delivery, with its attempts,
// stays in its endpoint's log.
const DeliveryRetention = 30 * 24 * time.Hour

// retentionBatch is how many deliveries one cleanup transaction deletes.
const retentionBatch = 500

// deleteOldDeliveriesSQL deletes a batch of deliveries settled before $1,
// served by webhook_delivery_settled; their attempts go by cascade.
const deleteOldDeliveriesSQL = `DELETE FROM webhook_delivery WHERE id IN (
    SELECT id FROM webhook_delivery WHERE status <> 'pending' AND updated_at < $1 LIMIT $2)`

// DeleteOldDeliveries deletes, across workspaces and through the system
// path, the deliveries settled more than DeliveryRetention ago with their
// attempts, a batch per transaction; a pending delivery stays however old.
// The scheduler runs it. It returns how many deliveries it deleted, with the
// store's error or ctx's.
func DeleteOldDeliveries(ctx context.Context, db store.SystemDB) (int64, error) {
	n, err := store.DeleteInBatches(ctx, retentionBatch, func(ctx context.Context, limit int) (int64, error) {
		var n int64
		err := db.System(ctx, "delete old webhook deliveries", func(tx store.Tx) error {
			var err error
			n, err = tx.Exec(ctx, deleteOldDeliveriesSQL, tx.Now().Add(-DeliveryRetention), limit)
			return err
		})
		return n, err
	})
	if err != nil {
		return n, fmt.Errorf("webhooks: delete old deliveries: %w", err)
	}
	return n, nil
}
