package stripepay

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v85"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

// DefaultReturnPath is where Stripe sends a customer back when the caller
// names no return URL, relative to the public base URL.
const DefaultReturnPath = "/billing"

// minCheckoutTrial is how far ahead Stripe Checkout needs a trial's end to
// be (48 hours), with a margin for the time the customer spends on the page.
const minCheckoutTrial = 48*time.Hour + 10*time.Minute

// Checkout starts a Stripe Checkout session in subscription mode for one
// plan price. A workspace without a Stripe customer gets one first (with
// its workspace in the metadata, so customer events map back to it), under
// a key derived from the caller's. The session and the subscription it
// creates carry the workspace and the plan in their metadata.
//
// A trial end is passed on so the new subscription is not charged before
// it; Checkout needs it at least 48 hours ahead, so a trial ending sooner
// is extended to that (the customer gets up to two free days rather than
// an early charge).
//
// It returns invalid for a missing workspace, a free plan or a plan without
// a price in the currency and interval, and apiError's codes when Stripe fails.
func (p *Provider) Checkout(ctx context.Context, req billing.CheckoutRequest) (billing.CheckoutSession, error) {
	if req.WorkspaceID == uuid.Nil {
		return billing.CheckoutSession{}, kernel.Invalid("workspace_id", "a workspace is required")
	}
	if req.Plan.Free() {
		return billing.CheckoutSession{}, kernel.Invalid("plan", "the free plan needs no checkout")
	}
	currency := strings.ToLower(req.Currency)
	priceID, err := p.priceID(ctx, req.Plan, currency, req.Interval)
	if err != nil {
		return billing.CheckoutSession{}, err
	}
	successURL, err := p.absoluteURL(req.SuccessURL, DefaultReturnPath+"?checkout=success&session_id={CHECKOUT_SESSION_ID}")
	if err != nil {
		return billing.CheckoutSession{}, err
	}
	cancelURL, err := p.absoluteURL(req.CancelURL, DefaultReturnPath+"?checkout=canceled")
	if err != nil {
		return billing.CheckoutSession{}, err
	}
	customerID := req.CustomerID
	if customerID == "" {
		if customerID, err = p.createCustomer(ctx, req.WorkspaceID, req.Email, idempotencyKey(req.IdempotencyKey, ":customer")); err != nil {
			return billing.CheckoutSession{}, err
		}
	}
	workspace := workspaceMeta(req.WorkspaceID)
	meta := map[string]string{MetaWorkspace: workspace, MetaPlan: req.Plan.Key, MetaInterval: string(req.Interval)}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:          stripe.String(customerID),
		ClientReferenceID: stripe.String(workspace),
		LineItems:         []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(priceID), Quantity: stripe.Int64(1)}},
		SuccessURL:        stripe.String(successURL),
		CancelURL:         stripe.String(cancelURL),
		SubscriptionData:  &stripe.CheckoutSessionCreateSubscriptionDataParams{Metadata: meta},
	}
	params.Metadata = meta
	if now := p.clock.Now(); req.TrialEnd.After(now) {
		end := req.TrialEnd
		if end.Sub(now) < minCheckoutTrial {
			end = now.Add(minCheckoutTrial)
		}
		params.SubscriptionData.TrialEnd = stripe.Int64(end.Unix())
	}
	params.IdempotencyKey = idempotencyKey(req.IdempotencyKey, "")
	s, err := p.client.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return billing.CheckoutSession{}, apiError("checkout session", err)
	}
	return billing.CheckoutSession{ID: s.ID, URL: s.URL}, nil
}

// createCustomer creates the Stripe customer of a workspace and returns its ID.
func (p *Provider) createCustomer(ctx context.Context, workspaceID uuid.UUID, email string, key *string) (string, error) {
	params := &stripe.CustomerCreateParams{}
	if email != "" {
		params.Email = stripe.String(email)
	}
	params.AddMetadata(MetaWorkspace, workspaceMeta(workspaceID))
	params.IdempotencyKey = key
	c, err := p.client.V1Customers.Create(ctx, params)
	if err != nil {
		return "", apiError("customer", err)
	}
	return c.ID, nil
}

// Portal opens a Billing Portal session for a customer and returns its URL;
// the portal sends the customer back to returnURL (resolved against the
// public base URL; empty means DefaultReturnPath). Opening a portal session
// changes nothing, so it takes no idempotency key: stripe-go sends its own,
// which its retries reuse. It returns invalid without a customer and
// apiError's codes when Stripe fails (not_found for an unknown customer).
func (p *Provider) Portal(ctx context.Context, customerID, returnURL string) (string, error) {
	if customerID == "" {
		return "", kernel.Invalid("customer_id", "the workspace has no Stripe customer yet")
	}
	ret, err := p.absoluteURL(returnURL, DefaultReturnPath)
	if err != nil {
		return "", err
	}
	s, err := p.client.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{
		Customer:  stripe.String(customerID),
		ReturnURL: stripe.String(ret),
	})
	if err != nil {
		return "", apiError("billing portal session", err)
	}
	return s.URL, nil
}
