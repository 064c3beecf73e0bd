package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

type relayConfig struct {
	interval time.Duration
	batch    int
}

// relayStats is what the relay has done, for Lag.
type relayStats struct {
	lastPublishAt time.Time
	lastError     string
	published     int64
}

// Unsent rows, oldest first. On PostgreSQL every node runs a relay: SKIP
// LOCKED gives each its own rows, so none is published twice at once and a
// node that dies mid-batch only releases its lock. SQLite has one node and
// one writer; the transaction itself is the lock.
var selectUnsent = map[store.Dialect]string{
	store.Postgres: `SELECT id, workspace_id, kind, event_type, payload, created_at FROM outbox
        WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`,
	store.SQLite: `SELECT id, workspace_id, kind, event_type, payload, created_at FROM outbox
        WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1`,
}

var markSent = map[store.Dialect]string{
	store.Postgres: `UPDATE outbox SET sent_at = $1 WHERE id = ANY($2::uuid[])`,
	store.SQLite:   `UPDATE outbox SET sent_at = $1 WHERE id IN (SELECT value FROM json_each($2))`,
}

type outboxRow struct {
	id, workspaceID uuid.UUID
	kind, eventType string
	payload         string
	createdAt       time.Time
}

// runRelay publishes committed outbox rows until ctx ends, backing off while
// NATS cannot take them. The rows stay unsent meanwhile, so nothing is lost.
func (r *Runtime) runRelay(ctx context.Context) {
	pctx := store.Polling(kernel.WithActor(ctx, kernel.SystemActor))
	failures := 0
	for ctx.Err() == nil {
		n, err := r.RelayOnce(pctx)
		switch {
		case err != nil && ctx.Err() == nil:
			failures++
			if failures == 1 || failures%20 == 0 {
				r.logger.Warn("outbox relay: publish failed; rows wait in the outbox", "error", err.Error(), "failures", failures)
			}
			r.mu.Lock()
			r.stats.lastError = err.Error()
			r.mu.Unlock()
			sleep(ctx, min(time.Duration(failures)*200*time.Millisecond, 5*time.Second))
		case n == r.relay.batch:
			failures = 0 // more are waiting: go on at once
		default:
			if failures > 0 {
				r.logger.Info("outbox relay: publishing again")
				failures = 0
			}
			sleep(ctx, r.relay.interval)
		}
	}
}

// RelayOnce publishes one batch of unsent outbox rows and marks the ones
// JetStream acknowledged as sent. It returns how many it published; on an
// error the unacknowledged rows stay unsent for the next pass. Tests and
// benchmarks call it directly; Run calls it in a loop.
//
// On PostgreSQL the batch stays locked (FOR UPDATE SKIP LOCKED) while it is
// published, so the relays of other nodes take other rows. SQLite has a
// single writer, which must not wait on the network: the batch is read in
// one short transaction and marked in another, and a crash between the two
// only publishes the rows again, which JetStream drops as duplicates.
func (r *Runtime) RelayOnce(ctx context.Context) (int, error) {
	if !r.bus.Conn.IsConnected() {
		return 0, kernel.Unavailable("event bus", fmt.Errorf("nats: %s", r.bus.Conn.Status()))
	}
	var published int
	var pubErr error
	var err error
	if r.db.Dialect() == store.Postgres {
		err = r.db.System(ctx, "outbox relay", func(tx store.Tx) error {
			batch, err := r.unsent(ctx, tx)
			if err != nil || len(batch) == 0 {
				return err
			}
			var sent []uuid.UUID
			sent, pubErr = r.publish(ctx, batch)
			published = len(sent)
			// The rows JetStream took are marked even if others failed:
			// returning pubErr here would roll their marks back.
			return r.markSent(ctx, tx, sent)
		})
	} else {
		var batch []outboxRow
		err = r.db.System(ctx, "outbox relay", func(tx store.Tx) error {
			batch, err = r.unsent(ctx, tx)
			return err
		})
		if err == nil && len(batch) > 0 {
			var sent []uuid.UUID
			sent, pubErr = r.publish(ctx, batch)
			published = len(sent)
			err = r.db.System(ctx, "outbox relay: mark sent", func(tx store.Tx) error { return r.markSent(ctx, tx, sent) })
		}
	}
	if err != nil {
		return 0, err
	}
	if published > 0 {
		r.mu.Lock()
		r.stats.lastPublishAt = r.clock.Now()
		r.stats.published += int64(published)
		r.stats.lastError = ""
		r.mu.Unlock()
	}
	return published, pubErr
}

