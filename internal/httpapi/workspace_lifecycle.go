package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/kernel"
	"atrium/internal/tenancy"
)

type transferInput struct {
	workspacePath
	Body struct {
		UserID string `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The member who becomes an owner"`
	}
}

func registerWorkspaceLifecycle(api huma.API, svc *tenancy.Service, tags []string) {
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict}
	huma.Register(api, huma.Operation{
		OperationID: "delete-workspace", Method: http.MethodDelete, Path: "/api/v1/workspaces/{workspace_id}",
		Summary: "Delete a workspace", Tags: tags, Security: userSecurity, Errors: errs,
		Description: "Owners only. A soft delete: the workspace stays readable, answers writes with 403 " +
			"`workspace_inactive`, and can be restored for 30 days (`restorable_until`)." + recentAuthNote,
	}, func(ctx context.Context, _ *workspacePath) (*workspaceOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ws, err := svc.Delete(ctx, res)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws, res.Role)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "restore-workspace", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/restore",
		Summary: "Restore a deleted workspace", Tags: tags, Security: userSecurity, Errors: errs,
		Description: "Owners only, within 30 days of the deletion; 409 for a workspace that is not deleted or past its window.",
	}, func(ctx context.Context, _ *workspacePath) (*workspaceOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ws, err := svc.Restore(ctx, res)
		if err != nil {
			return nil, err
		}
		return &workspaceOutput{Body: workspaceBody(ws, res.Role)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "transfer-workspace-ownership", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/transfer-ownership",
		Summary: "Transfer ownership", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Owners only. The member named becomes an owner and you become an admin.",
		Errors:      append([]int{http.StatusBadRequest}, errs...),
	}, func(ctx context.Context, in *transferInput) (*struct{}, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		userID, err := kernel.ParseID(kernel.PrefixUser, in.Body.UserID)
		if err != nil {
			return nil, kernel.Invalid("body.user_id", "must be a user ID (usr_…)")
		}
		return nil, svc.TransferOwnership(ctx, res, userID)
	})
}
