package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Ledger is Atrium's own record of every workspace's subscription. Providers
// feed it through Apply; the billing service changes it for trials and
// scheduled changes; nothing else writes it. Every change writes a history
// row, an audit entry and a subscription.changed event in the transaction of
// the change, and tells the entitlements cache once committed.
type Ledger struct {
	db       store.DB
	catalog  *Catalog
	versions map[string]uuid.UUID
	logger   *slog.Logger
	// changed is told, after commit, of every workspace whose subscription
	// changed (the entitlements cache of every node).
	changed     func(ctx context.Context, workspaceID uuid.UUID)
	notices     *Notices
	hold        WorkspaceHold
	planChanged func(ctx context.Context, workspaceID uuid.UUID)
}

// WorkspaceHold takes a workspace out of use at the last dunning step and
// gives it back after a payment, inside the ledger's transaction; tenancy
// provides it.
type WorkspaceHold interface {
	// DeleteForNonPayment soft-deletes the workspace of tx: restorable for
	// the usual window, then deleted for good.
	DeleteForNonPayment(ctx context.Context, tx store.Tx) error
	// RestoreAfterPayment restores it if it is still deleted and restorable.
	RestoreAfterPayment(ctx context.Context, tx store.Tx) error
}

// LedgerConfig is what NewLedger needs.
type LedgerConfig struct {
	DB      store.DB
	Catalog *Catalog
	// Versions maps each plan of the catalogue to its stored version (SyncPlans).
	Versions map[string]uuid.UUID
	Logger   *slog.Logger
	// Changed, if set, is called after a workspace's subscription changed.
	Changed func(ctx context.Context, workspaceID uuid.UUID)
	// Notices, if set, mails owners and admins of trials ending, failed
	// payments and dunning steps.
	Notices *Notices
	// Hold, if set, deletes a workspace unpaid for 60 days and restores it
	// once paid.
	Hold WorkspaceHold
	// PlanChanged, if set, is called after a change of the plan whose
	// limits apply (an upgrade, a downgrade, a trial, a dunning step, a
	// recovery), for the quotas to follow the new limits at once.
	PlanChanged func(ctx context.Context, workspaceID uuid.UUID)
}

// NewLedger builds the ledger.
func NewLedger(cfg LedgerConfig) *Ledger {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Changed == nil {
		cfg.Changed = func(context.Context, uuid.UUID) {}
	}
	return &Ledger{db: cfg.DB, catalog: cfg.Catalog, versions: cfg.Versions, logger: cfg.Logger, changed: cfg.Changed,
		notices: cfg.Notices, hold: cfg.Hold, planChanged: cfg.PlanChanged}
}

// Catalog is the plan catalogue the ledger prices against.
func (l *Ledger) Catalog() *Catalog { return l.catalog }

// Subscription reads a workspace's subscription, or the default plan's
// stand-in (Stored false) when it never subscribed.
func (l *Ledger) Subscription(ctx context.Context, workspaceID uuid.UUID) (Subscription, error) {
	var s Subscription
	err := l.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		var err error
		s, err = l.readSubscription(ctx, tx)
		return err
	})
	return s, err
}

// Outcomes of an applied provider event, stored with it.
const (
	outcomeApplied  = "applied"
	outcomeStale    = "stale"    // an older view than the one applied already
	outcomeIgnored  = "ignored"  // a type the ledger does not act on
	outcomeUnmapped = "unmapped" // names no workspace or no plan Atrium knows
)

