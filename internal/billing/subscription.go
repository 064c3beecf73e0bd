package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Dunning steps of an unpaid subscription, in order.
const (
	DunningNone              = ""
	DunningPastDue           = "past_due"
	DunningDowngraded        = "downgraded"
	DunningSuspended         = "suspended"
	DunningDeletionScheduled = "deletion_scheduled"
)

// Subscription is a workspace's row of the ledger: what it is on, how it
// pays and where it stands. A workspace that never subscribed has none; the
// ledger then answers a Subscription on the default plan with a nil ID.
type Subscription struct {
	ID                     uuid.UUID
	WorkspaceID            uuid.UUID
	PlanKey                string
	PlanVersionID          uuid.UUID
	Interval               Interval
	Status                 Status
	Provider               string
	ProviderCustomerID     string
	ProviderSubscriptionID string
	ProviderVersion        int64
	// Currency is fixed at the first paid subscription; empty before.
	Currency string
	Quantity int
	// Amount is what the subscription pays per Interval, in minor units.
	Amount             int64
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
	CancelAtPeriodEnd  bool
	// ScheduledPlanKey is a downgrade that takes effect at the period end.
	ScheduledPlanKey  string
	ScheduledInterval Interval
	TrialEnd          *time.Time
	TrialUsed         bool
	TrialExtended     bool
	HasPaymentMethod  bool
	PastDueSince      *time.Time
	DunningStep       string
	CanceledAt        *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Stored reports whether the subscription is a row of the ledger rather than
// the default plan of a workspace that never subscribed.
func (s Subscription) Stored() bool { return s.ID != uuid.Nil }

// MonthlyAmount is the subscription's recurring revenue normalised to a
// month (a yearly price divided by twelve), zero unless it is paid: trials
// and canceled subscriptions bring nothing in.
func (s Subscription) MonthlyAmount() int64 {
	if s.Status != StatusActive && s.Status != StatusPastDue {
		return 0
	}
	if s.Interval == Yearly {
		return s.Amount / 12
	}
	return s.Amount
}

const subscriptionColumns = `id, workspace_id, plan_key, plan_version_id, billing_interval, status, provider,
    provider_customer_id, provider_subscription_id, provider_version, currency, quantity, amount,
    current_period_start, current_period_end, cancel_at_period_end, scheduled_plan_key, scheduled_interval,
    trial_end, trial_used, trial_extended, has_payment_method, past_due_since, dunning_step, canceled_at,
    created_at, updated_at`

const (
	selectSubscriptionSQL = `SELECT ` + subscriptionColumns + ` FROM subscription WHERE workspace_id = $1`
	upsertSubscriptionSQL = `INSERT INTO subscription (` + subscriptionColumns + `)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
    ON CONFLICT (workspace_id) DO UPDATE SET plan_key = excluded.plan_key, plan_version_id = excluded.plan_version_id,
        billing_interval = excluded.billing_interval, status = excluded.status, provider = excluded.provider,
        provider_customer_id = excluded.provider_customer_id, provider_subscription_id = excluded.provider_subscription_id,
        provider_version = excluded.provider_version, currency = excluded.currency, quantity = excluded.quantity,
        amount = excluded.amount, current_period_start = excluded.current_period_start,
        current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end,
        scheduled_plan_key = excluded.scheduled_plan_key, scheduled_interval = excluded.scheduled_interval,
        trial_end = excluded.trial_end, trial_used = excluded.trial_used, trial_extended = excluded.trial_extended,
        has_payment_method = excluded.has_payment_method, past_due_since = excluded.past_due_since,
        dunning_step = excluded.dunning_step, canceled_at = excluded.canceled_at, updated_at = excluded.updated_at`
)

func scanSubscription(row store.Row) (Subscription, error) {
	var s Subscription
	var interval, status, scheduledInterval string
	err := row.Scan(&s.ID, &s.WorkspaceID, &s.PlanKey, &s.PlanVersionID, &interval, &status, &s.Provider,
		&s.ProviderCustomerID, &s.ProviderSubscriptionID, &s.ProviderVersion, &s.Currency, &s.Quantity, &s.Amount,
		&s.CurrentPeriodStart, &s.CurrentPeriodEnd, &s.CancelAtPeriodEnd, &s.ScheduledPlanKey, &scheduledInterval,
		&s.TrialEnd, &s.TrialUsed, &s.TrialExtended, &s.HasPaymentMethod, &s.PastDueSince, &s.DunningStep, &s.CanceledAt,
		&s.CreatedAt, &s.UpdatedAt)
	s.Interval, s.Status, s.ScheduledInterval = Interval(interval), Status(status), Interval(scheduledInterval)
	for _, t := range []*time.Time{s.CurrentPeriodStart, s.CurrentPeriodEnd, s.TrialEnd, s.PastDueSince, s.CanceledAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, err
}

// readSubscription reads the workspace's row inside tx, or the default plan's
// stand-in (nil ID) when there is none.
func (l *Ledger) readSubscription(ctx context.Context, tx store.Tx) (Subscription, error) {
	s, err := scanSubscription(tx.QueryRow(ctx, selectSubscriptionSQL, tx.WorkspaceID()))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return l.defaultSubscription(tx.WorkspaceID()), nil
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription: read: %w", err)
	}
	return s, nil
}

// defaultSubscription is where a workspace that never subscribed stands.
func (l *Ledger) defaultSubscription(workspaceID uuid.UUID) Subscription {
	return Subscription{
		WorkspaceID: workspaceID, PlanKey: l.catalog.DefaultPlan, PlanVersionID: l.versions[l.catalog.DefaultPlan],
		Interval: Monthly, Status: StatusActive, Provider: ProviderNone, Quantity: 1,
	}
}

// saveSubscription writes s as the workspace's row (inserting it the first
// time) with updated_at = now.
func saveSubscription(ctx context.Context, tx store.Tx, s *Subscription) error {
	now := tx.Now()
	if s.ID == uuid.Nil {
		s.ID = kernel.NewID()
		s.CreatedAt = now
	}
	s.UpdatedAt = now
	_, err := tx.Exec(ctx, upsertSubscriptionSQL, s.ID, s.WorkspaceID, s.PlanKey, s.PlanVersionID, string(s.Interval),
		string(s.Status), s.Provider, s.ProviderCustomerID, s.ProviderSubscriptionID, s.ProviderVersion, s.Currency,
		s.Quantity, s.Amount, s.CurrentPeriodStart, s.CurrentPeriodEnd, s.CancelAtPeriodEnd, s.ScheduledPlanKey,
		string(s.ScheduledInterval), s.TrialEnd, s.TrialUsed, s.TrialExtended, s.HasPaymentMethod, s.PastDueSince,
		s.DunningStep, s.CanceledAt, s.CreatedAt, s.UpdatedAt)
	if err != nil {
		return fmt.Errorf("subscription: save: %w", err)
	}
	return nil
}

// timePtr returns a pointer to t, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}
