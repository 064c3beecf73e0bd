package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/billing"
	"atrium/internal/httpapi/cursor"
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// PlanBody is a plan of the catalogue as the API shows it.
type PlanBody struct {
	Key         string           `json:"key" example:"pro"`
	Name        string           `json:"name" example:"Pro"`
	Description string           `json:"description,omitempty"`
	Prices      []PriceBody      `json:"prices"`
	Features    map[string]bool  `json:"features" doc:"What the plan includes, by feature name"`
	Limits      map[string]int64 `json:"limits" doc:"The plan's limits by metric; -1 is unlimited"`
}

// PriceBody is what a plan costs per interval in one currency.
type PriceBody struct {
	Currency string `json:"currency" example:"usd"`
	Interval string `json:"interval" enum:"month,year"`
	Amount   int64  `json:"amount" example:"2900" doc:"In the currency's minor units (cents)"`
}

// TrialBody is the trial offer of the catalogue.
type TrialBody struct {
	Plan          string `json:"plan" example:"pro"`
	Days          int    `json:"days" example:"14"`
	ExtensionDays int    `json:"extension_days" example:"7"`
}

type plansOutput struct {
	Body struct {
		DefaultPlan string     `json:"default_plan" example:"free" doc:"The plan every workspace starts on"`
		Trial       *TrialBody `json:"trial,omitempty" doc:"The trial a workspace may start once, without a card"`
		Plans       []PlanBody `json:"plans" doc:"Cheapest first: a later plan is an upgrade"`
	}
}

func planBody(p *billing.Plan) PlanBody {
	out := PlanBody{Key: p.Key, Name: p.Name, Description: p.Description, Features: p.Features, Limits: p.Limits,
		Prices: make([]PriceBody, 0, len(p.Prices))}
	for _, price := range p.Prices {
		out.Prices = append(out.Prices, PriceBody{Currency: price.Currency, Interval: string(price.Interval), Amount: price.Amount})
	}
	return out
}

// SubscriptionBody is a workspace's subscription as the API shows it, with
// what its plan grants now.
type SubscriptionBody struct {
	Plan     string `json:"plan" example:"pro" doc:"The plan subscribed to (or tried)"`
	Status   string `json:"status" enum:"trialing,active,past_due,canceled"`
	Interval string `json:"interval" enum:"month,year"`
	Currency string `json:"currency" example:"usd" doc:"Fixed at the first paid subscription; empty before"`
	Amount   int64  `json:"amount" doc:"What the subscription pays per interval, in minor units"`
	Provider string `json:"provider" enum:"none,sandbox,stripe"`
	// EffectivePlan differs from Plan when dunning has downgraded the workspace.
	EffectivePlan      string           `json:"effective_plan" example:"pro" doc:"The plan whose features and limits apply now"`
	Features           map[string]bool  `json:"features"`
	Limits             map[string]int64 `json:"limits" doc:"-1 is unlimited"`
	CurrentPeriodStart *time.Time       `json:"current_period_start"`
	CurrentPeriodEnd   *time.Time       `json:"current_period_end"`
	CancelAtPeriodEnd  bool             `json:"cancel_at_period_end"`
	ScheduledPlan      string           `json:"scheduled_plan,omitempty" doc:"A downgrade taking effect at the period end"`
	TrialEnd           *time.Time       `json:"trial_end"`
	TrialAvailable     bool             `json:"trial_available" doc:"Whether the workspace may still start its trial"`
	TrialExtended      bool             `json:"trial_extended"`
	PastDueSince       *time.Time       `json:"past_due_since"`
	DunningStep        string           `json:"dunning_step,omitempty" enum:"past_due,downgraded,suspended,deletion_scheduled"`
}

type subscriptionOutput struct {
	Body SubscriptionBody
}

// InvoiceBody is an invoice as the API shows it.
type InvoiceBody struct {
	ID            string                `json:"id" example:"in_1Nv0rN2eZvKYlo2C" doc:"The provider's invoice ID"`
	Provider      string                `json:"provider" enum:"sandbox,stripe"`
	Number        string                `json:"number"`
	Status        string                `json:"status" enum:"draft,open,paid,void,uncollectible"`
	Currency      string                `json:"currency" example:"usd"`
	AmountDue     int64                 `json:"amount_due"`
	AmountPaid    int64                 `json:"amount_paid"`
	PeriodStart   *time.Time            `json:"period_start"`
	PeriodEnd     *time.Time            `json:"period_end"`
	HostedURL     string                `json:"hosted_url,omitempty" doc:"The provider's page for the invoice"`
	Lines         []billing.InvoiceLine `json:"lines"`
	AttemptCount  int                   `json:"attempt_count"`
	NextAttemptAt *time.Time            `json:"next_attempt_at"`
	CreatedAt     time.Time             `json:"created_at"`
	PaidAt        *time.Time            `json:"paid_at"`
}

type listInvoicesInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Invoices per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page"`
}

type listInvoicesOutput struct {
	Body Page[InvoiceBody]
}

type checkoutInput struct {
	workspacePath
	Body struct {
		Plan     string `json:"plan" example:"pro" doc:"A paid plan of GET /api/v1/plans"`
		Interval string `json:"interval" enum:"month,year"`
		Currency string `json:"currency,omitempty" example:"usd" doc:"The workspace's currency once fixed; usd by default before"`
	}
}

type checkoutOutput struct {
	Body struct {
		ID  string `json:"id" doc:"The provider's checkout session"`
		URL string `json:"url" doc:"Send the customer here; they come back to the console's billing page"`
	}
}

type portalOutput struct {
	Body struct {
		URL string `json:"url" doc:"Send the customer here; they come back to the console's billing page"`
	}
}

type changeInput struct {
	workspacePath
	Body struct {
		Plan     string `json:"plan" example:"enterprise"`
		Interval string `json:"interval,omitempty" enum:"month,year" doc:"Default: the current interval"`
		Currency string `json:"currency,omitempty" doc:"Must be the workspace's own currency if given"`
		Preview  bool   `json:"preview,omitempty" doc:"Only say what the change would cost now; change nothing"`
	}
}

// ChangePreviewBody is what a change would cost now.
type ChangePreviewBody struct {
	Currency     string                `json:"currency" example:"usd"`
	AmountDueNow int64                 `json:"amount_due_now" doc:"Charged now, prorated, in minor units; negative is a credit; 0 for a change at the period end"`
	NextAmount   int64                 `json:"next_amount" doc:"The recurring amount after the change"`
	NextBilledAt *time.Time            `json:"next_billed_at"`
	AtPeriodEnd  bool                  `json:"at_period_end" doc:"A downgrade: it takes effect at the end of the current period"`
	Lines        []billing.InvoiceLine `json:"lines"`
}

type changeOutput struct {
	Body struct {
		Preview      *ChangePreviewBody `json:"preview,omitempty" doc:"With preview: what the change would cost"`
		Subscription *SubscriptionBody  `json:"subscription,omitempty" doc:"Without preview: the subscription after the change"`
	}
}

const billingDoc = "Owners and admins; read keys and write keys read it too. "

