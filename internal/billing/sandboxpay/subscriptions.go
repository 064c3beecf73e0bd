package sandboxpay

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Subscription reads a subscription as the sandbox has it now. It returns
// not_found for an unknown subscription.
func (p *Provider) Subscription(ctx context.Context, subscriptionID string) (billing.ProviderSubscription, error) {
	workspaceID, err := workspaceOf(prefixSubscription, subscriptionID, "subscription")
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	var s subscription
	err = p.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		s, err = readSubscription(ctx, tx, subscriptionID)
		return err
	})
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	return s.view(), nil
}

// PreviewChange says what Change would charge for req at this moment,
// without changing anything: it prices with the same function as Change
// (see Proration in the package documentation), so at the same clock
// reading the two agree to the minor unit. A change at the period end, or
// back to the current plan, charges nothing now. NextBilledAt is the end of
// the period after the change (a new one when the interval changes).
//
// It returns Change's errors, but never payment_required.
func (p *Provider) PreviewChange(ctx context.Context, req billing.ChangeRequest) (billing.ChangePreview, error) {
	workspaceID, price, err := p.changeTarget(req)
	if err != nil {
		return billing.ChangePreview{}, err
	}
	var preview billing.ChangePreview
	err = p.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		s, err := readSubscription(ctx, tx, req.SubscriptionID)
		if err != nil {
			return err
		}
		if err := changeable(&s, price.Currency); err != nil {
			return err
		}
		preview = billing.ChangePreview{Currency: s.Currency, NextAmount: price.Amount * int64(max(s.Quantity, 1)),
			NextBilledAt: s.PeriodEnd, Lines: []billing.InvoiceLine{}}
		switch {
		case req.Plan.Key == s.PlanKey && price.Interval == s.Interval:
			preview.NextAmount = s.amount()
		case req.AtPeriodEnd:
			preview.AtPeriodEnd = true
		default:
			q := p.quoteChange(&s, &req.Plan, price, tx.Now())
			preview.AmountDueNow, preview.NextBilledAt, preview.Lines = q.Due, q.PeriodEnd, q.Lines
		}
		return nil
	})
	if err != nil {
		return billing.ChangePreview{}, err
	}
	return preview, nil
}

// Change moves a subscription to another plan or interval.
//
// With AtPeriodEnd, the change is stored as pending and made by the
// renewal at the period end; nothing is charged now. Without it, it is
// made now and prorated (see Proration in the package documentation): a
// positive amount is charged at once, on an invoice of its own, and when
// the card fails nothing changes and Change returns payment_required (a
// repeat of the key answers the same); a credit is kept for the next
// charges. Asking for the current plan and interval cancels a pending
// change. A repeated idempotency key returns the first answer without a
// second charge.
//
// It returns invalid for a plan without the price, not_found for an
// unknown subscription, and conflict for one that has ended, is past due
// (its unpaid invoice comes first: a new card on the portal retries it),
// is billed in another currency, or when the key was used for another
// request.
func (p *Provider) Change(ctx context.Context, req billing.ChangeRequest) (billing.ProviderSubscription, error) {
	workspaceID, price, err := p.changeTarget(req)
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	params := req
	params.IdempotencyKey = ""
	print := fingerprint("change", params)
	var r result
	err = p.write(ctx, workspaceID, func(tx store.Tx, b *batch) error {
		var err error
		r, err = idempotent(ctx, tx, req.IdempotencyKey, print, func() (result, error) {
			return p.change(ctx, tx, b, req, price)
		})
		return err
	})
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	if err := r.err(); err != nil {
		return billing.ProviderSubscription{}, err
	}
	return *r.Subscription, nil
}

