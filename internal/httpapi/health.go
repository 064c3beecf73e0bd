package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/kernel"
)

type healthOutput struct {
	Body struct {
		Status string `json:"status" example:"ok" doc:"Always ok while the process serves"`
	}
}

type readyOutput struct {
	Body struct {
		Status string            `json:"status" example:"ready" enum:"ready,degraded" doc:"ready, or degraded when an optional dependency (the event bus) is away"`
		Checks map[string]string `json:"checks" doc:"Each dependency and its state"`
	}
}

func registerHealth(api huma.API, checks []Check) {
	huma.Register(api, huma.Operation{
		OperationID: "healthz", Method: http.MethodGet, Path: "/healthz", Tags: []string{"Operations"},
		Summary: "Liveness", Description: "Answers 200 while the process serves requests.",
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		out := &healthOutput{}
		out.Body.Status = "ok"
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "readyz", Method: http.MethodGet, Path: "/readyz", Tags: []string{"Operations"},
		Summary: "Readiness",
		Description: "Answers 200 when every required dependency (the store, the rate-limit backend) answers, and 503 `unavailable` naming the ones that do not. " +
			"The event bus is reported but not required: while it is away, writes still succeed and their events wait in the outbox, so the status is `degraded`.",
		Errors: []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*readyOutput, error) {
		out := &readyOutput{}
		out.Body.Checks = map[string]string{}
		failed := map[string]string{}
		for _, c := range checks {
			cctx, cancel := context.WithTimeout(ctx, readyTimeout)
			err := c.Ping(cctx)
			cancel()
			if err != nil {
				kernel.Logger(ctx).WarnContext(ctx, "readiness check failed", "check", c.Name, "error", err.Error())
				if c.Optional {
					out.Body.Checks[c.Name] = "unavailable"
				} else {
					failed[c.Name] = "unavailable"
				}
				continue
			}
			out.Body.Checks[c.Name] = "ok"
		}
		if len(failed) > 0 {
			return nil, &kernel.Error{Code: kernel.CodeUnavailable, Message: "not ready", Fields: failed}
		}
		out.Body.Status = "ready"
		for _, state := range out.Body.Checks {
			if state != "ok" {
				out.Body.Status = "degraded"
			}
		}
		return out, nil
	})
}
