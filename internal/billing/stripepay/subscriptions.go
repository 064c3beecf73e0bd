package stripepay

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v85"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

// Changes are prorated and invoiced at once, and applied only when that
// invoice is paid: Stripe keeps a change whose payment fails as a pending
// update (expiring after 23 hours) instead of moving the subscription to a
// plan nobody paid for.
const (
	prorationAlwaysInvoice     = "always_invoice"
	paymentPendingIfIncomplete = "pending_if_incomplete"
)

// PreviewChange asks Stripe what moving a subscription to another plan or
// interval now would cost, prorated to the second, without changing
// anything. AmountDueNow is the previewed invoice's total (negative when the
// change leaves a credit), NextAmount the new recurring amount and
// NextBilledAt the end of the period the invoice reaches (the current
// period's end, or a new period's when the interval changes).
//
// A preview changes nothing, so the caller's idempotency key is not sent:
// a retry with the same key would otherwise replay an old preview for a
// day. It returns invalid for a plan without the price, not_found for an
// unknown subscription, and apiError's codes when Stripe fails.
func (p *Provider) PreviewChange(ctx context.Context, req billing.ChangeRequest) (billing.ChangePreview, error) {
	price, ok := req.Plan.Price(strings.ToLower(req.Currency), req.Interval)
	if !ok {
		return billing.ChangePreview{}, kernel.Invalid("currency", "the plan has no "+req.Currency+" price per "+string(req.Interval))
	}
	priceID, err := p.priceID(ctx, req.Plan, price.Currency, req.Interval)
	if err != nil {
		return billing.ChangePreview{}, err
	}
	sub, item, err := p.subscriptionItem(ctx, req.SubscriptionID)
	if err != nil {
		return billing.ChangePreview{}, err
	}
	params := &stripe.InvoiceCreatePreviewParams{
		Subscription: stripe.String(sub.ID),
		SubscriptionDetails: &stripe.InvoiceCreatePreviewSubscriptionDetailsParams{
			Items:             []*stripe.InvoiceCreatePreviewSubscriptionDetailsItemParams{{ID: stripe.String(item.ID), Price: stripe.String(priceID)}},
			ProrationBehavior: stripe.String(prorationAlwaysInvoice),
			ProrationDate:     stripe.Int64(p.clock.Now().Unix()),
		},
	}
	if customer := customerID(sub, req.CustomerID); customer != "" {
		params.Customer = stripe.String(customer)
	}
	inv, err := p.client.V1Invoices.CreatePreview(ctx, params)
	if err != nil {
		return billing.ChangePreview{}, apiError("invoice preview", err)
	}
	quantity := max(item.Quantity, 1)
	preview := billing.ChangePreview{
		Currency:     string(inv.Currency),
		AmountDueNow: inv.Total,
		NextAmount:   price.Amount * quantity,
		Lines:        invoiceLines(inv),
	}
	if preview.Currency == "" {
		preview.Currency = price.Currency
	}
	for _, l := range preview.Lines {
		if l.PeriodEnd.After(preview.NextBilledAt) {
			preview.NextBilledAt = l.PeriodEnd
		}
	}
	if preview.NextBilledAt.IsZero() {
		preview.NextBilledAt = unixTime(item.CurrentPeriodEnd)
	}
	return preview, nil
}

// Change moves a subscription to another plan or interval now: the
// difference is prorated and invoiced at once, under the caller's
// idempotency key. It returns the subscription as Stripe answered.
//
// When the invoice is not paid (card declined, authentication needed),
// Stripe keeps the change pending (until its expiry) and the subscription
// on its plan; Change then returns payment_required. It returns invalid for a plan without the
// price, not_found for an unknown subscription and apiError's codes when
// Stripe fails.
func (p *Provider) Change(ctx context.Context, req billing.ChangeRequest) (billing.ProviderSubscription, error) {
	priceID, err := p.priceID(ctx, req.Plan, strings.ToLower(req.Currency), req.Interval)
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	sub, item, err := p.subscriptionItem(ctx, req.SubscriptionID)
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	params := &stripe.SubscriptionUpdateParams{
		Items:             []*stripe.SubscriptionUpdateItemParams{{ID: stripe.String(item.ID), Price: stripe.String(priceID)}},
		ProrationBehavior: stripe.String(prorationAlwaysInvoice),
		PaymentBehavior:   stripe.String(paymentPendingIfIncomplete),
	}
	if req.AtPeriodEnd {
		// Nothing is charged or credited now: the next invoice, at the
		// period end, is the first at the new price. The ledger keeps the
		// old plan's entitlements until that period ends.
		params.ProrationBehavior = stripe.String("none")
		params.PaymentBehavior = nil
	}
	params.AddExpand("customer")
	params.IdempotencyKey = idempotencyKey(req.IdempotencyKey, "")
	version := p.version()
	updated, err := p.client.V1Subscriptions.Update(ctx, sub.ID, params)
	if err != nil {
		return billing.ProviderSubscription{}, apiError("subscription "+sub.ID, err)
	}
	if pu := updated.PendingUpdate; pu != nil && unixTime(pu.ExpiresAt).After(p.clock.Now()) {
		return billing.ProviderSubscription{}, &kernel.Error{Code: kernel.CodePaymentRequired,
			Message: "the payment for this change did not go through; the plan changes once the invoice is paid"}
	}
	return p.subscriptionView(updated, version), nil
}

