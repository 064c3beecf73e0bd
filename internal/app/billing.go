package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"atrium/internal/billing"
	"atrium/internal/billing/sandboxpay"
	"atrium/internal/billing/stripepay"
	"atrium/internal/config"
	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/tenancy"
)

// entitlementsSubject carries, over core NATS, the workspaces whose
// subscription changed, so every node drops what it cached of their plan.
const entitlementsSubject = "atrium.billing.entitlements"

// initBilling loads and stores the plan catalogue (an invalid
// ATRIUM_PLANS_FILE stops the start, naming plan and field) and builds the
// ledger, the entitlements cache and the billing service. A change of a
// workspace's subscription on any node reaches every node's cache through
// the bus; EntitlementsTTL bounds how long a missed message can matter.
func (a *App) initBilling(ctx context.Context, cfg config.Config, clock kernel.Clock, mailer mail.Mailer) error {
	catalog, err := billing.LoadCatalog(cfg.PlansFile)
	if err != nil {
		return err
	}
	versions, err := billing.SyncPlans(kernel.WithLogger(ctx, a.Logger), a.DB, catalog)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	templates, err := mail.LoadTemplates(productName)
	if err != nil {
		return err
	}
	notices := &billing.Notices{Mailer: mailer, Templates: templates, Directory: a.Services.Workspaces, BaseURL: base, Logger: a.Logger}
	var entitlements *billing.Entitlements
	ledger := billing.NewLedger(billing.LedgerConfig{DB: a.DB, Catalog: catalog, Versions: versions, Logger: a.Logger,
		Notices: notices, Hold: tenancy.NonPaymentHold{},
		PlanChanged: func(ctx context.Context, workspaceID uuid.UUID) {
			if a.Services.Usage == nil {
				return
			}
			if err := a.Services.Usage.ApplyLimits(ctx, workspaceID); err != nil {
				a.Logger.ErrorContext(ctx, "apply a new plan's limits", "workspace_id", workspaceID, "error", err.Error())
			}
		},
		Changed: func(ctx context.Context, workspaceID uuid.UUID) {
			entitlements.Invalidate(workspaceID)
			if err := a.Bus.Conn.Publish(entitlementsSubject, workspaceID[:]); err != nil {
				a.Logger.WarnContext(ctx, "tell other nodes of a plan change", "error", err.Error())
			}
		}})
	entitlements = billing.NewEntitlements(ledger, clock, func(workspaceID uuid.UUID) string {
		return base + "/console/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + "/billing"
	})
	sub, err := a.Bus.Conn.Subscribe(entitlementsSubject, func(m *nats.Msg) {
		if id, err := uuid.FromBytes(m.Data); err == nil {
			entitlements.Invalidate(id)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to plan changes: %w", err)
	}
	a.closers = append(a.closers, func(context.Context) error { return sub.Unsubscribe() })
	a.Services.Billing = &billing.Service{Ledger: ledger, Entitlements: entitlements, BaseURL: base}
	if cfg.StripeSecretKey != "" {
		sp, err := stripepay.New(stripepay.Config{SecretKey: cfg.StripeSecretKey, WebhookSecret: cfg.StripeWebhookSecret,
			APIBase: cfg.StripeAPIBase, Catalog: catalog, PublicBaseURL: cfg.BaseURL, Clock: clock, Logger: a.Logger})
		if err != nil {
			return err
		}
		a.Services.Billing.Provider = sp
		a.stripe = sp
		return nil
	}
	sandbox, err := sandboxpay.New(sandboxpay.Config{DB: a.DB, Catalog: catalog, Ledger: ledger, PublicBaseURL: cfg.BaseURL})
	if err != nil {
		return err
	}
	a.Services.Billing.Provider = sandbox
	a.sandbox = sandbox
	return nil
}

// sandboxPages are the sandbox provider's checkout and portal pages, or nil
// (none) when Stripe takes the payments.
func (a *App) sandboxPages() *httpapi.SandboxPages {
	if a.sandbox == nil {
		return nil
	}
	return &httpapi.SandboxPages{Provider: a.sandbox, TokenKey: a.sandboxTokenKey}
}

// sandboxRoutes adds, outside production, the sandbox's development route
// that makes a workspace's next charge fail.
func (a *App) sandboxRoutes(routes []func(huma.API)) []func(huma.API) {
	if a.sandbox == nil || a.Config.Production() {
		return routes
	}
	return append(slices.Clone(routes), httpapi.SandboxDevRoutes(a.sandbox))
}

// stripeWebhooks is the Stripe webhook endpoint's parser, or nil (no
// endpoint) without Stripe: a nil *Provider must not become a non-nil
// interface.
func stripeWebhooks(p *stripepay.Provider) httpapi.StripeWebhooks {
	if p == nil {
		return nil
	}
	return p
}
