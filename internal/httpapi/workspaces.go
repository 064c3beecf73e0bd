package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
)

// WorkspaceBody is a workspace as the API shows it.
type WorkspaceBody struct {
	ID        string    `json:"id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Slug      string    `json:"slug" example:"acme"`
	Name      string    `json:"name" example:"Acme Inc."`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Role is the caller's own role, absent for an API key.
	Role            string     `json:"role,omitempty" enum:"owner,admin,member,viewer" doc:"Your role in this workspace; absent for an API key"`
	DeletedAt       *time.Time `json:"deleted_at,omitempty" doc:"Set while the workspace is deleted: it answers writes with workspace_inactive"`
	RestorableUntil *time.Time `json:"restorable_until,omitempty" doc:"Until when a deleted workspace can be restored"`
}

func workspaceBody(ws tenancy.Workspace, role policy.Role) WorkspaceBody {
	b := WorkspaceBody{
		ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: ws.Slug, Name: ws.Name,
		CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt, Role: string(role), DeletedAt: ws.DeletedAt,
	}
	if !ws.Active() {
		until := ws.RestorableUntil()
		b.RestorableUntil = &until
	}
	return b
}

type workspacePath struct {
	WorkspaceID string `path:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
}

type workspaceOutput struct {
	Body WorkspaceBody
}

type createWorkspaceInput struct {
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"100" example:"Acme Inc."`
		Slug string `json:"slug" minLength:"1" maxLength:"40" example:"acme" doc:"Lower-case letters, digits and inner hyphens; unique"`
	}
}

type updateWorkspaceInput struct {
	workspacePath
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"100" doc:"New display name"`
	}
}

type listWorkspacesInput struct {
	Limit  string `query:"limit" doc:"Workspaces per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listWorkspacesOutput struct {
	Body Page[WorkspaceBody]
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

// resourceFrom returns the resolved workspace as the policy sees it: with the
// caller's role there. It returns not_found outside a workspace route.
func resourceFrom(ctx context.Context) (policy.Resource, error) {
	id, err := workspaceFrom(ctx)
	if err != nil {
		return policy.Resource{}, err
	}
	return policy.In(ctx, id), nil
}

// bearerOrSession documents routes that take either kind of credentials.
var bearerOrSession = []map[string][]string{{"bearer": {}}, {"session": {}}}

func registerWorkspaces(api huma.API, svc *tenancy.Service, cursors *cursor.Signer) {
	tags := []string{"Workspaces"}
	huma.Register(api, huma.Operation{
		OperationID: "create-workspace", Method: http.MethodPost, Path: "/api/v1/workspaces", Tags: tags,
		Summary: "Create a workspace", Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "The creator becomes its owner. Needs a verified email address (403 `email_unverified`). " +
			"A personal access token limited to one workspace cannot create workspaces (403 `forbidden`).",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict},
	}, func(ctx context.Context, in *createWorkspaceInput) (*workspaceOutput, error) {
		person, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		if person.OnlyWorkspace != uuid.Nil {
			return nil, &kernel.Error{Code: kernel.CodeForbidden,
				Message: "this token is limited to one workspace and cannot create workspaces: sign in, or use a token without that limit"}
		}
		ws, err := svc.CreateOwned(ctx, person.ID, in.Body.Name, in.Body.Slug)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws, policy.Owner)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-my-workspaces", Method: http.MethodGet, Path: "/api/v1/workspaces", Tags: tags,
		Summary: "List my workspaces", Security: userSecurity,
		Description: "The workspaces you are a member of, oldest first, with your role; deleted ones show `deleted_at`. " +
			"Through a personal access token limited to one workspace, that workspace alone.",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden},
	}, func(ctx context.Context, in *listWorkspacesInput) (*listWorkspacesOutput, error) {
		return listMyWorkspaces(ctx, svc, cursors, in)
	})
	registerWorkspace(api, svc, tags)
	registerWorkspaceLifecycle(api, svc, tags)
}

func registerWorkspace(api huma.API, svc *tenancy.Service, tags []string) {
	huma.Register(api, huma.Operation{
		OperationID: "get-workspace", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}",
		Summary: "Get a workspace", Tags: tags, Security: bearerOrSession,
		Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound},
	}, func(ctx context.Context, _ *workspacePath) (*workspaceOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ws, err := svc.Get(ctx, res)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws, res.Role)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "update-workspace", Method: http.MethodPatch, Path: "/api/v1/workspaces/{workspace_id}",
		Summary: "Rename a workspace", Tags: tags, Security: bearerOrSession,
		Description: "Owners and admins. Records a `workspace.renamed` audit entry and emits `workspace.updated`.",
		Errors:      []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound},
	}, func(ctx context.Context, in *updateWorkspaceInput) (*workspaceOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ws, err := svc.Rename(ctx, res, in.Body.Name)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws, res.Role)}, nil
	})
}

func listMyWorkspaces(ctx context.Context, svc *tenancy.Service, cursors *cursor.Signer, in *listWorkspacesInput) (*listWorkspacesOutput, error) {
	person, err := personFrom(ctx)
	if err != nil {
		return nil, err
	}
	scope := "workspaces:" + kernel.FormatID(kernel.PrefixUser, person.ID)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *idPosition, limit int) ([]tenancy.MyWorkspace, error) {
			if person.OnlyWorkspace != uuid.Nil {
				return svc.ListMineIn(ctx, person.ID, person.OnlyWorkspace, afterID(after))
			}
			return svc.ListMine(ctx, person.ID, afterID(after), limit)
		},
		func(w tenancy.MyWorkspace) WorkspaceBody { return workspaceBody(w.Workspace, w.Role) },
		func(w tenancy.MyWorkspace) idPosition { return idPosition{ID: w.ID} })
	if err != nil {
		return nil, err
	}
	return &listWorkspacesOutput{Body: page}, nil
}
