package events

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// Envelope is an event as the bus carries it, as a webhook endpoint receives
// it and as the event stream sends it: {id, type, workspace_id, created_at,
// data}. IDs are the API's prefixed IDs (evt_…, ws_…).
type Envelope struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	WorkspaceID string          `json:"workspace_id"`
	CreatedAt   time.Time       `json:"created_at"`
	Data        json.RawMessage `json:"data"`
}

// EventUUID is the envelope's event ID as stored (the outbox row's ID).
func (e Envelope) EventUUID() (uuid.UUID, error) {
	return kernel.ParseID(kernel.PrefixEvent, e.ID)
}

// WorkspaceUUID is the envelope's workspace as stored.
func (e Envelope) WorkspaceUUID() (uuid.UUID, error) {
	return kernel.ParseID(kernel.PrefixWorkspace, e.WorkspaceID)
}

// EventSubject is the bus subject of an event: ws.<workspace id>.<event type>.
func EventSubject(workspaceID uuid.UUID, eventType string) string {
	return "ws." + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + "." + eventType
}

// WorkspaceSubjects is the subject filter for every event of one workspace.
func WorkspaceSubjects(workspaceID uuid.UUID) string {
	return "ws." + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + ".>"
}

// TypeSubjects is the subject filter for one event type in every workspace.
func TypeSubjects(eventType string) string { return "ws.*." + eventType }

// JobSubject is the bus subject of a job kind: jobs.<kind>.
func JobSubject(kind string) string { return "jobs." + kind }

// durableName turns a kind or a subscriber name into a consumer name (no dots).
func durableName(prefix, name string) string {
	return prefix + "_" + strings.NewReplacer(".", "_", "*", "_", ">", "_").Replace(name)
}
