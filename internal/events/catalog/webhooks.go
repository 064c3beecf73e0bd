package catalog

import "atrium/internal/webhooks"

var webhookEndpointTypes = []Type{
	{Name: webhooks.EventEndpointCreated, Payload: webhooks.EndpointEvent{},
		Description: "A webhook endpoint was added to the workspace."},
	{Name: webhooks.EventEndpointUpdated, Payload: webhooks.EndpointEvent{},
		Description: "A webhook endpoint was changed, enabled or disabled: by a person, or automatically after failing for too long."},
	{Name: webhooks.EventEndpointDeleted, Payload: webhooks.EndpointEvent{},
		Description: "A webhook endpoint was deleted."},
	{Name: webhooks.EventEndpointSecretRotated, Payload: webhooks.EndpointEvent{},
		Description: "A webhook endpoint's signing secret was replaced; the previous one keeps signing for a grace period."},
}
