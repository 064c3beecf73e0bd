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
		scope := "audit_log:" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID)
		page, err := listPage(cursors, scope, in.Limit, in.Cursor,
			func(after *audit.Position, limit int) ([]audit.StoredEntry, error) {
				return audit.List(ctx, db, workspaceID, after, limit)
			},
			auditEntryBody,
			func(e audit.StoredEntry) audit.Position { return audit.Position{CreatedAt: e.CreatedAt, ID: e.ID} })
		if err != nil {
			return nil, err
		}
		return &listAuditOutput{Body: page}, nil
	})
}

func auditEntryBody(e audit.StoredEntry) AuditEntryBody {
	return AuditEntryBody{
		ID: kernel.FormatID(kernel.PrefixAudit, e.ID), Action: e.Action, ActorType: e.ActorType, ActorID: e.ActorID,
		TargetType: e.TargetType, TargetID: e.TargetID, Metadata: e.Metadata, IP: e.IP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, CreatedAt: e.CreatedAt,
	}
}
