// Package mailqueue is the mail.Mailer Atrium puts in front of a remote mail
// server. Send validates a message and stores it in the mail_queue table, which
// takes one local insert: no request waits on the mail server, and no response
// time tells an attacker whether an address has an account (forgot-password
// mails only known ones). A Worker on every node claims due rows, delivers them
// through the real backend (smtpmail) and deletes each one it delivered.
//
// Delivery is at least once. Under normal operation N nodes send each message
// once: a claim is exclusive (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the
// one writer). A claim is a lease, though: when a node dies mid-send, or a send
// outlives its lease, another node sends the message again.
package mailqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

// Queue stores messages for a Worker to deliver. It is safe for concurrent use.
type Queue struct {
	db store.DB
	// wake tells this process's worker that a message is due now, so it need
	// not wait for its next poll.
	wake chan struct{}
}

var _ mail.Mailer = (*Queue)(nil)

// New returns a Queue that keeps its messages in db.
func New(db store.DB) *Queue {
	return &Queue{db: db, wake: make(chan struct{}, 1)}
}

const insertSQL = `INSERT INTO mail_queue (id, to_addrs, subject, text_body, html_body, tag, attempts, next_attempt_at, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)`

// Send validates m and queues it for delivery now. It returns an invalid
// *kernel.Error (and queues nothing) if m breaks a rule of
// mail.Message.Validate, or the store's error if the insert fails. A nil
// error means the message is stored, not that it has been delivered.
func (q *Queue) Send(ctx context.Context, m mail.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	to, err := json.Marshal(m.To)
	if err != nil {
		return kernel.Internal(fmt.Errorf("mailqueue: send: %w", err))
	}
	err = q.db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, insertSQL, kernel.NewID(), string(to), m.Subject, m.Text, m.HTML, m.Tag, tx.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("mailqueue: send: %w", err)
	}
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return nil
}

// claimed is a queued message a worker holds the lease on. Attempts, counted
// when the lease was taken, also identifies the lease: a worker whose lease
// was taken over finds another count and changes nothing.
type claimed struct {
	ID       uuid.UUID
	Message  mail.Message
	Attempts int
}

// Claim statements: the same lease, two ways of taking it. PostgreSQL skips
// the rows another node is claiming at this instant; SQLite's one writer
// serialises claims, so a plain UPDATE … RETURNING is already exclusive.
const (
	claimPostgresSQL = `UPDATE mail_queue SET attempts = attempts + 1, claimed_until = $2
        WHERE id IN (SELECT id FROM mail_queue
            WHERE dead_at IS NULL AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
            ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
        RETURNING id, to_addrs, subject, text_body, html_body, tag, attempts`
	claimSQLiteSQL = `UPDATE mail_queue SET attempts = attempts + 1, claimed_until = $2
        WHERE id IN (SELECT id FROM mail_queue
            WHERE dead_at IS NULL AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1)
            ORDER BY next_attempt_at, id LIMIT $3)
        RETURNING id, to_addrs, subject, text_body, html_body, tag, attempts`

	// anyDueSQL is the idle poll: a read, so an idle node writes nothing.
	anyDueSQL = `SELECT 1 FROM mail_queue
        WHERE dead_at IS NULL AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) LIMIT 1`

	deleteSQL = `DELETE FROM mail_queue WHERE id = $1`
	retrySQL  = `UPDATE mail_queue SET next_attempt_at = $3, claimed_until = NULL, last_error = $4
        WHERE id = $1 AND attempts = $2`
	// A dead message keeps its envelope for diagnosis and loses its bodies,
	// which may hold a link that must not linger.
	deadSQL = `UPDATE mail_queue SET dead_at = $3, claimed_until = NULL, last_error = $4, text_body = '', html_body = ''
        WHERE id = $1 AND attempts = $2`
	// A send cut short by shutdown was no attempt: hand it back as it was.
	releaseSQL = `UPDATE mail_queue SET claimed_until = NULL, attempts = attempts - 1
        WHERE id = $1 AND attempts = $2`
)

// anyDue reports whether a message is due and unclaimed. It returns the
// store's error if the read fails.
func (q *Queue) anyDue(ctx context.Context) (bool, error) {
	var one int
	err := q.db.ReadTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, anyDueSQL, tx.Now()).Scan(&one)
	})
	switch {
	case kernel.IsCode(err, kernel.CodeNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("mailqueue: poll: %w", err)
	}
	return true, nil
}

// claim leases up to limit due messages for ttl. It returns them, or the
// store's error. A row whose recipients do not decode is returned with an
// empty To, which the backend refuses as invalid.
func (q *Queue) claim(ctx context.Context, limit int, ttl time.Duration) ([]claimed, error) {
	var out []claimed
	err := q.db.Tx(ctx, func(tx store.Tx) error {
		query := claimSQLiteSQL
		if tx.Dialect() == store.Postgres {
			query = claimPostgresSQL
		}
		rows, err := tx.Query(ctx, query, tx.Now(), tx.Now().Add(ttl), limit)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanClaimed)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("mailqueue: claim: %w", err)
	}
	return out, nil
}

func scanClaimed(row store.Row) (claimed, error) {
	var c claimed
	var to string
	if err := row.Scan(&c.ID, &to, &c.Message.Subject, &c.Message.Text, &c.Message.HTML, &c.Message.Tag, &c.Attempts); err != nil {
		return claimed{}, err
	}
	_ = json.Unmarshal([]byte(to), &c.Message.To) // the CHECK keeps it an array; anything else leaves To empty
	return c, nil
}

// exec runs one bookkeeping statement in its own transaction and returns the
// store's error, if any.
func (q *Queue) exec(ctx context.Context, query string, args func(now time.Time) []any) error {
	return q.db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, query, args(tx.Now())...)
		return err
	})
}
