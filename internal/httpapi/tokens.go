package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/identity"
	"atrium/internal/kernel"
)

// PATBody is a personal access token as lists show it: never its secret or
// its hash, only the first characters of the secret.
type PATBody struct {
	ID          string     `json:"id" example:"pat_01h455vb4pex5vsknk084sn02q"`
	Name        string     `json:"name" example:"laptop scripts"`
	WorkspaceID string     `json:"workspace_id,omitempty" doc:"The one workspace the token may use; every one of yours when absent"`
	Prefix      string     `json:"prefix" doc:"The start of the secret, to tell tokens apart"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty" doc:"Updated at most once a minute"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// CreatedPATBody is a new token with its secret, shown this once.
type CreatedPATBody struct {
	PATBody
	Secret string `json:"secret" doc:"Send as Authorization: Bearer <secret>. Shown only once."`
}

func patBody(p identity.PAT) PATBody {
	b := PATBody{ID: kernel.FormatID(kernel.PrefixPAT, p.ID), Name: p.Name, Prefix: p.Prefix, CreatedAt: p.CreatedAt,
		ExpiresAt: p.ExpiresAt, LastUsedAt: p.LastUsedAt, RevokedAt: p.RevokedAt}
	if p.OnlyWorkspace != uuid.Nil {
		b.WorkspaceID = kernel.FormatID(kernel.PrefixWorkspace, p.OnlyWorkspace)
	}
	return b
}

type createPATInput struct {
	Body struct {
		Name        string     `json:"name" minLength:"1" maxLength:"100" example:"laptop scripts"`
		WorkspaceID string     `json:"workspace_id,omitempty" doc:"Limit the token to this workspace"`
		ExpiresAt   *time.Time `json:"expires_at,omitempty" doc:"When the token stops working; never when absent"`
	}
}

type createdPATOutput struct {
	Body CreatedPATBody
}

type listPATsInput struct {
	Limit  string `query:"limit" doc:"Tokens per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listPATsOutput struct {
	Body Page[PATBody]
}

type patPath struct {
	TokenID string `path:"token_id" example:"pat_01h455vb4pex5vsknk084sn02q" doc:"Token ID"`
}

func registerTokens(api huma.API, svc *identity.Service, cursors *cursor.Signer) {
	tags := []string{"Me"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden}
	huma.Register(api, huma.Operation{
		OperationID: "list-my-tokens", Method: http.MethodGet, Path: "/api/v1/me/tokens", Tags: tags,
		Summary: "List my personal access tokens", Security: userSecurity, Errors: append(errs, http.StatusBadRequest),
	}, func(ctx context.Context, in *listPATsInput) (*listPATsOutput, error) {
		return listPATs(ctx, svc, cursors, in)
	})
	huma.Register(api, huma.Operation{
		OperationID: "create-my-token", Method: http.MethodPost, Path: "/api/v1/me/tokens", Tags: tags,
		Summary: "Create a personal access token", Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "Needs a session: a token cannot create tokens. The answer carries the secret, once." + recentAuthNote,
		Errors:      append(errs, http.StatusBadRequest),
	}, func(ctx context.Context, in *createPATInput) (*createdPATOutput, error) {
		var only uuid.UUID
		if in.Body.WorkspaceID != "" {
			id, err := kernel.ParseID(kernel.PrefixWorkspace, in.Body.WorkspaceID)
			if err != nil {
				return nil, kernel.Invalid("workspace_id", "is not a workspace ID")
			}
			only = id
		}
		pat, secret, err := svc.CreatePAT(ctx, identity.NewPAT{Name: in.Body.Name, OnlyWorkspace: only, ExpiresAt: in.Body.ExpiresAt})
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &createdPATOutput{Body: CreatedPATBody{PATBody: patBody(pat), Secret: secret}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "revoke-my-token", Method: http.MethodDelete, Path: "/api/v1/me/tokens/{token_id}", Tags: tags,
		Summary: "Revoke a personal access token", Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Another person's token, a revoked one and an unknown ID all answer the same 404.",
		Errors:      append(errs, http.StatusNotFound),
	}, func(ctx context.Context, in *patPath) (*struct{}, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := kernel.ParseID(kernel.PrefixPAT, in.TokenID)
		if err != nil {
			return nil, kernel.NotFound("token")
		}
		return nil, svc.RevokePAT(ctx, actor.ID, id)
	})
}

func listPATs(ctx context.Context, svc *identity.Service, cursors *cursor.Signer, in *listPATsInput) (*listPATsOutput, error) {
	actor, err := personFrom(ctx)
	if err != nil {
		return nil, err
	}
	scope := "tokens:" + kernel.FormatID(kernel.PrefixUser, actor.ID)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *identity.TokenPosition, limit int) ([]identity.PAT, error) {
			return svc.ListPATs(ctx, actor.ID, after, limit)
		},
		patBody,
		func(p identity.PAT) identity.TokenPosition {
			return identity.TokenPosition{CreatedAt: p.CreatedAt, ID: p.ID}
		})
	if err != nil {
		return nil, err
	}
	return &listPATsOutput{Body: page}, nil
}
