package sandboxpay

import (
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

// subscription is a row of sandbox_subscription.
type subscription struct {
	ID                string
	WorkspaceID       uuid.UUID
	CustomerID        string
	PlanKey           string
	Interval          billing.Interval
	Currency          string
	UnitAmount        int64
	Quantity          int
	Status            billing.Status
	BillingAnchor     time.Time
	PeriodStart       time.Time
	PeriodEnd         time.Time
	CancelAtPeriodEnd bool
	PendingPlanKey    string
	PendingInterval   billing.Interval
	TrialEnd          *time.Time
	CardLast4         string
	CardBehaviour     string
	FailNextCharge    bool
	CreditBalance     int64
	Version           int64
	CanceledAt        *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// amount is what one period of the subscription costs.
func (s *subscription) amount() int64 { return s.UnitAmount * int64(max(s.Quantity, 1)) }

// live reports whether the subscription has not ended.
func (s *subscription) live() bool { return s.Status != billing.StatusCanceled }

// charge says whether charging amount to the subscription's card goes
// through. Nothing is charged for a zero amount. A simulated failure
// (FailNextCharge) is used up by the charge it fails.
func (s *subscription) charge(amount int64) bool {
	if amount <= 0 {
		return true
	}
	if s.FailNextCharge {
		s.FailNextCharge = false
		return false
	}
	return s.CardBehaviour == behaviourSucceeds
}

// view is the subscription as the ledger receives it.
func (s *subscription) view() billing.ProviderSubscription {
	v := billing.ProviderSubscription{
		Provider: billing.ProviderSandbox, ID: s.ID, CustomerID: s.CustomerID, WorkspaceID: s.WorkspaceID,
		PlanKey: s.PlanKey, Interval: s.Interval, Currency: s.Currency, Status: s.Status,
		CurrentPeriodStart: s.PeriodStart, CurrentPeriodEnd: s.PeriodEnd, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		Quantity: max(s.Quantity, 1), HasPaymentMethod: true, Version: s.Version,
	}
	if s.TrialEnd != nil {
		v.TrialEnd = *s.TrialEnd
	}
	if s.CanceledAt != nil {
		v.CanceledAt = *s.CanceledAt
	}
	return v
}

const subscriptionColumns = `id, workspace_id, customer_id, plan_key, billing_interval, currency, unit_amount, quantity,
    status, billing_anchor, current_period_start, current_period_end, cancel_at_period_end, pending_plan_key,
    pending_interval, trial_end, card_last4, card_behaviour, fail_next_charge, credit_balance, version, canceled_at,
    created_at, updated_at`

const (
	selectSubscriptionSQL = `SELECT ` + subscriptionColumns + ` FROM sandbox_subscription WHERE workspace_id = $1 AND id = $2`
	// The live subscription first, else the latest that ended.
	selectLatestSubscriptionSQL = `SELECT ` + subscriptionColumns + ` FROM sandbox_subscription WHERE workspace_id = $1
    ORDER BY CASE WHEN status = 'canceled' THEN 1 ELSE 0 END, created_at DESC LIMIT 1`
	insertSubscriptionSQL = `INSERT INTO sandbox_subscription (` + subscriptionColumns + `)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)`
	// The version in the WHERE clause makes a write that lost a race to
	// another change of the same row update nothing (errRaced).
	updateSubscriptionSQL = `UPDATE sandbox_subscription SET plan_key = $3, billing_interval = $4, unit_amount = $5,
    quantity = $6, status = $7, billing_anchor = $8, current_period_start = $9, current_period_end = $10,
    cancel_at_period_end = $11, pending_plan_key = $12, pending_interval = $13, trial_end = $14, card_last4 = $15,
    card_behaviour = $16, fail_next_charge = $17, credit_balance = $18, canceled_at = $19, version = version + 1,
    updated_at = $20
    WHERE id = $1 AND version = $2`
)

func scanSubscription(row store.Row) (subscription, error) {
	var s subscription
	var interval, status, pendingInterval string
	err := row.Scan(&s.ID, &s.WorkspaceID, &s.CustomerID, &s.PlanKey, &interval, &s.Currency, &s.UnitAmount, &s.Quantity,
		&status, &s.BillingAnchor, &s.PeriodStart, &s.PeriodEnd, &s.CancelAtPeriodEnd, &s.PendingPlanKey,
		&pendingInterval, &s.TrialEnd, &s.CardLast4, &s.CardBehaviour, &s.FailNextCharge, &s.CreditBalance, &s.Version,
		&s.CanceledAt, &s.CreatedAt, &s.UpdatedAt)
	s.Interval, s.Status, s.PendingInterval = billing.Interval(interval), billing.Status(status), billing.Interval(pendingInterval)
	s.BillingAnchor, s.PeriodStart, s.PeriodEnd = s.BillingAnchor.UTC(), s.PeriodStart.UTC(), s.PeriodEnd.UTC()
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	s.TrialEnd, s.CanceledAt = utcPtr(s.TrialEnd), utcPtr(s.CanceledAt)
	return s, err
}

// readSubscription reads one subscription of the transaction's workspace.
// It returns not_found when there is none with that ID.
func readSubscription(ctx context.Context, tx store.Tx, id string) (subscription, error) {
	s, err := scanSubscription(tx.QueryRow(ctx, selectSubscriptionSQL, tx.WorkspaceID(), id))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return subscription{}, kernel.NotFound("subscription")
	}
	if err != nil {
		return subscription{}, fmt.Errorf("sandbox subscription %s: read: %w", id, err)
	}
	return s, nil
}

// insertSubscription stores a new subscription at version 1. It returns
// conflict when the workspace has a live subscription already.
func insertSubscription(ctx context.Context, tx store.Tx, s *subscription) error {
	now := tx.Now()
	s.Version, s.CreatedAt, s.UpdatedAt = 1, now, now
	_, err := tx.Exec(ctx, insertSubscriptionSQL, s.ID, s.WorkspaceID, s.CustomerID, s.PlanKey, string(s.Interval),
		s.Currency, s.UnitAmount, s.Quantity, string(s.Status), s.BillingAnchor, s.PeriodStart, s.PeriodEnd,
		s.CancelAtPeriodEnd, s.PendingPlanKey, string(s.PendingInterval), s.TrialEnd, s.CardLast4, s.CardBehaviour,
		s.FailNextCharge, s.CreditBalance, s.Version, s.CanceledAt, s.CreatedAt, s.UpdatedAt)
	if kernel.IsCode(err, kernel.CodeConflict) {
		return &kernel.Error{Code: kernel.CodeConflict, Message: "this workspace has a subscription already", Err: err}
	}
	if err != nil {
		return fmt.Errorf("sandbox subscription: insert: %w", err)
	}
	return nil
}

// saveSubscription writes s back, one version up. It returns errRaced when
// the row changed since it was read.
func saveSubscription(ctx context.Context, tx store.Tx, s *subscription) error {
	n, err := tx.Exec(ctx, updateSubscriptionSQL, s.ID, s.Version, s.PlanKey, string(s.Interval), s.UnitAmount,
		s.Quantity, string(s.Status), s.BillingAnchor, s.PeriodStart, s.PeriodEnd, s.CancelAtPeriodEnd,
		s.PendingPlanKey, string(s.PendingInterval), s.TrialEnd, s.CardLast4, s.CardBehaviour, s.FailNextCharge,
		s.CreditBalance, s.CanceledAt, tx.Now())
	if err != nil {
		return fmt.Errorf("sandbox subscription %s: save: %w", s.ID, err)
	}
	if n == 0 {
		return errRaced
	}
	s.Version++
	s.UpdatedAt = tx.Now()
	return nil
}

// Invoice statuses.
const (
	invoiceOpen = "open"
	invoicePaid = "paid"
	invoiceVoid = "void"
)

// Billing reasons, as Stripe names them.
const (
	reasonCreate = "subscription_create" // the first charge: at checkout, or at a trial's end
	reasonCycle  = "subscription_cycle"  // a renewal
	reasonUpdate = "subscription_update" // a prorated change
)

// invoice is a row of sandbox_invoice.
type invoice struct {
	ID             string
	WorkspaceID    uuid.UUID
	SubscriptionID string
	Number         string
	Reason         string
	Status         string
	Currency       string
	AmountDue      int64
	AmountPaid     int64
	Lines          []billing.InvoiceLine
	PeriodStart    time.Time
	PeriodEnd      time.Time
	AttemptCount   int
	NextAttemptAt  *time.Time
	Version        int64
	CreatedAt      time.Time
	PaidAt         *time.Time
	UpdatedAt      time.Time
}

// view is the invoice as the ledger receives it.
func (inv *invoice) view(customerID string) billing.ProviderInvoice {
	v := billing.ProviderInvoice{
		Provider: billing.ProviderSandbox, ID: inv.ID, CustomerID: customerID, SubscriptionID: inv.SubscriptionID,
		WorkspaceID: inv.WorkspaceID, Number: inv.Number, Status: inv.Status, Currency: inv.Currency,
		AmountDue: inv.AmountDue, AmountPaid: inv.AmountPaid, PeriodStart: inv.PeriodStart, PeriodEnd: inv.PeriodEnd,
		Lines: inv.Lines, CreatedAt: inv.CreatedAt, AttemptCount: inv.AttemptCount, Version: inv.Version,
	}
	if inv.PaidAt != nil {
		v.PaidAt = *inv.PaidAt
	}
	if inv.NextAttemptAt != nil {
		v.NextAttemptAt = *inv.NextAttemptAt
	}
	return v
}

// pay marks the invoice paid now.
func (inv *invoice) pay(now time.Time) {
	inv.Status, inv.AmountPaid, inv.PaidAt, inv.NextAttemptAt = invoicePaid, inv.AmountDue, &now, nil
}

const invoiceColumns = `id, workspace_id, subscription_id, number, billing_reason, status, currency, amount_due, amount_paid,
    lines, period_start, period_end, attempt_count, next_attempt_at, version, created_at, paid_at, updated_at`

const (
	selectInvoiceSQL = `SELECT ` + invoiceColumns + ` FROM sandbox_invoice WHERE workspace_id = $1 AND id = $2`
	// Oldest first: the order in which open invoices are retried.
	selectOpenInvoicesSQL = `SELECT ` + invoiceColumns + ` FROM sandbox_invoice
    WHERE workspace_id = $1 AND subscription_id = $2 AND status = 'open' ORDER BY created_at, id`
	selectRecentInvoicesSQL = `SELECT ` + invoiceColumns + ` FROM sandbox_invoice
    WHERE workspace_id = $1 AND subscription_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3`
	countInvoicesSQL = `SELECT count(*) FROM sandbox_invoice WHERE workspace_id = $1 AND subscription_id = $2`
	insertInvoiceSQL = `INSERT INTO sandbox_invoice (` + invoiceColumns + `)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`
	updateInvoiceSQL = `UPDATE sandbox_invoice SET status = $3, amount_paid = $4, attempt_count = $5, next_attempt_at = $6,
    paid_at = $7, version = version + 1, updated_at = $8
    WHERE id = $1 AND version = $2`
)

func scanInvoice(row store.Row) (invoice, error) {
	var inv invoice
	var lines string
	err := row.Scan(&inv.ID, &inv.WorkspaceID, &inv.SubscriptionID, &inv.Number, &inv.Reason, &inv.Status, &inv.Currency,
		&inv.AmountDue, &inv.AmountPaid, &lines, &inv.PeriodStart, &inv.PeriodEnd, &inv.AttemptCount, &inv.NextAttemptAt,
		&inv.Version, &inv.CreatedAt, &inv.PaidAt, &inv.UpdatedAt)
	if err != nil {
		return invoice{}, err
	}
	if err := json.Unmarshal([]byte(lines), &inv.Lines); err != nil {
		return invoice{}, kernel.Internal(fmt.Errorf("sandbox invoice %s: lines: %w", inv.ID, err))
	}
	inv.PeriodStart, inv.PeriodEnd = inv.PeriodStart.UTC(), inv.PeriodEnd.UTC()
	inv.CreatedAt, inv.UpdatedAt = inv.CreatedAt.UTC(), inv.UpdatedAt.UTC()
	inv.NextAttemptAt, inv.PaidAt = utcPtr(inv.NextAttemptAt), utcPtr(inv.PaidAt)
	return inv, nil
}

// readInvoice reads one invoice of the transaction's workspace. It returns
// not_found when there is none with that ID.
func readInvoice(ctx context.Context, tx store.Tx, id string) (invoice, error) {
	inv, err := scanInvoice(tx.QueryRow(ctx, selectInvoiceSQL, tx.WorkspaceID(), id))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return invoice{}, kernel.NotFound("invoice")
	}
	if err != nil {
		return invoice{}, fmt.Errorf("sandbox invoice %s: read: %w", id, err)
	}
	return inv, nil
}

