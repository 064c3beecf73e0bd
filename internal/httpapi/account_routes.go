package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/account"
	"atrium/internal/identity"
	"atrium/internal/kernel"
)

type updateMeInput struct {
	Body struct {
		Name  *string `json:"name,omitempty" maxLength:"100" example:"Ada Lovelace" doc:"Applies at once"`
		Email *string `json:"email,omitempty" maxLength:"320" example:"ada@new.example" doc:"Needs a recent authentication; applies once the link sent to the new address is used"`
	}
}

type changePasswordInput struct {
	Body struct {
		CurrentPassword string `json:"current_password,omitempty" maxLength:"1024" doc:"Required when the account has a password"`
		NewPassword     string `json:"new_password" maxLength:"1024" doc:"At least 8 characters; not a common password and not close to the email"`
	}
}

type deleteMeInput struct {
	Body *struct {
		Confirm string `json:"confirm,omitempty" maxLength:"320" example:"ada@example.com" doc:"When given, must be the account's email address"`
	}
}

// ExportSessionBody is a session in a data export: never its token or hash.
type ExportSessionBody struct {
	ID         string     `json:"id" example:"ses_01h455vb4pex5vsknk084sn02q"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	EndedAt    *time.Time `json:"ended_at,omitempty" doc:"When the session was ended, if it was"`
	IP         string     `json:"ip"`
	UserAgent  string     `json:"user_agent"`
}

// ExportMembershipBody is one of a person's workspaces in a data export.
type ExportMembershipBody struct {
	WorkspaceID        string     `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q"`
	WorkspaceName      string     `json:"workspace_name"`
	WorkspaceSlug      string     `json:"workspace_slug"`
	WorkspaceDeletedAt *time.Time `json:"workspace_deleted_at,omitempty"`
	Role               string     `json:"role" enum:"owner,admin,member,viewer"`
	JoinedAt           time.Time  `json:"joined_at"`
}

// ExportMFABody says whether a second factor is on; never its secret or codes.
type ExportMFABody struct {
	Enabled bool `json:"enabled"`
}

// ExportBody is everything Atrium holds about a person that is theirs to see.
type ExportBody struct {
	ExportedAt           time.Time              `json:"exported_at"`
	User                 UserBody               `json:"user"`
	Sessions             []ExportSessionBody    `json:"sessions" doc:"The most recent sessions, ended ones included, newest first"`
	PersonalAccessTokens []PATBody              `json:"personal_access_tokens" doc:"Revoked ones included, newest first"`
	MFA                  ExportMFABody          `json:"mfa"`
	Memberships          []ExportMembershipBody `json:"memberships"`
}

type exportOutput struct {
	ContentDisposition string `header:"Content-Disposition"`
	Body               ExportBody
}

func registerAccount(api huma.API, acc *account.Service, ids *identity.Service) {
	tags := []string{"Me"}
	errs := []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden}
	huma.Register(api, huma.Operation{
		OperationID: "update-me", Method: http.MethodPatch, Path: "/api/v1/me", Tags: tags,
		Summary: "Update my profile", Security: userSecurity, Errors: append(errs, http.StatusTooManyRequests),
		Description: "A new `name` applies at once. A new `email` needs a recent authentication (else 403 " +
			"`reauthentication_required`) and does not apply yet: a confirmation link (`BASE_URL/confirm-email-change?token=…`, " +
			"single use, 24 hours) goes to the new address and a notice to the current one; " +
			"`POST /api/v1/auth/email/change` applies it. Answers the account as it is now.",
	}, func(ctx context.Context, in *updateMeInput) (*userOutput, error) {
		if _, err := personFrom(ctx); err != nil {
			return nil, err
		}
		u, err := acc.UpdateProfile(ctx, account.Profile{Name: in.Body.Name, Email: in.Body.Email})
		if err != nil {
			return nil, err
		}
		return &userOutput{Body: userBody(u)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "change-my-password", Method: http.MethodPost, Path: "/api/v1/me/password", Tags: tags,
		Summary: "Change my password", Security: userSecurity, DefaultStatus: http.StatusNoContent, Errors: append(errs, http.StatusConflict),
		Description: "Checks `current_password` (401, with the login's message, when it does not match), sets the new one " +
			"and ends every other session. An account without a password (magic-link only) sets one without " +
			"`current_password`, with a recent authentication.",
	}, func(ctx context.Context, in *changePasswordInput) (*struct{}, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		return nil, acc.ChangePassword(ctx, in.Body.CurrentPassword, in.Body.NewPassword)
	})
	huma.Register(api, huma.Operation{
		OperationID: "export-me", Method: http.MethodGet, Path: "/api/v1/me/export", Tags: tags,
		Summary: "Download my data", Security: userSecurity, Errors: errs[1:],
		Description: "My account, sessions, personal access tokens, MFA status and memberships as one JSON document, " +
			"served as an attachment. No secret, hash or other person's data is in it.",
	}, func(ctx context.Context, _ *struct{}) (*exportOutput, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		e, err := acc.Export(ctx)
		if err != nil {
			return nil, err
		}
		name := "atrium-export-" + kernel.FormatID(kernel.PrefixUser, actor.ID) + ".json"
		return &exportOutput{ContentDisposition: `attachment; filename="` + name + `"`, Body: exportBody(e)}, nil
	})
	registerAccountDeletion(api, acc, tags, errs)
	registerEmailChange(api, ids)
}

