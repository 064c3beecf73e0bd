package mail

// TemplateBillingNotice is the notice billing sends a workspace's owners and
// admins: a trial about to end, a failed payment, each dunning step, a
// restored subscription.
const TemplateBillingNotice = "billing_notice" // data: BillingNotice

// BillingNotice is the data of the billing_notice template. The sender
// writes the words; the template lays them out.
type BillingNotice struct {
	Name          string // the recipient's name; may be empty
	WorkspaceName string
	Subject       string
	// Paragraphs are the message, one sentence or a few each, in order.
	Paragraphs []string
	// ActionLabel and ActionURL are the one thing to do, if any.
	ActionLabel string
	ActionURL   string
}