// change makes a change in the transaction; see Change.
func (p *Provider) change(ctx context.Context, tx store.Tx, b *batch, req billing.ChangeRequest, price billing.Price) (result, error) {
	s, err := readSubscription(ctx, tx, req.SubscriptionID)
	if err != nil {
		return result{}, err
	}
	if err := changeable(&s, price.Currency); err != nil {
		return result{}, err
	}
	now := tx.Now()
	var paid *invoice
	switch {
	case req.Plan.Key == s.PlanKey && price.Interval == s.Interval:
		s.PendingPlanKey, s.PendingInterval = "", ""
	case req.AtPeriodEnd:
		s.PendingPlanKey, s.PendingInterval = req.Plan.Key, price.Interval
	default:
		q := p.quoteChange(&s, &req.Plan, price, now)
		if q.Due > 0 {
			if !s.charge(q.Due) {
				// The plan stays; what the failure used up (a simulated
				// failure) is kept, with the answer for the key.
				if err := saveSubscription(ctx, tx, &s); err != nil {
					return result{}, err
				}
				return failed(&kernel.Error{Code: kernel.CodePaymentRequired,
					Message: "the payment for this change was declined; the plan has not changed"}), nil
			}
			inv, err := newInvoice(ctx, tx, &s, reasonUpdate, q.Lines, q.Due, now, q.PeriodEnd)
			if err != nil {
				return result{}, err
			}
			inv.AttemptCount = 1
			inv.pay(now)
			if err := insertInvoice(ctx, tx, &inv); err != nil {
				return result{}, err
			}
			paid = &inv
		}
		s.CreditBalance += max(-q.Due, 0) - q.CreditUsed
		s.PlanKey, s.Interval, s.UnitAmount = req.Plan.Key, price.Interval, price.Amount
		s.BillingAnchor, s.PeriodStart, s.PeriodEnd = q.Anchor, q.PeriodStart, q.PeriodEnd
		s.PendingPlanKey, s.PendingInterval = "", ""
	}
	if err := saveSubscription(ctx, tx, &s); err != nil {
		return result{}, err
	}
	if err := b.subscription(ctx, billing.EventSubscriptionUpdated, &s); err != nil {
		return result{}, err
	}
	if paid != nil {
		if err := b.invoice(ctx, billing.EventInvoicePaid, paid, &s); err != nil {
			return result{}, err
		}
	}
	view := s.view()
	return result{Subscription: &view}, nil
}

// changeTarget checks what a change request names: the subscription's
// workspace and the plan's price.
func (p *Provider) changeTarget(req billing.ChangeRequest) (uuid.UUID, billing.Price, error) {
	workspaceID, err := workspaceOf(prefixSubscription, req.SubscriptionID, "subscription")
	if err != nil {
		return uuid.Nil, billing.Price{}, err
	}
	price, ok := req.Plan.Price(strings.ToLower(req.Currency), req.Interval)
	if !ok {
		return uuid.Nil, billing.Price{}, kernel.Invalid("currency", "the plan has no "+req.Currency+" price per "+string(req.Interval))
	}
	return workspaceID, price, nil
}

// changeable returns conflict unless s can change plan in currency now.
func changeable(s *subscription, currency string) error {
	switch {
	case !s.live():
		return kernel.Errorf(kernel.CodeConflict, "the subscription has ended")
	case s.Status == billing.StatusPastDue:
		return kernel.Errorf(kernel.CodeConflict, "the subscription has an unpaid invoice: pay it first (a new card on the billing portal retries it)")
	case currency != s.Currency:
		return kernel.Errorf(kernel.CodeConflict, "the subscription is billed in %s", strings.ToUpper(s.Currency))
	}
	return nil
}

// Cancel ends a subscription at its period end (atPeriodEnd: it is kept,
// and can be resumed, until then) or now, without a refund; ending now
// voids its unpaid invoices. A repeated idempotency key returns the first
// answer. It returns not_found for an unknown subscription, and conflict
// for one that has ended (only with atPeriodEnd: ending an ended one again
// answers it as it is) or when the key was used for another request.
func (p *Provider) Cancel(ctx context.Context, subscriptionID string, atPeriodEnd bool, idempotencyKey string) (billing.ProviderSubscription, error) {
	print := fingerprint("cancel", map[string]any{"subscription": subscriptionID, "at_period_end": atPeriodEnd})
	return p.update(ctx, subscriptionID, idempotencyKey, print, func(tx store.Tx, b *batch, s *subscription) error {
		switch {
		case !s.live() && atPeriodEnd:
			return kernel.Errorf(kernel.CodeConflict, "the subscription has ended")
		case !s.live():
			return nil
		case atPeriodEnd:
			s.CancelAtPeriodEnd = true
			return p.saveAndTell(ctx, tx, b, s, billing.EventSubscriptionUpdated)
		}
		now := tx.Now()
		s.Status, s.CanceledAt, s.CancelAtPeriodEnd = billing.StatusCanceled, &now, false
		if err := p.voidOpen(ctx, tx, b, s); err != nil {
			return err
		}
		return p.saveAndTell(ctx, tx, b, s, billing.EventSubscriptionDeleted)
	})
}

