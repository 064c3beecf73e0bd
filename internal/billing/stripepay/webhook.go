package stripepay

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

// WebhookTolerance is how old a webhook's signature may be. An older one is
// refused, so a captured request cannot be replayed later.
const WebhookTolerance = 300 * time.Second

// eventTypes maps the Stripe events Atrium acts on to the ledger's types.
// Everything else is billing.EventIgnored. invoice.payment_succeeded is left
// out on purpose: Stripe sends invoice.paid for the same payment (and for
// invoices paid out of band), and one is enough.
var eventTypes = map[stripe.EventType]string{
	"checkout.session.completed":                   billing.EventCheckoutCompleted,
	"checkout.session.async_payment_succeeded":     billing.EventSubscriptionUpdated,
	"checkout.session.async_payment_failed":        billing.EventSubscriptionUpdated,
	"customer.subscription.created":                billing.EventSubscriptionUpdated,
	"customer.subscription.updated":                billing.EventSubscriptionUpdated,
	"customer.subscription.paused":                 billing.EventSubscriptionUpdated,
	"customer.subscription.resumed":                billing.EventSubscriptionUpdated,
	"customer.subscription.pending_update_applied": billing.EventSubscriptionUpdated,
	"customer.subscription.pending_update_expired": billing.EventSubscriptionUpdated,
	"customer.subscription.deleted":                billing.EventSubscriptionDeleted,
	"invoice.paid":                                 billing.EventInvoicePaid,
	"invoice.payment_failed":                       billing.EventInvoicePaymentFailed,
	"invoice.finalized":                            billing.EventInvoiceUpdated,
	"invoice.updated":                              billing.EventInvoiceUpdated,
	"invoice.voided":                               billing.EventInvoiceUpdated,
	"invoice.marked_uncollectible":                 billing.EventInvoiceUpdated,
	"customer.updated":                             billing.EventCustomerUpdated,
}