func registerAccountDeletion(api huma.API, acc *account.Service, tags []string, errs []int) {
	huma.Register(api, huma.Operation{
		OperationID: "delete-me", Method: http.MethodDelete, Path: "/api/v1/me", Tags: tags,
		Summary: "Delete my account", Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Errors: append(errs, http.StatusConflict),
		Description: "Needs a recent authentication. Refused (409) while I am the only owner of a workspace that has other " +
			"members: the message names them; transfer ownership or delete them first. Otherwise workspaces where I am the " +
			"only member are soft-deleted, every membership ends, sessions, tokens, links and MFA end, and my name and " +
			"address are anonymised (\"Deleted user\"); audit entries stay. Clears the session cookie.",
	}, func(ctx context.Context, in *deleteMeInput) (*logoutOutput, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		confirm := ""
		if in.Body != nil {
			confirm = in.Body.Confirm
		}
		if err := acc.Delete(ctx, confirm); err != nil {
			return nil, err
		}
		return &logoutOutput{SetCookie: clearedSessionCookie()}, nil
	})
}

func registerEmailChange(api huma.API, ids *identity.Service) {
	huma.Register(api, huma.Operation{
		OperationID: "confirm-email-change", Method: http.MethodPost, Path: authPrefix + "email/change", Tags: []string{"Authentication"},
		Summary: "Confirm a new email address",
		Description: "Uses up the token of the link sent to the new address (single use, valid 24 hours) and makes that " +
			"address the account's, verified; every other session of the account ends. Works without a session. A bad, " +
			"used or expired token answers 400 on `token`; an address another account has taken meanwhile, 409.",
		Errors: []int{http.StatusBadRequest, http.StatusConflict},
	}, func(ctx context.Context, in *verifyInput) (*userOutput, error) {
		u, err := ids.ConfirmEmailChange(ctx, in.Body.Token)
		if err != nil {
			return nil, err
		}
		return &userOutput{Body: userBody(u)}, nil
	})
}

func exportBody(e account.Export) ExportBody {
	b := ExportBody{ExportedAt: e.ExportedAt, User: userBody(e.User), MFA: ExportMFABody{Enabled: e.MFAEnabled},
		Sessions: []ExportSessionBody{}, PersonalAccessTokens: []PATBody{}, Memberships: []ExportMembershipBody{}}
	for _, s := range e.Sessions {
		b.Sessions = append(b.Sessions, ExportSessionBody{ID: kernel.FormatID(kernel.PrefixSession, s.ID),
			CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt, EndedAt: s.RevokedAt,
			IP: s.IP, UserAgent: s.UserAgent})
	}
	for _, p := range e.Tokens {
		b.PersonalAccessTokens = append(b.PersonalAccessTokens, patBody(p))
	}
	for _, j := range e.Memberships {
		b.Memberships = append(b.Memberships, ExportMembershipBody{WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, j.Workspace.ID),
			WorkspaceName: j.Workspace.Name, WorkspaceSlug: j.Workspace.Slug, WorkspaceDeletedAt: j.Workspace.DeletedAt,
			Role: string(j.Role), JoinedAt: j.JoinedAt})
	}
	return b
}
