package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Delivery statuses.
const (
	StatusPending   = "pending" // waiting for its next attempt
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed" // for good: attempts exhausted, 410, or the endpoint disabled or deleted
)

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	EndpointID  uuid.UUID
	// EventID is the webhook-id the receiver sees, the same on every retry
	// and replay.
	EventID   uuid.UUID
	EventType string
	// ReplayOf is the delivery this one replays; uuid.Nil for an event's
	// own delivery or a test.
	ReplayOf       uuid.UUID
	Status         string
	Attempts       int
	LastStatusCode *int
	LastError      string
	LastAttemptAt  *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// AttemptLog is every attempt, first first; GetDelivery fills it.
	AttemptLog []Attempt
}

// Attempt is one request of a delivery and what came of it.
type Attempt struct {
	Number int
	// StatusCode is nil when no answer came (refused, timed out, no route).
	StatusCode *int
	Duration   time.Duration
	Error      string
	// ResponseBody is the start of the answer, at most responseExcerpt bytes.
	ResponseBody string
	CreatedAt    time.Time
}

const (
	deliveryColumns = `id, workspace_id, endpoint_id, event_id, event_type, replay_of, status, attempts,
    last_status_code, last_error, last_attempt_at, created_at, updated_at`
	// An event's own delivery is written once per endpoint: a second INSERT
	// of it hits webhook_delivery_event and does nothing.
	insertDeliverySQL = `INSERT INTO webhook_delivery (id, workspace_id, endpoint_id, event_id, event_type, body, replay_of,
        status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) ON CONFLICT DO NOTHING`
	selectDeliverySQL = "SELECT " + deliveryColumns + ` FROM webhook_delivery
        WHERE id = $1 AND endpoint_id = $2 AND workspace_id = $3`
	selectBodySQL = "SELECT body FROM webhook_delivery WHERE id = $1 AND workspace_id = $2"
	// Newest first, served by webhook_delivery_endpoint.
	listDeliveriesFirstSQL = "SELECT " + deliveryColumns + ` FROM webhook_delivery
        WHERE workspace_id = $1 AND endpoint_id = $2 ORDER BY id DESC LIMIT $3`
	listDeliveriesAfterSQL = "SELECT " + deliveryColumns + ` FROM webhook_delivery
        WHERE workspace_id = $1 AND endpoint_id = $2 AND id < $4 ORDER BY id DESC LIMIT $3`
	listAttemptsSQL = `SELECT attempt, status_code, duration_ms, error, response_body, created_at FROM webhook_attempt
        WHERE workspace_id = $1 AND delivery_id = $2 ORDER BY attempt`
)

// deliverPayload is the delivery job's payload.
type deliverPayload struct {
	DeliveryID string `json:"delivery_id"`
}

// insertDelivery writes a pending delivery of body in tx and enqueues the
// job that sends it. It reports false, and enqueues nothing, when the
// event's own delivery to the endpoint exists already.
func insertDelivery(ctx context.Context, tx store.Tx, d Delivery, body []byte) (bool, error) {
	var replayOf *uuid.UUID
	if d.ReplayOf != uuid.Nil {
		replayOf = &d.ReplayOf
	}
	n, err := tx.Exec(ctx, insertDeliverySQL, d.ID, d.WorkspaceID, d.EndpointID, d.EventID, d.EventType, string(body),
		replayOf, d.CreatedAt)
	if err != nil || n == 0 {
		return false, err
	}
	if _, err := events.Enqueue(ctx, tx, DeliverJob, deliverPayload{DeliveryID: deliveryAPIID(d.ID)}); err != nil {
		return false, err
	}
	return true, nil
}

// SendTest sends the endpoint a webhook.test event, and nothing else: the
// event is made for this endpoint and never enters the outbox. It returns
// the pending delivery; forbidden unless the actor may
// (policy.WebhookManage), not_found for an unknown endpoint, conflict when
// the endpoint is disabled, workspace_inactive for a deleted workspace, or
// the store's error.
func (s *Service) SendTest(ctx context.Context, res policy.Resource, endpointID uuid.UUID) (Delivery, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookManage, res); err != nil {
		return Delivery{}, err
	}
	if err := s.requirePlan(ctx, res.Workspace); err != nil {
		return Delivery{}, err
	}
	var d Delivery
	err := s.changeEndpoint(ctx, res, endpointID, func(tx store.Tx, ep endpointRow) error {
		if !ep.Enabled() {
			return errDisabled()
		}
		d = Delivery{ID: kernel.NewID(), WorkspaceID: res.Workspace, EndpointID: ep.ID, EventID: kernel.NewID(),
			EventType: TestEventType, Status: StatusPending, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
		data, _ := json.Marshal(TestEvent{EndpointID: endpointAPIID(ep.ID),
			Message: "This is a test event: the endpoint is reachable and the signature can be verified."}) // plain strings: never fails
		body, err := json.Marshal(events.Envelope{ID: kernel.FormatID(kernel.PrefixEvent, d.EventID), Type: TestEventType,
			WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, res.Workspace), CreatedAt: tx.Now().UTC(), Data: data})
		if err != nil {
			return kernel.Internal(err)
		}
		if _, err := insertDelivery(ctx, tx, d, body); err != nil {
			return err
		}
		return auditDelivery(ctx, tx, "webhook_endpoint.tested", d)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhooks: send test: %w", err)
	}
	return d, nil
}

