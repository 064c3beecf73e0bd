package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/kernel"
	"atrium/internal/usage"
)

// UsageWarningHeader is set on a metered response while the workspace's
// api_calls are at or past a warning threshold: "api_calls=90".
const UsageWarningHeader = "X-Atrium-Usage-Warning"

// UsageBody is a workspace's usage in its current period.
type UsageBody struct {
	PeriodStart time.Time         `json:"period_start" doc:"Start of the period usage is counted in"`
	PeriodEnd   time.Time         `json:"period_end" doc:"End (exclusive) of the period"`
	Metrics     []MetricUsageBody `json:"metrics" doc:"api_calls, storage_bytes and members, in that order"`
}

// MetricUsageBody is one metric's usage against the plan's limit.
type MetricUsageBody struct {
	Metric  string `json:"metric" enum:"api_calls,storage_bytes,members"`
	Used    int64  `json:"used" doc:"api_calls: calls with a bearer credential this period; storage_bytes: as of the last hourly recalculation; members: memberships and pending invitations"`
	Limit   int64  `json:"limit" doc:"The plan's limit; -1 is unlimited"`
	Percent int    `json:"percent" doc:"used as a percentage of limit, rounded down; 0 when unlimited"`
	State   string `json:"state" enum:"ok,warning,grace,blocked" doc:"warning from 80 %; grace past the limit (growth still allowed up to 5 % more for 7 days); blocked: growth refused with 402 quota_exceeded, reads and deletes still allowed"`
	// GraceEndsAt is set while usage is past the limit.
	GraceEndsAt *time.Time `json:"grace_ends_at,omitempty" doc:"When growth past the limit stops being allowed; absent while within the limit"`
}

type usageOutput struct {
	Body UsageBody
}

func registerUsage(api huma.API, svc *usage.Service) {
	huma.Register(api, huma.Operation{
		OperationID: "get-usage", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/usage",
		Summary: "Get the workspace's usage", Tags: []string{"Usage"}, Security: bearerOrSession,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound},
		Description: "Every member, and API keys: each metric's usage in the current period against the plan's limit, " +
			"and its state. Warnings come at 80, 90, 95 and 100 %; past the limit, growth is allowed up to 5 % more for " +
			"7 days, then refused with 402 `quota_exceeded`. Reading and deleting are never refused.",
	}, func(ctx context.Context, in *workspacePath) (*usageOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		rep, err := svc.Usage(ctx, res)
		if err != nil {
			return nil, err
		}
		body := UsageBody{PeriodStart: rep.PeriodStart, PeriodEnd: rep.PeriodEnd, Metrics: make([]MetricUsageBody, len(rep.Metrics))}
		for i, m := range rep.Metrics {
			body.Metrics[i] = MetricUsageBody{Metric: m.Metric, Used: m.Used, Limit: m.Limit, Percent: m.Percent,
				State: m.State, GraceEndsAt: m.GraceEndsAt}
		}
		return &usageOutput{Body: body}, nil
	})
}

// UsageMetering returns the middleware that meters API calls: a request to
// a workspace route made with a bearer credential (API key or personal
// access token) counts one api_calls, and its response carries
// X-Atrium-Usage-Warning once a threshold is reached. A POST, PUT or PATCH
// is refused with 402 quota_exceeded, uncounted, when api_calls is blocked;
// a GET, HEAD, DELETE or OPTIONS never is. It reads nothing per request (see
// usage.Service.CountCall); should the plan's limit be unreadable, the call
// is counted, the error logged and the request served. It belongs after the
// tenant middleware, which resolves the workspace. A nil svc returns nil,
// which the chain skips.
func UsageMetering(svc *usage.Service) func(http.Handler) http.Handler {
	if svc == nil {
		return nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			workspaceID, ok := kernel.WorkspaceFrom(ctx)
			if !ok || kernel.ActorFrom(ctx).Via != kernel.ViaBearer {
				next.ServeHTTP(w, r)
				return
			}
			growth := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch
			call, err := svc.CountCall(ctx, workspaceID, growth)
			switch {
			case kernel.IsCode(err, kernel.CodeQuotaExceeded):
				WriteError(w, r, err)
				return
			case err != nil:
				kernel.Logger(ctx).ErrorContext(ctx, "usage: meter an API call", "error", err.Error())
			}
			if call.Warning > 0 {
				w.Header().Set(UsageWarningHeader, usage.APICalls+"="+strconv.Itoa(call.Warning))
			}
			next.ServeHTTP(w, r)
		})
	}
}
