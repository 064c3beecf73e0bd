package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Run is one run of a task, as recorded.
type Run struct {
	ID   uuid.UUID
	Task string
	// Node is the node that ran it.
	Node string
	// ScheduledAt is the tick the run is for; StartedAt is when it was
	// claimed, at most a Tick later unless the scheduler was busy.
	ScheduledAt time.Time
	StartedAt   time.Time
	// FinishedAt is nil while the run goes on, and for good if its node
	// died before it ended.
	FinishedAt *time.Time
	// Duration is how long the run took; zero while FinishedAt is nil.
	Duration time.Duration
	// Error is the task's error or panic, empty after a success.
	Error string
}

// Succeeded reports whether the run has ended without an error.
func (r Run) Succeeded() bool { return r.FinishedAt != nil && r.Error == "" }

// RunPosition is where a page of runs ends: the sort key of its last run.
type RunPosition struct {
	StartedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

// TaskState is a registered task with its schedule as the store has it.
type TaskState struct {
	Name  string
	Every time.Duration
	// NextRunAt is the task's next tick; nil until a leader first records
	// the task.
	NextRunAt *time.Time
	// LastRun is the task's most recent run, nil before the first.
	LastRun *Run
}

// The run lists read newest first, by (started_at, id) descending, served by
// scheduler_run_started or, for one task, scheduler_run_task_started. Both
// dialects compare row values.
const (
	runColumns       = "id, task, node, scheduled_at, started_at, finished_at, duration_ms, error"
	listRunsSQL      = "SELECT " + runColumns + " FROM scheduler_run ORDER BY started_at DESC, id DESC LIMIT $1"
	listRunsAfterSQL = "SELECT " + runColumns + ` FROM scheduler_run WHERE (started_at, id) < ($2, $3)
        ORDER BY started_at DESC, id DESC LIMIT $1`
	listTaskRunsSQL      = "SELECT " + runColumns + " FROM scheduler_run WHERE task = $2 ORDER BY started_at DESC, id DESC LIMIT $1"
	listTaskRunsAfterSQL = "SELECT " + runColumns + ` FROM scheduler_run WHERE task = $2 AND (started_at, id) < ($3, $4)
        ORDER BY started_at DESC, id DESC LIMIT $1`
	selectTaskSQL = "SELECT next_run_at FROM scheduler_task WHERE name = $1"
	// deleteRunsSQL deletes a batch of the runs that started before $1.
	deleteRunsSQL = `DELETE FROM scheduler_run WHERE id IN (
        SELECT id FROM scheduler_run WHERE started_at < $1 ORDER BY started_at LIMIT $2)`
)

// Runs returns up to limit runs, newest first, of the task named task (of
// every task when it is empty), starting after position after (nil for the
// first page). Callers ask for one more than they show to learn whether there
// is a next page. It reads platform tables only, so it serves requests. It
// returns the store's error.
func (s *Scheduler) Runs(ctx context.Context, task string, after *RunPosition, limit int) ([]Run, error) {
	query, args := listRunsSQL, []any{limit}
	switch {
	case task == "" && after != nil:
		query, args = listRunsAfterSQL, append(args, after.StartedAt, after.ID)
	case task != "" && after == nil:
		query, args = listTaskRunsSQL, append(args, task)
	case task != "":
		query, args = listTaskRunsAfterSQL, append(args, task, after.StartedAt, after.ID)
	}
	var runs []Run
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		runs, err = store.Collect(rows, scanRun)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: list runs: %w", err)
	}
	return runs, nil
}

// Tasks returns every registered task, by name, with its next tick and its
// last run. It reads platform tables only, so it serves requests. It returns
// the store's error.
func (s *Scheduler) Tasks(ctx context.Context) ([]TaskState, error) {
	tasks := s.registered()
	out := make([]TaskState, len(tasks))
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		for i, t := range tasks {
			out[i] = TaskState{Name: t.Name, Every: t.Every}
			var next time.Time
			err := tx.QueryRow(ctx, selectTaskSQL, t.Name).Scan(&next)
			switch {
			case kernel.IsCode(err, kernel.CodeNotFound):
				continue // no leader has recorded it yet, so it has not run either
			case err != nil:
				return err
			}
			next = next.UTC()
			out[i].NextRunAt = &next
			last, err := scanRun(tx.QueryRow(ctx, listTaskRunsSQL, 1, t.Name))
			switch {
			case kernel.IsCode(err, kernel.CodeNotFound):
			case err != nil:
				return err
			default:
				out[i].LastRun = &last
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: list tasks: %w", err)
	}
	return out, nil
}

// DeleteRunsOlderThan deletes the records of runs that started more than age
// ago, in batches of a few hundred, and returns how many it deleted. It
// returns the store's error, having deleted the batches before it.
func (s *Scheduler) DeleteRunsOlderThan(ctx context.Context, age time.Duration) (int64, error) {
	n, err := store.DeleteInBatches(ctx, 500, func(ctx context.Context, limit int) (int64, error) {
		var n int64
		err := s.db.Tx(ctx, func(tx store.Tx) error {
			var err error
			n, err = tx.Exec(ctx, deleteRunsSQL, tx.Now().Add(-age), limit)
			return err
		})
		return n, err
	})
	if err != nil {
		return n, fmt.Errorf("scheduler: delete old runs: %w", err)
	}
	return n, nil
}

func scanRun(row store.Row) (Run, error) {
	var r Run
	var durationMS *int64
	if err := row.Scan(&r.ID, &r.Task, &r.Node, &r.ScheduledAt, &r.StartedAt, &r.FinishedAt, &durationMS, &r.Error); err != nil {
		return Run{}, err
	}
	r.ScheduledAt, r.StartedAt = r.ScheduledAt.UTC(), r.StartedAt.UTC()
	if r.FinishedAt != nil {
		end := r.FinishedAt.UTC()
		r.FinishedAt = &end
	}
	if durationMS != nil {
		r.Duration = time.Duration(*durationMS) * time.Millisecond
	}
	return r, nil
}