// Apply applies one provider event. The event's ID is stored in the same
// transaction as its effect, so an event delivered twice, even
// concurrently, is applied once: the second delivery returns applied false
// and no error. A subscription or invoice view older (lower Version) than
// the one applied last changes nothing, so events arriving out of order
// leave the provider's final state. Events that name no workspace, or a
// plan the catalogue does not have, are stored and logged, not applied.
func (l *Ledger) Apply(ctx context.Context, ev ProviderEvent) (applied bool, err error) {
	if ev.Provider == "" || ev.ID == "" {
		return false, kernel.Invalid("event", "a provider event needs a provider and an ID")
	}
	workspaceID := ev.workspaceID()
	if workspaceID == uuid.Nil {
		return l.storeOnly(ctx, ev, outcomeUnmapped)
	}
	var change string
	var after Subscription
	err = l.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		fresh, err := insertEvent(ctx, tx, ev, workspaceID)
		if err != nil || !fresh {
			return err
		}
		applied = true
		var outcome string
		outcome, change, after, err = l.applyEffect(ctx, tx, ev)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE billing_event SET outcome = $3 WHERE provider = $1 AND event_id = $2`, ev.Provider, ev.ID, outcome)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		// The workspace is gone (purged): keep the event, change nothing.
		return l.storeOnly(ctx, ev, outcomeUnmapped)
	}
	if err != nil {
		return false, fmt.Errorf("billing event %s %s: %w", ev.Provider, ev.ID, err)
	}
	if change != "" {
		l.after(ctx, workspaceID, change, after)
	}
	return applied, nil
}

// storeOnly records an event that changes nothing, once.
func (l *Ledger) storeOnly(ctx context.Context, ev ProviderEvent, outcome string) (bool, error) {
	var fresh bool
	err := l.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		if fresh, err = insertEvent(ctx, tx, ev, uuid.Nil); err != nil || !fresh {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE billing_event SET outcome = $3 WHERE provider = $1 AND event_id = $2`, ev.Provider, ev.ID, outcome)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("billing event %s %s: %w", ev.Provider, ev.ID, err)
	}
	if fresh {
		kernel.Logger(ctx).InfoContext(ctx, "billing event not applied", "provider", ev.Provider, "event", ev.ID,
			"type", ev.ProviderType, "outcome", outcome)
	}
	return fresh, nil
}

// insertEvent stores ev and reports whether it is new. On PostgreSQL a
// concurrent insert of the same event waits for the first transaction and
// then finds the row: the second delivery is a no-op, whichever commits.
func insertEvent(ctx context.Context, tx store.Tx, ev ProviderEvent, workspaceID uuid.UUID) (bool, error) {
	var ws *uuid.UUID
	if workspaceID != uuid.Nil {
		ws = &workspaceID
	}
	created := ev.CreatedAt
	if created.IsZero() {
		created = tx.Now()
	}
	n, err := tx.Exec(ctx, `INSERT INTO billing_event (provider, event_id, type, provider_type, subject_workspace_id, created_at, received_at, payload)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (provider, event_id) DO NOTHING`,
		ev.Provider, ev.ID, ev.Type, ev.ProviderType, ws, created.UTC(), tx.Now(), string(ev.Raw))
	if err != nil {
		return false, fmt.Errorf("store event: %w", err)
	}
	return n == 1, nil
}

// workspaceID is the workspace the event is about, from whichever view it carries.
func (ev ProviderEvent) workspaceID() uuid.UUID {
	switch {
	case ev.Subscription != nil && ev.Subscription.WorkspaceID != uuid.Nil:
		return ev.Subscription.WorkspaceID
	case ev.Invoice != nil && ev.Invoice.WorkspaceID != uuid.Nil:
		return ev.Invoice.WorkspaceID
	case ev.Customer != nil:
		return ev.Customer.WorkspaceID
	}
	return uuid.Nil
}

// applyEffect does what ev means inside the workspace transaction and
// returns the outcome to store and, when the subscription changed, the
// change's name and the subscription after it.
func (l *Ledger) applyEffect(ctx context.Context, tx store.Tx, ev ProviderEvent) (string, string, Subscription, error) {
	switch ev.Type {
	case EventSubscriptionUpdated, EventSubscriptionDeleted, EventCheckoutCompleted:
		if ev.Subscription == nil {
			return outcomeIgnored, "", Subscription{}, nil
		}
		view := *ev.Subscription
		if ev.Type == EventSubscriptionDeleted {
			view.Status = StatusCanceled
		}
		return l.applySubscription(ctx, tx, ev, view)
	case EventInvoicePaid, EventInvoicePaymentFailed, EventInvoiceUpdated:
		if ev.Invoice == nil {
			return outcomeIgnored, "", Subscription{}, nil
		}
		outcome, err := l.applyInvoice(ctx, tx, ev)
		return outcome, "", Subscription{}, err
	case EventCustomerUpdated:
		if ev.Customer == nil {
			return outcomeIgnored, "", Subscription{}, nil
		}
		outcome, err := l.applyCustomer(ctx, tx, *ev.Customer)
		return outcome, "", Subscription{}, err
	}
	return outcomeIgnored, "", Subscription{}, nil
}

