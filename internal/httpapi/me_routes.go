package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/identity"
	"atrium/internal/kernel"
)

// SessionBody is a session as its owner sees it. The token is never shown
// again after login.
type SessionBody struct {
	ID            string    `json:"id" example:"ses_01h455vb4pex5vsknk084sn02q" doc:"Session ID"`
	Current       bool      `json:"current" doc:"Whether this request came with this session"`
	CreatedAt     time.Time `json:"created_at"`
	LastSeenAt    time.Time `json:"last_seen_at" doc:"Updated at most once a minute"`
	IdleExpiresAt time.Time `json:"idle_expires_at" doc:"When the session ends unless used before"`
	ExpiresAt     time.Time `json:"expires_at" doc:"When the session ends however it is used"`
	IP            string    `json:"ip"`
	UserAgent     string    `json:"user_agent"`
}

type listSessionsInput struct {
	Limit  string `query:"limit" doc:"Sessions per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listSessionsOutput struct {
	Body Page[SessionBody]
}

type sessionPath struct {
	SessionID string `path:"session_id" example:"ses_01h455vb4pex5vsknk084sn02q" doc:"Session ID"`
}

type revokeOthersOutput struct {
	Body struct {
		Revoked int64 `json:"revoked" doc:"How many sessions were ended"`
	}
}

func registerMe(api huma.API, svc *identity.Service, cursors *cursor.Signer) {
	tags := []string{"Me"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden}
	huma.Register(api, huma.Operation{
		OperationID: "get-me", Method: http.MethodGet, Path: "/api/v1/me", Tags: tags,
		Summary: "Get my account", Security: userSecurity, Errors: errs,
	}, func(ctx context.Context, _ *struct{}) (*userOutput, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		u, err := svc.User(ctx, actor.ID)
		if err != nil {
			return nil, err
		}
		return &userOutput{Body: userBody(u)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-my-sessions", Method: http.MethodGet, Path: "/api/v1/me/sessions", Tags: tags,
		Summary: "List my sessions", Security: userSecurity, Errors: append(errs, http.StatusBadRequest),
		Description: "Active sessions, newest first; the one this request came with is marked current.",
	}, func(ctx context.Context, in *listSessionsInput) (*listSessionsOutput, error) {
		return listSessions(ctx, svc, cursors, in)
	})
	registerRevocation(api, svc, tags, errs)
}

func registerRevocation(api huma.API, svc *identity.Service, tags []string, errs []int) {
	huma.Register(api, huma.Operation{
		OperationID: "revoke-my-session", Method: http.MethodDelete, Path: "/api/v1/me/sessions/{session_id}", Tags: tags,
		Summary: "End one of my sessions", Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Another person's session, an ended one and an unknown ID all answer the same 404. " +
			"Ending the current session also clears its cookie.",
		Errors: append(errs, http.StatusNotFound),
	}, func(ctx context.Context, in *sessionPath) (*logoutOutput, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := pathID(kernel.PrefixSession, "session", in.SessionID)
		if err != nil {
			return nil, err
		}
		if err := svc.RevokeSession(ctx, actor.ID, id); err != nil {
			return nil, err
		}
		out := &logoutOutput{}
		if id == actor.SessionID {
			out.SetCookie = clearedSessionCookie()
		}
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "revoke-my-other-sessions", Method: http.MethodPost, Path: "/api/v1/me/sessions/revoke-others", Tags: tags,
		Summary: "End all my other sessions", Security: userSecurity, Errors: errs,
		Description: "Ends every session but the one this request came with.",
	}, func(ctx context.Context, _ *struct{}) (*revokeOthersOutput, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		n, err := svc.RevokeOtherSessions(ctx, actor.ID, actor.SessionID)
		if err != nil {
			return nil, err
		}
		out := &revokeOthersOutput{}
		out.Body.Revoked = n
		return out, nil
	})
}

func listSessions(ctx context.Context, svc *identity.Service, cursors *cursor.Signer, in *listSessionsInput) (*listSessionsOutput, error) {
	actor, err := personFrom(ctx)
	if err != nil {
		return nil, err
	}
	scope := "sessions:" + kernel.FormatID(kernel.PrefixUser, actor.ID)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *identity.SessionPosition, limit int) ([]identity.Session, error) {
			return svc.ListSessions(ctx, actor.ID, after, limit)
		},
		func(s identity.Session) SessionBody {
			return SessionBody{
				ID: kernel.FormatID(kernel.PrefixSession, s.ID), Current: s.ID == actor.SessionID,
				CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, IdleExpiresAt: s.IdleExpiresAt, ExpiresAt: s.ExpiresAt,
				IP: s.IP, UserAgent: s.UserAgent,
			}
		},
		func(s identity.Session) identity.SessionPosition {
			return identity.SessionPosition{CreatedAt: s.CreatedAt, ID: s.ID}
		})
	if err != nil {
		return nil, err
	}
	return &listSessionsOutput{Body: page}, nil
}