// ParseWebhook verifies a Stripe webhook and turns it into the ledger's
// event. The signature (the Stripe-Signature header) must match the body
// under the endpoint's signing secret and be at most WebhookTolerance old;
// otherwise it returns invalid, with a message that says which check failed
// and never the secret. Events of the API version the endpoint chose are
// read whatever stripe-go's own version: Atrium reads what it needs again
// from the API (below), in stripe-go's version.
//
// Stripe delivers events at least once and in no particular order, so the
// views an event carries are not taken from its body: ParseWebhook reads
// the subscription, invoice or customer from Stripe as it is now, and
// stamps the view with a version later than any read before (see
// Provider.version). The ledger, which ignores a view older than the one it
// holds, thus ends on Stripe's final state whatever the order of arrival.
// Only when Stripe no longer has the object is the event's copy used, with
// the event's creation time as its version (older than any read after it).
// A failed read returns apiError's codes (unavailable, so Stripe retries).
//
// An event Atrium does not act on, or about objects Atrium did not create
// (no atrium_workspace_id in their metadata, as in a Stripe account shared
// with another product), is returned with Type billing.EventIgnored.
func (p *Provider) ParseWebhook(ctx context.Context, payload []byte, signatureHeader string) (billing.ProviderEvent, error) {
	ev, err := webhook.ConstructEventWithOptions(payload, signatureHeader, p.webhookSecret, webhook.ConstructEventOptions{
		Tolerance:                WebhookTolerance,
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		return billing.ProviderEvent{}, signatureError(err)
	}
	if ev.ID == "" || ev.Data == nil || len(ev.Data.Raw) == 0 {
		return billing.ProviderEvent{}, kernel.Invalid("body", "the body is not a Stripe event")
	}
	out := billing.ProviderEvent{
		Provider:     billing.ProviderStripe,
		ID:           ev.ID,
		Type:         billing.EventIgnored,
		ProviderType: string(ev.Type),
		CreatedAt:    unixTime(ev.Created),
		Raw:          json.RawMessage(append([]byte(nil), payload...)),
	}
	typ, ok := eventTypes[ev.Type]
	if !ok {
		return out, nil
	}
	e := eventObject{raw: ev.Data.Raw, version: time.Unix(ev.Created, 0).UnixMicro()}
	var workspace uuid.UUID
	switch kind, _, _ := strings.Cut(out.ProviderType, "."); kind {
	case "checkout":
		workspace, err = p.fillCheckout(ctx, &out, e)
	case "invoice":
		workspace, err = p.fillInvoice(ctx, &out, e)
	default:
		if out.ProviderType == "customer.updated" {
			workspace, err = p.fillCustomer(ctx, &out, e)
		} else {
			workspace, err = p.fillSubscription(ctx, &out, e)
		}
	}
	if err != nil {
		return billing.ProviderEvent{}, err
	}
	if workspace == uuid.Nil {
		return billing.ProviderEvent{Provider: out.Provider, ID: out.ID, Type: billing.EventIgnored,
			ProviderType: out.ProviderType, CreatedAt: out.CreatedAt, Raw: out.Raw}, nil
	}
	out.Type = typ
	return out, nil
}

// eventObject is an event's data.object and the version of that copy.
type eventObject struct {
	raw     json.RawMessage
	version int64
}

func (e eventObject) decode(v any) error {
	if err := json.Unmarshal(e.raw, v); err != nil {
		return kernel.Invalid("body", "the event's object is malformed")
	}
	return nil
}

// fillCheckout fills a Checkout session event's views: the subscription the
// session created and, once it completed, the customer who paid. Sessions
// of other modes (a one-off payment), and sessions whose subscription
// Stripe no longer has, leave the event ignored.
func (p *Provider) fillCheckout(ctx context.Context, out *billing.ProviderEvent, e eventObject) (uuid.UUID, error) {
	var s stripe.CheckoutSession
	if err := e.decode(&s); err != nil {
		return uuid.Nil, err
	}
	if s.Mode != stripe.CheckoutSessionModeSubscription || s.Subscription == nil || s.Subscription.ID == "" {
		return uuid.Nil, nil
	}
	workspace := parseWorkspaceMeta(s.Metadata[MetaWorkspace])
	if workspace == uuid.Nil {
		workspace = parseWorkspaceMeta(s.ClientReferenceID)
	}
	if workspace == uuid.Nil {
		return uuid.Nil, nil
	}
	sub, err := p.refreshSubscription(ctx, s.Subscription.ID, nil, 0)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return uuid.Nil, nil
	}
	if err != nil {
		return uuid.Nil, err
	}
	fillIdentity(sub, workspace, s.Metadata[MetaPlan], p.catalog)
	out.Subscription = sub
	if out.ProviderType != "checkout.session.completed" {
		return workspace, nil
	}
	c := &billing.ProviderCustomer{Provider: billing.ProviderStripe, WorkspaceID: workspace}
	if s.Customer != nil {
		c.ID = s.Customer.ID
	}
	if c.ID == "" {
		c.ID = sub.CustomerID
	}
	if d := s.CustomerDetails; d != nil {
		c.Email, c.Name = d.Email, d.Name
	}
	out.Customer = c
	return workspace, nil
}

// fillSubscription fills a subscription event's view.
func (p *Provider) fillSubscription(ctx context.Context, out *billing.ProviderEvent, e eventObject) (uuid.UUID, error) {
	var s stripe.Subscription
	if err := e.decode(&s); err != nil {
		return uuid.Nil, err
	}
	if s.ID == "" {
		return uuid.Nil, kernel.Invalid("body", "the event's subscription has no ID")
	}
	sub, err := p.refreshSubscription(ctx, s.ID, &s, e.version)
	if err != nil {
		return uuid.Nil, err
	}
	out.Subscription = sub
	return sub.WorkspaceID, nil
}

