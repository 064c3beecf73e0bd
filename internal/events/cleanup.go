package events

import (
	"context"
	"fmt"
	"time"

	"atrium/internal/store"
)

// Retention of what the outbox and the jobs leave behind.
const (
	// SentRetention is how long an outbox row stays after the relay
	// published it: long enough to trace a recent event back to its row,
	// while JetStream, not the outbox, is where events are read from.
	SentRetention = 7 * 24 * time.Hour
	// FinishedJobRetention is how long a finished job's record stays
	// readable (GET …/jobs/{job_id}) after it succeeded, failed or was
	// canceled.
	FinishedJobRetention = 30 * 24 * time.Hour
)

// cleanupBatch is how many rows one cleanup transaction deletes at most.
const cleanupBatch = 500

const (
	// deleteSentSQL deletes a batch of published rows, served by outbox_sent.
	deleteSentSQL = `DELETE FROM outbox WHERE id IN (
        SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 LIMIT $2)`
	// deleteFinishedJobsSQL deletes a batch of finished records, served by
	// job_finished.
	deleteFinishedJobsSQL = `DELETE FROM job WHERE id IN (
        SELECT id FROM job WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)`
)

// Cleaned is what one Cleanup deleted.
type Cleaned struct {
	SentEvents   int64
	FinishedJobs int64
}

// Cleanup deletes, across workspaces and through the system path, the
// outbox rows published more than SentRetention ago and the records of jobs
// finished more than FinishedJobRetention ago, a batch per transaction. An
// unsent row is never deleted, however old. It returns what it deleted, with
// the store's error or ctx's.
func Cleanup(ctx context.Context, db store.SystemDB) (Cleaned, error) {
	var c Cleaned
	var err error
	c.SentEvents, err = store.DeleteInBatches(ctx, cleanupBatch, func(ctx context.Context, limit int) (int64, error) {
		return deleteOld(ctx, db, "delete sent outbox rows", deleteSentSQL, SentRetention, limit)
	})
	if err != nil {
		return c, fmt.Errorf("events: delete sent outbox rows: %w", err)
	}
	c.FinishedJobs, err = store.DeleteInBatches(ctx, cleanupBatch, func(ctx context.Context, limit int) (int64, error) {
		return deleteOld(ctx, db, "delete finished job records", deleteFinishedJobsSQL, FinishedJobRetention, limit)
	})
	if err != nil {
		return c, fmt.Errorf("events: delete finished job records: %w", err)
	}
	return c, nil
}

// deleteOld runs query, a batch delete taking a cutoff ($1, age before the
// transaction's time) and a limit ($2), in a system transaction of its own
// logged with reason. It returns how many rows it deleted, or the store's
// error.
func deleteOld(ctx context.Context, db store.SystemDB, reason, query string, age time.Duration, limit int) (int64, error) {
	var n int64
	err := db.System(ctx, reason, func(tx store.Tx) error {
		var err error
		n, err = tx.Exec(ctx, query, tx.Now().Add(-age), limit)
		return err
	})
	return n, err
}
