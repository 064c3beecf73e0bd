package sandboxpay

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Checkout starts a checkout session for a workspace to subscribe to a
// plan price and returns the URL of its page (PublicBaseURL +
// /sandbox/checkout/<id>), where a test card completes it. The session
// keeps the price as it is now and the trial end, if it is in the future:
// the subscription then trials until it and is first charged then. It
// expires after 24 hours. A repeated idempotency key returns the first
// session.
//
// It returns invalid for a missing workspace, a free plan, a plan without
// a price in the currency and interval, or a return URL of another origin,
// and conflict when the workspace has a live sandbox subscription already
// or the key was used for another request.
func (p *Provider) Checkout(ctx context.Context, req billing.CheckoutRequest) (billing.CheckoutSession, error) {
	if req.WorkspaceID == uuid.Nil {
		return billing.CheckoutSession{}, kernel.Invalid("workspace_id", "a workspace is required")
	}
	if req.Plan.Free() {
		return billing.CheckoutSession{}, kernel.Invalid("plan", "the free plan needs no checkout")
	}
	currency := strings.ToLower(req.Currency)
	price, ok := req.Plan.Price(currency, req.Interval)
	if !ok {
		return billing.CheckoutSession{}, kernel.Invalid("currency", "the plan has no "+req.Currency+" price per "+string(req.Interval))
	}
	successURL, err := p.absoluteURL(req.SuccessURL, DefaultReturnPath+"?checkout=success&session_id={CHECKOUT_SESSION_ID}")
	if err != nil {
		return billing.CheckoutSession{}, err
	}
	cancelURL, err := p.absoluteURL(req.CancelURL, DefaultReturnPath+"?checkout=canceled")
	if err != nil {
		return billing.CheckoutSession{}, err
	}
	params := req
	params.IdempotencyKey = ""
	print := fingerprint("checkout", params)
	var r result
	err = p.write(ctx, req.WorkspaceID, func(tx store.Tx, _ *batch) error {
		var err error
		r, err = idempotent(ctx, tx, req.IdempotencyKey, print, func() (result, error) {
			if err := noLiveSubscription(ctx, tx); err != nil {
				return result{}, err
			}
			now := tx.Now()
			c := checkout{ID: newID(prefixCheckout, req.WorkspaceID), WorkspaceID: req.WorkspaceID, Mode: modeSubscription,
				PlanKey: req.Plan.Key, Interval: req.Interval, Currency: currency, UnitAmount: price.Amount,
				Email: req.Email, SuccessURL: successURL, CancelURL: cancelURL, Status: checkoutOpen,
				ExpiresAt: now.Add(checkoutLifetime), CreatedAt: now}
			if req.TrialEnd.After(now) {
				end := req.TrialEnd.UTC()
				c.TrialEnd = &end
			}
			if err := insertCheckout(ctx, tx, &c); err != nil {
				return result{}, err
			}
			return result{Checkout: &billing.CheckoutSession{ID: c.ID, URL: p.pageURL(c.ID)}}, nil
		})
		return err
	})
	if err != nil {
		return billing.CheckoutSession{}, err
	}
	return *r.Checkout, nil
}

