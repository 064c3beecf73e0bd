package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/events/catalog"
)

// EventEnvelope is how every event travels: in a webhook delivery's body, on
// the event stream, on the bus. Its data's schema depends on its type.
type EventEnvelope struct {
	ID          string          `json:"id" example:"evt_01h455vb4pex5vsknk084sn02q" doc:"The event's ID: the same on every delivery of the event, so receivers can drop repeats"`
	Type        string          `json:"type" example:"member.invited" doc:"The event type, one of the webhooks of this document"`
	WorkspaceID string          `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"The workspace the event happened in"`
	CreatedAt   time.Time       `json:"created_at" doc:"When the change that caused the event was committed"`
	Data        json.RawMessage `json:"data" doc:"What happened; its schema depends on type"`
}

// documentEvents publishes the event catalogue in the OpenAPI document: the
// EventEnvelope schema, an envelope schema per event type with that type's
// data, and a webhook per event type (OpenAPI 3.1's top-level webhooks) that
// takes it. It returns the per-type envelope schemas by type, for the event
// stream's documentation.
func documentEvents(api huma.API, types []catalog.Type) map[string]*huma.Schema {
	oa := api.OpenAPI()
	registry := oa.Components.Schemas
	generic := registry.SchemaFromRef(registry.Schema(reflect.TypeFor[EventEnvelope](), true, "EventEnvelope").Ref)
	if oa.Webhooks == nil {
		oa.Webhooks = map[string]*huma.PathItem{}
	}
	refs := make(map[string]*huma.Schema, len(types))
	for _, t := range types {
		name := envelopeSchemaName(t.Name)
		registry.Map()[name] = &huma.Schema{
			Type:        huma.TypeObject,
			Title:       t.Name,
			Description: t.Description,
			Required:    []string{"id", "type", "workspace_id", "created_at", "data"},
			Properties: map[string]*huma.Schema{
				"id":           generic.Properties["id"],
				"type":         {Type: huma.TypeString, Enum: []any{t.Name}, Description: "The event type"},
				"workspace_id": generic.Properties["workspace_id"],
				"created_at":   generic.Properties["created_at"],
				"data":         registry.Schema(reflect.TypeOf(t.Payload), true, name+"Data"),
			},
			AdditionalProperties: false,
		}
		ref := &huma.Schema{Ref: "#/components/schemas/" + name}
		refs[t.Name] = ref
		oa.Webhooks[t.Name] = &huma.PathItem{Post: webhookOperation(t, ref)}
	}
	return refs
}

// webhookOperation documents the delivery of one event type to a webhook
// endpoint.
func webhookOperation(t catalog.Type, envelope *huma.Schema) *huma.Operation {
	header := func(name, doc string) *huma.Param {
		return &huma.Param{Name: name, In: "header", Required: true, Description: doc, Schema: &huma.Schema{Type: huma.TypeString}}
	}
	return &huma.Operation{
		OperationID: "event-" + strings.NewReplacer(".", "-", "_", "-").Replace(t.Name),
		Summary:     t.Name,
		Description: t.Description + " Sent to the workspace's webhook endpoints that subscribe to it, " +
			"and on its event stream (`GET /api/v1/workspaces/{workspace_id}/events/stream`).",
		Tags: []string{"Events"},
		Parameters: []*huma.Param{
			header("webhook-id", "The event's ID, the same on every attempt (Standard Webhooks)"),
			header("webhook-timestamp", "When this attempt was signed, in Unix seconds"),
			header("webhook-signature", "`v1,<base64 HMAC-SHA256 of <webhook-id>.<webhook-timestamp>.<body>>` under the endpoint's "+
				"secret; two, separated by a space, while a rotated secret is in its grace period"),
		},
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/json": {Schema: envelope},
		}},
		Responses: map[string]*huma.Response{
			"2XX": {Description: "Any 2xx status acknowledges the event; any other answer, or none in time, is retried with backoff."},
		},
	}
}

// envelopeSchemaName names the envelope schema of an event type:
// member.invited → MemberInvitedEnvelope.
func envelopeSchemaName(eventType string) string {
	var b strings.Builder
	for part := range strings.FieldsFuncSeq(eventType, func(r rune) bool { return r == '.' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	b.WriteString("Envelope")
	return b.String()
}

// streamResponse documents the event stream's 200 answer: a text/event-stream
// whose messages carry one envelope each.
func streamResponse(envelopes map[string]*huma.Schema, types []catalog.Type) *huma.Response {
	names := make([]any, 0, len(types))
	data := make([]*huma.Schema, 0, len(types))
	for _, t := range types {
		names = append(names, t.Name)
		data = append(data, envelopes[t.Name])
	}
	message := &huma.Schema{
		Type:  huma.TypeObject,
		Title: "Server-sent event",
		Description: "One message of the stream, sent as `id:`, `event:` and `data:` lines and a blank line. " +
			"Lines starting with `:` are comments (the heartbeat) and carry nothing.",
		Required: []string{"id", "event", "data"},
		Properties: map[string]*huma.Schema{
			"id":    {Type: huma.TypeString, Description: "Opaque; send it back as Last-Event-ID to resume after this event"},
			"event": {Type: huma.TypeString, Enum: names, Description: "The event type"},
			"data":  {OneOf: data, Description: "The event's envelope, as JSON on one line"},
		},
	}
	return &huma.Response{
		Description: "A stream of the workspace's events (Server-Sent Events), open until the client leaves",
		Headers: map[string]*huma.Param{
			"Cache-Control":     {Schema: &huma.Schema{Type: huma.TypeString}, Description: "no-store"},
			"X-Accel-Buffering": {Schema: &huma.Schema{Type: huma.TypeString}, Description: "no: proxies must not buffer the stream"},
		},
		Content: map[string]*huma.MediaType{"text/event-stream": {Schema: message}},
	}
}
