package webhooks

import (
	"context"

	"github.com/google/uuid"
)

// Feature is the plan feature outgoing webhooks need.
const Feature = "webhooks"

// Plans says whether a workspace's plan includes webhooks;
// billing.Entitlements is one (answering from its in-process cache).
type Plans interface {
	Can(ctx context.Context, workspaceID uuid.UUID, feature string) (bool, error)
	// Require returns payment_required, naming the feature and where to
	// upgrade, when the plan does not include it.
	Require(ctx context.Context, workspaceID uuid.UUID, feature string) error
}

// WithPlans gates webhooks by plan: creating, enabling, testing and
// replaying endpoints answer 402 payment_required on a plan without the
// webhooks feature, and no event of such a workspace is delivered (its
// endpoints stay, readable and deletable, and resume after an upgrade with
// the events from then on). Without it (nil) every workspace has webhooks.
func (s *Service) WithPlans(p Plans) *Service {
	s.plans = p
	return s
}

// requirePlan returns payment_required when the workspace's plan lacks webhooks.
func (s *Service) requirePlan(ctx context.Context, workspaceID uuid.UUID) error {
	if s.plans == nil {
		return nil
	}
	return s.plans.Require(ctx, workspaceID, Feature)
}

// planAllows reports whether the workspace's events may be delivered.
func (s *Service) planAllows(ctx context.Context, workspaceID uuid.UUID) (bool, error) {
	if s.plans == nil {
		return true, nil
	}
	return s.plans.Can(ctx, workspaceID, Feature)
}
