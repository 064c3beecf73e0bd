package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/events/scheduler"
	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
)

// The platform-admin routes, under /api/v1/admin, serve the people who run
// the deployment: the scheduler's tasks and runs, and the event relay's lag.
// Only a platform admin signed in with a browser session may use them;
// anyone else who is signed in gets 403, and an anonymous caller 401. The
// routes are not hidden: they are the same in every Atrium and listed in
// its OpenAPI document, so a 404 would hide nothing.

// PlatformAdmins tells whether a person is a platform admin;
// identity.Service is one.
type PlatformAdmins interface {
	IsPlatformAdmin(ctx context.Context, userID uuid.UUID) (bool, error)
}

// SchedulerReader reads the scheduler's tasks and runs;
// scheduler.Scheduler is one.
type SchedulerReader interface {
	Tasks(ctx context.Context) ([]scheduler.TaskState, error)
	Runs(ctx context.Context, task string, after *scheduler.RunPosition, limit int) ([]scheduler.Run, error)
}

// RelayLagReader returns the outbox relay's lag as last measured in the
// background, with when it was measured. A request cannot measure it
// itself: that reads every workspace's outbox through the system path,
// which requests cannot reach.
type RelayLagReader interface {
	RelayLag() (events.Lag, time.Time, error)
}

// AdminDeps is what the platform-admin routes need.
type AdminDeps struct {
	Admins    PlatformAdmins
	Scheduler SchedulerReader
	RelayLag  RelayLagReader
	// Node names the node answering, which measured the relay's lag.
	Node string
}

