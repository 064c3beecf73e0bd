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

// MemberBody is a membership as the API shows it.
type MemberBody struct {
	UserID    string    `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q"`
	Email     string    `json:"email" example:"ada@example.com"`
	Name      string    `json:"name" example:"Ada Lovelace"`
	Role      string    `json:"role" enum:"owner,admin,member,viewer"`
	CreatedAt time.Time `json:"created_at" doc:"When the person joined"`
	UpdatedAt time.Time `json:"updated_at"`
}

func memberBody(m tenancy.Member) MemberBody {
	return MemberBody{
		UserID: kernel.FormatID(kernel.PrefixUser, m.UserID), Email: m.Email, Name: m.Name, Role: string(m.Role),
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
}

type memberPath struct {
	workspacePath
	UserID string `path:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The member's user ID"`
}

type listMembersInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Members per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listMembersOutput struct {
	Body Page[MemberBody]
}

// changeRoleInput repeats memberPath's fields: huma reads parameters from one
// level of embedding only.
type changeRoleInput struct {
	workspacePath
	UserID string `path:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The member's user ID"`
	Body   struct {
		Role string `json:"role" enum:"owner,admin,member,viewer"`
	}
}

type memberOutput struct {
	Body MemberBody
}

// memberID parses the {user_id} of a member route; a malformed one is the
// same 404 as a person who is not a member.
func memberID(raw string) (uuid.UUID, error) { return pathID(kernel.PrefixUser, "member", raw) }

func registerMembers(api huma.API, svc *tenancy.Service, cursors *cursor.Signer) {
	tags := []string{"Members"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	huma.Register(api, huma.Operation{
		OperationID: "list-members", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/members",
		Summary: "List members", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
	}, func(ctx context.Context, in *listMembersInput) (*listMembersOutput, error) {
		return listMembers(ctx, svc, cursors, in)
	})
	huma.Register(api, huma.Operation{
		OperationID: "change-member-role", Method: http.MethodPatch, Path: "/api/v1/workspaces/{workspace_id}/members/{user_id}",
		Summary: "Change a member's role", Tags: tags, Security: userSecurity,
		Description: "Owners change any role; admins change the roles of non-owners and cannot make owners. " +
			"The last owner cannot be demoted (409).",
		Errors: append(errs, http.StatusBadRequest, http.StatusConflict),
	}, func(ctx context.Context, in *changeRoleInput) (*memberOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		userID, err := memberID(in.UserID)
		if err != nil {
			return nil, err
		}
		m, err := svc.ChangeRole(ctx, res, userID, policy.Role(in.Body.Role))
		if err != nil {
			return nil, err
		}
		return &memberOutput{Body: memberBody(m)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "remove-member", Method: http.MethodDelete, Path: "/api/v1/workspaces/{workspace_id}/members/{user_id}",
		Summary: "Remove a member, or leave", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Your own user ID leaves the workspace. Owners remove anyone; admins remove non-owners. " +
			"The last owner cannot leave (409).",
		Errors: append(errs, http.StatusConflict),
	}, func(ctx context.Context, in *memberPath) (*struct{}, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		userID, err := memberID(in.UserID)
		if err != nil {
			return nil, err
		}
		return nil, svc.RemoveMember(ctx, res, userID)
	})
}

func listMembers(ctx context.Context, svc *tenancy.Service, cursors *cursor.Signer, in *listMembersInput) (*listMembersOutput, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return nil, err
	}
	scope := "members:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *idPosition, limit int) ([]tenancy.Member, error) {
			return svc.ListMembers(ctx, res, afterID(after), limit)
		},
		memberBody,
		func(m tenancy.Member) idPosition { return idPosition{ID: m.UserID} })
	if err != nil {
		return nil, err
	}
	return &listMembersOutput{Body: page}, nil
}