// invoices reads a subscription's invoices with query (open ones, or the
// most recent up to a limit).
func invoices(ctx context.Context, tx store.Tx, query string, args ...any) ([]invoice, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sandbox invoices: %w", err)
	}
	list, err := store.Collect(rows, scanInvoice)
	if err != nil {
		return nil, fmt.Errorf("sandbox invoices: %w", err)
	}
	return list, nil
}

// newInvoice builds an invoice of s for lines, numbered after the
// subscription's invoices so far. It is stored by insertInvoice.
func newInvoice(ctx context.Context, tx store.Tx, s *subscription, reason string, lines []billing.InvoiceLine, due int64,
	periodStart, periodEnd time.Time) (invoice, error) {
	var n int
	if err := tx.QueryRow(ctx, countInvoicesSQL, s.WorkspaceID, s.ID).Scan(&n); err != nil {
		return invoice{}, fmt.Errorf("sandbox invoices of %s: count: %w", s.ID, err)
	}
	// SBX-<the subscription's first eight random characters>-<sequence>.
	number := fmt.Sprintf("SBX-%s-%04d", strings.ToUpper(s.ID[len(prefixSubscription)+idPartLength:][:8]), n+1)
	return invoice{
		ID: newID(prefixInvoice, s.WorkspaceID), WorkspaceID: s.WorkspaceID, SubscriptionID: s.ID, Number: number,
		Reason: reason, Status: invoiceOpen, Currency: s.Currency, AmountDue: max(due, 0), Lines: lines,
		PeriodStart: periodStart, PeriodEnd: periodEnd, CreatedAt: tx.Now(),
	}, nil
}

