package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/tenancy"
)

// WorkspaceBody is a workspace as the API shows it.
type WorkspaceBody struct {
	ID        string    `json:"id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Slug      string    `json:"slug" example:"acme"`
	Name      string    `json:"name" example:"Acme Inc."`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func workspaceBody(ws tenancy.Workspace) WorkspaceBody {
	return WorkspaceBody{
		ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: ws.Slug, Name: ws.Name,
		CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt,
	}
}

type workspacePath struct {
	WorkspaceID string `path:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
}

type workspaceOutput struct {
	Body WorkspaceBody
}

type updateWorkspaceInput struct {
	workspacePath
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"100" doc:"New display name"`
	}
}

// workspaceFrom returns the workspace the tenant middleware resolved for this
// route. Reaching a workspace route without one is a wiring fault.
func workspaceFrom(ctx context.Context) (uuid.UUID, error) {
	id, ok := kernel.WorkspaceFrom(ctx)
	if !ok {
		return uuid.Nil, kernel.NotFound("workspace")
	}
	return id, nil
}

func registerWorkspaces(api huma.API, svc *tenancy.Service) {
	security := []map[string][]string{{"bearer": {}}}
	huma.Register(api, huma.Operation{
		OperationID: "get-workspace", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}",
		Summary: "Get a workspace", Tags: []string{"Workspaces"}, Security: security,
		Errors: []int{http.StatusUnauthorized, http.StatusNotFound},
	}, func(ctx context.Context, _ *workspacePath) (*workspaceOutput, error) {
		id, err := workspaceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ws, err := svc.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "update-workspace", Method: http.MethodPatch, Path: "/api/v1/workspaces/{workspace_id}",
		Summary: "Rename a workspace", Tags: []string{"Workspaces"}, Security: security,
		Description: "Records a `workspace.renamed` audit entry and emits `workspace.updated`.",
		Errors:      []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound},
	}, func(ctx context.Context, in *updateWorkspaceInput) (*workspaceOutput, error) {
		id, err := workspaceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ws, err := svc.Rename(ctx, id, in.Body.Name)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws)}, nil
	})
}
