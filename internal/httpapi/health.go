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
		Status string            `json:"status" example:"ready"`
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
		Summary:     "Readiness",
		Description: "Answers 200 when every dependency (store, bus) answers, and 503 `unavailable` naming the ones that do not.",
		Errors:      []int{http.StatusServiceUnavailable},
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
				failed[c.Name] = "unavailable"
				continue
			}
			out.Body.Checks[c.Name] = "ok"
		}
		if len(failed) > 0 {
			return nil, &kernel.Error{Code: kernel.CodeUnavailable, Message: "not ready", Fields: failed}
		}
		out.Body.Status = "ready"
		return out, nil
	})
}
