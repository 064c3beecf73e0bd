package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// APIKeyBody is a workspace API key as lists show it: never its secret or
// its hash, only the first characters of the secret.
type APIKeyBody struct {
	ID         string     `json:"id" example:"key_01h455vb4pex5vsknk084sn02q"`
	Name       string     `json:"name" example:"CI deploys"`
	Scopes     []string   `json:"scopes" example:"[\"read\",\"write\"]"`
	Prefix     string     `json:"prefix" doc:"The start of the secret, to tell keys apart"`
	CreatedBy  string     `json:"created_by" example:"usr_01h455vb4pex5vsknk084sn02q"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" doc:"Updated at most once a minute"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// CreatedAPIKeyBody is a new key with its secret, shown this once.
type CreatedAPIKeyBody struct {
	APIKeyBody
	Secret string `json:"secret" doc:"Send as Authorization: Bearer <secret>. Shown only once."`
}

func apiKeyBody(k identity.APIKey) APIKeyBody {
	return APIKeyBody{
		ID: kernel.FormatID(kernel.PrefixAPIKey, k.ID), Name: k.Name, Scopes: policy.ScopeNames(k.Scopes), Prefix: k.Prefix,
		CreatedBy: kernel.FormatID(kernel.PrefixUser, k.CreatedBy), CreatedAt: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
	}
}

type createAPIKeyInput struct {
	workspacePath
	Body struct {
		Name      string     `json:"name" minLength:"1" maxLength:"100" example:"CI deploys"`
		Scopes    []string   `json:"scopes" minItems:"1" maxItems:"2" uniqueItems:"true" enum:"read,write"`
		ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"When the key stops working; never when absent"`
	}
}

type createdAPIKeyOutput struct {
	Body CreatedAPIKeyBody
}

type listAPIKeysInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Keys per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listAPIKeysOutput struct {
	Body Page[APIKeyBody]
}

type apiKeyPath struct {
	workspacePath
	KeyID string `path:"key_id" example:"key_01h455vb4pex5vsknk084sn02q" doc:"API key ID"`
}

func registerAPIKeys(api huma.API, svc *identity.Service, cursors *cursor.Signer) {
	tags := []string{"API keys"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	huma.Register(api, huma.Operation{
		OperationID: "list-api-keys", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/api-keys",
		Summary: "List API keys", Tags: tags, Security: userSecurity, Errors: append(errs, http.StatusBadRequest),
		Description: "Owners and admins; newest first, revoked keys included. Secrets are never shown again.",
	}, func(ctx context.Context, in *listAPIKeysInput) (*listAPIKeysOutput, error) {
		return listAPIKeys(ctx, svc, cursors, in)
	})
	huma.Register(api, huma.Operation{
		OperationID: "create-api-key", Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/api-keys",
		Summary: "Create an API key", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "Owners and admins with a verified email address. The answer carries the secret, once. " +
			"`read` lets the key read the workspace, its members and its audit log; `write` also lets it rename the workspace." +
			recentAuthNote,
		Errors: append(errs, http.StatusBadRequest),
	}, func(ctx context.Context, in *createAPIKeyInput) (*createdAPIKeyOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		key, secret, err := svc.CreateAPIKey(ctx, res, identity.NewAPIKey{Name: in.Body.Name, Scopes: in.Body.Scopes,
			ExpiresAt: in.Body.ExpiresAt})
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &createdAPIKeyOutput{Body: CreatedAPIKeyBody{APIKeyBody: apiKeyBody(key), Secret: secret}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "revoke-api-key", Method: http.MethodDelete, Path: "/api/v1/workspaces/{workspace_id}/api-keys/{key_id}",
		Summary: "Revoke an API key", Tags: tags, Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Owners and admins. The key stops working at once; an unknown or revoked key answers 404.",
		Errors:      errs,
	}, func(ctx context.Context, in *apiKeyPath) (*struct{}, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := pathID(kernel.PrefixAPIKey, "API key", in.KeyID)
		if err != nil {
			return nil, err
		}
		return nil, svc.RevokeAPIKey(ctx, res, id)
	})
}

func listAPIKeys(ctx context.Context, svc *identity.Service, cursors *cursor.Signer, in *listAPIKeysInput) (*listAPIKeysOutput, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return nil, err
	}
	scope := "api-keys:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *identity.TokenPosition, limit int) ([]identity.APIKey, error) {
			return svc.ListAPIKeys(ctx, res, after, limit)
		},
		apiKeyBody,
		func(k identity.APIKey) identity.TokenPosition {
			return identity.TokenPosition{CreatedAt: k.CreatedAt, ID: k.ID}
		})
	if err != nil {
		return nil, err
	}
	return &listAPIKeysOutput{Body: page}, nil
}
