package billing

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// EntitlementsTTL bounds how long a cached plan is trusted without being told
// of a change: changes reach every node through the bus at once (Invalidate);
// this is the safety net for a message lost while NATS was away.
const EntitlementsTTL = 30 * time.Second

// Entitlements answers what a workspace's plan allows, for the API, the
// console and jobs alike. Answers come from an in-process cache: the first
// question about a workspace reads its subscription once, later ones do no
// I/O until the subscription changes (Invalidate, called on every node) or
// EntitlementsTTL passes.
type Entitlements struct {
	ledger     *Ledger
	clock      kernel.Clock
	upgradeURL func(workspaceID uuid.UUID) string
	seed       maphash.Seed
	shards     [entitlementShards]entitlementShard
}

const entitlementShards = 32

type entitlementShard struct {
	mu      sync.RWMutex
	entries map[uuid.UUID]grant
	// generation counts the shard's invalidations: a read that began
	// before one is not cached, so a change is never hidden by a slow read.
	generation uint64
}

// grant is what a workspace may do now, with when it was read.
type grant struct {
	plan *Plan
	// suspended is set from 30 days unpaid: the workspace is read-only.
	suspended bool
	loadedAt  time.Time
}

// NewEntitlements builds the cache over the ledger. upgradeURL tells a
// refused caller where to upgrade (the console's billing page).
func NewEntitlements(ledger *Ledger, clock kernel.Clock, upgradeURL func(workspaceID uuid.UUID) string) *Entitlements {
	e := &Entitlements{ledger: ledger, clock: clock, upgradeURL: upgradeURL, seed: maphash.MakeSeed()}
	for i := range e.shards {
		e.shards[i].entries = map[uuid.UUID]grant{}
	}
	return e
}

// EffectivePlan is the plan whose features and limits a subscription grants
// now: its own plan while trialing, active or past due, the default plan
// once unpaid long enough to be downgraded (dunning) or when ended. Features
// and limits follow the catalogue's current definition of the plan: an
// operator improving a plan improves it for every subscriber, while what
// they pay stays that of their plan version.
func (c *Catalog) EffectivePlan(s Subscription) *Plan {
	switch {
	case s.Status == StatusCanceled:
		return c.Default()
	case s.DunningStep == DunningDowngraded || s.DunningStep == DunningSuspended || s.DunningStep == DunningDeletionScheduled:
		return c.Default()
	}
	if p := c.Plan(s.PlanKey); p != nil {
		return p
	}
	return c.Default()
}

// Plan returns the plan granting the workspace's entitlements now.
func (e *Entitlements) Plan(ctx context.Context, workspaceID uuid.UUID) (*Plan, error) {
	g, err := e.grant(ctx, workspaceID)
	return g.plan, err
}

// Suspended reports whether the workspace is read-only for non-payment (30
// days unpaid and later): reads and paying go on, nothing else may change.
func (e *Entitlements) Suspended(ctx context.Context, workspaceID uuid.UUID) (bool, error) {
	g, err := e.grant(ctx, workspaceID)
	return g.suspended, err
}

func (e *Entitlements) grant(ctx context.Context, workspaceID uuid.UUID) (grant, error) {
	sh := &e.shards[maphash.Comparable(e.seed, workspaceID)%entitlementShards]
	now := e.clock.Now()
	sh.mu.RLock()
	g, ok := sh.entries[workspaceID]
	generation := sh.generation
	sh.mu.RUnlock()
	if ok && now.Sub(g.loadedAt) < EntitlementsTTL && !now.Before(g.loadedAt) {
		return g, nil
	}
	s, err := e.ledger.Subscription(ctx, workspaceID)
	if err != nil {
		return grant{}, fmt.Errorf("entitlements of %s: %w", workspaceID, err)
	}
	g = grant{plan: e.ledger.catalog.EffectivePlan(s), loadedAt: now,
		suspended: s.DunningStep == DunningSuspended || s.DunningStep == DunningDeletionScheduled}
	sh.mu.Lock()
	if sh.generation == generation {
		sh.entries[workspaceID] = g
	}
	sh.mu.Unlock()
	return g, nil
}

// Can reports whether the workspace's plan includes feature.
func (e *Entitlements) Can(ctx context.Context, workspaceID uuid.UUID, feature string) (bool, error) {
	p, err := e.Plan(ctx, workspaceID)
	if err != nil {
		return false, err
	}
	return p.Can(feature), nil
}

// Limit returns the workspace's limit for metric under its plan: Unlimited
// (-1) for none, 0 for a metric the plan does not name.
func (e *Entitlements) Limit(ctx context.Context, workspaceID uuid.UUID, metric string) (int64, error) {
	p, err := e.Plan(ctx, workspaceID)
	if err != nil {
		return 0, err
	}
	return p.Limit(metric), nil
}

// Require returns nil when the workspace's plan includes feature, and
// otherwise a payment_required error naming the feature and where to
// upgrade.
func (e *Entitlements) Require(ctx context.Context, workspaceID uuid.UUID, feature string) error {
	ok, err := e.Can(ctx, workspaceID, feature)
	if err != nil || ok {
		return err
	}
	return &kernel.Error{
		Code:    kernel.CodePaymentRequired,
		Message: "your plan does not include " + strconv.Quote(feature) + ": upgrade to use it",
		Fields:  map[string]string{"feature": feature, "upgrade_url": e.upgradeURL(workspaceID)},
	}
}

// Invalidate forgets what is cached for the workspace, so the next question
// reads its subscription again. The ledger calls it after every change on
// the node that made it; the bus carries it to the others.
func (e *Entitlements) Invalidate(workspaceID uuid.UUID) {
	sh := &e.shards[maphash.Comparable(e.seed, workspaceID)%entitlementShards]
	sh.mu.Lock()
	delete(sh.entries, workspaceID)
	sh.generation++
	sh.mu.Unlock()
}