// refreshSubscription reads a subscription from Stripe. When Stripe no
// longer has it, the event's copy (embedded, with version embeddedVersion)
// stands in; without one, the not_found is returned. The workspace and the
// plan Atrium wrote into the metadata do not change, so a read object that
// lacks them (edited by hand) takes them from the event's copy.
func (p *Provider) refreshSubscription(ctx context.Context, id string, embedded *stripe.Subscription, embeddedVersion int64) (*billing.ProviderSubscription, error) {
	s, version, err := p.retrieveSubscription(ctx, id)
	if err != nil {
		if embedded == nil || !kernel.IsCode(err, kernel.CodeNotFound) {
			return nil, err
		}
		v := p.subscriptionView(embedded, embeddedVersion)
		return &v, nil
	}
	v := p.subscriptionView(s, version)
	if embedded != nil {
		e := p.subscriptionView(embedded, embeddedVersion)
		fillIdentity(&v, e.WorkspaceID, e.PlanKey, p.catalog)
	}
	return &v, nil
}

// fillIdentity gives a view the workspace and plan it lacks.
func fillIdentity(v *billing.ProviderSubscription, workspace uuid.UUID, planKey string, catalog *billing.Catalog) {
	if v.WorkspaceID == uuid.Nil {
		v.WorkspaceID = workspace
	}
	if v.PlanKey == "" && catalog.Plan(planKey) != nil {
		v.PlanKey = planKey
	}
}

// fillInvoice fills an invoice event's views: the invoice, and the
// subscription it bills (a payment, or a failed one, changes its status).
func (p *Provider) fillInvoice(ctx context.Context, out *billing.ProviderEvent, e eventObject) (uuid.UUID, error) {
	var embedded stripe.Invoice
	if err := e.decode(&embedded); err != nil {
		return uuid.Nil, err
	}
	if embedded.ID == "" {
		return uuid.Nil, kernel.Invalid("body", "the event's invoice has no ID")
	}
	params := &stripe.InvoiceRetrieveParams{}
	params.AddExpand("customer")
	version := p.version()
	inv, err := p.client.V1Invoices.Retrieve(ctx, embedded.ID, params)
	if err != nil {
		if err = apiError("invoice "+embedded.ID, err); !kernel.IsCode(err, kernel.CodeNotFound) {
			return uuid.Nil, err
		}
		inv, version = &embedded, e.version
	}
	view := invoiceView(inv, version)
	fromEvent := invoiceView(&embedded, e.version)
	if view.WorkspaceID == uuid.Nil {
		view.WorkspaceID = fromEvent.WorkspaceID
	}
	if view.SubscriptionID == "" {
		view.SubscriptionID = fromEvent.SubscriptionID
	}
	if view.SubscriptionID != "" {
		sub, err := p.refreshSubscription(ctx, view.SubscriptionID, nil, 0)
		switch {
		case err == nil:
			plan := subscriptionMeta(inv, MetaPlan)
			if plan == "" {
				plan = subscriptionMeta(&embedded, MetaPlan)
			}
			fillIdentity(sub, view.WorkspaceID, plan, p.catalog)
			if view.WorkspaceID == uuid.Nil {
				view.WorkspaceID = sub.WorkspaceID
			}
			out.Subscription = sub
		case !kernel.IsCode(err, kernel.CodeNotFound):
			return uuid.Nil, err
		}
	}
	out.Invoice = &view
	return view.WorkspaceID, nil
}

// subscriptionMeta is one key of the subscription metadata an invoice
// recorded when it was made.
func subscriptionMeta(inv *stripe.Invoice, key string) string {
	if inv.Parent == nil || inv.Parent.SubscriptionDetails == nil {
		return ""
	}
	return inv.Parent.SubscriptionDetails.Metadata[key]
}