// Cancel ends a subscription at its period end (atPeriodEnd: the customer
// keeps what they paid for until then, and Resume can undo it) or now,
// without a prorated refund. It returns the subscription as Stripe
// answered: not_found for an unknown one, apiError's codes when Stripe fails.
func (p *Provider) Cancel(ctx context.Context, subscriptionID string, atPeriodEnd bool, idempotencyKeyValue string) (billing.ProviderSubscription, error) {
	if subscriptionID == "" {
		return billing.ProviderSubscription{}, kernel.Invalid("subscription_id", "a subscription is required")
	}
	version := p.version()
	var (
		s   *stripe.Subscription
		err error
	)
	if atPeriodEnd {
		params := &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(true)}
		params.AddExpand("customer")
		params.IdempotencyKey = idempotencyKey(idempotencyKeyValue, "")
		s, err = p.client.V1Subscriptions.Update(ctx, subscriptionID, params)
	} else {
		params := &stripe.SubscriptionCancelParams{}
		params.AddExpand("customer")
		params.IdempotencyKey = idempotencyKey(idempotencyKeyValue, "")
		s, err = p.client.V1Subscriptions.Cancel(ctx, subscriptionID, params)
	}
	if err != nil {
		return billing.ProviderSubscription{}, apiError("subscription "+subscriptionID, err)
	}
	return p.subscriptionView(s, version), nil
}

// Resume undoes a cancellation at period end before the period ends. It
// returns the subscription as Stripe answered: not_found for an unknown
// one, apiError's codes when Stripe fails (invalid when it has ended).
func (p *Provider) Resume(ctx context.Context, subscriptionID, idempotencyKeyValue string) (billing.ProviderSubscription, error) {
	if subscriptionID == "" {
		return billing.ProviderSubscription{}, kernel.Invalid("subscription_id", "a subscription is required")
	}
	params := &stripe.SubscriptionUpdateParams{CancelAtPeriodEnd: stripe.Bool(false)}
	params.AddExpand("customer")
	params.IdempotencyKey = idempotencyKey(idempotencyKeyValue, "")
	version := p.version()
	s, err := p.client.V1Subscriptions.Update(ctx, subscriptionID, params)
	if err != nil {
		return billing.ProviderSubscription{}, apiError("subscription "+subscriptionID, err)
	}
	return p.subscriptionView(s, version), nil
}

// Subscription reads a subscription from Stripe as it is now, stamped with
// a version later than any view read before it (see version). It returns
// not_found for an unknown subscription and apiError's codes when Stripe fails.
func (p *Provider) Subscription(ctx context.Context, subscriptionID string) (billing.ProviderSubscription, error) {
	s, version, err := p.retrieveSubscription(ctx, subscriptionID)
	if err != nil {
		return billing.ProviderSubscription{}, err
	}
	return p.subscriptionView(s, version), nil
}

// retrieveSubscription reads a subscription, with its customer, and the
// version of what it read.
func (p *Provider) retrieveSubscription(ctx context.Context, subscriptionID string) (*stripe.Subscription, int64, error) {
	if subscriptionID == "" {
		return nil, 0, kernel.Invalid("subscription_id", "a subscription is required")
	}
	params := &stripe.SubscriptionRetrieveParams{}
	params.AddExpand("customer")
	version := p.version()
	s, err := p.client.V1Subscriptions.Retrieve(ctx, subscriptionID, params)
	if err != nil {
		return nil, 0, apiError("subscription "+subscriptionID, err)
	}
	return s, version, nil
}

// subscriptionItem reads a subscription and the item that carries its plan.
func (p *Provider) subscriptionItem(ctx context.Context, subscriptionID string) (*stripe.Subscription, *stripe.SubscriptionItem, error) {
	s, _, err := p.retrieveSubscription(ctx, subscriptionID)
	if err != nil {
		return nil, nil, err
	}
	item := p.planItem(s)
	if item == nil {
		return nil, nil, kernel.Internal(fmt.Errorf("stripe: subscription %s has no items", s.ID))
	}
	return s, item, nil
}

// planItem is the item of a subscription that carries its plan: the first
// whose price maps to a plan of the catalogue, else the first. Atrium's
// subscriptions have one item; one edited in the dashboard may have more.
func (p *Provider) planItem(s *stripe.Subscription) *stripe.SubscriptionItem {
	if s.Items == nil || len(s.Items.Data) == 0 {
		return nil
	}
	for _, item := range s.Items.Data {
		if _, _, ok := p.planOfPrice(item.Price); ok {
			return item
		}
	}
	return s.Items.Data[0]
}

