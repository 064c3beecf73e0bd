package billing

import (
	"context"
	"fmt"
	"strings"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// PlanChoice names a plan price: a plan, an interval and (for a first
// checkout) a currency.
type PlanChoice struct {
	Plan     string
	Interval Interval
	// Currency is used by a first checkout; afterwards the workspace's own
	// currency applies and another one is a conflict.
	Currency string
}

// defaultCurrency is the currency of a first checkout that names none.
const defaultCurrency = "usd"

// Checkout starts a checkout of a paid plan for a workspace without a paid
// subscription (on the default plan, or trialing without a card: the trial
// then runs until its end before the first charge). It returns the URL to
// send the customer to. It returns forbidden unless the caller may manage
// billing, invalid for an unknown plan, interval or a price the plan does
// not have, conflict when the workspace already pays (use Change) or names
// a currency other than the one fixed at its first paid subscription, and
// unavailable when no payment provider is configured.
func (s *Service) Checkout(ctx context.Context, res policy.Resource, choice PlanChoice) (CheckoutSession, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
		return CheckoutSession{}, err
	}
	if s.Provider == nil {
		return CheckoutSession{}, kernel.Unavailable("the payment provider", nil)
	}
	sub, err := s.Ledger.Subscription(ctx, res.Workspace)
	if err != nil {
		return CheckoutSession{}, err
	}
	if sub.Provider != ProviderNone && sub.ProviderSubscriptionID != "" && sub.CanceledAt == nil {
		return CheckoutSession{}, kernel.Errorf(kernel.CodeConflict, "the workspace has a subscription already: change its plan instead")
	}
	currency := strings.ToLower(choice.Currency)
	switch {
	case currency == "" && sub.Currency != "":
		currency = sub.Currency
	case currency == "":
		currency = defaultCurrency
	case sub.Currency != "" && currency != sub.Currency:
		return CheckoutSession{}, &kernel.Error{Code: kernel.CodeConflict, Fields: map[string]string{"body.currency": "fixed at " + sub.Currency},
			Message: fmt.Sprintf("this workspace pays in %s: its currency was fixed at its first paid subscription", strings.ToUpper(sub.Currency))}
	}
	plan, price, err := s.price(PlanChoice{Plan: choice.Plan, Interval: choice.Interval, Currency: currency})
	if err != nil {
		return CheckoutSession{}, err
	}
	if plan.Free() {
		return CheckoutSession{}, kernel.Invalid("body.plan", "the "+plan.Name+" plan costs nothing: there is nothing to check out")
	}
	req := CheckoutRequest{WorkspaceID: res.Workspace, CustomerID: sub.ProviderCustomerID, Plan: *plan,
		Interval: price.Interval, Currency: price.Currency, IdempotencyKey: "checkout-" + kernel.NewID().String(),
		SuccessURL: s.billingPage(res, "checkout=success"), CancelURL: s.billingPage(res, "checkout=canceled")}
	if sub.Status == StatusTrialing && sub.TrialEnd != nil {
		req.TrialEnd = *sub.TrialEnd
	}
	return s.Provider.Checkout(ctx, req)
}

// PreviewChange says what Change would charge now for the choice, without
// changing anything; a change at the period end charges nothing now. Errors
// are those of Change.
func (s *Service) PreviewChange(ctx context.Context, res policy.Resource, choice PlanChoice) (ChangePreview, error) {
	req, _, err := s.changeRequest(ctx, res, choice)
	if err != nil {
		return ChangePreview{}, err
	}
	if req.AtPeriodEnd {
		return ChangePreview{Currency: req.Currency, AtPeriodEnd: true}, nil
	}
	return s.Provider.PreviewChange(ctx, req)
}

// Change moves a paying workspace to another plan or interval: an upgrade
// (a later plan, or yearly instead of monthly) applies now and is prorated;
// a downgrade takes effect at the end of the period, keeping what was paid
// for until then. Choosing the current plan again while a downgrade waits
// undoes it. It returns forbidden unless the caller may manage billing,
// invalid for an unknown plan or price, conflict when the workspace has no
// paid subscription (use Checkout), names another currency or is on that
// plan already, and payment_required when the prorated charge fails.
func (s *Service) Change(ctx context.Context, res policy.Resource, choice PlanChoice) (Subscription, error) {
	req, sub, err := s.changeRequest(ctx, res, choice)
	if err != nil {
		return Subscription{}, err
	}
	view, err := s.Provider.Change(ctx, req)
	if err != nil {
		return Subscription{}, err
	}
	if err := s.Ledger.ApplyView(ctx, view); err != nil {
		return Subscription{}, err
	}
	if req.AtPeriodEnd || sub.ScheduledPlanKey != "" {
		scheduled, interval := req.Plan.Key, req.Interval
		if !req.AtPeriodEnd || (scheduled == sub.PlanKey && interval == sub.Interval) {
			scheduled, interval = "", ""
		}
		return s.Ledger.schedule(ctx, res, scheduled, interval)
	}
	return s.Ledger.Subscription(ctx, res.Workspace)
}