func registerBilling(api huma.API, svc *billing.Service, cursors *cursor.Signer) {
	catalog := svc.Ledger.Catalog()
	huma.Register(api, huma.Operation{
		OperationID: "list-plans", Method: http.MethodGet, Path: "/api/v1/plans", Tags: []string{"Billing"},
		Summary: "List the plans", Description: "Public: the plans with their prices, features and limits, and the trial offer.",
	}, func(ctx context.Context, _ *struct{}) (*plansOutput, error) {
		out := &plansOutput{}
		out.Body.DefaultPlan = catalog.DefaultPlan
		if catalog.Trial.Plan != "" {
			out.Body.Trial = &TrialBody{Plan: catalog.Trial.Plan, Days: catalog.Trial.Days, ExtensionDays: catalog.Trial.ExtensionDays}
		}
		for _, p := range catalog.Plans {
			out.Body.Plans = append(out.Body.Plans, planBody(p))
		}
		return out, nil
	})

	tags := []string{"Billing"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
	base := "/api/v1/workspaces/{workspace_id}/subscription"
	huma.Register(api, huma.Operation{
		OperationID: "get-subscription", Method: http.MethodGet, Path: base,
		Summary: "Get the subscription", Tags: tags, Security: bearerOrSession, Errors: errs,
		Description: billingDoc + "The workspace's plan, status, period and trial, and the features and limits it has now.",
	}, func(ctx context.Context, in *workspacePath) (*subscriptionOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		sub, plan, err := svc.Subscription(ctx, res)
		if err != nil {
			return nil, err
		}
		return &subscriptionOutput{Body: subscriptionBody(sub, plan, catalog)}, nil
	})
	trialRoute := func(id, path, summary, doc string, call func(context.Context, policy.Resource) (billing.Subscription, error)) {
		huma.Register(api, huma.Operation{
			OperationID: id, Method: http.MethodPost, Path: base + path, Summary: summary, Tags: tags,
			Security: bearerOrSession, Errors: append(errs, http.StatusConflict), Description: "Owners and admins. " + doc,
		}, func(ctx context.Context, in *workspacePath) (*subscriptionOutput, error) {
			res, err := resourceFrom(ctx)
			if err != nil {
				return nil, err
			}
			if _, err := call(ctx, res); err != nil {
				return nil, err
			}
			sub, plan, err := svc.Subscription(ctx, res)
			if err != nil {
				return nil, err
			}
			return &subscriptionOutput{Body: subscriptionBody(sub, plan, catalog)}, nil
		})
	}
	trialRoute("start-trial", "/trial", "Start the trial",
		"Starts the trial of the catalogue's trial plan, without a card, once per workspace and only from the default "+
			"plan (409 otherwise). At its end without a payment method the workspace goes back to the default plan with "+
			"its data kept.", svc.StartTrial)
	trialRoute("extend-trial", "/trial/extend", "Extend the trial",
		"Adds the catalogue's extension to a running trial, once per workspace (409 otherwise).", svc.ExtendTrial)

	subscriptionAction := func(id, path, summary, doc string, call func(context.Context, policy.Resource) (billing.Subscription, error)) {
		huma.Register(api, huma.Operation{
			OperationID: id, Method: http.MethodPost, Path: base + path, Summary: summary, Tags: tags,
			Security: bearerOrSession, Errors: append(errs, http.StatusConflict, http.StatusServiceUnavailable),
			Description: "Owners and admins. " + doc,
		}, func(ctx context.Context, in *workspacePath) (*subscriptionOutput, error) {
			res, err := resourceFrom(ctx)
			if err != nil {
				return nil, err
			}
			sub, err := call(ctx, res)
			if err != nil {
				return nil, err
			}
			return &subscriptionOutput{Body: subscriptionBody(sub, catalog.EffectivePlan(sub), catalog)}, nil
		})
	}
	subscriptionAction("cancel-subscription", "/cancel", "Cancel the subscription",
		"The subscription ends at the end of its period, keeping what was paid for until then, and can be resumed "+
			"until then; a trial without a card ends now. The workspace then returns to the default plan with its data kept.", svc.Cancel)
	subscriptionAction("resume-subscription", "/resume", "Resume the subscription",
		"Undoes a cancellation before the period ends (409 when none is pending).", svc.Resume)
	huma.Register(api, huma.Operation{
		OperationID: "checkout-subscription", Method: http.MethodPost, Path: base + "/checkout",
		Summary: "Check out a plan", Tags: tags, Security: bearerOrSession,
		Errors: append(errs, http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable),
		Description: "Owners and admins. Starts a checkout of a paid plan for a workspace without a paid subscription " +
			"and answers the URL to send the customer to (the sandbox's page, or Stripe Checkout). During a trial the " +
			"first charge waits for the trial's end. The currency is fixed at the first paid subscription: another one is 409.",
	}, func(ctx context.Context, in *checkoutInput) (*checkoutOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		session, err := svc.Checkout(ctx, res, billing.PlanChoice{Plan: in.Body.Plan, Interval: billing.Interval(in.Body.Interval), Currency: in.Body.Currency})
		if err != nil {
			return nil, err
		}
		out := &checkoutOutput{}
		out.Body.ID, out.Body.URL = session.ID, session.URL
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "billing-portal", Method: http.MethodPost, Path: base + "/portal",
		Summary: "Open the billing portal", Tags: tags, Security: bearerOrSession,
		Errors:      append(errs, http.StatusConflict, http.StatusServiceUnavailable),
		Description: "Owners and admins. Answers the URL of the payment provider's portal (the card, the invoices); 409 before a first checkout.",
	}, func(ctx context.Context, in *workspacePath) (*portalOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		link, err := svc.Portal(ctx, res)
		if err != nil {
			return nil, err
		}
		out := &portalOutput{}
		out.Body.URL = link
		return out, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "change-subscription", Method: http.MethodPost, Path: base + "/change",
		Summary: "Change the plan", Tags: tags, Security: bearerOrSession,
		Errors: append(errs, http.StatusBadRequest, http.StatusPaymentRequired, http.StatusConflict,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable),
		Description: "Owners and admins. An upgrade (a later plan, or yearly instead of monthly) applies now, prorated; " +
			"a downgrade takes effect at the end of the period. With `preview`, nothing changes and the answer says what " +
			"would be charged now. Choosing the current plan while a downgrade waits undoes the downgrade. 402 when the " +
			"prorated charge fails (the plan stays as it was).",
	}, func(ctx context.Context, in *changeInput) (*changeOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		choice := billing.PlanChoice{Plan: in.Body.Plan, Interval: billing.Interval(in.Body.Interval), Currency: in.Body.Currency}
		out := &changeOutput{}
		if in.Body.Preview {
			p, err := svc.PreviewChange(ctx, res, choice)
			if err != nil {
				return nil, err
			}
			out.Body.Preview = &ChangePreviewBody{Currency: p.Currency, AmountDueNow: p.AmountDueNow, NextAmount: p.NextAmount,
				NextBilledAt: timeOrNil(p.NextBilledAt), AtPeriodEnd: p.AtPeriodEnd, Lines: linesOrEmpty(p.Lines)}
			return out, nil
		}
		sub, err := svc.Change(ctx, res, choice)
		if err != nil {
			return nil, err
		}
		body := subscriptionBody(sub, catalog.EffectivePlan(sub), catalog)
		out.Body.Subscription = &body
		return out, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "list-invoices", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/invoices",
		Summary: "List invoices", Tags: tags, Security: bearerOrSession, Errors: append(errs, http.StatusBadRequest),
		Description: billingDoc + "Newest first, as the payment provider issued them.",
	}, func(ctx context.Context, in *listInvoicesInput) (*listInvoicesOutput, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		scope := "invoices:" + kernel.FormatID(kernel.PrefixWorkspace, res.Workspace)
		page, err := listPage(cursors, scope, in.Limit, in.Cursor,
			func(after *billing.InvoiceCursor, limit int) ([]billing.Invoice, error) {
				return svc.Invoices(ctx, res, after, limit)
			},
			invoiceBody,
			func(inv billing.Invoice) billing.InvoiceCursor {
				return billing.InvoiceCursor{CreatedAt: inv.CreatedAt, ID: inv.ID}
			})
		if err != nil {
			return nil, err
		}
		return &listInvoicesOutput{Body: page}, nil
	})
}

func subscriptionBody(s billing.Subscription, effective *billing.Plan, c *billing.Catalog) SubscriptionBody {
	return SubscriptionBody{
		Plan: s.PlanKey, Status: string(s.Status), Interval: string(s.Interval), Currency: s.Currency, Amount: s.Amount,
		Provider: s.Provider, EffectivePlan: effective.Key, Features: effective.Features, Limits: effective.Limits,
		CurrentPeriodStart: s.CurrentPeriodStart, CurrentPeriodEnd: s.CurrentPeriodEnd, CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		ScheduledPlan: s.ScheduledPlanKey, TrialEnd: s.TrialEnd, TrialExtended: s.TrialExtended,
		TrialAvailable: c.Trial.Plan != "" && !s.TrialUsed && s.PlanKey == c.DefaultPlan && s.Status == billing.StatusActive,
		PastDueSince:   s.PastDueSince, DunningStep: s.DunningStep,
	}
}

func linesOrEmpty(lines []billing.InvoiceLine) []billing.InvoiceLine {
	if lines == nil {
		return []billing.InvoiceLine{}
	}
	return lines
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func invoiceBody(inv billing.Invoice) InvoiceBody {
	lines := linesOrEmpty(inv.Lines)
	return InvoiceBody{ID: inv.ProviderInvoiceID, Provider: inv.Provider, Number: inv.Number, Status: inv.Status,
		Currency: inv.Currency, AmountDue: inv.AmountDue, AmountPaid: inv.AmountPaid, PeriodStart: inv.PeriodStart,
		PeriodEnd: inv.PeriodEnd, HostedURL: inv.HostedURL, Lines: lines, AttemptCount: inv.AttemptCount,
		NextAttemptAt: inv.NextAttemptAt, CreatedAt: inv.CreatedAt, PaidAt: inv.PaidAt}
}