// insertInvoice stores a new invoice at version 1.
func insertInvoice(ctx context.Context, tx store.Tx, inv *invoice) error {
	inv.Version, inv.UpdatedAt = 1, tx.Now()
	if inv.Lines == nil {
		inv.Lines = []billing.InvoiceLine{}
	}
	lines, _ := json.Marshal(inv.Lines) // plain values always encode
	_, err := tx.Exec(ctx, insertInvoiceSQL, inv.ID, inv.WorkspaceID, inv.SubscriptionID, inv.Number, inv.Reason,
		inv.Status, inv.Currency, inv.AmountDue, inv.AmountPaid, string(lines), inv.PeriodStart, inv.PeriodEnd,
		inv.AttemptCount, inv.NextAttemptAt, inv.Version, inv.CreatedAt, inv.PaidAt, inv.UpdatedAt)
	if err != nil {
		return fmt.Errorf("sandbox invoice: insert: %w", err)
	}
	return nil
}

// saveInvoice writes an invoice's payment state back, one version up. It
// returns errRaced when the row changed since it was read.
func saveInvoice(ctx context.Context, tx store.Tx, inv *invoice) error {
	n, err := tx.Exec(ctx, updateInvoiceSQL, inv.ID, inv.Version, inv.Status, inv.AmountPaid, inv.AttemptCount,
		inv.NextAttemptAt, inv.PaidAt, tx.Now())
	if err != nil {
		return fmt.Errorf("sandbox invoice %s: save: %w", inv.ID, err)
	}
	if n == 0 {
		return errRaced
	}
	inv.Version++
	inv.UpdatedAt = tx.Now()
	return nil
}