// noLiveSubscription returns conflict when the transaction's workspace has
// a sandbox subscription that has not ended: a second one would feed the
// ledger two subscriptions of one workspace.
func noLiveSubscription(ctx context.Context, tx store.Tx) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM sandbox_subscription WHERE workspace_id = $1 AND status <> 'canceled'`,
		tx.WorkspaceID()).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return kernel.Errorf(kernel.CodeConflict, "the workspace has a subscription already: change its plan instead")
	}
	return nil
}

// Portal opens the sandbox's billing portal for a customer and returns its
// URL: a page (the checkout page's setup mode) that shows the workspace's
// subscription, its recent invoices and the card on file, with a form to
// change the card, which retries any unpaid invoice at once. The page
// sends the customer back to returnURL (resolved against the public base
// URL; empty means DefaultReturnPath) and lasts an hour. Opening one changes
// nothing a customer sees, so it takes no idempotency key.
//
// It returns not_found for a customer the sandbox does not know or without
// a subscription, and invalid for a return URL of another origin.
func (p *Provider) Portal(ctx context.Context, customerID, returnURL string) (string, error) {
	workspaceID, err := workspaceOf(prefixCustomer, customerID, "customer")
	if err != nil {
		return "", err
	}
	ret, err := p.absoluteURL(returnURL, DefaultReturnPath)
	if err != nil {
		return "", err
	}
	var id string
	err = p.write(ctx, workspaceID, func(tx store.Tx, _ *batch) error {
		s, err := scanSubscription(tx.QueryRow(ctx, selectLatestSubscriptionSQL, workspaceID))
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return kernel.NotFound("subscription")
		}
		if err != nil {
			return err
		}
		now := tx.Now()
		c := checkout{ID: newID(prefixCheckout, workspaceID), WorkspaceID: workspaceID, Mode: modeSetup, PlanKey: s.PlanKey,
			Interval: s.Interval, Currency: s.Currency, UnitAmount: s.UnitAmount, SuccessURL: ret, CancelURL: ret,
			SubscriptionID: s.ID, Status: checkoutOpen, ExpiresAt: now.Add(portalLifetime), CreatedAt: now}
		id = c.ID
		return insertCheckout(ctx, tx, &c)
	})
	if err != nil {
		return "", err
	}
	return p.pageURL(id), nil
}

// States of a page.
const (
	PageOpen      = "open"
	PageCompleted = "completed"
	PageExpired   = "expired"
)

// Page is what a checkout session's page shows.
type Page struct {
	ID string
	// Mode is "subscription" (a checkout) or "setup" (the portal).
	Mode string
	// State is PageOpen, PageCompleted or PageExpired; only an open page
	// takes a card.
	State    string
	PlanName string
	Interval billing.Interval
	Currency string
	// Amount is the price per interval, in minor units of Currency.
	Amount int64
	// TrialEnd is when the first charge is made; zero charges now.
	TrialEnd   time.Time
	Email      string
	SuccessURL string
	CancelURL  string
	ExpiresAt  time.Time
	// Subscription and Invoices (newest first) are the portal's.
	Subscription *PortalSubscription
	Invoices     []billing.ProviderInvoice
}

// PortalSubscription is the subscription the portal shows.
type PortalSubscription struct {
	billing.ProviderSubscription
	PlanName string
	// Amount is what a period costs, in minor units of Currency.
	Amount    int64
	CardLast4 string
	// PendingPlanName and PendingInterval are a change waiting for the
	// period end, if any.
	PendingPlanName string
	PendingInterval billing.Interval
	CreditBalance   int64
}

// portalInvoices bounds the invoices the portal lists.
const portalInvoices = 12

// CheckoutPage reads what a checkout session's page shows. It returns
// not_found for an ID the sandbox did not make or that does not exist.
func (p *Provider) CheckoutPage(ctx context.Context, checkoutID string) (Page, error) {
	workspaceID, err := workspaceOf(prefixCheckout, checkoutID, "checkout session")
	if err != nil {
		return Page{}, err
	}
	var page Page
	err = p.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		c, err := readCheckout(ctx, tx, checkoutID)
		if err != nil {
			return err
		}
		page = Page{ID: c.ID, Mode: c.Mode, State: c.state(tx.Now()), PlanName: p.planName(c.PlanKey), Interval: c.Interval,
			Currency: c.Currency, Amount: c.UnitAmount, Email: c.Email, SuccessURL: c.successURL(), CancelURL: c.CancelURL,
			ExpiresAt: c.ExpiresAt}
		if c.TrialEnd != nil && c.TrialEnd.After(tx.Now()) {
			page.TrialEnd = *c.TrialEnd
		}
		if c.Mode != modeSetup {
			return nil
		}
		s, err := readSubscription(ctx, tx, c.SubscriptionID)
		if err != nil {
			return err
		}
		page.Subscription = &PortalSubscription{ProviderSubscription: s.view(), PlanName: p.planName(s.PlanKey),
			Amount: s.amount(), CardLast4: s.CardLast4, PendingInterval: s.PendingInterval, CreditBalance: s.CreditBalance}
		if s.PendingPlanKey != "" {
			page.Subscription.PendingPlanName = p.planName(s.PendingPlanKey)
		}
		list, err := invoices(ctx, tx, selectRecentInvoicesSQL, workspaceID, s.ID, portalInvoices)
		for _, inv := range list {
			page.Invoices = append(page.Invoices, inv.view(s.CustomerID))
		}
		return err
	})
	return page, err
}

// CompleteCheckout takes a test card on a session's page and returns where
// to send the customer: the success URL (with {CHECKOUT_SESSION_ID}
// replaced by the session's ID, as Stripe does).
//
// A checkout subscribes the workspace: trialing until the session's trial
// end when it is in the future, else active with a first invoice, paid.
// The ledger receives checkout.completed, subscription.updated and, when
// charged, invoice.paid. The portal's page changes the subscription's card
// and retries its unpaid invoices at once.
//
// It returns not_found for an unknown session, conflict for one completed
// or expired (or a subscription that has ended), payment_required for the
// declined card and invalid for a number that is not a test card; none of
// these changes anything.
func (p *Provider) CompleteCheckout(ctx context.Context, checkoutID, cardNumber string) (string, error) {
	workspaceID, err := workspaceOf(prefixCheckout, checkoutID, "checkout session")
	if err != nil {
		return "", err
	}
	var redirect string
	err = p.write(ctx, workspaceID, func(tx store.Tx, b *batch) error {
		c, err := readCheckout(ctx, tx, checkoutID)
		if err != nil {
			return err
		}
		switch c.state(tx.Now()) {
		case PageCompleted:
			return kernel.Errorf(kernel.CodeConflict, "This checkout is complete already.")
		case PageExpired:
			return kernel.Errorf(kernel.CodeConflict, "This page has expired: start again from the billing page.")
		}
		card, err := readCard(cardNumber)
		if err != nil {
			return err
		}
		redirect = c.successURL()
		if c.Mode == modeSetup {
			return p.changeCard(ctx, tx, b, c, card)
		}
		return p.subscribe(ctx, tx, b, c, card)
	})
	return redirect, err
}

// subscribe completes a checkout: the subscription, its first invoice
// unless it trials, and the events.
func (p *Provider) subscribe(ctx context.Context, tx store.Tx, b *batch, c checkout, card card) error {
	now := tx.Now()
	s := subscription{ID: newID(prefixSubscription, c.WorkspaceID), WorkspaceID: c.WorkspaceID,
		CustomerID: customerID(c.WorkspaceID), PlanKey: c.PlanKey, Interval: c.Interval, Currency: c.Currency,
		UnitAmount: c.UnitAmount, Quantity: 1, CardLast4: card.last4, CardBehaviour: card.behaviour}
	if c.TrialEnd != nil && c.TrialEnd.After(now) {
		s.Status, s.TrialEnd = billing.StatusTrialing, c.TrialEnd
		s.BillingAnchor, s.PeriodStart, s.PeriodEnd = *c.TrialEnd, now, *c.TrialEnd
	} else {
		s.Status = billing.StatusActive
		s.BillingAnchor, s.PeriodStart, s.PeriodEnd = now, now, periodEnd(now, now, c.Interval)
	}
	if err := insertSubscription(ctx, tx, &s); err != nil {
		return err
	}
	n, err := tx.Exec(ctx, completeCheckoutSQL, c.WorkspaceID, c.ID, s.ID, now)
	if err != nil {
		return err
	}
	if n == 0 {
		return errRaced // another submission completed it: the next run says so
	}
	if err := b.subscription(ctx, billing.EventCheckoutCompleted, &s); err != nil {
		return err
	}
	if err := b.subscription(ctx, billing.EventSubscriptionUpdated, &s); err != nil {
		return err
	}
	if s.Status == billing.StatusTrialing {
		return nil
	}
	// The card was just accepted: the first charge goes through, whatever
	// it does later.
	lines, due, _ := p.periodLines(&s, s.PeriodStart, s.PeriodEnd)
	inv, err := newInvoice(ctx, tx, &s, reasonCreate, lines, due, s.PeriodStart, s.PeriodEnd)
	if err != nil {
		return err
	}
	inv.AttemptCount = 1
	inv.pay(now)
	if err := insertInvoice(ctx, tx, &inv); err != nil {
		return err
	}
	return b.invoice(ctx, billing.EventInvoicePaid, &inv, &s)
}

// changeCard puts a new card on the portal's subscription and retries its
// unpaid invoices with it.
func (p *Provider) changeCard(ctx context.Context, tx store.Tx, b *batch, c checkout, card card) error {
	s, err := readSubscription(ctx, tx, c.SubscriptionID)
	if err != nil {
		return err
	}
	if !s.live() {
		return kernel.Errorf(kernel.CodeConflict, "This subscription has ended: subscribe again from the billing page.")
	}
	s.CardLast4, s.CardBehaviour = card.last4, card.behaviour
	open, err := invoices(ctx, tx, selectOpenInvoicesSQL, s.WorkspaceID, s.ID)
	if err != nil {
		return err
	}
	_, _, err = p.collect(ctx, tx, b, &s, open)
	return err
}

// state is where a session stands at now.
func (c checkout) state(now time.Time) string {
	switch {
	case c.Status == checkoutDone:
		return PageCompleted
	case !now.Before(c.ExpiresAt):
		return PageExpired
	}
	return PageOpen
}

// successURL is where a completed session sends the customer.
func (c checkout) successURL() string {
	return strings.ReplaceAll(c.SuccessURL, "{CHECKOUT_SESSION_ID}", c.ID)
}

// planName is a plan's name in the catalogue, or its key.
func (p *Provider) planName(key string) string {
	if plan := p.catalog.Plan(key); plan != nil {
		return plan.Name
	}
	return key
}
