package catalog

import "atrium/internal/billing"

var billingTypes = []Type{
	{Name: billing.EventSubscriptionChanged, Payload: billing.SubscriptionChangedEvent{},
		Description: "The workspace's subscription changed: a trial started or ended, a plan was bought, changed or canceled, a payment failed or recovered. `change` says which."},
	{Name: billing.EventInvoicePaidType, Payload: billing.InvoiceEvent{},
		Description: "An invoice of the workspace was paid."},
	{Name: billing.EventPaymentFailedType, Payload: billing.InvoiceEvent{},
		Description: "A payment of the workspace failed; the provider tries again at `next_attempt_at`."},
}
