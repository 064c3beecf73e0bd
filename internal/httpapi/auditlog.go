package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/audit"
	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// AuditEntryBody is an audit entry as the API shows it.
type AuditEntryBody struct {
	ID         string          `json:"id" example:"aud_01h455vb4pex5vsknk084sn02q"`
	Action     string          `json:"action" example:"workspace.renamed"`
	ActorType  string          `json:"actor_type" example:"user"`
	ActorID    string          `json:"actor_id" example:"usr_01h455vb4pex5vsknk084sn02q"`
	TargetType string          `json:"target_type" example:"workspace"`
	TargetID   string          `json:"target_id"`
	Metadata   json.RawMessage `json:"metadata"`
	IP         string          `json:"ip"`
	UserAgent  string          `json:"user_agent"`
	RequestID  string          `json:"request_id"`
	CreatedAt  time.Time       `json:"created_at"`
}

type listAuditInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Entries per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listAuditOutput struct {
	Body Page[AuditEntryBody]
}

func registerAuditLog(api huma.API, db store.DB, cursors *cursor.Signer) {
	huma.Register(api, huma.Operation{
		OperationID: "list-audit-log", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/audit-log",
		Summary: "List the audit log", Tags: []string{"Audit log"}, Security: bearerOrSession,
		Description: "Owners and admins (and the workspace's API keys). Newest first, paged with opaque cursors. " +
			"A cursor is bound to this workspace's log; a tampered or foreign one is 400.",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound},
	}, func(ctx context.Context, in *listAuditInput) (*listAuditOutput, error) {
		workspaceID, err := workspaceFrom(ctx)
		if err != nil {
			return nil, err
		}
		if err := policy.Check(kernel.ActorFrom(ctx), policy.AuditRead, policy.In(ctx, workspaceID)); err != nil {
			return nil, err
		}
		limit, err := cursor.ParseLimit(in.Limit)
		if err != nil {
			return nil, err
		}
		scope := "audit_log:" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID)
		var after *audit.Position
		if in.Cursor != "" {
			after = &audit.Position{}
			if err := cursors.Decode(scope, in.Cursor, after); err != nil {
				return nil, err
			}
		}
		entries, err := audit.List(ctx, db, workspaceID, after, limit+1)
		if err != nil {
			return nil, err
		}
		page, more := cursor.Trim(entries, limit)
		out := &listAuditOutput{}
		out.Body.Items = make([]AuditEntryBody, 0, len(page))
		for _, e := range page {
			out.Body.Items = append(out.Body.Items, AuditEntryBody{
				ID: kernel.FormatID(kernel.PrefixAudit, e.ID), Action: e.Action, ActorType: e.ActorType, ActorID: e.ActorID,
				TargetType: e.TargetType, TargetID: e.TargetID, Metadata: e.Metadata, IP: e.IP, UserAgent: e.UserAgent,
				RequestID: e.RequestID, CreatedAt: e.CreatedAt,
			})
		}
		out.Body.HasMore = more
		if more {
			last := page[len(page)-1]
			out.Body.NextCursor = cursors.Encode(scope, audit.Position{CreatedAt: last.CreatedAt, ID: last.ID})
		}
		return out, nil
	})
}
