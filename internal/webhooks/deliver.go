package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

const (
	selectPendingSQL = "SELECT " + deliveryColumns + ", body FROM webhook_delivery WHERE id = $1 AND workspace_id = $2"
	// countAttemptSQL counts an attempt of a delivery still pending; a
	// delivery settled or deleted meanwhile (its endpoint deleted) changes
	// no row.
	countAttemptSQL = `UPDATE webhook_delivery SET attempts = attempts + 1, last_status_code = $3, last_error = $4,
        last_attempt_at = $5, updated_at = $5 WHERE id = $1 AND workspace_id = $2 AND status = 'pending' RETURNING attempts`
	insertAttemptSQL = `INSERT INTO webhook_attempt (id, workspace_id, delivery_id, attempt, status_code, duration_ms, error,
        response_body, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	settleDeliverySQL = "UPDATE webhook_delivery SET status = $3, last_error = $4, updated_at = $5 WHERE id = $1 AND workspace_id = $2"
	// A success ends the endpoint's failing streak; a failure starts one
	// unless it has started already.
	clearFailingSQL = `UPDATE webhook_endpoint SET failing_since = NULL WHERE id = $1 AND workspace_id = $2
        AND failing_since IS NOT NULL`
	markFailingSQL = `UPDATE webhook_endpoint SET failing_since = COALESCE(failing_since, $3) WHERE id = $1 AND workspace_id = $2
        RETURNING failing_since`
	// disableEndpointSQL changes a row only when the endpoint is still
	// enabled, so of two attempts that both disable it, one tells.
	disableEndpointSQL = `UPDATE webhook_endpoint SET disabled_at = $3, disabled_reason = $4, updated_at = $3
        WHERE id = $1 AND workspace_id = $2 AND disabled_at IS NULL`
)

// pending is a delivery ready to send: with its body and endpoint.
type pending struct {
	Delivery
	body     []byte
	endpoint endpointRow
}

// deliver is the webhook.deliver job: one attempt of one delivery. It
// returns nil once the delivery succeeded (or is settled, or gone with its
// endpoint); a permanent error when it can never succeed (410, the endpoint
// disabled); otherwise the attempt's error, and the runtime tries again
// later, until MaxAttempts.
func (s *Service) deliver(ctx context.Context, job *events.Job) (any, error) {
	var p deliverPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return nil, events.Permanent(fmt.Errorf("webhooks: job %s: payload: %w", job.ID, err))
	}
	id, err := kernel.ParseID(kernel.PrefixDelivery, p.DeliveryID)
	if err != nil {
		return nil, events.Permanent(fmt.Errorf("webhooks: job %s: delivery ID: %w", job.ID, err))
	}
	d, err := s.loadPending(ctx, job.WorkspaceID, id)
	switch {
	case kernel.IsCode(err, kernel.CodeNotFound):
		return nil, nil // deleted with its endpoint: nothing left to send
	case err != nil:
		return nil, fmt.Errorf("webhooks: delivery %s: %w", p.DeliveryID, err)
	case d.Status != StatusPending:
		return deliveryResult(d.Delivery), nil // settled by an earlier run of this job
	case !d.endpoint.Enabled():
		if err := s.settle(ctx, d.Delivery, StatusFailed, "the endpoint is disabled"); err != nil {
			return nil, err
		}
		return nil, events.Permanent(fmt.Errorf("webhooks: delivery %s: endpoint %s is disabled", p.DeliveryID,
			endpointAPIID(d.EndpointID)))
	}
	header, err := s.signedHeader(d)
	if err != nil {
		return nil, fmt.Errorf("webhooks: delivery %s: %w", p.DeliveryID, err)
	}
	out := s.post(ctx, d.endpoint.URL, header, d.body)
	return s.finish(ctx, job, d, out)
}

// loadPending reads a delivery with its body and endpoint. It returns
// not_found when the delivery is gone, or the store's error.
func (s *Service) loadPending(ctx context.Context, workspaceID, id uuid.UUID) (pending, error) {
	var d pending
	err := s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		var body string
		var replayOf uuid.NullUUID
		err := tx.QueryRow(ctx, selectPendingSQL, id, workspaceID).Scan(&d.ID, &d.WorkspaceID, &d.EndpointID, &d.EventID,
			&d.EventType, &replayOf, &d.Status, &d.Attempts, &d.LastStatusCode, &d.LastError, &d.LastAttemptAt,
			&d.CreatedAt, &d.UpdatedAt, &body)
		if err != nil {
			return err
		}
		d.ReplayOf, d.body = replayOf.UUID, []byte(body)
		d.endpoint, err = scanEndpoint(tx.QueryRow(ctx, selectEndpointSQL, d.EndpointID, workspaceID))
		return err
	})
	return d, err
}

// signedHeader signs a delivery with the endpoint's secret, and with the
// previous one too while a rotation's grace period lasts. The webhook-id is
// the event's ID, the same on every attempt and replay. It returns an
// internal error when a secret does not open.
func (s *Service) signedHeader(d pending) (http.Header, error) {
	now := s.clock.Now()
	current, err := s.sealer.open(d.EndpointID, d.endpoint.secret)
	if err != nil {
		return nil, err
	}
	secrets := []string{current}
	if exp := d.endpoint.PreviousSecretExpiresAt; d.endpoint.previousSecret != nil && exp != nil && now.Before(*exp) {
		previous, err := s.sealer.open(d.EndpointID, *d.endpoint.previousSecret)
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, previous)
	}
	header := http.Header{}
	if err := signHeaders(header, secrets, kernel.FormatID(kernel.PrefixEvent, d.EventID), now, d.body); err != nil {
		return nil, kernel.Internal(err)
	}
	return header, nil
}

// settle gives a delivery its final status without an attempt.
func (s *Service) settle(ctx context.Context, d Delivery, status, why string) error {
	err := s.db.InWorkspace(ctx, d.WorkspaceID, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, settleDeliverySQL, d.ID, d.WorkspaceID, status, why, tx.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("webhooks: settle delivery %s: %w", deliveryAPIID(d.ID), err)
	}
	return nil
}

// verdict is what finish decided about an attempt.
type verdict struct {
	status   string   // the delivery's status after the attempt
	disabled string   // why the attempt disabled the endpoint; "" when it did not
	gone     bool     // the delivery vanished meanwhile (its endpoint deleted) or was settled
	endpoint Endpoint // the endpoint as the attempt found it
}

// finish writes the attempt, settles the delivery when it is over, and
// keeps the endpoint's failing streak, disabling the endpoint after a 410
// or DisableAfter of failures. It returns the job's result and error (see
// deliver): a permanent error once the delivery has failed for good.
func (s *Service) finish(ctx context.Context, job *events.Job, d pending, out outcome) (any, error) {
	var v verdict
	err := s.db.InWorkspace(ctx, d.WorkspaceID, func(tx store.Tx) (err error) {
		v, err = s.finishIn(ctx, tx, job, d, out)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: record attempt of %s: %w", deliveryAPIID(d.ID), err)
	}
	if v.gone {
		return nil, nil
	}
	if v.disabled != "" {
		s.notifyDisabled(ctx, v.endpoint, v.disabled)
	}
	d.Status = v.status
	attemptErr := fmt.Errorf("webhooks: delivery %s to %s: %s", deliveryAPIID(d.ID), endpointAPIID(d.EndpointID), out.summary())
	switch v.status {
	case StatusSucceeded:
		return deliveryResult(d.Delivery), nil
	case StatusFailed:
		return nil, events.Permanent(attemptErr)
	}
	return nil, attemptErr
}

// finishIn is finish's transaction. It locks the endpoint before the
// delivery, in the order deleting an endpoint takes them (the endpoint, then
// its deliveries by cascade), so the two never deadlock.
func (s *Service) finishIn(ctx context.Context, tx store.Tx, job *events.Job, d pending, out outcome) (verdict, error) {
	ep, err := scanEndpoint(tx.QueryRow(ctx, lockEndpointSQL[tx.Dialect()], d.EndpointID, d.WorkspaceID))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return verdict{gone: true}, nil
	}
	if err != nil {
		return verdict{}, err
	}
	var statusCode *int
	if out.statusCode != 0 {
		statusCode = &out.statusCode
	}
	var number int
	err = tx.QueryRow(ctx, countAttemptSQL, d.ID, d.WorkspaceID, statusCode, out.err, tx.Now()).Scan(&number)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return verdict{gone: true}, nil
	}
	if err != nil {
		return verdict{}, err
	}
	if _, err := tx.Exec(ctx, insertAttemptSQL, kernel.NewID(), d.WorkspaceID, d.ID, number, statusCode,
		out.duration.Milliseconds(), out.err, out.body, tx.Now()); err != nil {
		return verdict{}, err
	}
	v, err := s.judge(ctx, tx, job, ep.Endpoint, out)
	v.endpoint = ep.Endpoint
	if err != nil || v.status == StatusPending {
		return v, err
	}
	_, err = tx.Exec(ctx, settleDeliverySQL, d.ID, d.WorkspaceID, v.status, out.err, tx.Now())
	return v, err
}

// judge decides, in finish's transaction, what an attempt means for its
// delivery and its endpoint: a success ends the endpoint's failing streak;
// a 410 disables it; another failure extends the streak, disabling the
// endpoint once the streak is DisableAfter long, and fails the delivery on
// its last attempt.
func (s *Service) judge(ctx context.Context, tx store.Tx, job *events.Job, ep Endpoint, out outcome) (verdict, error) {
	var err error
	v := verdict{status: StatusPending}
	switch {
	case out.succeeded():
		v.status = StatusSucceeded
		_, err = tx.Exec(ctx, clearFailingSQL, ep.ID, ep.WorkspaceID)
	case out.statusCode == http.StatusGone:
		v.status = StatusFailed
		v.disabled, err = disable(ctx, tx, ep, DisabledGone)
	default:
		var since time.Time
		if err = tx.QueryRow(ctx, markFailingSQL, ep.ID, ep.WorkspaceID, tx.Now()).Scan(&since); err != nil {
			return verdict{}, err
		}
		if tx.Now().Sub(since) >= s.disableAfter {
			v.status = StatusFailed
			v.disabled, err = disable(ctx, tx, ep, DisabledFailing)
		} else if job.Attempt >= MaxAttempts {
			v.status = StatusFailed
		}
	}
	return v, err
}

// disable turns an endpoint off for reason, audited as
// webhook_endpoint.disabled and emitted as webhook_endpoint.updated. It
// returns reason when this call disabled it, "" when it was off already.
func disable(ctx context.Context, tx store.Tx, ep Endpoint, reason string) (string, error) {
	n, err := tx.Exec(ctx, disableEndpointSQL, ep.ID, ep.WorkspaceID, tx.Now(), reason)
	if err != nil || n == 0 {
		return "", err
	}
	now := tx.Now()
	ep.DisabledAt, ep.DisabledReason, ep.UpdatedAt = &now, reason, now
	if err := record(ctx, tx, "webhook_endpoint.disabled", EventEndpointUpdated, ep,
		map[string]any{"reason": reason, "host": urlHost(ep.URL)}); err != nil {
		return "", err
	}
	return reason, nil
}

// deliveryResult is what the job's record keeps of a delivery.
func deliveryResult(d Delivery) map[string]any {
	return map[string]any{"delivery_id": deliveryAPIID(d.ID), "status": d.Status}
}