// limitsChange lists the changes after which other limits apply.
var limitsChange = map[string]bool{"subscribed": true, "upgraded": true, "downgraded": true, "canceled": true,
	"trial_started": true, "trial_ended": true, "dunning_" + DunningDowngraded: true, "payment_recovered": true}

// after runs once a change has committed: every node's entitlements forget
// the workspace, and the owners and admins get the notice the change owes.
func (l *Ledger) after(ctx context.Context, workspaceID uuid.UUID, change string, s Subscription) {
	l.changed(ctx, workspaceID)
	if limitsChange[change] && l.planChanged != nil {
		l.planChanged(ctx, workspaceID)
	}
	if n, ok := noticeFor(change, s, l.catalog); ok {
		l.notices.send(ctx, workspaceID, n)
	}
}

// applySubscription makes the ledger's row match the provider's view, unless
// the view is older than the one applied last.
func (l *Ledger) applySubscription(ctx context.Context, tx store.Tx, ev ProviderEvent, view ProviderSubscription) (string, string, Subscription, error) {
	if err := lockSubscription(ctx, tx); err != nil {
		return "", "", Subscription{}, err
	}
	before, err := l.readSubscription(ctx, tx)
	if err != nil {
		return "", "", Subscription{}, err
	}
	sameSubscription := before.Provider == view.Provider && before.ProviderSubscriptionID == view.ID
	if sameSubscription && view.Version < before.ProviderVersion {
		return outcomeStale, "", Subscription{}, nil
	}
	if !sameSubscription && before.ProviderSubscriptionID != "" && before.CanceledAt == nil && view.Status == StatusCanceled {
		// The end of a subscription the workspace has already replaced.
		return outcomeStale, "", Subscription{}, nil
	}
	plan := l.catalog.Plan(view.PlanKey)
	if plan == nil && view.Status != StatusCanceled {
		kernel.Logger(ctx).WarnContext(ctx, "billing event names a plan the catalogue does not have",
			"provider", view.Provider, "event", ev.ID, "plan", view.PlanKey)
		return outcomeUnmapped, "", Subscription{}, nil
	}
	after := before
	after.Provider = view.Provider
	after.ProviderSubscriptionID = view.ID
	if view.CustomerID != "" {
		after.ProviderCustomerID = view.CustomerID
	}
	after.ProviderVersion = view.Version
	after.HasPaymentMethod = view.HasPaymentMethod || before.HasPaymentMethod && sameSubscription
	if view.Status == StatusCanceled {
		l.toDefaultPlan(&after, timePtr(view.CanceledAt), tx.Now())
	} else {
		interval := view.Interval
		if l.deferred(before, view, sameSubscription) {
			// A downgrade waiting for the period end: the provider may show
			// the new price already, but what was paid for lasts until then.
			plan, interval = l.catalog.Plan(before.PlanKey), before.Interval
		}
		if after.PlanKey != plan.Key || !before.Stored() || after.PlanVersionID == uuid.Nil {
			after.PlanVersionID = l.versions[plan.Key]
		}
		after.PlanKey = plan.Key
		after.Interval = interval
		after.Status = view.Status
		if view.Currency != "" {
			after.Currency = view.Currency
		}
		after.Quantity = max(view.Quantity, 1)
		after.Amount = l.amount(ctx, tx, after)
		after.CurrentPeriodStart = timePtr(view.CurrentPeriodStart)
		after.CurrentPeriodEnd = timePtr(view.CurrentPeriodEnd)
		after.CancelAtPeriodEnd = view.CancelAtPeriodEnd
		after.TrialEnd = timePtr(view.TrialEnd)
		after.CanceledAt = nil
		if view.Status == StatusTrialing {
			after.TrialUsed = true
		}
		if after.ScheduledPlanKey == after.PlanKey && after.ScheduledInterval == after.Interval {
			after.ScheduledPlanKey, after.ScheduledInterval = "", ""
		}
		l.followDunning(&after, before, tx.Now())
	}
	change := describeChange(before, after, l.catalog)
	if change == "" {
		// Nothing a customer would notice: keep the new version, record nothing.
		return outcomeApplied, "", Subscription{}, saveSubscription(ctx, tx, &after)
	}
	if change == "payment_recovered" && before.DunningStep == DunningDeletionScheduled && l.hold != nil {
		if err := l.hold.RestoreAfterPayment(ctx, tx); err != nil {
			return "", "", Subscription{}, err
		}
	}
	actor := kernel.Actor{Kind: kernel.ActorSystem, Via: kernel.ViaProcess}
	if err := l.record(ctx, tx, before, &after, change, actor, "provider:"+view.Provider); err != nil {
		return "", "", Subscription{}, err
	}
	return outcomeApplied, change, after, nil
}

