package events_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

// TestCleanupDeletesOnlyWhatIsPastItsRetention fills two workspaces' outbox
// and job records with rows on either side of each retention, and checks
// that Cleanup deletes exactly those past it, and never an unsent event.
func TestCleanupDeletesOnlyWhatIsPastItsRetention(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			clock := testkit.NewClock()
			db := testkit.OpenStore(t, d, clock)
			ctx := kernel.WithActor(context.Background(), kernel.SystemActor)
			now := clock.Now()
			day := 24 * time.Hour
			var gone, kept []uuid.UUID
			for _, slug := range []string{"acme", "globex"} {
				ws := storetest.CreateWorkspace(t, db, slug)
				gone = append(gone,
					outboxRow(t, db, ws, now.Add(-30*day), ptr(now.Add(-events.SentRetention-time.Minute))),
					jobRow(t, db, ws, now.Add(-60*day), ptr(now.Add(-events.FinishedJobRetention-time.Minute))))
				kept = append(kept,
					outboxRow(t, db, ws, now.Add(-30*day), ptr(now.Add(-events.SentRetention+time.Minute))),
					outboxRow(t, db, ws, now.Add(-90*day), nil), // never sent: the relay still owes it
					jobRow(t, db, ws, now.Add(-60*day), ptr(now.Add(-events.FinishedJobRetention+time.Minute))),
					jobRow(t, db, ws, now.Add(-90*day), nil)) // still running
			}
			c, err := events.Cleanup(ctx, db)
			if err != nil || c.SentEvents != 2 || c.FinishedJobs != 2 {
				t.Fatalf("cleanup: %+v %v; want two sent events and two jobs deleted", c, err)
			}
			left := remaining(t, db)
			for _, id := range gone {
				if slices.Contains(left, id) {
					t.Errorf("row %s past its retention survived", id)
				}
			}
			for _, id := range kept {
				if !slices.Contains(left, id) {
					t.Errorf("row %s within its retention (or unsent, or unfinished) was deleted", id)
				}
			}
			if c, err := events.Cleanup(ctx, db); err != nil || c != (events.Cleaned{}) {
				t.Fatalf("second cleanup: %+v %v; want nothing left to delete", c, err)
			}
		})
	}
}

func ptr(t time.Time) *time.Time { return &t }

// outboxRow inserts an event of ws created at createdAt and sent at sentAt
// (nil: unsent), and returns its ID.
func outboxRow(t *testing.T, db store.SystemDB, ws uuid.UUID, createdAt time.Time, sentAt *time.Time) uuid.UUID {
	t.Helper()
	id := kernel.NewID()
	insert(t, db, ws, `INSERT INTO outbox (id, workspace_id, event_type, payload, created_at, sent_at)
        VALUES ($1, $2, 'test.happened', '{}', $3, $4)`, id, ws, createdAt, sentAt)
	return id
}

// jobRow inserts a job of ws created at createdAt and finished at finishedAt
// (nil: running), and returns its ID.
func jobRow(t *testing.T, db store.SystemDB, ws uuid.UUID, createdAt time.Time, finishedAt *time.Time) uuid.UUID {
	t.Helper()
	id := kernel.NewID()
	status := "running"
	if finishedAt != nil {
		status = "succeeded"
	}
	insert(t, db, ws, `INSERT INTO job (id, workspace_id, kind, status, payload, created_at, updated_at, started_at, finished_at)
        VALUES ($1, $2, 'test.work', $3, '{}', $4, $4, $4, $5)`, id, ws, status, createdAt, finishedAt)
	return id
}

func insert(t *testing.T, db store.SystemDB, ws uuid.UUID, query string, args ...any) {
	t.Helper()
	err := db.InWorkspace(context.Background(), ws, func(tx store.Tx) error {
		_, err := tx.Exec(context.Background(), query, args...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// remaining returns the IDs of every outbox row and job record.
func remaining(t *testing.T, db store.SystemDB) []uuid.UUID {
	t.Helper()
	var ids []uuid.UUID
	err := db.System(context.Background(), "test: list outbox rows and jobs", func(tx store.Tx) error {
		rows, err := tx.Query(context.Background(), "SELECT id FROM outbox UNION ALL SELECT id FROM job")
		if err != nil {
			return err
		}
		ids, err = store.Collect(rows, func(row store.Row) (uuid.UUID, error) {
			var id uuid.UUID
			return id, row.Scan(&id)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