// Checkout session modes and statuses.
const (
	modeSubscription = "subscription" // a first subscription
	modeSetup        = "setup"        // the portal: the subscription's card changes
	checkoutOpen     = "open"
	checkoutDone     = "completed"
)

// checkout is a row of sandbox_checkout.
type checkout struct {
	ID             string
	WorkspaceID    uuid.UUID
	Mode           string
	PlanKey        string
	Interval       billing.Interval
	Currency       string
	UnitAmount     int64
	TrialEnd       *time.Time
	Email          string
	SuccessURL     string
	CancelURL      string
	SubscriptionID string
	Status         string
	ExpiresAt      time.Time
	CreatedAt      time.Time
	CompletedAt    *time.Time
}

const checkoutColumns = `id, workspace_id, mode, plan_key, billing_interval, currency, unit_amount, trial_end, email,
    success_url, cancel_url, subscription_id, status, expires_at, created_at, completed_at`

const (
	selectCheckoutSQL = `SELECT ` + checkoutColumns + ` FROM sandbox_checkout WHERE workspace_id = $1 AND id = $2`
	insertCheckoutSQL = `INSERT INTO sandbox_checkout (` + checkoutColumns + `)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`
	// Only an open session completes: of two submissions racing, one wins.
	completeCheckoutSQL = `UPDATE sandbox_checkout SET status = 'completed', subscription_id = $3, completed_at = $4
    WHERE workspace_id = $1 AND id = $2 AND status = 'open'`
)