// SchedulerRunBody is one run of a scheduled task.
type SchedulerRunBody struct {
	ID          string     `json:"id" example:"run_01h455vb4pex5vsknk084sn02q"`
	Task        string     `json:"task" example:"workspace.hard_delete"`
	Node        string     `json:"node" doc:"The node that ran it"`
	Status      string     `json:"status" enum:"running,succeeded,failed" doc:"running also stays for a run whose node died before it ended"`
	ScheduledAt time.Time  `json:"scheduled_at" doc:"The tick the run is for"`
	StartedAt   time.Time  `json:"started_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	DurationMS  *int64     `json:"duration_ms,omitempty"`
	Error       string     `json:"error,omitempty" doc:"The task's error, or its panic"`
}

// SchedulerTaskBody is a scheduled task with its schedule.
type SchedulerTaskBody struct {
	Name         string            `json:"name" example:"workspace.hard_delete"`
	EverySeconds float64           `json:"every_seconds" example:"3600"`
	NextRunAt    *time.Time        `json:"next_run_at,omitempty" doc:"Absent until a leader first records the task"`
	LastRun      *SchedulerRunBody `json:"last_run,omitempty"`
}

// RelayLagBody is the outbox relay's lag.
type RelayLagBody struct {
	events.Lag
	Node       string    `json:"node" doc:"The node that measured it; published_by_this_node and last_error are that node's"`
	MeasuredAt time.Time `json:"measured_at" doc:"When it was measured; the figures are refreshed every few seconds"`
}

type listSchedulerRunsInput struct {
	Task   string `query:"task" example:"workspace.hard_delete" doc:"Only this task's runs"`
	Limit  string `query:"limit" doc:"Runs per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page, asked for with the same task"`
}

type listSchedulerRunsOutput struct {
	Body Page[SchedulerRunBody]
}

type listSchedulerTasksOutput struct {
	Body Page[SchedulerTaskBody]
}

type relayLagOutput struct {
	Body RelayLagBody
}

// taskFilter is the shape of a task name (scheduler.Task.Name).
var taskFilter = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

func registerAdmin(api huma.API, d AdminDeps, cursors *cursor.Signer) {
	if cursors == nil {
		panic("httpapi: Deps.Admin needs Deps.Cursors to page scheduler runs")
	}
	tags := []string{"Platform admin"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden}
	huma.Register(api, huma.Operation{
		OperationID: "list-scheduler-runs", Method: http.MethodGet, Path: "/api/v1/admin/scheduler/runs",
		Summary: "List scheduled task runs", Tags: tags, Security: userSecurity, Errors: append(errs, http.StatusBadRequest),
		Description: "Platform admins only. Every run of every scheduled task (or of one), newest first, " +
			"across all nodes, paged with opaque cursors.",
	}, func(ctx context.Context, in *listSchedulerRunsInput) (*listSchedulerRunsOutput, error) {
		if err := requirePlatformAdmin(ctx, d.Admins); err != nil {
			return nil, err
		}
		if in.Task != "" && (len(in.Task) > 100 || !taskFilter.MatchString(in.Task)) {
			return nil, kernel.Invalid("query.task", "must be a task name such as workspace.hard_delete")
		}
		scope := "scheduler_runs?" + url.Values{"task": {in.Task}}.Encode()
		page, err := listPage(cursors, scope, in.Limit, in.Cursor,
			func(after *scheduler.RunPosition, limit int) ([]scheduler.Run, error) {
				return d.Scheduler.Runs(ctx, in.Task, after, limit)
			},
			schedulerRunBody,
			func(r scheduler.Run) scheduler.RunPosition {
				return scheduler.RunPosition{StartedAt: r.StartedAt, ID: r.ID}
			})
		if err != nil {
			return nil, err
		}
		return &listSchedulerRunsOutput{Body: page}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-scheduler-tasks", Method: http.MethodGet, Path: "/api/v1/admin/scheduler/tasks",
		Summary: "List scheduled tasks", Tags: tags, Security: userSecurity, Errors: errs,
		Description: "Platform admins only. Every task this node's scheduler knows, by name, with its interval, " +
			"its next tick and its last run. The list is short and never paged.",
	}, func(ctx context.Context, _ *struct{}) (*listSchedulerTasksOutput, error) {
		if err := requirePlatformAdmin(ctx, d.Admins); err != nil {
			return nil, err
		}
		tasks, err := d.Scheduler.Tasks(ctx)
		if err != nil {
			return nil, err
		}
		out := Page[SchedulerTaskBody]{Items: make([]SchedulerTaskBody, 0, len(tasks))}
		for _, t := range tasks {
			out.Items = append(out.Items, schedulerTaskBody(t))
		}
		return &listSchedulerTasksOutput{Body: out}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-relay-lag", Method: http.MethodGet, Path: "/api/v1/admin/events/relay",
		Summary: "Get the event relay's lag", Tags: tags, Security: userSecurity,
		Errors:      append(errs, http.StatusServiceUnavailable),
		Description: "Platform admins only. How many outbox rows wait to be published and for how long, measured by the node answering every few seconds; 503 before its first measurement.",
	}, func(ctx context.Context, _ *struct{}) (*relayLagOutput, error) {
		if err := requirePlatformAdmin(ctx, d.Admins); err != nil {
			return nil, err
		}
		lag, at, err := d.RelayLag.RelayLag()
		if err != nil {
			return nil, err
		}
		return &relayLagOutput{Body: RelayLagBody{Lag: lag, Node: d.Node, MeasuredAt: at}}, nil
	})
}

// errNotPlatformAdmin is the one answer to everyone signed in who may not
// use the platform-admin routes.
var errNotPlatformAdmin = &kernel.Error{Code: kernel.CodeForbidden,
	Message: "only a platform admin signed in with a browser session can do this"}

// requirePlatformAdmin returns nil when the caller is a platform admin who
// signed in with a browser session: not a personal access token, which may
// have leaked, nor an API key. It returns unauthenticated for an anonymous
// caller, forbidden for anyone else, or the check's error.
func requirePlatformAdmin(ctx context.Context, admins PlatformAdmins) error {
	actor := kernel.ActorFrom(ctx)
	switch {
	case !actor.IsAuthenticated():
		return errNoActor
	case actor.Kind != kernel.ActorUser || actor.Via != kernel.ViaCookie:
		return errNotPlatformAdmin
	}
	ok, err := admins.IsPlatformAdmin(ctx, actor.ID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotPlatformAdmin
	}
	return nil
}

func schedulerRunBody(r scheduler.Run) SchedulerRunBody {
	b := SchedulerRunBody{ID: kernel.FormatID(kernel.PrefixSchedulerRun, r.ID), Task: r.Task, Node: r.Node,
		Status: "running", ScheduledAt: r.ScheduledAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Error: r.Error}
	if r.FinishedAt != nil {
		ms := r.Duration.Milliseconds()
		b.DurationMS, b.Status = &ms, "succeeded"
		if r.Error != "" {
			b.Status = "failed"
		}
	}
	return b
}

func schedulerTaskBody(t scheduler.TaskState) SchedulerTaskBody {
	b := SchedulerTaskBody{Name: t.Name, EverySeconds: t.Every.Seconds(), NextRunAt: t.NextRunAt}
	if t.LastRun != nil {
		last := schedulerRunBody(*t.LastRun)
		b.LastRun = &last
	}
	return b
}
