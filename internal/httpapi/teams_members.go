package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
	"atrium/internal/tenancy"
)

type addTeamMemberInput struct {
	workspacePath
	TeamID string `path:"team_id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
	Body   struct {
		UserID string `json:"user_id" maxLength:"64" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"A member of the workspace"`
	}
}

type teamMemberPath struct {
	workspacePath
	TeamID string `path:"team_id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
	UserID string `path:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The member's user ID"`
}

type teamMemberOutput struct {
	Body TeamMemberBody
}

type listTeamMembersInput struct {
	workspacePath
	TeamID string `path:"team_id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
	Limit  string `query:"limit" doc:"Members per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listTeamMembersOutput struct {
	Body Page[TeamMemberBody]
}

func registerTeamMembers(api huma.API, svc *tenancy.Service, cursors *cursor.Signer) {
	tags := []string{"Teams"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	huma.Register(api, huma.Operation{
		OperationID: "list-team-members", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/teams/{team_id}/members",
		Summary: "List a team's members", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
		Description: "Every member, and API keys.",
	}, func(ctx context.Context, in *listTeamMembersInput) (*listTeamMembersOutput, error) {
		return listTeamMembers(ctx, svc, cursors, in)
	})
	huma.Register(api, huma.Operation{
		OperationID: "add-team-member", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/teams/{team_id}/members",
		Summary: "Add a member to a team", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "Owners and admins. The person must be a member of the workspace (else 400 on `user_id`); " +
			"one already in the team answers 409. Removing them from the workspace takes them out of its teams.",
		Errors: append(errs, http.StatusBadRequest, http.StatusConflict),
	}, func(ctx context.Context, in *addTeamMemberInput) (*teamMemberOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := teamID(in.TeamID)
		if err != nil {
			return nil, err
		}
		userID, err := kernel.ParseID(kernel.PrefixUser, in.Body.UserID)
		if err != nil {
			return nil, kernel.Invalid("user_id", "is not a user ID")
		}
		m, err := svc.AddTeamMember(ctx, res, id, userID)
		if err != nil {
			return nil, err
		}
		return &teamMemberOutput{Body: teamMemberBody(m)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "remove-team-member", Method: http.MethodDelete,
		Path:    "/api/v1/workspaces/{workspace_id}/teams/{team_id}/members/{user_id}",
		Summary: "Remove a member from a team", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Owners and admins. The person stays a member of the workspace.",
		Errors:      errs,
	}, func(ctx context.Context, in *teamMemberPath) (*struct{}, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := teamID(in.TeamID)
		if err != nil {
			return nil, err
		}
		userID, err := pathID(kernel.PrefixUser, "team member", in.UserID)
		if err != nil {
			return nil, err
		}
		return nil, svc.RemoveTeamMember(ctx, res, id, userID)
	})
}

func listTeamMembers(ctx context.Context, svc *tenancy.Service, cursors *cursor.Signer, in *listTeamMembersInput) (*listTeamMembersOutput, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return nil, err
	}
	id, err := teamID(in.TeamID)
	if err != nil {
		return nil, err
	}
	scope := "team-members:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace) + ":" + kernel.FormatID(kernel.PrefixTeam, id)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *idPosition, limit int) ([]tenancy.TeamMember, error) {
			return svc.ListTeamMembers(ctx, res, id, afterID(after), limit)
		},
		teamMemberBody,
		func(m tenancy.TeamMember) idPosition { return idPosition{ID: m.UserID} })
	if err != nil {
		return nil, err
	}
	return &listTeamMembersOutput{Body: page}, nil
}
