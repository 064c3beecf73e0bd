package catalog

import "atrium/internal/identity"

var apiKeyTypes = []Type{
	{Name: identity.EventAPIKeyCreated, Payload: identity.APIKeyEvent{},
		Description: "An API key was created for the workspace. The event never carries its secret."},
	{Name: identity.EventAPIKeyRevoked, Payload: identity.APIKeyEvent{},
		Description: "An API key was revoked; it no longer authenticates."},
}
