package billing

import "time"

// The event types billing emits, documented in the event catalogue
// (internal/events/catalog/billing.go).
const (
	EventSubscriptionChanged = "subscription.changed"
	EventInvoicePaidType     = "invoice.paid"
	EventPaymentFailedType   = "invoice.payment_failed"
)

// SubscriptionChangedEvent is the data of subscription.changed: the
// subscription after a change and what the change was.
type SubscriptionChangedEvent struct {
	Change            string     `json:"change" example:"upgraded" doc:"What happened: trial_started, trial_extended, trial_ended, subscribed, upgraded, downgrade_scheduled, downgrade_canceled, downgraded, cancel_scheduled, resumed, canceled, renewed, interval_changed, past_due, dunning_downgraded, dunning_suspended, dunning_deletion_scheduled, payment_recovered, trial_ending_3d, trial_ending_1d, updated"`
	Plan              string     `json:"plan" example:"pro" doc:"The plan now"`
	PreviousPlan      string     `json:"previous_plan" example:"free" doc:"The plan before the change"`
	Status            string     `json:"status" example:"active" doc:"trialing, active, past_due or canceled"`
	PreviousStatus    string     `json:"previous_status" example:"trialing" doc:"The status before the change"`
	Interval          string     `json:"interval" example:"month" doc:"month or year"`
	CancelAtPeriodEnd bool       `json:"cancel_at_period_end" doc:"Whether the subscription ends at the end of its period"`
	CurrentPeriodEnd  *time.Time `json:"current_period_end" doc:"When the current period ends; null on the free plan"`
	TrialEnd          *time.Time `json:"trial_end" doc:"When the trial ends; null without a trial"`
}

// InvoiceEvent is the data of invoice.paid and invoice.payment_failed.
type InvoiceEvent struct {
	ID            string     `json:"id" example:"in_1Nv0rN2eZvKYlo2C" doc:"The provider's invoice ID"`
	Number        string     `json:"number" doc:"The invoice number"`
	Status        string     `json:"status" example:"paid" doc:"draft, open, paid, void or uncollectible"`
	Currency      string     `json:"currency" example:"usd" doc:"ISO 4217 code, lowercase"`
	AmountDue     int64      `json:"amount_due" example:"2900" doc:"Amount due, in minor units"`
	AmountPaid    int64      `json:"amount_paid" example:"2900" doc:"Amount paid, in minor units"`
	AttemptCount  int        `json:"attempt_count" doc:"Payment attempts so far"`
	NextAttemptAt *time.Time `json:"next_attempt_at" doc:"When the provider tries again; null when it will not"`
}