func scanCheckout(row store.Row) (checkout, error) {
	var c checkout
	var interval string
	err := row.Scan(&c.ID, &c.WorkspaceID, &c.Mode, &c.PlanKey, &interval, &c.Currency, &c.UnitAmount, &c.TrialEnd,
		&c.Email, &c.SuccessURL, &c.CancelURL, &c.SubscriptionID, &c.Status, &c.ExpiresAt, &c.CreatedAt, &c.CompletedAt)
	c.Interval = billing.Interval(interval)
	c.ExpiresAt, c.CreatedAt = c.ExpiresAt.UTC(), c.CreatedAt.UTC()
	c.TrialEnd, c.CompletedAt = utcPtr(c.TrialEnd), utcPtr(c.CompletedAt)
	return c, err
}

// readCheckout reads a checkout session of the transaction's workspace. It
// returns not_found when there is none with that ID.
func readCheckout(ctx context.Context, tx store.Tx, id string) (checkout, error) {
	c, err := scanCheckout(tx.QueryRow(ctx, selectCheckoutSQL, tx.WorkspaceID(), id))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return checkout{}, kernel.NotFound("checkout session")
	}
	if err != nil {
		return checkout{}, fmt.Errorf("sandbox checkout %s: read: %w", id, err)
	}
	return c, nil
}

func insertCheckout(ctx context.Context, tx store.Tx, c *checkout) error {
	_, err := tx.Exec(ctx, insertCheckoutSQL, c.ID, c.WorkspaceID, c.Mode, c.PlanKey, string(c.Interval), c.Currency,
		c.UnitAmount, c.TrialEnd, c.Email, c.SuccessURL, c.CancelURL, c.SubscriptionID, c.Status, c.ExpiresAt,
		c.CreatedAt, c.CompletedAt)
	if err != nil {
		return fmt.Errorf("sandbox checkout: insert: %w", err)
	}
	return nil
}

// utcPtr returns t in UTC, or nil.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
