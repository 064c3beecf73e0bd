package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// JobRecord is what a workspace's people see of a job.
type JobRecord struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Kind        string
	// Status is queued, running, retrying, succeeded, failed or canceled.
	Status   string
	Attempts int
	Progress int
	// Result is the handler's result as JSON, nil until it succeeds.
	Result json.RawMessage
	// Error is the last attempt's error, empty if none failed.
	Error             string
	CancelRequestedAt *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
	StartedAt         *time.Time
	FinishedAt        *time.Time
}

// Final reports whether the job will not change any more.
func (j JobRecord) Final() bool {
	return j.Status == "succeeded" || j.Status == "failed" || j.Status == "canceled"
}

// Jobs reads and cancels job records for the API.
type Jobs struct{ db store.DB }

// NewJobs returns the job records service over db.
func NewJobs(db store.DB) *Jobs { return &Jobs{db: db} }

const selectJob = `SELECT id, workspace_id, kind, status, attempts, progress, result, error, cancel_requested_at,
    created_at, updated_at, started_at, finished_at FROM job WHERE id = $1`

func scanJob(row store.Row) (JobRecord, error) {
	var j JobRecord
	var result *string
	err := row.Scan(&j.ID, &j.WorkspaceID, &j.Kind, &j.Status, &j.Attempts, &j.Progress, &result, &j.Error,
		&j.CancelRequestedAt, &j.CreatedAt, &j.UpdatedAt, &j.StartedAt, &j.FinishedAt)
	if result != nil {
		j.Result = json.RawMessage(*result)
	}
	return j, err
}

// Get returns one of the workspace's jobs. It returns not_found if there is
// no such job in res's workspace, forbidden if the actor may not read jobs.
func (s *Jobs) Get(ctx context.Context, res policy.Resource, id uuid.UUID) (JobRecord, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.JobRead, res); err != nil {
		return JobRecord{}, err
	}
	j, err := scanJob(s.db.WorkspaceRow(ctx, res.Workspace, selectJob, id))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return JobRecord{}, kernel.NotFound("job")
	}
	if err != nil {
		return JobRecord{}, fmt.Errorf("job %s: %w", id, err)
	}
	return j, nil
}

// Cancel asks for a job to stop. A job still waiting is canceled at once; a
// running one stops when its handler next reports progress; a finished one
// answers conflict. It returns the record as it now stands, not_found as Get
// does, or forbidden if the actor may not cancel jobs.
func (s *Jobs) Cancel(ctx context.Context, res policy.Resource, id uuid.UUID) (JobRecord, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.JobCancel, res); err != nil {
		return JobRecord{}, err
	}
	var j JobRecord
	err := s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		// One conditional statement, so a worker claiming the job at the
		// same moment either sees the cancellation or is seen by it.
		n, err := tx.Exec(ctx, `UPDATE job SET cancel_requested_at = COALESCE(cancel_requested_at, $2),
            status = CASE WHEN status IN ('queued', 'retrying') THEN 'canceled' ELSE status END,
            finished_at = CASE WHEN status IN ('queued', 'retrying') THEN $2 ELSE finished_at END,
            updated_at = $2
            WHERE id = $1 AND status NOT IN ('succeeded', 'failed', 'canceled')`, id, tx.Now())
		if err != nil {
			return err
		}
		j, err = scanJob(tx.QueryRow(ctx, selectJob, id))
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return kernel.NotFound("job")
		}
		if err == nil && n == 0 {
			return &kernel.Error{Code: kernel.CodeConflict, Message: "the job has already " + finishedWord(j.Status)}
		}
		return err
	})
	return j, err
}

func finishedWord(status string) string {
	switch status {
	case "succeeded":
		return "succeeded"
	case "failed":
		return "failed"
	}
	return "been canceled"
}
