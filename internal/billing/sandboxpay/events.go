package sandboxpay

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// batch is one transaction of the sandbox and the events it owes the
// ledger: each is written to sandbox_event in the transaction, and kept
// here to be delivered once it commits.
type batch struct {
	tx          store.Tx
	workspaceID uuid.UUID
	events      []billing.ProviderEvent
}

// eventBody is a sandbox event as sandbox_event stores it and as the
// ledger keeps it (the event's raw form).
type eventBody struct {
	ID           string                        `json:"id"`
	Type         string                        `json:"type"`
	CreatedAt    time.Time                     `json:"created_at"`
	Subscription *billing.ProviderSubscription `json:"subscription,omitempty"`
	Invoice      *billing.ProviderInvoice      `json:"invoice,omitempty"`
}

// event is the body as the ledger applies it.
func (body eventBody) event(raw []byte) billing.ProviderEvent {
	return billing.ProviderEvent{Provider: billing.ProviderSandbox, ID: body.ID, Type: body.Type, ProviderType: body.Type,
		CreatedAt: body.CreatedAt, Subscription: body.Subscription, Invoice: body.Invoice, Raw: raw}
}

// emit records an event of type typ carrying the views given.
func (b *batch) emit(ctx context.Context, typ string, sub *billing.ProviderSubscription, inv *billing.ProviderInvoice) error {
	body := eventBody{ID: prefixEvent + kernel.NewID().String(), Type: typ, CreatedAt: b.tx.Now(), Subscription: sub, Invoice: inv}
	raw, err := json.Marshal(body)
	if err != nil {
		return kernel.Internal(fmt.Errorf("sandbox event %s: encode: %w", typ, err))
	}
	if _, err := b.tx.Exec(ctx, `INSERT INTO sandbox_event (id, workspace_id, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)`,
		body.ID, b.workspaceID, typ, string(raw), body.CreatedAt); err != nil {
		return fmt.Errorf("sandbox event %s: store: %w", typ, err)
	}
	b.events = append(b.events, body.event(raw))
	return nil
}

// subscription records an event about s as it is now.
func (b *batch) subscription(ctx context.Context, typ string, s *subscription) error {
	v := s.view()
	return b.emit(ctx, typ, &v, nil)
}

// invoice records an event about inv, an invoice of s, as it is now.
func (b *batch) invoice(ctx context.Context, typ string, inv *invoice, s *subscription) error {
	v := inv.view(s.CustomerID)
	return b.emit(ctx, typ, nil, &v)
}

// deliver hands a committed transaction's events to the ledger, in the
// order they were made, and forgets those it took. One the ledger fails on
// stays in sandbox_event, with the error, for DeliverPending: the change is
// made at the sandbox, so the call that made it still succeeds.
func (p *Provider) deliver(ctx context.Context, workspaceID uuid.UUID, events []billing.ProviderEvent) {
	if len(events) == 0 {
		return
	}
	failures := map[string]string{}
	for _, ev := range events {
		if _, err := p.ledger.Apply(ctx, ev); err != nil {
			failures[ev.ID] = err.Error()
			kernel.Logger(ctx).WarnContext(ctx, "sandbox event not delivered yet", "event", ev.ID, "type", ev.Type, "error", err.Error())
		}
	}
	err := p.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		for _, ev := range events {
			if err := settleEvent(ctx, tx, ev.ID, failures[ev.ID]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The events stay pending: DeliverPending delivers them again,
		// which the ledger answers as a repeat.
		kernel.Logger(ctx).WarnContext(ctx, "sandbox events delivered but not marked", "workspace", workspaceID, "error", err.Error())
	}
}

// settleEvent deletes a delivered event, or records a failed attempt.
func settleEvent(ctx context.Context, tx store.Tx, id, failure string) error {
	var err error
	if failure == "" {
		_, err = tx.Exec(ctx, `DELETE FROM sandbox_event WHERE id = $1`, id)
	} else {
		_, err = tx.Exec(ctx, `UPDATE sandbox_event SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, id, truncate(failure, 500))
	}
	if err != nil {
		return fmt.Errorf("sandbox event %s: settle: %w", id, err)
	}
	return nil
}

// deliverBatch bounds the events one DeliverPending run delivers.
const deliverBatch = 500

// DeliverPending delivers the events the ledger has not taken yet, oldest
// first, across workspaces: those of a process that died between a change
// and its delivery, or that the ledger failed on. It is a scheduler task
// (the system path); delivering an event twice is harmless, since the
// ledger applies each once. It returns how many it delivered, and an error
// counting those it could not.
func (p *Provider) DeliverPending(ctx context.Context, db store.SystemDB) (int, error) {
	type pending struct {
		id      string
		payload string
	}
	var list []pending
	err := db.System(ctx, "sandbox payments: deliver pending events", func(tx store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, payload FROM sandbox_event ORDER BY created_at, id LIMIT $1`, deliverBatch)
		if err != nil {
			return err
		}
		list, err = store.Collect(rows, func(row store.Row) (pending, error) {
			var e pending
			return e, row.Scan(&e.id, &e.payload)
		})
		return err
	})
	if err != nil || len(list) == 0 {
		return 0, err
	}
	failures := map[string]string{}
	var firstErr error
	for _, e := range list {
		var body eventBody
		if err := json.Unmarshal([]byte(e.payload), &body); err != nil {
			failures[e.id] = "undecodable payload: " + err.Error()
			firstErr = cmp.Or[error](firstErr, kernel.Internal(fmt.Errorf("sandbox event %s: decode: %w", e.id, err)))
			continue
		}
		if _, err := p.ledger.Apply(ctx, body.event([]byte(e.payload))); err != nil {
			failures[e.id] = err.Error()
			firstErr = cmp.Or(firstErr, err)
		}
	}
	err = db.System(ctx, "sandbox payments: settle delivered events", func(tx store.Tx) error {
		for _, e := range list {
			if err := settleEvent(ctx, tx, e.id, failures[e.id]); err != nil {
				return err
			}
		}
		return nil
	})
	delivered := len(list) - len(failures)
	if err != nil {
		return delivered, err
	}
	if firstErr != nil {
		return delivered, fmt.Errorf("%d of %d sandbox events not delivered: %w", len(failures), len(list), firstErr)
	}
	return delivered, nil
}

// truncate cuts s to at most n bytes, keeping it valid UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
