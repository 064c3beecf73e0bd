package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
	"atrium/internal/webhooks"
)

// WebhookEndpointBody is a webhook endpoint as the API shows it: never its
// secret, which is shown once, when it is made or rotated.
type WebhookEndpointBody struct {
	ID          string   `json:"id" example:"we_01h455vb4pex5vsknk084sn02q"`
	URL         string   `json:"url" example:"https://hooks.example.com/atrium"`
	Description string   `json:"description" example:"Billing sync"`
	EventTypes  []string `json:"event_types" example:"[\"member.*\",\"workspace.updated\"]" doc:"Exact event types and prefix.* patterns; empty means every event"`
	Enabled     bool     `json:"enabled"`
	// DisabledReason says who turned the endpoint off.
	DisabledReason string     `json:"disabled_reason,omitempty" enum:"manual,gone,failing" doc:"manual: through the API; gone: the receiver answered 410; failing: it failed for 5 days without a success"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	FailingSince   *time.Time `json:"failing_since,omitempty" doc:"When its attempts started failing with no success since"`
	// PreviousSecretExpiresAt is set after a rotation.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty" doc:"Until then, requests carry a signature with the previous secret as well"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

// WebhookEndpointWithSecretBody is an endpoint with its secret, shown this once.
type WebhookEndpointWithSecretBody struct {
	WebhookEndpointBody
	Secret string `json:"secret" example:"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" doc:"Verifies the webhook-signature header (Standard Webhooks). Shown only once."`
}

func webhookEndpointBody(e webhooks.Endpoint) WebhookEndpointBody {
	types := e.EventTypes
	if types == nil {
		types = []string{}
	}
	return WebhookEndpointBody{ID: kernel.FormatID(kernel.PrefixWebhookEndpoint, e.ID), URL: e.URL, Description: e.Description,
		EventTypes: types, Enabled: e.Enabled(), DisabledReason: e.DisabledReason, DisabledAt: e.DisabledAt,
		FailingSince: e.FailingSince, PreviousSecretExpiresAt: e.PreviousSecretExpiresAt, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
}

type createWebhookEndpointInput struct {
	workspacePath
	Body struct {
		URL         string   `json:"url" minLength:"1" maxLength:"2048" example:"https://hooks.example.com/atrium" doc:"http or https; never an internal address"`
		Description string   `json:"description,omitempty" maxLength:"500" example:"Billing sync"`
		EventTypes  []string `json:"event_types,omitempty" maxItems:"50" example:"[\"member.*\"]" doc:"Exact event types and prefix.* patterns; empty or absent means every event"`
		Enabled     *bool    `json:"enabled,omitempty" doc:"Default true"`
	}
}

type webhookEndpointPath struct {
	workspacePath
	EndpointID string `path:"endpoint_id" example:"we_01h455vb4pex5vsknk084sn02q" doc:"Webhook endpoint ID"`
}

// updateWebhookEndpointInput repeats webhookEndpointPath's fields: huma
// reads parameters from one level of embedding only.
type updateWebhookEndpointInput struct {
	workspacePath
	EndpointID string `path:"endpoint_id" example:"we_01h455vb4pex5vsknk084sn02q" doc:"Webhook endpoint ID"`
	Body       struct {
		URL         *string   `json:"url,omitempty" minLength:"1" maxLength:"2048" example:"https://hooks.example.com/atrium"`
		Description *string   `json:"description,omitempty" maxLength:"500"`
		EventTypes  *[]string `json:"event_types,omitempty" maxItems:"50" doc:"Replaces the filter; [] means every event"`
		Enabled     *bool     `json:"enabled,omitempty" doc:"Enabling an endpoint forgets its failures; disabling it stops its pending deliveries"`
	}
}

type webhookEndpointOutput struct {
	Body WebhookEndpointBody
}

type webhookEndpointWithSecretOutput struct {
	Body WebhookEndpointWithSecretBody
}

type listWebhookEndpointsInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Endpoints per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listWebhookEndpointsOutput struct {
	Body Page[WebhookEndpointBody]
}

// webhookEndpointID parses the {endpoint_id} of a route; a malformed one is
// the same 404 as an endpoint that does not exist.
func webhookEndpointID(raw string) (uuid.UUID, error) {
	return pathID(kernel.PrefixWebhookEndpoint, "webhook endpoint", raw)
}

const webhooksDoc = "Owners, admins and write keys change endpoints; read keys read them too. "

func registerWebhooks(api huma.API, svc *webhooks.Service, cursors *cursor.Signer) {
	tags := []string{"Webhooks"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	base := "/api/v1/workspaces/{workspace_id}/webhook-endpoints"
	huma.Register(api, huma.Operation{
		OperationID: "create-webhook-endpoint", Method: http.MethodPost, Path: base,
		Summary: "Create a webhook endpoint", Tags: tags, Security: bearerOrSession, DefaultStatus: http.StatusCreated,
		Description: webhooksDoc + "The answer carries the endpoint's secret, once. Events are signed per the Standard " +
			"Webhooks specification. A URL that is, or resolves to, a loopback, private, link-local or otherwise internal " +
			"address, in any notation, answers 422.",
		Errors: append(errs, http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *createWebhookEndpointInput) (*webhookEndpointWithSecretOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		ep, secret, err := svc.Create(ctx, res, webhooks.NewEndpoint{URL: in.Body.URL, Description: in.Body.Description,
			EventTypes: in.Body.EventTypes, Disabled: in.Body.Enabled != nil && !*in.Body.Enabled})
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &webhookEndpointWithSecretOutput{Body: WebhookEndpointWithSecretBody{WebhookEndpointBody: webhookEndpointBody(ep), Secret: secret}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-webhook-endpoints", Method: http.MethodGet, Path: base,
		Summary: "List webhook endpoints", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
		Description: webhooksDoc + "Oldest first.",
	}, func(ctx context.Context, in *listWebhookEndpointsInput) (*listWebhookEndpointsOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		scope := "webhook-endpoints:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace)
		page, err := listPage(cursors, scope, in.Limit, in.Cursor,
			func(after *idPosition, limit int) ([]webhooks.Endpoint, error) {
				return svc.List(ctx, res, afterID(after), limit)
			},
			webhookEndpointBody,
			func(e webhooks.Endpoint) idPosition { return idPosition{ID: e.ID} })
		if err != nil {
			return nil, err
		}
		return &listWebhookEndpointsOutput{Body: page}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-webhook-endpoint", Method: http.MethodGet, Path: base + "/{endpoint_id}",
		Summary: "Get a webhook endpoint", Tags: tags, Security: bearerOrSession, Errors: errs,
		Description: webhooksDoc,
	}, func(ctx context.Context, in *webhookEndpointPath) (*webhookEndpointOutput, error) {
		return endpointCall(ctx, in.EndpointID, svc.Get)
	})
	huma.Register(api, huma.Operation{
		OperationID: "update-webhook-endpoint", Method: http.MethodPatch, Path: base + "/{endpoint_id}",
		Summary: "Change a webhook endpoint", Tags: tags, Security: bearerOrSession,
		Description: webhooksDoc + "Absent fields stay as they are. A new URL is checked as at creation (422 for an internal address).",
		Errors:      append(errs, http.StatusBadRequest, http.StatusUnprocessableEntity),
	}, func(ctx context.Context, in *updateWebhookEndpointInput) (*webhookEndpointOutput, error) {
		change := webhooks.EndpointChange{URL: in.Body.URL, Description: in.Body.Description, EventTypes: in.Body.EventTypes,
			Enabled: in.Body.Enabled}
		return endpointCall(ctx, in.EndpointID, func(ctx context.Context, res policy.Resource, id uuid.UUID) (webhooks.Endpoint, error) {
			return svc.Update(ctx, res, id, change)
		})
	})
	huma.Register(api, huma.Operation{
		OperationID: "delete-webhook-endpoint", Method: http.MethodDelete, Path: base + "/{endpoint_id}",
		Summary: "Delete a webhook endpoint", Tags: tags, Security: bearerOrSession, DefaultStatus: http.StatusNoContent,
		Description: webhooksDoc + "Its delivery log goes with it, and its pending deliveries stop.",
		Errors:      errs,
	}, func(ctx context.Context, in *webhookEndpointPath) (*struct{}, error) {
		_, err := endpointCall(ctx, in.EndpointID, func(ctx context.Context, res policy.Resource, id uuid.UUID) (webhooks.Endpoint, error) {
			return webhooks.Endpoint{}, svc.Delete(ctx, res, id)
		})
		return nil, err
	})
	huma.Register(api, huma.Operation{
		OperationID: "rotate-webhook-secret", Method: http.MethodPost, Path: base + "/{endpoint_id}/rotate-secret",
		Summary: "Rotate a webhook endpoint's secret", Tags: tags, Security: bearerOrSession,
		Description: webhooksDoc + "The answer carries the new secret, once. For 24 hours requests carry two signatures, " +
			"one with each secret, so the receiver can switch without missing a delivery.",
		Errors: errs,
	}, func(ctx context.Context, in *webhookEndpointPath) (*webhookEndpointWithSecretOutput, error) {
		var secret string
		out, err := endpointCall(ctx, in.EndpointID, func(ctx context.Context, res policy.Resource, id uuid.UUID) (webhooks.Endpoint, error) {
			ep, s, err := svc.RotateSecret(ctx, res, id)
			secret = s
			return ep, err
		})
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &webhookEndpointWithSecretOutput{Body: WebhookEndpointWithSecretBody{WebhookEndpointBody: out.Body, Secret: secret}}, nil
	})
	registerWebhookDeliveries(api, svc, cursors)
}

// endpointCall runs one service call on the {endpoint_id} of a route and
// renders the endpoint it returns.
func endpointCall(ctx context.Context, rawID string,
	call func(context.Context, policy.Resource, uuid.UUID) (webhooks.Endpoint, error)) (*webhookEndpointOutput, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return nil, err
	}
	id, err := webhookEndpointID(rawID)
	if err != nil {
		return nil, err
	}
	ep, err := call(ctx, res, id)
	if err != nil {
		return nil, err
	}
	return &webhookEndpointOutput{Body: webhookEndpointBody(ep)}, nil
}
