package sandboxpay

// WithoutDelivery stops p handing events to the ledger when a change
// commits, as if the process died right after every commit: only
// DeliverPending delivers them.
func WithoutDelivery(p *Provider) { p.deliverAfterCommit = false }