// unsent reads the next batch of unsent rows, oldest first.
func (r *Runtime) unsent(ctx context.Context, tx store.Tx) ([]outboxRow, error) {
	rows, err := tx.Query(ctx, selectUnsent[tx.Dialect()], r.relay.batch)
	if err != nil {
		return nil, err
	}
	return store.Collect(rows, func(row store.Row) (outboxRow, error) {
		var o outboxRow
		err := row.Scan(&o.id, &o.workspaceID, &o.kind, &o.eventType, &o.payload, &o.createdAt)
		return o, err
	})
}

// markSent marks the rows with the given IDs as published.
func (r *Runtime) markSent(ctx context.Context, tx store.Tx, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, markSent[tx.Dialect()], tx.Now(), store.IDList(tx.Dialect(), ids))
	return err
}

// publish sends every row of batch and returns the IDs JetStream
// acknowledged, with the first error for the rest.
func (r *Runtime) publish(ctx context.Context, batch []outboxRow) ([]uuid.UUID, error) {
	futures := make([]jetstream.PubAckFuture, len(batch))
	var firstErr error
	for i, o := range batch {
		msg, err := o.message()
		if err != nil {
			return nil, err
		}
		futures[i], err = r.bus.JS.PublishMsgAsync(msg, jetstream.WithMsgID(o.id.String()))
		if err != nil {
			firstErr = err
			futures = futures[:i]
			break
		}
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sent := make([]uuid.UUID, 0, len(futures))
	for i, f := range futures {
		select {
		case <-f.Ok():
			sent = append(sent, batch[i].id)
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = err
			}
		case <-wait.Done():
			if firstErr == nil {
				firstErr = fmt.Errorf("outbox relay: no acknowledgement from JetStream: %w", wait.Err())
			}
		}
	}
	if firstErr != nil {
		firstErr = kernel.Unavailable("event bus", firstErr)
	}
	return sent, firstErr
}

// message is the bus message of an outbox row.
func (o outboxRow) message() (*nats.Msg, error) {
	var subject string
	var body any
	switch o.kind {
	case "job":
		subject = JobSubject(o.eventType)
		body = jobMessage{ID: kernel.FormatID(kernel.PrefixJob, o.id), Kind: o.eventType,
			WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, o.workspaceID), CreatedAt: o.createdAt.UTC(),
			Payload: json.RawMessage(o.payload)}
	default:
		subject = EventSubject(o.workspaceID, o.eventType)
		body = Envelope{ID: kernel.FormatID(kernel.PrefixEvent, o.id), Type: o.eventType,
			WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, o.workspaceID), CreatedAt: o.createdAt.UTC(),
			Data: json.RawMessage(o.payload)}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, kernel.Internal(fmt.Errorf("outbox row %s: %w", o.id, err))
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	return msg, nil
}

// Lag is how far behind the outbox relay is.
type Lag struct {
	// Unsent is how many outbox rows wait to be published.
	Unsent int64 `json:"unsent"`
	// OldestUnsentAge is how long the oldest of them has waited, 0 when none.
	OldestUnsentAge time.Duration `json:"-"`
	OldestSeconds   float64       `json:"oldest_unsent_age_seconds"`
	// LastPublishAt is when this node last published, zero if never.
	LastPublishAt time.Time `json:"last_publish_at,omitzero"`
	// LastError is the relay's last error on this node, empty after a success.
	LastError string `json:"last_error,omitempty"`
	Published int64  `json:"published_by_this_node"`
}

// Lag measures the outbox backlog across all workspaces (through the system
// path) and this node's relay state. It returns the store's error.
func (r *Runtime) Lag(ctx context.Context) (Lag, error) {
	var lag Lag
	err := r.db.System(ctx, "outbox relay lag", func(tx store.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&lag.Unsent); err != nil || lag.Unsent == 0 {
			return err
		}
		var oldest time.Time
		err := tx.QueryRow(ctx, `SELECT created_at FROM outbox WHERE sent_at IS NULL ORDER BY created_at, id LIMIT 1`).Scan(&oldest)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return nil // sent since the count
		}
		lag.OldestUnsentAge = max(r.clock.Now().Sub(oldest), 0)
		lag.OldestSeconds = lag.OldestUnsentAge.Seconds()
		return err
	})
	if err != nil {
		return Lag{}, err
	}
	r.mu.Lock()
	lag.LastPublishAt, lag.LastError, lag.Published = r.stats.lastPublishAt, r.stats.lastError, r.stats.published
	r.mu.Unlock()
	return lag, nil
}