// changeRequest checks a change and builds the provider's request.
func (s *Service) changeRequest(ctx context.Context, res policy.Resource, choice PlanChoice) (ChangeRequest, Subscription, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
		return ChangeRequest{}, Subscription{}, err
	}
	if s.Provider == nil {
		return ChangeRequest{}, Subscription{}, kernel.Unavailable("the payment provider", nil)
	}
	sub, err := s.Ledger.Subscription(ctx, res.Workspace)
	if err != nil {
		return ChangeRequest{}, Subscription{}, err
	}
	if sub.ProviderSubscriptionID == "" || sub.CanceledAt != nil || sub.Provider != s.Provider.Name() {
		return ChangeRequest{}, sub, kernel.Errorf(kernel.CodeConflict, "the workspace has no paid subscription: check out first")
	}
	if choice.Currency != "" && !strings.EqualFold(choice.Currency, sub.Currency) {
		return ChangeRequest{}, sub, &kernel.Error{Code: kernel.CodeConflict, Fields: map[string]string{"body.currency": "fixed at " + sub.Currency},
			Message: fmt.Sprintf("this workspace pays in %s: its currency was fixed at its first paid subscription", strings.ToUpper(sub.Currency))}
	}
	if choice.Interval == "" {
		choice.Interval = sub.Interval
	}
	plan, price, err := s.price(PlanChoice{Plan: choice.Plan, Interval: choice.Interval, Currency: sub.Currency})
	if err != nil {
		return ChangeRequest{}, sub, err
	}
	if plan.Free() {
		return ChangeRequest{}, sub, kernel.Invalid("body.plan", "to move to the "+plan.Name+" plan, cancel the subscription: it ends at the period end")
	}
	same := plan.Key == sub.PlanKey && price.Interval == sub.Interval
	if same && sub.ScheduledPlanKey == "" {
		return ChangeRequest{}, sub, kernel.Errorf(kernel.CodeConflict, "the workspace is on the %s plan, billed per %s, already", plan.Name, price.Interval)
	}
	current := s.Ledger.catalog.Plan(sub.PlanKey)
	upgrade := current == nil || plan.Rank > current.Rank || (plan.Rank == current.Rank && price.Interval == Yearly && sub.Interval == Monthly)
	return ChangeRequest{SubscriptionID: sub.ProviderSubscriptionID, CustomerID: sub.ProviderCustomerID, Plan: *plan,
		Interval: price.Interval, Currency: sub.Currency, AtPeriodEnd: !upgrade,
		IdempotencyKey: "change-" + kernel.NewID().String()}, sub, nil
}

// Cancel ends the workspace's subscription at the end of its period (it can
// be resumed until then), or a trial without a card now. It returns conflict
// when there is nothing to cancel.
func (s *Service) Cancel(ctx context.Context, res policy.Resource) (Subscription, error) {
	return s.providerAction(ctx, res, true)
}

// Resume undoes a cancellation before the period ends. It returns conflict
// when the subscription is not set to end.
func (s *Service) Resume(ctx context.Context, res policy.Resource) (Subscription, error) {
	return s.providerAction(ctx, res, false)
}

