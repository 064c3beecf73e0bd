package webhooks

import "atrium/internal/kernel"

// The event types this package emits. Each is documented, with its payload,
// in the event catalogue (internal/events/catalog); the outbox refuses a type
// that is not. Audit actions keep their own names: an endpoint disabled after
// a 410 is audited as webhook_endpoint.disabled but announced as
// webhook_endpoint.updated.
const (
	EventEndpointCreated       = "webhook_endpoint.created"
	EventEndpointUpdated       = "webhook_endpoint.updated"
	EventEndpointDeleted       = "webhook_endpoint.deleted"
	EventEndpointSecretRotated = "webhook_endpoint.secret_rotated"
)

// EndpointEvent is the data of the webhook_endpoint.* events: the endpoint
// after the change. Its URL is left out: it may hold a credential (a token
// in its path or query), and events reach every member through the event
// stream and every other endpoint.
type EndpointEvent struct {
	ID             string   `json:"id" example:"we_01h455vb4pex5vsknk084sn02q" doc:"Webhook endpoint ID"`
	WorkspaceID    string   `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Description    string   `json:"description" doc:"The endpoint's description"`
	EventTypes     []string `json:"event_types" doc:"The event types sent to the endpoint: exact types and prefix.* patterns; empty for all"`
	Enabled        bool     `json:"enabled" doc:"Whether events are being sent to the endpoint"`
	DisabledReason string   `json:"disabled_reason" doc:"Why the endpoint is disabled (manual, gone, failing); empty while enabled"`
}

func endpointEvent(ep Endpoint) EndpointEvent {
	types := ep.EventTypes
	if types == nil {
		types = []string{}
	}
	return EndpointEvent{ID: endpointAPIID(ep.ID), WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, ep.WorkspaceID),
		Description: ep.Description, EventTypes: types, Enabled: ep.Enabled(), DisabledReason: ep.DisabledReason}
}

// TestEvent is the data of webhook.test, the event "send a test event"
// delivers to one endpoint. It never enters the outbox.
type TestEvent struct {
	EndpointID string `json:"endpoint_id" example:"we_01h455vb4pex5vsknk084sn02q" doc:"The endpoint tested"`
	Message    string `json:"message" doc:"A sentence saying this is a test"`
}