// subscriptionView turns a Stripe subscription into the ledger's view. The
// plan comes from the price (the catalogue's configured IDs, or the
// metadata of a price Atrium created), else from the subscription's
// atrium_plan metadata, which records the plan at checkout. The workspace
// comes from the subscription's metadata, else its customer's.
func (p *Provider) subscriptionView(s *stripe.Subscription, version int64) billing.ProviderSubscription {
	v := billing.ProviderSubscription{
		Provider:          billing.ProviderStripe,
		ID:                s.ID,
		WorkspaceID:       parseWorkspaceMeta(s.Metadata[MetaWorkspace]),
		Currency:          string(s.Currency),
		Status:            Status(s.Status),
		CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		TrialEnd:          unixTime(s.TrialEnd),
		Quantity:          1,
		HasPaymentMethod:  s.DefaultPaymentMethod != nil || s.DefaultSource != nil,
		Version:           version,
	}
	if c := s.Customer; c != nil {
		v.CustomerID = c.ID
		if v.WorkspaceID == uuid.Nil {
			v.WorkspaceID = parseWorkspaceMeta(c.Metadata[MetaWorkspace])
		}
		if c.DefaultSource != nil || (c.InvoiceSettings != nil && c.InvoiceSettings.DefaultPaymentMethod != nil) {
			v.HasPaymentMethod = true
		}
	}
	if item := p.planItem(s); item != nil {
		v.CurrentPeriodStart = unixTime(item.CurrentPeriodStart)
		v.CurrentPeriodEnd = unixTime(item.CurrentPeriodEnd)
		v.Quantity = int(max(item.Quantity, 1))
		v.Interval = intervalOf(item.Price)
		if key, interval, ok := p.planOfPrice(item.Price); ok {
			v.PlanKey, v.Interval = key, interval
		}
		if s.CancelAt != 0 && s.CancelAt == item.CurrentPeriodEnd {
			v.CancelAtPeriodEnd = true
		}
	}
	if v.PlanKey == "" {
		if key := s.Metadata[MetaPlan]; p.catalog.Plan(key) != nil {
			v.PlanKey = key
		}
	}
	if v.Status == billing.StatusCanceled {
		v.CanceledAt = unixTime(s.EndedAt)
		if v.CanceledAt.IsZero() {
			v.CanceledAt = unixTime(s.CanceledAt)
		}
	}
	return v
}

// Status maps a Stripe subscription status onto Atrium's four:
//
//   - trialing, active, past_due and canceled mean the same in both.
//   - unpaid (Stripe has given up retrying but not canceled) is past_due:
//     the customer still owes the invoice, and Atrium's own dunning steps
//     (downgrade, suspension) decide what stops working, as for any failed
//     payment.
//   - incomplete (the first payment failed or awaits authentication, for
//     up to 23 hours) is past_due too: the customer must act on a payment,
//     which is what Atrium's past_due tells them, and dunning bounds what
//     they get meanwhile.
//   - paused (a trial ended without a payment method, or collection was
//     paused) is past_due for the same reason: nothing is being paid, and
//     adding a card resumes it.
//   - incomplete_expired (the first payment never succeeded) is canceled:
//     it is final, like canceled.
//
// A status Stripe adds later is past_due, which neither grants a plan
// indefinitely nor ends a subscription.
func Status(s stripe.SubscriptionStatus) billing.Status {
	switch s {
	case stripe.SubscriptionStatusTrialing:
		return billing.StatusTrialing
	case stripe.SubscriptionStatusActive:
		return billing.StatusActive
	case stripe.SubscriptionStatusCanceled, stripe.SubscriptionStatusIncompleteExpired:
		return billing.StatusCanceled
	}
	return billing.StatusPastDue
}

// customerID is the subscription's customer, or fallback.
func customerID(s *stripe.Subscription, fallback string) string {
	if s != nil && s.Customer != nil && s.Customer.ID != "" {
		return s.Customer.ID
	}
	return fallback
}

// invoiceLines turns an invoice's lines into the ledger's.
func invoiceLines(inv *stripe.Invoice) []billing.InvoiceLine {
	if inv.Lines == nil {
		return []billing.InvoiceLine{}
	}
	lines := make([]billing.InvoiceLine, 0, len(inv.Lines.Data))
	for _, l := range inv.Lines.Data {
		line := billing.InvoiceLine{Description: l.Description, Amount: l.Amount}
		if l.Period != nil {
			line.PeriodStart, line.PeriodEnd = unixTime(l.Period.Start), unixTime(l.Period.End)
		}
		if pa := l.Parent; pa != nil {
			line.Proration = (pa.SubscriptionItemDetails != nil && pa.SubscriptionItemDetails.Proration) ||
				(pa.InvoiceItemDetails != nil && pa.InvoiceItemDetails.Proration)
		}
		lines = append(lines, line)
	}
	return lines
}

// unixTime is a Stripe timestamp as a UTC time; 0 is the zero time.
func unixTime(seconds int64) time.Time {
	if seconds == 0 {
		return time.Time{}
	}
	return time.Unix(seconds, 0).UTC()
}
