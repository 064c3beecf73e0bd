package sandboxpay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// retryAfter is how long after its attempts-th failed charge an invoice is
// tried again: 1, 2 and 4 days after the first three, then every 7 days
// (retries on days 1, 3, 7, 14, 21, … after the first failure).
func retryAfter(attempts int) time.Duration {
	switch attempts {
	case 1:
		return day
	case 2:
		return 2 * day
	case 3:
		return 4 * day
	}
	return 7 * day
}

// Report counts what a Renew run did.
type Report struct {
	// Renewed counts periods started and paid (a trial's first charge included).
	Renewed int
	// Failed counts charges that failed, at renewals and at retries.
	Failed int
	// Recovered counts unpaid invoices a retry paid.
	Recovered int
	// Ended counts subscriptions that ended at their period end.
	Ended int
	// KeysForgotten counts idempotency keys past their day.
	KeysForgotten int64
}

// sweepBatch bounds the subscriptions, and the invoices, one Renew run
// takes on; the next run takes the rest.
const sweepBatch = 200

// maxPeriodsPerRun bounds the periods one subscription is renewed by in a
// run, after a long time with no scheduler.
const maxPeriodsPerRun = 36

// Renew is the sandbox's billing clock, run by the scheduler (the system
// path finds what is due; each subscription is then handled in its own
// workspace transaction). It renews every subscription whose period has
// ended (Renewals and retries, in the package documentation), as many
// periods as have passed, retries the unpaid invoices that are due, and
// forgets idempotency keys older than a day. A subscription or invoice
// that fails is left for the next run and the others go on; the error
// joins those failures (the scheduler records and logs it).
func (p *Provider) Renew(ctx context.Context, db store.SystemDB) (Report, error) {
	var rep Report
	var errs []error
	due, err := dueObjects(ctx, db, "sandbox payments: subscriptions to renew",
		`SELECT workspace_id, id FROM sandbox_subscription WHERE status <> 'canceled' AND current_period_end <= $1
        ORDER BY current_period_end LIMIT $2`)
	if err != nil {
		return rep, err
	}
	for _, d := range due {
		if err := p.renewSubscription(ctx, d.workspaceID, d.id, &rep); err != nil {
			errs = append(errs, fmt.Errorf("renew %s: %w", d.id, err))
		}
	}
	due, err = dueObjects(ctx, db, "sandbox payments: invoices to retry",
		`SELECT workspace_id, id FROM sandbox_invoice WHERE status = 'open' AND next_attempt_at <= $1
        ORDER BY next_attempt_at LIMIT $2`)
	if err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	for _, d := range due {
		if err := p.retryInvoice(ctx, d.workspaceID, d.id, &rep); err != nil {
			errs = append(errs, fmt.Errorf("retry %s: %w", d.id, err))
		}
	}
	err = db.System(ctx, "sandbox payments: forget old idempotency keys", func(tx store.Tx) error {
		var err error
		rep.KeysForgotten, err = tx.Exec(ctx, `DELETE FROM sandbox_idempotency WHERE created_at <= $1`, tx.Now().Add(-keysKeptFor))
		return err
	})
	if err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// dueObject is a subscription or invoice a sweep found due.
type dueObject struct {
	workspaceID uuid.UUID
	id          string
}

// dueObjects runs a sweep's query ($1 the time now, $2 the batch size)
// on the system path.
func dueObjects(ctx context.Context, db store.SystemDB, reason, query string) ([]dueObject, error) {
	var out []dueObject
	err := db.System(ctx, reason, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, query, tx.Now(), sweepBatch)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (dueObject, error) {
			var d dueObject
			return d, row.Scan(&d.workspaceID, &d.id)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox sweep: %w", err)
	}
	return out, nil
}

// Outcomes of one renewal.
const (
	outcomeNone    = ""
	outcomeRenewed = "renewed"
	outcomeFailed  = "failed"
	outcomeEnded   = "ended"
)

// renewSubscription renews one subscription, period by period, until its
// period ends in the future or it ends; each period in a transaction.
func (p *Provider) renewSubscription(ctx context.Context, workspaceID uuid.UUID, id string, rep *Report) error {
	for range maxPeriodsPerRun {
		var outcome string
		err := p.write(ctx, workspaceID, func(tx store.Tx, b *batch) error {
			s, err := readSubscription(ctx, tx, id)
			if err != nil {
				return err
			}
			outcome = outcomeNone
			if !s.live() || s.PeriodEnd.After(tx.Now()) {
				return nil
			}
			outcome, err = p.renewOnce(ctx, tx, b, &s)
			return err
		})
		if err != nil {
			return err
		}
		switch outcome {
		case outcomeNone:
			return nil
		case outcomeRenewed:
			rep.Renewed++
		case outcomeFailed:
			rep.Failed++
		case outcomeEnded:
			rep.Ended++
			return nil
		}
	}
	return nil
}

// renewOnce takes s, whose period has ended, into the next one: it ends a
// subscription set to cancel, else makes its pending change, starts the
// next period and charges it.
func (p *Provider) renewOnce(ctx context.Context, tx store.Tx, b *batch, s *subscription) (string, error) {
	now := tx.Now()
	if s.CancelAtPeriodEnd {
		end := s.PeriodEnd
		s.Status, s.CanceledAt = billing.StatusCanceled, &end
		if err := p.voidOpen(ctx, tx, b, s); err != nil {
			return "", err
		}
		return outcomeEnded, p.saveAndTell(ctx, tx, b, s, billing.EventSubscriptionDeleted)
	}
	p.takePendingChange(ctx, s)
	reason := reasonCycle
	if s.Status == billing.StatusTrialing {
		reason, s.Status = reasonCreate, billing.StatusActive
	}
	start := s.PeriodEnd
	s.PeriodStart, s.PeriodEnd = start, periodEnd(s.BillingAnchor, start, s.Interval)
	lines, due, used := p.periodLines(s, s.PeriodStart, s.PeriodEnd)
	s.CreditBalance -= used
	inv, err := newInvoice(ctx, tx, s, reason, lines, due, s.PeriodStart, s.PeriodEnd)
	if err != nil {
		return "", err
	}
	inv.AttemptCount = 1
	outcome, typ := outcomeRenewed, billing.EventInvoicePaid
	if s.charge(due) {
		inv.pay(now)
	} else {
		next := now.Add(retryAfter(1))
		inv.NextAttemptAt = &next
		outcome, typ = outcomeFailed, billing.EventInvoicePaymentFailed
	}
	if err := insertInvoice(ctx, tx, &inv); err != nil {
		return "", err
	}
	if err := b.invoice(ctx, typ, &inv, s); err != nil {
		return "", err
	}
	return outcome, p.settle(ctx, tx, b, s)
}

// takePendingChange makes the change waiting for the period end, at the
// catalogue's price now. A change whose price the catalogue no longer has
// is dropped, and logged: the subscription renews as it is.
func (p *Provider) takePendingChange(ctx context.Context, s *subscription) {
	if s.PendingPlanKey == "" {
		return
	}
	planKey, interval := s.PendingPlanKey, s.PendingInterval
	s.PendingPlanKey, s.PendingInterval = "", ""
	plan := p.catalog.Plan(planKey)
	if plan == nil {
		kernel.Logger(ctx).WarnContext(ctx, "sandbox pending change names a plan the catalogue no longer has", "subscription", s.ID, "plan", planKey)
		return
	}
	price, ok := plan.Price(s.Currency, interval)
	if !ok {
		kernel.Logger(ctx).WarnContext(ctx, "sandbox pending change names a price the catalogue no longer has", "subscription", s.ID,
			"plan", planKey, "interval", interval)
		return
	}
	if interval != s.Interval {
		s.BillingAnchor = s.PeriodEnd
	}
	s.PlanKey, s.Interval, s.UnitAmount = plan.Key, interval, price.Amount
}

// retryInvoice retries one unpaid invoice whose attempt is due.
func (p *Provider) retryInvoice(ctx context.Context, workspaceID uuid.UUID, id string, rep *Report) error {
	var paid, failed int
	err := p.write(ctx, workspaceID, func(tx store.Tx, b *batch) error {
		paid, failed = 0, 0
		inv, err := readInvoice(ctx, tx, id)
		if err != nil {
			return err
		}
		if inv.Status != invoiceOpen || inv.NextAttemptAt == nil || inv.NextAttemptAt.After(tx.Now()) {
			return nil // paid, voided or rescheduled since the sweep read it
		}
		s, err := readSubscription(ctx, tx, inv.SubscriptionID)
		if err != nil {
			return err
		}
		if !s.live() {
			return p.voidOpen(ctx, tx, b, &s)
		}
		paid, failed, err = p.collect(ctx, tx, b, &s, []invoice{inv})
		return err
	})
	if err != nil {
		return err
	}
	rep.Recovered += paid
	rep.Failed += failed
	return nil
}

// collect charges the given unpaid invoices of s now, in order, then
// settles the subscription's status by what is still unpaid. It returns how
// many were paid and how many failed.
func (p *Provider) collect(ctx context.Context, tx store.Tx, b *batch, s *subscription, open []invoice) (int, int, error) {
	now := tx.Now()
	var paid, failed int
	for i := range open {
		inv := &open[i]
		inv.AttemptCount++
		typ := billing.EventInvoicePaid
		if s.charge(inv.AmountDue) {
			inv.pay(now)
			paid++
		} else {
			next := now.Add(retryAfter(inv.AttemptCount))
			inv.NextAttemptAt = &next
			typ = billing.EventInvoicePaymentFailed
			failed++
		}
		if err := saveInvoice(ctx, tx, inv); err != nil {
			return 0, 0, err
		}
		if err := b.invoice(ctx, typ, inv, s); err != nil {
			return 0, 0, err
		}
	}
	return paid, failed, p.settle(ctx, tx, b, s)
}

// settle sets a running subscription's status by its invoices (past due
// while one is unpaid, else active; a trial stays a trial), saves it and
// tells the ledger.
func (p *Provider) settle(ctx context.Context, tx store.Tx, b *batch, s *subscription) error {
	if s.Status == billing.StatusActive || s.Status == billing.StatusPastDue {
		var unpaid int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sandbox_invoice WHERE workspace_id = $1 AND subscription_id = $2 AND status = 'open'`,
			s.WorkspaceID, s.ID).Scan(&unpaid); err != nil {
			return fmt.Errorf("sandbox invoices of %s: count unpaid: %w", s.ID, err)
		}
		s.Status = billing.StatusActive
		if unpaid > 0 {
			s.Status = billing.StatusPastDue
		}
	}
	return p.saveAndTell(ctx, tx, b, s, billing.EventSubscriptionUpdated)
}