// invoiceView turns a Stripe invoice into the ledger's view. The workspace
// comes from the subscription's metadata as the invoice recorded it, else
// the invoice's own metadata, else its customer's. The period is the one
// its lines bill (an invoice's own period_start and period_end describe
// the pending items it swept up, which for a renewal is the past period).
func invoiceView(inv *stripe.Invoice, version int64) billing.ProviderInvoice {
	v := billing.ProviderInvoice{
		Provider:      billing.ProviderStripe,
		ID:            inv.ID,
		Number:        inv.Number,
		Status:        string(inv.Status),
		Currency:      string(inv.Currency),
		AmountDue:     inv.AmountDue,
		AmountPaid:    inv.AmountPaid,
		HostedURL:     inv.HostedInvoiceURL,
		Lines:         invoiceLines(inv),
		CreatedAt:     unixTime(inv.Created),
		AttemptCount:  int(inv.AttemptCount),
		NextAttemptAt: unixTime(inv.NextPaymentAttempt),
		Version:       version,
	}
	if inv.Customer != nil {
		v.CustomerID = inv.Customer.ID
	}
	if inv.StatusTransitions != nil {
		v.PaidAt = unixTime(inv.StatusTransitions.PaidAt)
	}
	if pa := inv.Parent; pa != nil && pa.SubscriptionDetails != nil {
		if pa.SubscriptionDetails.Subscription != nil {
			v.SubscriptionID = pa.SubscriptionDetails.Subscription.ID
		}
		v.WorkspaceID = parseWorkspaceMeta(pa.SubscriptionDetails.Metadata[MetaWorkspace])
	}
	if v.WorkspaceID == uuid.Nil {
		v.WorkspaceID = parseWorkspaceMeta(inv.Metadata[MetaWorkspace])
	}
	if v.WorkspaceID == uuid.Nil && inv.Customer != nil {
		v.WorkspaceID = parseWorkspaceMeta(inv.Customer.Metadata[MetaWorkspace])
	}
	for _, l := range v.Lines {
		if !l.PeriodStart.IsZero() && (v.PeriodStart.IsZero() || l.PeriodStart.Before(v.PeriodStart)) {
			v.PeriodStart = l.PeriodStart
		}
		if l.PeriodEnd.After(v.PeriodEnd) {
			v.PeriodEnd = l.PeriodEnd
		}
	}
	if v.PeriodStart.IsZero() {
		v.PeriodStart, v.PeriodEnd = unixTime(inv.PeriodStart), unixTime(inv.PeriodEnd)
	}
	return v
}

// fillCustomer fills a customer event's view, read from Stripe (the
// event's copy when the customer is deleted or gone).
func (p *Provider) fillCustomer(ctx context.Context, out *billing.ProviderEvent, e eventObject) (uuid.UUID, error) {
	var embedded stripe.Customer
	if err := e.decode(&embedded); err != nil {
		return uuid.Nil, err
	}
	if embedded.ID == "" {
		return uuid.Nil, kernel.Invalid("body", "the event's customer has no ID")
	}
	c, err := p.client.V1Customers.Retrieve(ctx, embedded.ID, nil)
	if err != nil {
		if err = apiError("customer "+embedded.ID, err); !kernel.IsCode(err, kernel.CodeNotFound) {
			return uuid.Nil, err
		}
		c = &embedded
	}
	if c.Deleted {
		c = &embedded
	}
	view := &billing.ProviderCustomer{
		Provider:    billing.ProviderStripe,
		ID:          c.ID,
		WorkspaceID: parseWorkspaceMeta(c.Metadata[MetaWorkspace]),
		Email:       c.Email,
		Name:        c.Name,
	}
	if view.WorkspaceID == uuid.Nil {
		view.WorkspaceID = parseWorkspaceMeta(embedded.Metadata[MetaWorkspace])
	}
	out.Customer = view
	return view.WorkspaceID, nil
}

// signatureError says which check a webhook failed, as invalid.
func signatureError(err error) error {
	msg := ""
	switch {
	case errors.Is(err, webhook.ErrNotSigned):
		msg = "the Stripe-Signature header is missing"
	case errors.Is(err, webhook.ErrInvalidHeader):
		msg = "the Stripe-Signature header is malformed"
	case errors.Is(err, webhook.ErrNoValidSignature):
		msg = "no signature in the Stripe-Signature header matches the body"
	case errors.Is(err, webhook.ErrTooOld):
		msg = "the signature is older than 300 seconds"
	default: // signed, but not the JSON of an event
		return &kernel.Error{Code: kernel.CodeInvalid, Message: "the body is not a Stripe event", Err: err}
	}
	return &kernel.Error{Code: kernel.CodeInvalid, Message: msg,
		Fields: map[string]string{"header.Stripe-Signature": msg}, Err: err}
}
