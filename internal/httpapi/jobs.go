package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
)

// JobBody is a background job's record as the API shows it.
type JobBody struct {
	ID       string `json:"id" example:"job_01h455vb4pex5vsknk084sn02q"`
	Kind     string `json:"kind" example:"webhook.deliver"`
	Status   string `json:"status" enum:"queued,running,retrying,succeeded,failed,canceled" doc:"failed and canceled are final, like succeeded"`
	Attempts int    `json:"attempts" doc:"How many times the job has started"`
	Progress int    `json:"progress" minimum:"0" maximum:"100" doc:"Percent done, as the job reports it"`
	// Result is whatever the job returned, once it succeeded.
	Result            json.RawMessage `json:"result,omitempty" doc:"What the job produced, once it succeeded"`
	Error             string          `json:"error,omitempty" doc:"The last failed attempt's error"`
	CancelRequestedAt *time.Time      `json:"cancel_requested_at,omitempty"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
	StartedAt         *time.Time      `json:"started_at,omitempty"`
	FinishedAt        *time.Time      `json:"finished_at,omitempty"`
}

func jobBody(j events.JobRecord) JobBody {
	return JobBody{ID: kernel.FormatID(kernel.PrefixJob, j.ID), Kind: j.Kind, Status: j.Status, Attempts: j.Attempts,
		Progress: j.Progress, Result: j.Result, Error: j.Error, CancelRequestedAt: j.CancelRequestedAt,
		CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt}
}

type jobPath struct {
	workspacePath
	JobID string `path:"job_id" example:"job_01h455vb4pex5vsknk084sn02q" doc:"Job ID"`
}

type jobOutput struct {
	Body JobBody
}

func registerJobs(api huma.API, svc *events.Jobs) {
	tags := []string{"Jobs"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	huma.Register(api, huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/jobs/{job_id}",
		Summary: "Get a job", Tags: tags, Security: bearerOrSession, Errors: errs,
		Description: "Every member, and API keys: a background job's status, progress, result and last error.",
	}, func(ctx context.Context, in *jobPath) (*jobOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := jobID(in.JobID)
		if err != nil {
			return nil, err
		}
		j, err := svc.Get(ctx, res, id)
		if err != nil {
			return nil, err
		}
		return &jobOutput{Body: jobBody(j)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "cancel-job", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/jobs/{job_id}/cancel",
		Summary: "Cancel a job", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusConflict),
		Description: "Owners, admins and write keys. A job still waiting is canceled at once; a running one stops " +
			"the next time it reports progress (`cancel_requested_at` is set meanwhile); a finished one answers 409.",
	}, func(ctx context.Context, in *jobPath) (*jobOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := jobID(in.JobID)
		if err != nil {
			return nil, err
		}
		j, err := svc.Cancel(ctx, res, id)
		if err != nil {
			return nil, err
		}
		return &jobOutput{Body: jobBody(j)}, nil
	})
}

// jobID parses the {job_id} of a route; a malformed one is the same 404 as a
// job that does not exist.
func jobID(raw string) (uuid.UUID, error) { return pathID(kernel.PrefixJob, "job", raw) }
