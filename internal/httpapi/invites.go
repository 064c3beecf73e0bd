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

// InviteBody is an invitation as its workspace's admins see it: never its
// token, which only the invited address receives.
type InviteBody struct {
	ID         string     `json:"id" example:"inv_01h455vb4pex5vsknk084sn02q"`
	Email      string     `json:"email" example:"grace@example.com"`
	Role       string     `json:"role" enum:"owner,admin,member,viewer"`
	Status     string     `json:"status" enum:"pending,accepted,revoked,expired"`
	InvitedBy  string     `json:"invited_by" example:"usr_01h455vb4pex5vsknk084sn02q"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at" doc:"When the link stops working; a resend moves it"`
	ResentAt   *time.Time `json:"resent_at,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	AcceptedBy string     `json:"accepted_by,omitempty" example:"usr_01h455vb4pex5vsknk084sn02q"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func inviteBody(inv tenancy.Invite) InviteBody {
	b := InviteBody{
		ID: kernel.FormatID(kernel.PrefixInvite, inv.ID), Email: inv.Email, Role: string(inv.Role), Status: inv.Status,
		InvitedBy: kernel.FormatID(kernel.PrefixUser, inv.InvitedBy), CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt,
		ResentAt: inv.ResentAt, AcceptedAt: inv.AcceptedAt, RevokedAt: inv.RevokedAt,
	}
	if inv.AcceptedBy != nil {
		b.AcceptedBy = kernel.FormatID(kernel.PrefixUser, *inv.AcceptedBy)
	}
	return b
}

type createInviteInput struct {
	workspacePath
	Body struct {
		Email string `json:"email" maxLength:"320" example:"grace@example.com"`
		Role  string `json:"role" enum:"owner,admin,member,viewer"`
	}
}

type inviteOutput struct {
	Body InviteBody
}

type listInvitesInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Invitations per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listInvitesOutput struct {
	Body Page[InviteBody]
}

type invitePath struct {
	workspacePath
	InviteID string `path:"invite_id" example:"inv_01h455vb4pex5vsknk084sn02q" doc:"Invitation ID"`
}

// inviteID parses the {invite_id} of a route; a malformed one is the same
// 404 as an invitation that does not exist.
func inviteID(raw string) (uuid.UUID, error) { return pathID(kernel.PrefixInvite, "invite", raw) }

func registerInvites(api huma.API, svc *tenancy.Service, cursors *cursor.Signer) {
	tags := []string{"Invitations"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	huma.Register(api, huma.Operation{
		OperationID: "create-invite", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/invites",
		Summary: "Invite someone by email", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "Owners and admins with a verified email address (403 `email_unverified`); only owners invite owners. " +
			"Emails a single-use link, `BASE_URL/invite?token=…`, valid 7 days; the token is never in a response. " +
			"An address that is already a member's, or that has a pending invitation here, answers 409: resend or revoke that one.",
		Errors: append(errs, http.StatusBadRequest, http.StatusConflict),
	}, func(ctx context.Context, in *createInviteInput) (*inviteOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		inv, err := svc.CreateInvite(ctx, res, in.Body.Email, policy.Role(in.Body.Role))
		if err != nil {
			return nil, err
		}
		return &inviteOutput{Body: inviteBody(inv)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-invites", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/invites",
		Summary: "List invitations", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
		Description: "Owners, admins and API keys; newest first, in every state (`status`).",
	}, func(ctx context.Context, in *listInvitesInput) (*listInvitesOutput, error) {
		return listInvites(ctx, svc, cursors, in)
	})
	huma.Register(api, huma.Operation{
		OperationID: "resend-invite", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/invites/{invite_id}/resend",
		Summary: "Resend an invitation", Tags: tags, Security: userSecurity,
		Description: "Emails a new link valid 7 days from now; the previous link stops working. At most once a minute " +
			"(429 with Retry-After). An accepted or revoked invitation answers 409.",
		Errors: append(errs, http.StatusConflict, http.StatusTooManyRequests),
	}, func(ctx context.Context, in *invitePath) (*inviteOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := inviteID(in.InviteID)
		if err != nil {
			return nil, err
		}
		inv, err := svc.ResendInvite(ctx, res, id)
		if err != nil {
			return nil, err
		}
		return &inviteOutput{Body: inviteBody(inv)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "revoke-invite", Method: http.MethodDelete, Path: "/api/v1/workspaces/{workspace_id}/invites/{invite_id}",
		Summary: "Revoke an invitation", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "The link stops working at once. An accepted or revoked invitation answers 409.",
		Errors:      append(errs, http.StatusConflict),
	}, func(ctx context.Context, in *invitePath) (*struct{}, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := inviteID(in.InviteID)
		if err != nil {
			return nil, err
		}
		return nil, svc.RevokeInvite(ctx, res, id)
	})
	registerInviteAcceptance(api, svc)
}

func listInvites(ctx context.Context, svc *tenancy.Service, cursors *cursor.Signer, in *listInvitesInput) (*listInvitesOutput, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return nil, err
	}
	scope := "invites:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *tenancy.InvitePosition, limit int) ([]tenancy.Invite, error) {
			return svc.ListInvites(ctx, res, after, limit)
		},
		inviteBody,
		func(inv tenancy.Invite) tenancy.InvitePosition {
			return tenancy.InvitePosition{CreatedAt: inv.CreatedAt, ID: inv.ID}
		})
	if err != nil {
		return nil, err
	}
	return &listInvitesOutput{Body: page}, nil
}