// deferred reports whether a view showing the workspace's scheduled
// downgrade arrives before the period it was scheduled for has ended.
func (l *Ledger) deferred(before Subscription, view ProviderSubscription, sameSubscription bool) bool {
	if !sameSubscription || before.ScheduledPlanKey == "" || before.CurrentPeriodEnd == nil || l.catalog.Plan(before.PlanKey) == nil {
		return false
	}
	if view.PlanKey != before.ScheduledPlanKey || view.Interval != before.ScheduledInterval {
		return false
	}
	return !view.CurrentPeriodEnd.After(*before.CurrentPeriodEnd)
}

// toDefaultPlan ends a subscription: the workspace goes back to the default
// plan, keeping its currency, customer, trial history and the ended
// subscription's provider IDs.
func (l *Ledger) toDefaultPlan(s *Subscription, canceledAt *time.Time, now time.Time) {
	if canceledAt == nil {
		canceledAt = &now
	}
	s.PlanKey = l.catalog.DefaultPlan
	s.PlanVersionID = l.versions[l.catalog.DefaultPlan]
	s.Status = StatusActive
	s.Interval = Monthly
	s.Amount = 0
	s.Quantity = 1
	s.CancelAtPeriodEnd = false
	s.ScheduledPlanKey, s.ScheduledInterval = "", ""
	s.CurrentPeriodStart, s.CurrentPeriodEnd = nil, nil
	s.TrialEnd = nil
	s.CanceledAt = canceledAt
	s.PastDueSince, s.DunningStep = nil, DunningNone
	// The ended subscription's provider, ID and version stay: a late view of
	// it, older than its end, must still be recognised as stale rather than
	// bring it back.
}

// followDunning starts the dunning clock when a subscription falls past due
// and stops it, restoring everything, when it is paid again.
func (l *Ledger) followDunning(after *Subscription, before Subscription, now time.Time) {
	switch {
	case after.Status == StatusPastDue && before.PastDueSince == nil:
		after.PastDueSince = &now
		after.DunningStep = DunningPastDue
	case after.Status == StatusPastDue:
		after.PastDueSince, after.DunningStep = before.PastDueSince, before.DunningStep
	default:
		after.PastDueSince, after.DunningStep = nil, DunningNone
	}
}

// amount is what s pays per interval at the price of its plan version.
func (l *Ledger) amount(ctx context.Context, tx store.Tx, s Subscription) int64 {
	plan := l.catalog.Plan(s.PlanKey)
	if s.PlanVersionID != uuid.Nil && s.PlanVersionID != l.versions[s.PlanKey] {
		if stored, err := PlanVersion(ctx, tx, s.PlanVersionID); err == nil {
			plan = stored
		}
	}
	if plan == nil {
		return 0
	}
	price, ok := plan.Price(s.Currency, s.Interval)
	if !ok {
		return 0
	}
	return price.Amount * int64(max(s.Quantity, 1))
}