func (s *Service) providerAction(ctx context.Context, res policy.Resource, cancel bool) (Subscription, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
		return Subscription{}, err
	}
	sub, err := s.Ledger.Subscription(ctx, res.Workspace)
	if err != nil {
		return Subscription{}, err
	}
	if cancel && sub.Status == StatusTrialing && sub.Provider == ProviderNone {
		return s.Ledger.EndTrial(ctx, res.Workspace)
	}
	switch {
	case sub.ProviderSubscriptionID == "" || sub.CanceledAt != nil:
		return Subscription{}, kernel.Errorf(kernel.CodeConflict, "the workspace has no paid subscription")
	case s.Provider == nil || sub.Provider != s.Provider.Name():
		return Subscription{}, kernel.Unavailable("the payment provider", nil)
	case cancel && sub.CancelAtPeriodEnd:
		return Subscription{}, kernel.Errorf(kernel.CodeConflict, "the subscription ends at the end of its period already")
	case !cancel && !sub.CancelAtPeriodEnd:
		return Subscription{}, kernel.Errorf(kernel.CodeConflict, "the subscription is not set to end: there is nothing to resume")
	}
	key := kernel.NewID().String()
	var view ProviderSubscription
	if cancel {
		view, err = s.Provider.Cancel(ctx, sub.ProviderSubscriptionID, true, "cancel-"+key)
	} else {
		view, err = s.Provider.Resume(ctx, sub.ProviderSubscriptionID, "resume-"+key)
	}
	if err != nil {
		return Subscription{}, err
	}
	if err := s.Ledger.ApplyView(ctx, view); err != nil {
		return Subscription{}, err
	}
	return s.Ledger.Subscription(ctx, res.Workspace)
}

// Portal returns the URL of the provider's billing portal for the
// workspace (its card, its invoices), which sends the customer back to the
// console's billing page. It returns forbidden unless the caller may manage
// billing, conflict when the workspace has no customer at the provider yet,
// and unavailable without a provider.
func (s *Service) Portal(ctx context.Context, res policy.Resource) (string, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.BillingManage, res); err != nil {
		return "", err
	}
	sub, err := s.Ledger.Subscription(ctx, res.Workspace)
	if err != nil {
		return "", err
	}
	if s.Provider == nil || (sub.Provider != ProviderNone && sub.Provider != s.Provider.Name()) {
		return "", kernel.Unavailable("the payment provider", nil)
	}
	if sub.ProviderCustomerID == "" {
		return "", kernel.Errorf(kernel.CodeConflict, "the workspace has no billing account yet: check out a plan first")
	}
	return s.Provider.Portal(ctx, sub.ProviderCustomerID, s.billingPage(res, "portal=done"))
}

// price finds a plan's price, as an invalid error naming the body field at
// fault when there is none.
func (s *Service) price(choice PlanChoice) (*Plan, Price, error) {
	plan := s.Ledger.catalog.Plan(choice.Plan)
	if plan == nil {
		return nil, Price{}, kernel.Invalid("body.plan", fmt.Sprintf("%q is not a plan (see GET /api/v1/plans)", choice.Plan))
	}
	if choice.Interval != Monthly && choice.Interval != Yearly {
		return nil, Price{}, kernel.Invalid("body.interval", `must be "month" or "year"`)
	}
	price, ok := plan.Price(choice.Currency, choice.Interval)
	if !ok {
		return nil, Price{}, kernel.Invalid("body.currency", fmt.Sprintf("the %s plan has no %s price per %s", plan.Name, strings.ToUpper(choice.Currency), choice.Interval))
	}
	return plan, price, nil
}

// billingPage is the console's billing page of the workspace, with query.
func (s *Service) billingPage(res policy.Resource, query string) string {
	return strings.TrimSuffix(s.BaseURL, "/") + "/console/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace) + "/billing?" + query
}

// ApplyView applies a provider's answer to a call Atrium made (a change, a
// cancellation) at once, through the same path as the provider's events:
// its webhook, arriving later, is then an older or equal view and changes
// nothing.
func (l *Ledger) ApplyView(ctx context.Context, view ProviderSubscription) error {
	_, err := l.Apply(ctx, ProviderEvent{Provider: view.Provider, ID: "sync_" + kernel.NewID().String(),
		Type: EventSubscriptionUpdated, ProviderType: "atrium.call", Subscription: &view})
	return err
}

// schedule records (or, with an empty plan, clears) a change waiting for the
// period end.
func (l *Ledger) schedule(ctx context.Context, res policy.Resource, planKey string, interval Interval) (Subscription, error) {
	change := "downgrade_scheduled"
	if planKey == "" {
		change = "downgrade_canceled"
	}
	return l.change(ctx, res.Workspace, change, func(tx store.Tx, s *Subscription) error {
		if s.ProviderSubscriptionID == "" || s.CanceledAt != nil {
			return kernel.Errorf(kernel.CodeConflict, "the workspace has no paid subscription")
		}
		s.ScheduledPlanKey, s.ScheduledInterval = planKey, interval
		return nil
	})
}
