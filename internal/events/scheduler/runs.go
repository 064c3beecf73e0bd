package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// maxErrorLength bounds the error text a run records.
const maxErrorLength = 2000

const (
	// A task's row is written the first time a leader sees the task, due at
	// once; a release that changes its interval makes it due at once again,
	// and the new interval counts from there.
	insertTaskSQL = `INSERT INTO scheduler_task (name, every_ms, next_run_at, updated_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (name) DO NOTHING`
	realignTaskSQL = `UPDATE scheduler_task SET every_ms = $2, next_run_at = $3, updated_at = $4
        WHERE name = $1 AND every_ms <> $2`
	dueTasksSQL = `SELECT name, next_run_at FROM scheduler_task WHERE next_run_at <= $1 ORDER BY next_run_at, name`
	// claimSQL moves a task from the tick the claimer read to the next one,
	// only while the claimer holds the lease: of two nodes that read the same
	// tick, the second finds next_run_at moved and claims nothing.
	claimSQL = `UPDATE scheduler_task SET next_run_at = $3, updated_at = $4
        WHERE name = $1 AND next_run_at = $2
          AND EXISTS (SELECT 1 FROM scheduler_lease WHERE name = $5 AND holder = $6 AND expires_at > $4)`
	insertRunSQL = `INSERT INTO scheduler_run (id, task, node, scheduled_at, started_at) VALUES ($1, $2, $3, $4, $5)`
	finishRunSQL = `UPDATE scheduler_run SET finished_at = $2, duration_ms = $3, error = $4 WHERE id = $1`
)

// dueTask is a task whose tick has come, as the store has it.
type dueTask struct {
	name      string
	nextRunAt time.Time
}

// syncTasks records every registered task that has no row yet, due now,
// and makes those whose interval changed due now. It returns the store's
// error.
func (s *Scheduler) syncTasks(ctx context.Context) error {
	tasks := s.registered()
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		for _, t := range tasks {
			if _, err := tx.Exec(ctx, insertTaskSQL, t.Name, t.Every.Milliseconds(), now, now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, realignTaskSQL, t.Name, t.Every.Milliseconds(), now, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scheduler: record tasks: %w", err)
	}
	return nil
}

// dueTasks returns the tasks whose next tick has come, earliest first, or the
// store's error.
func (s *Scheduler) dueTasks(ctx context.Context) ([]dueTask, error) {
	var due []dueTask
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, dueTasksSQL, tx.Now())
		if err != nil {
			return err
		}
		due, err = store.Collect(rows, func(row store.Row) (dueTask, error) {
			var d dueTask
			err := row.Scan(&d.name, &d.nextRunAt)
			d.nextRunAt = d.nextRunAt.UTC()
			return d, err
		})
		return err
	})
	return due, err
}

// claim takes the run of t's tick scheduled, moving the task on to its next
// tick and recording the run as started, in one transaction. It returns nil
// when another node claimed the tick first or this node no longer holds the
// lease, and the store's error.
func (s *Scheduler) claim(ctx context.Context, t Task, scheduled time.Time) (*Run, error) {
	var run *Run
	var skipped int64
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		next := nextTick(scheduled, t.Every, now)
		n, err := tx.Exec(ctx, claimSQL, t.Name, scheduled, next, now, leaseName, s.node)
		if err != nil || n == 0 {
			return err
		}
		r := Run{ID: kernel.NewID(), Task: t.Name, Node: s.node, ScheduledAt: scheduled, StartedAt: now}
		if _, err := tx.Exec(ctx, insertRunSQL, r.ID, r.Task, r.Node, r.ScheduledAt, r.StartedAt); err != nil {
			return err
		}
		run, skipped = &r, int64(next.Sub(scheduled)/t.Every)-1
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scheduler: claim %s: %w", t.Name, err)
	}
	if skipped > 0 {
		s.logger.Info("scheduler: skipped missed ticks", "task", t.Name, "skipped", skipped)
	}
	return run, nil
}

// execute runs the claimed run r of t under ctx and records how it ended. A
// run that ctx cut short (the scheduler stops, or lost its lease) is
// recorded with its context's error.
func (s *Scheduler) execute(ctx context.Context, t Task, r Run) {
	log := s.logger.With("task", t.Name, "run_id", kernel.FormatID(kernel.PrefixSchedulerRun, r.ID))
	err := call(kernel.WithLogger(ctx, log), t.Run)
	end := s.clock.Now()
	duration := max(end.Sub(r.StartedAt), 0)
	var text string
	if err != nil {
		text = describe(err)
	}
	// The end is written even while the scheduler stops.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	recordErr := s.db.Tx(bctx, func(tx store.Tx) error {
		_, err := tx.Exec(bctx, finishRunSQL, r.ID, end, duration.Milliseconds(), text)
		return err
	})
	var p *panicError
	switch {
	case errors.As(err, &p):
		log.Error("scheduler: task panicked", "error", text, "stack", string(p.stack))
	case err != nil && ctx.Err() != nil:
		log.Warn("scheduler: task stopped", "error", text, "duration_ms", duration.Milliseconds())
	case err != nil:
		log.Error("scheduler: task failed", "error", text, "duration_ms", duration.Milliseconds())
	default:
		log.Info("scheduler: task done", "duration_ms", duration.Milliseconds())
	}
	if recordErr != nil {
		log.Error("scheduler: cannot record the end of a run", "error", recordErr.Error())
	}
}

// panicError is a task's panic, turned into its run's error.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// call runs fn, turning a panic into a *panicError.
func call(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}

// describe returns err's text for the run record, bounded to
// maxErrorLength bytes of valid UTF-8.
func describe(err error) string {
	s := err.Error()
	if s == "" {
		s = "error with no message"
	}
	if len(s) > maxErrorLength {
		s = s[:maxErrorLength]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// nextTick is the tick after scheduled that is still ahead of now: the
// following one, or later ones when the task is more than a tick late (the
// missed ticks are skipped, not run as a backlog).
func nextTick(scheduled time.Time, every time.Duration, now time.Time) time.Time {
	next := scheduled.Add(every)
	if next.After(now) {
		return next
	}
	return next.Add((now.Sub(next)/every + 1) * every)
}
