package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Invoice is the ledger's mirror of a provider's invoice.
type Invoice struct {
	ID                uuid.UUID
	WorkspaceID       uuid.UUID
	Provider          string
	ProviderInvoiceID string
	Number            string
	Status            string
	Currency          string
	AmountDue         int64
	AmountPaid        int64
	PeriodStart       *time.Time
	PeriodEnd         *time.Time
	HostedURL         string
	Lines             []InvoiceLine
	AttemptCount      int
	NextAttemptAt     *time.Time
	CreatedAt         time.Time
	PaidAt            *time.Time
}

var invoiceStatuses = map[string]bool{"draft": true, "open": true, "paid": true, "void": true, "uncollectible": true}

// applyInvoice upserts the invoice mirror from the provider's view, unless
// the view is older than the stored one, and announces payments and failed
// payments. A subscription's status follows from its own events, not from
// its invoices'.
func (l *Ledger) applyInvoice(ctx context.Context, tx store.Tx, ev ProviderEvent) (string, error) {
	v := *ev.Invoice
	if v.ID == "" || !invoiceStatuses[v.Status] {
		kernel.Logger(ctx).WarnContext(ctx, "billing event carries an invoice Atrium cannot mirror",
			"provider", ev.Provider, "event", ev.ID, "status", v.Status)
		return outcomeUnmapped, nil
	}
	var storedVersion int64
	var storedStatus string
	err := tx.QueryRow(ctx, `SELECT provider_version, status FROM invoice WHERE provider = $1 AND provider_invoice_id = $2`,
		ev.Provider, v.ID).Scan(&storedVersion, &storedStatus)
	exists := err == nil
	if err != nil && !kernel.IsCode(err, kernel.CodeNotFound) {
		return "", fmt.Errorf("invoice %s: read: %w", v.ID, err)
	}
	if exists && v.Version < storedVersion {
		return outcomeStale, nil
	}
	lines, _ := json.Marshal(linesOrEmpty(v.Lines)) // plain values always encode
	created := v.CreatedAt
	if created.IsZero() {
		created = tx.Now()
	}
	if _, err := tx.Exec(ctx, `INSERT INTO invoice (id, workspace_id, provider, provider_invoice_id, number, status,
        currency, amount_due, amount_paid, period_start, period_end, hosted_url, lines, attempt_count, next_attempt_at,
        provider_version, created_at, paid_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
        ON CONFLICT (provider, provider_invoice_id) DO UPDATE SET number = excluded.number, status = excluded.status,
            currency = excluded.currency, amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
            period_start = excluded.period_start, period_end = excluded.period_end, hosted_url = excluded.hosted_url,
            lines = excluded.lines, attempt_count = excluded.attempt_count, next_attempt_at = excluded.next_attempt_at,
            provider_version = excluded.provider_version, paid_at = excluded.paid_at, updated_at = excluded.updated_at`,
		kernel.NewID(), tx.WorkspaceID(), ev.Provider, v.ID, v.Number, v.Status, v.Currency, v.AmountDue, v.AmountPaid,
		timePtr(v.PeriodStart), timePtr(v.PeriodEnd), v.HostedURL, string(lines), v.AttemptCount, timePtr(v.NextAttemptAt),
		v.Version, created.UTC(), timePtr(v.PaidAt), tx.Now()); err != nil {
		return "", fmt.Errorf("invoice %s: save: %w", v.ID, err)
	}
	announce := ""
	switch {
	case ev.Type == EventInvoicePaid && storedStatus != "paid":
		announce = EventInvoicePaidType
	case ev.Type == EventInvoicePaymentFailed:
		announce = EventPaymentFailedType
	}
	if announce != "" {
		if _, err := events.Append(ctx, tx, events.Event{Type: announce, Payload: InvoiceEvent{
			ID: v.ID, Number: v.Number, Status: v.Status, Currency: v.Currency, AmountDue: v.AmountDue,
			AmountPaid: v.AmountPaid, AttemptCount: v.AttemptCount, NextAttemptAt: timePtr(v.NextAttemptAt),
		}}); err != nil {
			return "", err
		}
	}
	return outcomeApplied, nil
}

func linesOrEmpty(lines []InvoiceLine) []InvoiceLine {
	if lines == nil {
		return []InvoiceLine{}
	}
	return lines
}

// Invoices lists a workspace's invoices, newest first, after the cursor
// position (created_at, id) when given, at most limit.
func (l *Ledger) Invoices(ctx context.Context, workspaceID uuid.UUID, after *InvoiceCursor, limit int) ([]Invoice, error) {
	var out []Invoice
	err := l.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		const cols = `id, workspace_id, provider, provider_invoice_id, number, status, currency, amount_due, amount_paid,
            period_start, period_end, hosted_url, lines, attempt_count, next_attempt_at, created_at, paid_at`
		var rows store.Rows
		var err error
		if after == nil {
			rows, err = tx.Query(ctx, `SELECT `+cols+` FROM invoice WHERE workspace_id = $1
                ORDER BY created_at DESC, id DESC LIMIT $2`, workspaceID, limit)
		} else {
			rows, err = tx.Query(ctx, `SELECT `+cols+` FROM invoice WHERE workspace_id = $1
                AND (created_at < $2 OR (created_at = $2 AND id < $3))
                ORDER BY created_at DESC, id DESC LIMIT $4`, workspaceID, after.CreatedAt, after.ID, limit)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanInvoice)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("invoices: %w", err)
	}
	return out, nil
}

// InvoiceCursor is the position after which Invoices continues.
type InvoiceCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

func scanInvoice(row store.Row) (Invoice, error) {
	var inv Invoice
	var lines string
	err := row.Scan(&inv.ID, &inv.WorkspaceID, &inv.Provider, &inv.ProviderInvoiceID, &inv.Number, &inv.Status,
		&inv.Currency, &inv.AmountDue, &inv.AmountPaid, &inv.PeriodStart, &inv.PeriodEnd, &inv.HostedURL, &lines,
		&inv.AttemptCount, &inv.NextAttemptAt, &inv.CreatedAt, &inv.PaidAt)
	if err != nil {
		return Invoice{}, err
	}
	if err := json.Unmarshal([]byte(lines), &inv.Lines); err != nil {
		return Invoice{}, kernel.Internal(fmt.Errorf("invoice %s: lines: %w", inv.ID, err))
	}
	inv.CreatedAt = inv.CreatedAt.UTC()
	return inv, nil
}
