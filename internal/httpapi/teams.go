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
)

// TeamBody is a team as the API shows it.
type TeamBody struct {
	ID        string    `json:"id" example:"team_01h455vb4pex5vsknk084sn02q"`
	Name      string    `json:"name" example:"Design"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// MemberCount is answered by get-team and create-team only: lists and
	// renames do not count.
	MemberCount *int `json:"member_count,omitempty" doc:"How many members the team has; answered by get and create only"`
}

func teamBody(t tenancy.Team) TeamBody {
	return TeamBody{ID: kernel.FormatID(kernel.PrefixTeam, t.ID), Name: t.Name, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

func countedTeamBody(t tenancy.Team) TeamBody {
	b := teamBody(t)
	b.MemberCount = &t.MemberCount
	return b
}

// TeamMemberBody is a member of a team.
type TeamMemberBody struct {
	UserID  string    `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q"`
	Email   string    `json:"email" example:"ada@example.com"`
	Name    string    `json:"name" example:"Ada Lovelace"`
	Role    string    `json:"role" enum:"owner,admin,member,viewer" doc:"The person's role in the workspace"`
	AddedAt time.Time `json:"added_at" doc:"When the person joined the team"`
}

func teamMemberBody(m tenancy.TeamMember) TeamMemberBody {
	return TeamMemberBody{UserID: kernel.FormatID(kernel.PrefixUser, m.UserID), Email: m.Email, Name: m.Name,
		Role: string(m.Role), AddedAt: m.AddedAt}
}

type teamNameInput struct {
	workspacePath
	Body struct {
		Name string `json:"name" minLength:"1" maxLength:"100" example:"Design" doc:"Unique in the workspace, ignoring case"`
	}
}

type teamPath struct {
	workspacePath
	TeamID string `path:"team_id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
}

// renameTeamInput repeats teamPath's fields: huma reads parameters from one
// level of embedding only.
type renameTeamInput struct {
	workspacePath
	TeamID string `path:"team_id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
	Body   struct {
		Name string `json:"name" minLength:"1" maxLength:"100" example:"Design" doc:"Unique in the workspace, ignoring case"`
	}
}

type teamOutput struct {
	Body TeamBody
}

type listTeamsInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Teams per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listTeamsOutput struct {
	Body Page[TeamBody]
}

// teamID parses the {team_id} of a route; a malformed one is the same 404 as
// a team that does not exist.
func teamID(raw string) (uuid.UUID, error) { return pathID(kernel.PrefixTeam, "team", raw) }

func registerTeams(api huma.API, svc *tenancy.Service, cursors *cursor.Signer) {
	tags := []string{"Teams"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	huma.Register(api, huma.Operation{
		OperationID: "create-team", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/teams",
		Summary: "Create a team", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "Owners and admins. A name another team has, ignoring case, answers 409.",
		Errors:      append(errs, http.StatusBadRequest, http.StatusConflict),
	}, func(ctx context.Context, in *teamNameInput) (*teamOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		t, err := svc.CreateTeam(ctx, res, in.Body.Name)
		if err != nil {
			return nil, err
		}
		return &teamOutput{Body: countedTeamBody(t)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-teams", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/teams",
		Summary: "List teams", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
		Description: "Every member, and API keys; oldest first.",
	}, func(ctx context.Context, in *listTeamsInput) (*listTeamsOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		scope := "teams:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace)
		page, err := listPage(cursors, scope, in.Limit, in.Cursor,
			func(after *idPosition, limit int) ([]tenancy.Team, error) {
				return svc.ListTeams(ctx, res, afterID(after), limit)
			},
			teamBody,
			func(t tenancy.Team) idPosition { return idPosition{ID: t.ID} })
		if err != nil {
			return nil, err
		}
		return &listTeamsOutput{Body: page}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-team", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/teams/{team_id}",
		Summary: "Get a team", Tags: tags, Security: bearerOrSession, Errors: errs,
		Description: "Every member, and API keys; with the team's member count.",
	}, func(ctx context.Context, in *teamPath) (*teamOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := teamID(in.TeamID)
		if err != nil {
			return nil, err
		}
		t, err := svc.GetTeam(ctx, res, id)
		if err != nil {
			return nil, err
		}
		return &teamOutput{Body: countedTeamBody(t)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "rename-team", Method: http.MethodPatch, Path: "/api/v1/workspaces/{workspace_id}/teams/{team_id}",
		Summary: "Rename a team", Tags: tags, Security: userSecurity,
		Description: "Owners and admins. A name another team has, ignoring case, answers 409.",
		Errors:      append(errs, http.StatusBadRequest, http.StatusConflict),
	}, func(ctx context.Context, in *renameTeamInput) (*teamOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := teamID(in.TeamID)
		if err != nil {
			return nil, err
		}
		t, err := svc.RenameTeam(ctx, res, id, in.Body.Name)
		if err != nil {
			return nil, err
		}
		return &teamOutput{Body: teamBody(t)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "delete-team", Method: http.MethodDelete, Path: "/api/v1/workspaces/{workspace_id}/teams/{team_id}",
		Summary: "Delete a team", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Owners and admins. The team's members stay members of the workspace.",
		Errors:      errs,
	}, func(ctx context.Context, in *teamPath) (*struct{}, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := teamID(in.TeamID)
		if err != nil {
			return nil, err
		}
		return nil, svc.DeleteTeam(ctx, res, id)
	})
	registerTeamMembers(api, svc, cursors)
}