// Resume undoes a cancellation at the period end. A repeated idempotency
// key returns the first answer. It returns not_found for an unknown
// subscription, and conflict for one that has ended or when the key was
// used for another request.
func (p *Provider) Resume(ctx context.Context, subscriptionID, idempotencyKey string) (billing.ProviderSubscription, error) {
	print := fingerprint("resume", subscriptionID)
	return p.update(ctx, subscriptionID, idempotencyKey, print, func(tx store.Tx, b *batch, s *subscription) error {
		if !s.live() {
			return kernel.Errorf(kernel.CodeConflict, "the subscription has ended: subscribe again")
		}
		s.CancelAtPeriodEnd = false
		return p.saveAndTell(ctx, tx, b, s, billing.EventSubscriptionUpdated)
	})
}

// update runs fn on a subscription under an idempotency key and returns
// the subscription's view after it.
func (p *Provider) update(ctx context.Context, subscriptionID, key, print string,
	fn func(tx store.Tx, b *batch, s *subscription) error) (billing.ProviderSubscription, error) {
	workspaceID, err := workspaceOf(prefixSubscription, subscriptionID, "subscription")
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	var r result
	err = p.write(ctx, workspaceID, func(tx store.Tx, b *batch) error {
		var err error
		r, err = idempotent(ctx, tx, key, print, func() (result, error) {
			s, err := readSubscription(ctx, tx, subscriptionID)
			if err != nil {
				return result{}, err
			}
			if err := fn(tx, b, &s); err != nil {
				return result{}, err
			}
			view := s.view()
			return result{Subscription: &view}, nil
		})
		return err
	})
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	return *r.Subscription, nil
}

// saveAndTell saves s and tells the ledger with an event of type typ.
func (p *Provider) saveAndTell(ctx context.Context, tx store.Tx, b *batch, s *subscription, typ string) error {
	if err := saveSubscription(ctx, tx, s); err != nil {
		return err
	}
	return b.subscription(ctx, typ, s)
}

// voidOpen voids the unpaid invoices of s, which has ended: nobody is
// asked to pay for what they no longer get.
func (p *Provider) voidOpen(ctx context.Context, tx store.Tx, b *batch, s *subscription) error {
	open, err := invoices(ctx, tx, selectOpenInvoicesSQL, s.WorkspaceID, s.ID)
	if err != nil {
		return err
	}
	for i := range open {
		inv := &open[i]
		inv.Status, inv.NextAttemptAt = invoiceVoid, nil
		if err := saveInvoice(ctx, tx, inv); err != nil {
			return err
		}
		if err := b.invoice(ctx, billing.EventInvoiceUpdated, inv, s); err != nil {
			return err
		}
	}
	return nil
}

// FailNextCharge makes the next charge of the workspace's live
// subscription fail once, whatever its card: a renewal, a retry or an
// upgrade's proration. It is how tests and demonstrations reach dunning
// with a card that otherwise pays. It returns not_found when the
// workspace has no live sandbox subscription.
func (p *Provider) FailNextCharge(ctx context.Context, workspaceID uuid.UUID) error {
	return p.write(ctx, workspaceID, func(tx store.Tx, _ *batch) error {
		s, err := scanSubscription(tx.QueryRow(ctx, selectLatestSubscriptionSQL, workspaceID))
		if kernel.IsCode(err, kernel.CodeNotFound) || (err == nil && !s.live()) {
			return &kernel.Error{Code: kernel.CodeNotFound, Message: "the workspace has no sandbox subscription"}
		}
		if err != nil {
			return err
		}
		s.FailNextCharge = true
		return saveSubscription(ctx, tx, &s)
	})
}
