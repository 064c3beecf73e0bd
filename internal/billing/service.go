package billing

import (
	"context"

	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// Service is billing as a workspace's people and keys use it: each method
// checks the caller may take the action, then reads or changes the ledger.
type Service struct {
	Ledger       *Ledger
	Entitlements *Entitlements
	// Provider takes payments: the sandbox by default, Stripe when
	// configured; nil answers checkouts and changes with unavailable.
	Provider Provider
	// BaseURL is the public URL customers come back to after a checkout.
	BaseURL string
}

// Subscription returns the workspace's subscription and the plan granting
// its entitlements now. It returns forbidden unless the caller may read the
// workspace's billing.
func (s *Service) Subscription(ctx context.Context, res policy.Resource) (Subscription, *Plan, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingRead, res); err != nil {
		return Subscription{}, nil, err
	}
	sub, err := s.Ledger.Subscription(ctx, res.Workspace)
	if err != nil {
		return Subscription{}, nil, err
	}
	return sub, s.Ledger.catalog.EffectivePlan(sub), nil
}

// StartTrial starts the workspace's trial (see Ledger.StartTrial) for a
// caller who may manage its billing.
func (s *Service) StartTrial(ctx context.Context, res policy.Resource) (Subscription, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
		return Subscription{}, err
	}
	return s.Ledger.StartTrial(ctx, res.Workspace)
}

// ExtendTrial extends the workspace's running trial once (see
// Ledger.ExtendTrial) for a caller who may manage its billing.
func (s *Service) ExtendTrial(ctx context.Context, res policy.Resource) (Subscription, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
		return Subscription{}, err
	}
	return s.Ledger.ExtendTrial(ctx, res.Workspace)
}

// Invoices lists the workspace's invoices, newest first, for a caller who
// may read its billing.
func (s *Service) Invoices(ctx context.Context, res policy.Resource, after *InvoiceCursor, limit int) ([]Invoice, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingRead, res); err != nil {
		return nil, err
	}
	return s.Ledger.Invoices(ctx, res.Workspace, after, limit)
}