// Replay sends a delivery's event to its endpoint again, as a new delivery
// with the same body and the same webhook-id, so a receiver that kept it
// can tell. It returns the pending delivery; forbidden unless the actor may
// (policy.WebhookManage), not_found for an unknown endpoint or delivery,
// conflict when the endpoint is disabled, workspace_inactive for a deleted
// workspace, or the store's error.
func (s *Service) Replay(ctx context.Context, res policy.Resource, endpointID, deliveryID uuid.UUID) (Delivery, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookManage, res); err != nil {
		return Delivery{}, err
	}
	if err := s.requirePlan(ctx, res.Workspace); err != nil {
		return Delivery{}, err
	}
	var d Delivery
	err := s.changeEndpoint(ctx, res, endpointID, func(tx store.Tx, ep endpointRow) error {
		orig, err := scanDelivery(tx.QueryRow(ctx, selectDeliverySQL, deliveryID, ep.ID, res.Workspace))
		if err != nil {
			return notFoundAs("delivery", err)
		}
		if !ep.Enabled() {
			return errDisabled()
		}
		var body string
		if err := tx.QueryRow(ctx, selectBodySQL, orig.ID, res.Workspace).Scan(&body); err != nil {
			return err
		}
		d = Delivery{ID: kernel.NewID(), WorkspaceID: res.Workspace, EndpointID: ep.ID, EventID: orig.EventID,
			EventType: orig.EventType, ReplayOf: orig.ID, Status: StatusPending, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
		if _, err := insertDelivery(ctx, tx, d, []byte(body)); err != nil {
			return err
		}
		return auditDelivery(ctx, tx, "webhook_delivery.replayed", d)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhooks: replay: %w", err)
	}
	return d, nil
}

func errDisabled() error {
	return &kernel.Error{Code: kernel.CodeConflict, Message: "the endpoint is disabled: enable it first"}
}

func auditDelivery(ctx context.Context, tx store.Tx, action string, d Delivery) error {
	meta := map[string]any{"endpoint_id": endpointAPIID(d.EndpointID), "event_id": kernel.FormatID(kernel.PrefixEvent, d.EventID),
		"event_type": d.EventType}
	if d.ReplayOf != uuid.Nil {
		meta["replay_of"] = deliveryAPIID(d.ReplayOf)
	}
	_, err := audit.Record(ctx, tx, audit.Entry{Action: action, TargetType: "webhook_delivery", TargetID: deliveryAPIID(d.ID),
		Metadata: meta})
	return err
}

// ListDeliveries returns up to limit of an endpoint's deliveries, newest
// first, after the delivery ID after (uuid.Nil for the first page), without
// their attempts. It returns forbidden unless the actor may
// (policy.WebhookRead), not_found for an unknown endpoint, or the store's
// error.
func (s *Service) ListDeliveries(ctx context.Context, res policy.Resource, endpointID, after uuid.UUID, limit int) ([]Delivery, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookRead, res); err != nil {
		return nil, err
	}
	var out []Delivery
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if _, err := scanEndpoint(tx.QueryRow(ctx, selectEndpointSQL, endpointID, res.Workspace)); err != nil {
			return notFoundAs("webhook endpoint", err)
		}
		var rows store.Rows
		var err error
		if after == uuid.Nil {
			rows, err = tx.Query(ctx, listDeliveriesFirstSQL, res.Workspace, endpointID, limit)
		} else {
			rows, err = tx.Query(ctx, listDeliveriesAfterSQL, res.Workspace, endpointID, limit, after)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanDelivery)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: list deliveries: %w", err)
	}
	return out, nil
}

// GetDelivery returns one of an endpoint's deliveries with its attempts.
// It returns forbidden unless the actor may (policy.WebhookRead), not_found
// for an unknown endpoint or delivery, or the store's error.
func (s *Service) GetDelivery(ctx context.Context, res policy.Resource, endpointID, deliveryID uuid.UUID) (Delivery, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookRead, res); err != nil {
		return Delivery{}, err
	}
	var d Delivery
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var err error
		if d, err = scanDelivery(tx.QueryRow(ctx, selectDeliverySQL, deliveryID, endpointID, res.Workspace)); err != nil {
			return notFoundAs("delivery", err)
		}
		rows, err := tx.Query(ctx, listAttemptsSQL, res.Workspace, d.ID)
		if err != nil {
			return err
		}
		d.AttemptLog, err = store.Collect(rows, scanAttempt)
		return err
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("webhooks: get delivery: %w", err)
	}
	return d, nil
}

// scanDelivery reads deliveryColumns in UTC.
func scanDelivery(row store.Row) (Delivery, error) {
	var d Delivery
	var replayOf uuid.NullUUID
	err := row.Scan(&d.ID, &d.WorkspaceID, &d.EndpointID, &d.EventID, &d.EventType, &replayOf, &d.Status, &d.Attempts,
		&d.LastStatusCode, &d.LastError, &d.LastAttemptAt, &d.CreatedAt, &d.UpdatedAt)
	if err != nil {
		return Delivery{}, err
	}
	d.ReplayOf = replayOf.UUID
	d.CreatedAt, d.UpdatedAt, d.LastAttemptAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC(), utc(d.LastAttemptAt)
	return d, nil
}

func scanAttempt(row store.Row) (Attempt, error) {
	var a Attempt
	var ms int64
	if err := row.Scan(&a.Number, &a.StatusCode, &ms, &a.Error, &a.ResponseBody, &a.CreatedAt); err != nil {
		return Attempt{}, err
	}
	a.Duration, a.CreatedAt = time.Duration(ms)*time.Millisecond, a.CreatedAt.UTC()
	return a, nil
}
