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

// WebhookDeliveryBody is one event on its way to one endpoint.
type WebhookDeliveryBody struct {
	ID         string `json:"id" example:"dlv_01h455vb4pex5vsknk084sn02q"`
	EndpointID string `json:"endpoint_id" example:"we_01h455vb4pex5vsknk084sn02q"`
	EventID    string `json:"event_id" example:"evt_01h455vb4pex5vsknk084sn02q" doc:"Sent as webhook-id: the same on every retry and replay, so receivers can drop duplicates"`
	EventType  string `json:"event_type" example:"workspace.updated"`
	Status     string `json:"status" enum:"pending,succeeded,failed" doc:"pending until an attempt succeeds or the last one fails"`
	// AttemptCount counts the requests made so far.
	AttemptCount   int        `json:"attempt_count"`
	LastStatusCode *int       `json:"last_status_code,omitempty" doc:"The last answer's status; absent when none came"`
	LastError      string     `json:"last_error,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	ReplayOf       string     `json:"replay_of,omitempty" example:"dlv_01h455vb4pex5vsknk084sn02q" doc:"The delivery this one replays"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// WebhookAttemptBody is one request of a delivery and what came of it.
type WebhookAttemptBody struct {
	Attempt      int       `json:"attempt" example:"1"`
	StatusCode   *int      `json:"status_code,omitempty" doc:"Absent when no answer came (refused address, timeout)"`
	DurationMS   int64     `json:"duration_ms"`
	Error        string    `json:"error,omitempty" example:"answered 500"`
	ResponseBody string    `json:"response_body,omitempty" doc:"The start of the answer, at most 1 KiB"`
	AttemptedAt  time.Time `json:"attempted_at"`
}

// WebhookDeliveryWithAttemptsBody is a delivery with its attempts.
type WebhookDeliveryWithAttemptsBody struct {
	WebhookDeliveryBody
	Attempts []WebhookAttemptBody `json:"attempts" doc:"Every attempt, first first"`
}

func webhookDeliveryBody(d webhooks.Delivery) WebhookDeliveryBody {
	b := WebhookDeliveryBody{ID: kernel.FormatID(kernel.PrefixDelivery, d.ID),
		EndpointID: kernel.FormatID(kernel.PrefixWebhookEndpoint, d.EndpointID), EventID: kernel.FormatID(kernel.PrefixEvent, d.EventID),
		EventType: d.EventType, Status: d.Status, AttemptCount: d.Attempts, LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		LastAttemptAt: d.LastAttemptAt, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.ReplayOf != uuid.Nil {
		b.ReplayOf = kernel.FormatID(kernel.PrefixDelivery, d.ReplayOf)
	}
	return b
}

func webhookDeliveryWithAttemptsBody(d webhooks.Delivery) WebhookDeliveryWithAttemptsBody {
	out := WebhookDeliveryWithAttemptsBody{WebhookDeliveryBody: webhookDeliveryBody(d), Attempts: make([]WebhookAttemptBody, 0, len(d.AttemptLog))}
	for _, a := range d.AttemptLog {
		out.Attempts = append(out.Attempts, WebhookAttemptBody{Attempt: a.Number, StatusCode: a.StatusCode,
			DurationMS: a.Duration.Milliseconds(), Error: a.Error, ResponseBody: a.ResponseBody, AttemptedAt: a.CreatedAt})
	}
	return out
}

type webhookDeliveryPath struct {
	workspacePath
	EndpointID string `path:"endpoint_id" example:"we_01h455vb4pex5vsknk084sn02q" doc:"Webhook endpoint ID"`
	DeliveryID string `path:"delivery_id" example:"dlv_01h455vb4pex5vsknk084sn02q" doc:"Delivery ID"`
}

type listWebhookDeliveriesInput struct {
	workspacePath
	EndpointID string `path:"endpoint_id" example:"we_01h455vb4pex5vsknk084sn02q" doc:"Webhook endpoint ID"`
	Limit      string `query:"limit" doc:"Deliveries per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor     string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listWebhookDeliveriesOutput struct {
	Body Page[WebhookDeliveryBody]
}

type webhookDeliveryOutput struct {
	Body WebhookDeliveryBody
}

type webhookDeliveryWithAttemptsOutput struct {
	Body WebhookDeliveryWithAttemptsBody
}

// webhookDeliveryIDs parses the {endpoint_id} and {delivery_id} of a route;
// a malformed one is the same 404 as one that does not exist.
func webhookDeliveryIDs(rawEndpoint, rawDelivery string) (uuid.UUID, uuid.UUID, error) {
	endpointID, err := webhookEndpointID(rawEndpoint)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	deliveryID, err := pathID(kernel.PrefixDelivery, "delivery", rawDelivery)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	return endpointID, deliveryID, nil
}

func registerWebhookDeliveries(api huma.API, svc *webhooks.Service, cursors *cursor.Signer) {
	tags := []string{"Webhooks"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	base := "/api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}"
	huma.Register(api, huma.Operation{
		OperationID: "test-webhook-endpoint", Method: http.MethodPost, Path: base + "/test",
		Summary: "Send a test event", Tags: tags, Security: bearerOrSession, DefaultStatus: http.StatusAccepted,
		Description: webhooksDoc + "Sends a `webhook.test` event to this endpoint only and answers with its delivery, " +
			"at once; the delivery log shows how it went. A disabled endpoint answers 409.",
		Errors: append(errs, http.StatusConflict),
	}, func(ctx context.Context, in *webhookEndpointPath) (*webhookDeliveryOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		id, err := webhookEndpointID(in.EndpointID)
		if err != nil {
			return nil, err
		}
		d, err := svc.SendTest(ctx, res, id)
		if err != nil {
			return nil, err
		}
		return &webhookDeliveryOutput{Body: webhookDeliveryBody(d)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "list-webhook-deliveries", Method: http.MethodGet, Path: base + "/deliveries",
		Summary: "List an endpoint's deliveries", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
		Description: webhooksDoc + "Newest first; get one delivery for its attempts.",
	}, func(ctx context.Context, in *listWebhookDeliveriesInput) (*listWebhookDeliveriesOutput, error) {
		return listWebhookDeliveries(ctx, svc, cursors, in)
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-webhook-delivery", Method: http.MethodGet, Path: base + "/deliveries/{delivery_id}",
		Summary: "Get a delivery with its attempts", Tags: tags, Security: bearerOrSession, Errors: errs,
		Description: webhooksDoc + "Each attempt with its status code, duration, error and the start of the answer.",
	}, func(ctx context.Context, in *webhookDeliveryPath) (*webhookDeliveryWithAttemptsOutput, error) {
		d, err := deliveryCall(ctx, in, svc.GetDelivery)
		if err != nil {
			return nil, err
		}
		return &webhookDeliveryWithAttemptsOutput{Body: webhookDeliveryWithAttemptsBody(d)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "replay-webhook-delivery", Method: http.MethodPost, Path: base + "/deliveries/{delivery_id}/replay",
		Summary: "Replay a delivery", Tags: tags, Security: bearerOrSession, DefaultStatus: http.StatusAccepted,
		Description: webhooksDoc + "Sends the delivery's event to the endpoint again, as a new delivery with the same " +
			"webhook-id and body, and answers with it at once. A disabled endpoint answers 409.",
		Errors: append(errs, http.StatusConflict),
	}, func(ctx context.Context, in *webhookDeliveryPath) (*webhookDeliveryOutput, error) {
		d, err := deliveryCall(ctx, in, svc.Replay)
		if err != nil {
			return nil, err
		}
		return &webhookDeliveryOutput{Body: webhookDeliveryBody(d)}, nil
	})
}

// deliveryCall runs one service call on the {endpoint_id} and
// {delivery_id} of a route.
func deliveryCall(ctx context.Context, in *webhookDeliveryPath,
	call func(context.Context, policy.Resource, uuid.UUID, uuid.UUID) (webhooks.Delivery, error)) (webhooks.Delivery, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return webhooks.Delivery{}, err
	}
	endpointID, deliveryID, err := webhookDeliveryIDs(in.EndpointID, in.DeliveryID)
	if err != nil {
		return webhooks.Delivery{}, err
	}
	return call(ctx, res, endpointID, deliveryID)
}

func listWebhookDeliveries(ctx context.Context, svc *webhooks.Service, cursors *cursor.Signer,
	in *listWebhookDeliveriesInput) (*listWebhookDeliveriesOutput, error) {
	res, err := resourceFrom(ctx)
	if err != nil {
		return nil, err
	}
	endpointID, err := webhookEndpointID(in.EndpointID)
	if err != nil {
		return nil, err
	}
	scope := "webhook-deliveries:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace) + ":" + kernel.FormatID(kernel.PrefixWebhookEndpoint, endpointID)
	page, err := listPage(cursors, scope, in.Limit, in.Cursor,
		func(after *idPosition, limit int) ([]webhooks.Delivery, error) {
			return svc.ListDeliveries(ctx, res, endpointID, afterID(after), limit)
		},
		webhookDeliveryBody,
		func(d webhooks.Delivery) idPosition { return idPosition{ID: d.ID} })
	if err != nil {
		return nil, err
	}
	return &listWebhookDeliveriesOutput{Body: page}, nil
}
