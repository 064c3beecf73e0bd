package billing

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Interval is how often a subscription is billed.
type Interval string

// Intervals.
const (
	Monthly Interval = "month"
	Yearly  Interval = "year"
)

// Status is where a subscription stands. A workspace without a paid
// subscription or a trial is on the default (free) plan with status active.
type Status string

// Statuses.
const (
	StatusTrialing Status = "trialing"
	StatusActive   Status = "active"
	StatusPastDue  Status = "past_due"
	StatusCanceled Status = "canceled"
)

// Provider names.
const (
	ProviderNone    = "none" // the default plan, or a trial without a card
	ProviderSandbox = "sandbox"
	ProviderStripe  = "stripe"
)

// Provider is a payment provider: the sandbox by default, Stripe when
// configured. A provider never writes the ledger itself: what it reports
// (ProviderEvent) goes through Ledger.Apply, the one code path every provider
// shares. Methods that change something take an idempotency key, so a retried
// call never charges twice, and are never called inside a database
// transaction.
type Provider interface {
	// Name is the provider's name as stored in the ledger ("sandbox", "stripe").
	Name() string
	// Checkout starts a checkout for a workspace to subscribe to a plan and
	// returns where to send the customer.
	Checkout(ctx context.Context, req CheckoutRequest) (CheckoutSession, error)
	// Portal returns the URL of the provider's billing portal for a customer,
	// which sends them back to returnURL.
	Portal(ctx context.Context, customerID, returnURL string) (string, error)
	// PreviewChange says what changing a subscription's plan or interval now
	// would cost, with proration, without changing anything.
	PreviewChange(ctx context.Context, req ChangeRequest) (ChangePreview, error)
	// Change moves a subscription to another plan or interval now, prorated.
	Change(ctx context.Context, req ChangeRequest) (ProviderSubscription, error)
	// Cancel sets a subscription to end at its period end (atPeriodEnd) or now.
	Cancel(ctx context.Context, subscriptionID string, atPeriodEnd bool, idempotencyKey string) (ProviderSubscription, error)
	// Resume undoes a cancellation at period end before the period ends.
	Resume(ctx context.Context, subscriptionID, idempotencyKey string) (ProviderSubscription, error)
	// Subscription reads a subscription as the provider has it now, for the
	// reconcile job and for events that arrive out of order.
	Subscription(ctx context.Context, subscriptionID string) (ProviderSubscription, error)
}

// CheckoutRequest asks for a checkout of one plan price.
type CheckoutRequest struct {
	WorkspaceID uuid.UUID
	// CustomerID is the workspace's provider customer, if it has one already.
	CustomerID string
	// Email is the billing contact, prefilled on the provider's page.
	Email    string
	Plan     Plan
	Interval Interval
	Currency string
	// SuccessURL and CancelURL are where the provider sends the customer back.
	SuccessURL, CancelURL string
	// TrialEnd, when set, keeps the trial running until then on the new
	// subscription (an upgrade during a trial is not charged before its end).
	TrialEnd       time.Time
	IdempotencyKey string
}

// CheckoutSession is a started checkout.
type CheckoutSession struct {
	ID  string
	URL string
}

// ChangeRequest changes a subscription's plan or interval.
type ChangeRequest struct {
	SubscriptionID string
	CustomerID     string
	Plan           Plan
	Interval       Interval
	Currency       string
	// AtPeriodEnd makes the change take effect at the end of the current
	// period, with nothing charged or credited now (a downgrade); without
	// it the change applies now, prorated (an upgrade).
	AtPeriodEnd    bool
	IdempotencyKey string
}

// ChangePreview is what a change would cost now: the prorated amount due
// today (negative is a credit) and the new recurring amount, in minor units
// of Currency.
type ChangePreview struct {
	// AtPeriodEnd is set for a change that waits for the period end: nothing
	// is charged now.
	AtPeriodEnd  bool
	Currency     string
	AmountDueNow int64
	NextAmount   int64
	NextBilledAt time.Time
	Lines        []InvoiceLine
}

// ProviderSubscription is a provider's view of one subscription, the one shape
// the ledger applies, whichever provider reported it.
type ProviderSubscription struct {
	Provider   string
	ID         string
	CustomerID string
	// WorkspaceID comes from the metadata Atrium put on the subscription.
	WorkspaceID uuid.UUID
	// PlanKey and Interval come from the subscribed price (mapped back
	// through the plan catalogue's provider price IDs) or its metadata.
	PlanKey            string
	Interval           Interval
	Currency           string
	Status             Status
	CurrentPeriodStart time.Time
	CurrentPeriodEnd   time.Time
	CancelAtPeriodEnd  bool
	// CanceledAt is when the subscription ended, zero while it runs.
	CanceledAt time.Time
	// TrialEnd is zero without a trial.
	TrialEnd         time.Time
	Quantity         int
	HasPaymentMethod bool
	// Version orders the provider's views of the same subscription: the
	// ledger ignores a view older than the one it applied last. Providers
	// derive it from their own ordering (an event's creation time, an object
	// version, a re-fetch).
	Version int64
}

// ProviderInvoice is a provider's view of one invoice.
type ProviderInvoice struct {
	Provider       string
	ID             string
	CustomerID     string
	SubscriptionID string
	WorkspaceID    uuid.UUID
	Number         string
	// Status is draft, open, paid, void or uncollectible.
	Status      string
	Currency    string
	AmountDue   int64
	AmountPaid  int64
	PeriodStart time.Time
	PeriodEnd   time.Time
	HostedURL   string
	Lines       []InvoiceLine
	CreatedAt   time.Time
	PaidAt      time.Time
	// AttemptCount and NextAttemptAt describe the provider's payment retries.
	AttemptCount  int
	NextAttemptAt time.Time
	Version       int64
}

// InvoiceLine is one line of an invoice or a preview.
type InvoiceLine struct {
	Description string    `json:"description"`
	Amount      int64     `json:"amount"`
	Proration   bool      `json:"proration,omitempty"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
}

// ProviderCustomer is a provider's view of a customer.
type ProviderCustomer struct {
	Provider    string
	ID          string
	WorkspaceID uuid.UUID
	Email       string
	Name        string
}

// Event types the ledger understands. A provider maps its own events onto
// these; anything else it reports as EventIgnored (answered 200, logged).
const (
	EventCheckoutCompleted    = "checkout.completed"
	EventSubscriptionUpdated  = "subscription.updated" // created and updated alike
	EventSubscriptionDeleted  = "subscription.deleted"
	EventInvoicePaid          = "invoice.paid"
	EventInvoicePaymentFailed = "invoice.payment_failed"
	EventInvoiceUpdated       = "invoice.updated"
	EventCustomerUpdated      = "customer.updated"
	EventIgnored              = "ignored"
)

// ProviderEvent is one thing a provider reports. ID is the provider's event
// ID: the ledger stores it in the same transaction as the effect, so an event
// delivered twice, even concurrently, is applied once.
type ProviderEvent struct {
	Provider string
	ID       string
	// Type is one of the Event… constants; ProviderType is the provider's own.
	Type         string
	ProviderType string
	CreatedAt    time.Time
	Subscription *ProviderSubscription
	Invoice      *ProviderInvoice
	Customer     *ProviderCustomer
	// Raw is the event as received, kept with the stored event for disputes.
	Raw json.RawMessage
}
