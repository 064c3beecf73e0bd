package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/kernel"
	"atrium/internal/tenancy"
)

// InvitePreviewBody is what the holder of an invitation link learns before
// accepting it: enough to show a login form or a sign-up form.
type InvitePreviewBody struct {
	WorkspaceName string    `json:"workspace_name" example:"Acme Inc."`
	InviterName   string    `json:"inviter_name" example:"Ada Lovelace"`
	Email         string    `json:"email" example:"grace@example.com" doc:"The invited address"`
	Role          string    `json:"role" enum:"owner,admin,member,viewer"`
	ExpiresAt     time.Time `json:"expires_at"`
	AccountExists bool      `json:"account_exists" doc:"Whether the invited address has an account: log in and accept, else sign up as you accept"`
}

type inviteTokenInput struct {
	Body struct {
		Token string `json:"token" maxLength:"128" doc:"The token of the invitation link"`
	}
}

type invitePreviewOutput struct {
	Body InvitePreviewBody
}

type acceptInviteInput struct {
	Body struct {
		Token    string `json:"token" maxLength:"128" doc:"The token of the invitation link"`
		Name     string `json:"name,omitempty" maxLength:"100" doc:"Without a session only: the new account's name"`
		Password string `json:"password,omitempty" maxLength:"1024" doc:"Without a session only: the new account's password, as at sign-up"`
	}
}

// AcceptedInviteBody is the membership an accepted invitation made.
type AcceptedInviteBody struct {
	WorkspaceID string    `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q"`
	UserID      string    `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q"`
	Role        string    `json:"role" enum:"owner,admin,member,viewer"`
	JoinedAt    time.Time `json:"joined_at"`
	// User is the account accepting created, when it signed up.
	User *UserBody `json:"user,omitempty" doc:"The new account, when accepting signed the invited address up"`
}

type acceptInviteOutput struct {
	SetCookie string `header:"Set-Cookie" doc:"The new account's session cookie, when accepting signed it up"`
	Body      AcceptedInviteBody
}

func acceptedBody(m tenancy.Membership) AcceptedInviteBody {
	return AcceptedInviteBody{WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, m.WorkspaceID),
		UserID: kernel.FormatID(kernel.PrefixUser, m.UserID), Role: string(m.Role), JoinedAt: m.CreatedAt}
}

// inviteTokenDoc documents the one answer for every token that cannot be used.
const inviteTokenDoc = "An invalid, expired, used or revoked token, or one whose workspace is deleted, answers 400 on `token`."

func registerInviteAcceptance(api huma.API, svc *tenancy.Service) {
	tags := []string{"Invitations"}
	huma.Register(api, huma.Operation{
		OperationID: "lookup-invite", Method: http.MethodPost, Path: "/api/v1/invites/lookup", Tags: tags,
		Summary: "Read an invitation before accepting it",
		Description: "For the page the emailed link opens: the workspace, who invited, the invited address and role, and " +
			"whether that address has an account. Needs no credentials: the token is the proof. " + inviteTokenDoc,
		Errors: []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *inviteTokenInput) (*invitePreviewOutput, error) {
		p, err := svc.LookupInvite(ctx, in.Body.Token)
		if err != nil {
			return nil, err
		}
		return &invitePreviewOutput{Body: InvitePreviewBody{WorkspaceName: p.WorkspaceName, InviterName: p.InviterName,
			Email: p.Email, Role: string(p.Role), ExpiresAt: p.ExpiresAt, AccountExists: p.AccountExists}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "accept-invite", Method: http.MethodPost, Path: "/api/v1/invites/accept", Tags: tags,
		Summary: "Accept an invitation",
		Description: "Signed in (a session cookie; tokens are refused), send `{token}`: your verified address must be the invited one (403 `email_unverified` " +
			"unless verified, 403 for another address). Without a session, send `{token, name, password}`: the invited " +
			"address is signed up, already verified, joins and is logged in (the session cookie is set, as at login); " +
			"if it already has an account the answer is 409: log in, then accept. " + inviteTokenDoc,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict},
	}, func(ctx context.Context, in *acceptInviteInput) (*acceptInviteOutput, error) {
		actor := kernel.ActorFrom(ctx)
		switch {
		case actor.Kind == kernel.ActorUser && actor.Via != kernel.ViaCookie:
			// A personal access token does not widen its own reach.
			return nil, &kernel.Error{Code: kernel.CodeForbidden, Message: "accept invitations in a signed-in browser session, not with a token"}
		case actor.Kind == kernel.ActorUser:
			if in.Body.Name != "" || in.Body.Password != "" {
				return nil, kernel.Invalid("password", "you are signed in: send only the token, or log out to create another account")
			}
			m, err := svc.AcceptInvite(ctx, in.Body.Token)
			if err != nil {
				return nil, err
			}
			return &acceptInviteOutput{Body: acceptedBody(m)}, nil
		case actor.IsAuthenticated():
			return nil, &kernel.Error{Code: kernel.CodeForbidden, Message: "only a person can accept an invitation"}
		case in.Body.Name == "" && in.Body.Password == "":
			return nil, &kernel.Error{Code: kernel.CodeUnauthenticated,
				Message: "log in to accept the invitation, or send name and password to create an account with the invited address"}
		}
		res, m, err := svc.AcceptInviteAsNewUser(ctx, in.Body.Token, in.Body.Name, in.Body.Password, kernel.ClientFrom(ctx))
		if err != nil {
			return nil, err
		}
		body := acceptedBody(m)
		user := userBody(res.User)
		body.User = &user
		maxAge := res.Session.ExpiresAt.Sub(res.Session.CreatedAt)
		return &acceptInviteOutput{SetCookie: sessionCookie(res.Token, maxAge), Body: body}, nil
	})
}
