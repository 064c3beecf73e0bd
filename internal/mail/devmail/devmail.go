// Package devmail is the default mail.Mailer: instead of sending, it keeps each
// message in the dev_mail table, where the dev mailbox lists it and a developer
// or a test reads it. It works on both store dialects and sends nothing over the
// network, so a fresh Atrium runs without a mail server.
package devmail

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

// MaxList is the most messages one List call returns.
const MaxList = 100

// Mailbox stores messages in the dev_mail table. It is safe for concurrent use.
type Mailbox struct {
	db store.DB
}

var _ mail.Mailer = (*Mailbox)(nil)

// New returns a Mailbox that keeps its messages in db.
func New(db store.DB) *Mailbox {
	return &Mailbox{db: db}
}

// Stored is a message as the mailbox keeps it.
type Stored struct {
	ID        uuid.UUID
	To        []string // as given to Send
	Subject   string
	Text      string
	HTML      string
	Tag       string
	CreatedAt time.Time // the store clock's reading when it was sent
}

const (
	insertSQL = `INSERT INTO dev_mail (id, to_addrs, subject, text_body, html_body, tag, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)`
	// Newest first, served by the dev_mail_created index.
	listSQL = `SELECT id, to_addrs, subject, text_body, html_body, tag, created_at
        FROM dev_mail ORDER BY created_at DESC, id DESC LIMIT $1`
	getSQL = `SELECT id, to_addrs, subject, text_body, html_body, tag, created_at
        FROM dev_mail WHERE id = $1`
)

// Send validates m and stores it, stamped with the transaction's time. It
// returns an invalid *kernel.Error (and stores nothing) if m breaks a rule of
// mail.Message.Validate, or the store's error if the write fails.
func (b *Mailbox) Send(ctx context.Context, m mail.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	to, err := json.Marshal(m.To)
	if err != nil {
		return kernel.Internal(fmt.Errorf("devmail: send: %w", err))
	}
	err = b.db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, insertSQL, kernel.NewID(), string(to), m.Subject, m.Text, m.HTML, m.Tag, tx.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("devmail: send: %w", err)
	}
	return nil
}

// List returns up to limit messages, newest first; a limit above MaxList is
// lowered to it. It returns an invalid *kernel.Error if limit is below 1, or
// the store's error if the read fails.
func (b *Mailbox) List(ctx context.Context, limit int) ([]Stored, error) {
	if limit < 1 {
		return nil, kernel.Invalid("limit", "limit must be at least 1")
	}
	limit = min(limit, MaxList)
	var out []Stored
	err := b.db.ReadTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, listSQL, limit)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scan)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("devmail: list: %w", err)
	}
	return out, nil
}

// Get returns the message with the given ID. It returns a not_found
// *kernel.Error if there is none, or the store's error if the read fails.
func (b *Mailbox) Get(ctx context.Context, id uuid.UUID) (Stored, error) {
	var s Stored
	err := b.db.ReadTx(ctx, func(tx store.Tx) error {
		var err error
		s, err = scan(tx.QueryRow(ctx, getSQL, id))
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return Stored{}, &kernel.Error{Code: kernel.CodeNotFound, Message: "message not found", Err: err}
	}
	if err != nil {
		return Stored{}, fmt.Errorf("devmail: get %s: %w", id, err)
	}
	return s, nil
}

func scan(row store.Row) (Stored, error) {
	var s Stored
	var to string
	if err := row.Scan(&s.ID, &to, &s.Subject, &s.Text, &s.HTML, &s.Tag, &s.CreatedAt); err != nil {
		return Stored{}, err
	}
	if err := json.Unmarshal([]byte(to), &s.To); err != nil {
		return Stored{}, kernel.Internal(fmt.Errorf("devmail: message %s: recipients: %w", s.ID, err))
	}
	s.CreatedAt = s.CreatedAt.UTC()
	return s, nil
}