// describeChange names the change from before to after, or "" when none a
// customer would notice.
func describeChange(before, after Subscription, c *Catalog) string {
	rank := func(key string) int {
		if p := c.Plan(key); p != nil {
			return p.Rank
		}
		return -1
	}
	switch {
	case before.Status != StatusPastDue && after.Status == StatusPastDue:
		return "past_due"
	case before.Status == StatusPastDue && after.Status == StatusActive && before.PlanKey == after.PlanKey:
		return "payment_recovered"
	case after.CanceledAt != nil && before.CanceledAt == nil && before.Stored():
		if before.Status == StatusTrialing {
			return "trial_ended"
		}
		return "canceled"
	case before.PlanKey != after.PlanKey && rank(after.PlanKey) > rank(before.PlanKey):
		if before.Status == StatusTrialing || before.PlanKey == c.DefaultPlan {
			return "subscribed"
		}
		return "upgraded"
	case before.PlanKey != after.PlanKey:
		return "downgraded"
	case before.Status == StatusTrialing && after.Status == StatusActive:
		return "subscribed"
	case before.Status != StatusTrialing && after.Status == StatusTrialing:
		return "trial_started"
	case before.Interval != after.Interval:
		return "interval_changed"
	case !before.CancelAtPeriodEnd && after.CancelAtPeriodEnd:
		return "cancel_scheduled"
	case before.CancelAtPeriodEnd && !after.CancelAtPeriodEnd:
		return "resumed"
	case !timeEqual(before.CurrentPeriodEnd, after.CurrentPeriodEnd) && after.CurrentPeriodEnd != nil && before.CurrentPeriodEnd != nil:
		return "renewed"
	case !timeEqual(before.TrialEnd, after.TrialEnd) && after.TrialEnd != nil:
		return "trial_extended"
	case before.Quantity != after.Quantity || before.Amount != after.Amount:
		return "updated"
	}
	return ""
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// record saves after and writes the change's history row, audit entry and
// event, all in tx.
func (l *Ledger) record(ctx context.Context, tx store.Tx, before Subscription, after *Subscription, change string, actor kernel.Actor, actorName string) error {
	if err := saveSubscription(ctx, tx, after); err != nil {
		return err
	}
	if actorName == "" {
		actorName = actor.String()
	}
	currency := after.Currency
	if currency == "" {
		currency = before.Currency
	}
	detail, _ := json.Marshal(map[string]any{"interval": after.Interval, "cancel_at_period_end": after.CancelAtPeriodEnd,
		"scheduled_plan": after.ScheduledPlanKey, "provider": after.Provider}) // plain values always encode
	if _, err := tx.Exec(ctx, `INSERT INTO subscription_history (id, workspace_id, change, from_plan, to_plan,
        from_status, to_status, currency, mrr_before, mrr_after, actor, detail, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		kernel.NewID(), after.WorkspaceID, change, before.PlanKey, after.PlanKey, string(before.Status), string(after.Status),
		currency, before.MonthlyAmount(), after.MonthlyAmount(), actorName, string(detail), tx.Now()); err != nil {
		return fmt.Errorf("subscription history: %w", err)
	}
	if _, err := audit.Record(ctx, tx, audit.Entry{
		Action: "subscription." + change, TargetType: "subscription",
		TargetID: kernel.FormatID(kernel.PrefixWorkspace, after.WorkspaceID), Actor: &actor,
		Metadata: map[string]any{"from_plan": before.PlanKey, "to_plan": after.PlanKey, "from_status": before.Status,
			"to_status": after.Status, "by": actorName},
	}); err != nil {
		return err
	}
	_, err := events.Append(ctx, tx, events.Event{Type: EventSubscriptionChanged, Payload: SubscriptionChangedEvent{
		Change: change, Plan: after.PlanKey, PreviousPlan: before.PlanKey, Status: string(after.Status),
		PreviousStatus: string(before.Status), Interval: string(after.Interval), CancelAtPeriodEnd: after.CancelAtPeriodEnd,
		CurrentPeriodEnd: after.CurrentPeriodEnd, TrialEnd: after.TrialEnd,
	}})
	return err
}

// applyCustomer keeps the workspace's customer ID.
func (l *Ledger) applyCustomer(ctx context.Context, tx store.Tx, c ProviderCustomer) (string, error) {
	s, err := l.readSubscription(ctx, tx)
	if err != nil || !s.Stored() {
		return outcomeIgnored, err
	}
	if s.ProviderCustomerID != "" && s.ProviderCustomerID != c.ID {
		return outcomeStale, nil
	}
	s.ProviderCustomerID = c.ID
	return outcomeApplied, saveSubscription(ctx, tx, &s)
}
