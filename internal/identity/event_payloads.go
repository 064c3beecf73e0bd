package identity

import (
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// The event types identity emits, documented in the event catalogue
// (internal/events/catalog). They share their names with the audit actions.
const (
	EventAPIKeyCreated = "api_key.created"
	EventAPIKeyRevoked = "api_key.revoked"
)

// APIKeyEvent is the data of api_key.created and api_key.revoked. It never
// carries the secret: Prefix is the part of it that key lists show, too
// short to authenticate with.
type APIKeyEvent struct {
	ID     string   `json:"id" example:"key_01h455vb4pex5vsknk084sn02q" doc:"API key ID"`
	Name   string   `json:"name" example:"deploys" doc:"The key's name"`
	Scopes []string `json:"scopes" example:"[\"read\"]" doc:"What the key may do: read, write"`
	Prefix string   `json:"prefix" example:"atr_01h455vb4pex5vsknk084sn02q_Xy3k9Q" doc:"The start of the secret, to tell keys apart"`
}

func apiKeyEvent(key APIKey) APIKeyEvent {
	return APIKeyEvent{ID: kernel.FormatID(kernel.PrefixAPIKey, key.ID), Name: key.Name,
		Scopes: policy.ScopeNames(key.Scopes), Prefix: key.Prefix}
}
