package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestBillingRoutes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		plans := call(t, f.url, "GET", "/api/v1/plans", nil, "")
		if plans.status != 200 || plans.body["default_plan"] != "free" {
			t.Fatalf("plans: %d %s", plans.status, plans.raw)
		}
		if list, _ := plans.body["plans"].([]any); len(list) != 3 {
			t.Fatalf("plans: %s", plans.raw)
		}

		owner := f.app.SignUp(t, "billing-owner@example.com")
		wsID := createWorkspace(t, f, owner, "billed")
		base := "/api/v1/workspaces/" + wsID + "/subscription"
		sub := call(t, f.url, "GET", base, owner.Headers(), "")
		if sub.status != 200 || sub.body["plan"] != "free" || sub.body["trial_available"] != true || sub.body["trial_end"] != nil {
			t.Fatalf("subscription: %d %s", sub.status, sub.raw)
		}

		// A body where none belongs is refused, and nothing is applied.
		r := call(t, f.url, "POST", base+"/trial", owner.Headers(), `{"plan": "enterprise", "status": "active"}`)
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("a trial with a body: %d %s", r.status, r.raw)
		}
		if sub := call(t, f.url, "GET", base, owner.Headers(), ""); sub.body["status"] != "active" || sub.body["plan"] != "free" {
			t.Fatalf("a refused request changed the subscription: %s", sub.raw)
		}

		r = call(t, f.url, "POST", base+"/trial", owner.Headers(), "")
		if r.status != 200 || r.body["status"] != "trialing" || r.body["plan"] != "pro" || r.body["trial_available"] != false {
			t.Fatalf("trial: %d %s", r.status, r.raw)
		}
		if features, _ := r.body["features"].(map[string]any); features["webhooks"] != true {
			t.Fatalf("trial features: %s", r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", base+"/trial", owner.Headers(), ""), 409, kernel.CodeConflict)
		if r = call(t, f.url, "POST", base+"/trial/extend", owner.Headers(), ""); r.status != 200 || r.body["trial_extended"] != true {
			t.Fatalf("extend: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", base+"/trial/extend", owner.Headers(), ""), 409, kernel.CodeConflict)

		inv := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID+"/invoices", owner.Headers(), "")
		if inv.status != 200 || inv.body["has_more"] != false {
			t.Fatalf("invoices: %d %s", inv.status, inv.raw)
		}
		audit := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID+"/audit-log?action=subscription.trial_started", owner.Headers(), "")
		if items, _ := audit.body["items"].([]any); audit.status != 200 || len(items) != 1 {
			t.Fatalf("audit: %d %s", audit.status, audit.raw)
		}
	})
}

// TestNonPaymentMakesTheWorkspaceReadOnly: after 30 days unpaid a workspace
// answers reads and its billing routes, refuses every other change, and its
// owner has been told at each step; a payment opens it again.
func TestNonPaymentMakesTheWorkspaceReadOnly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ctx := context.Background()
		owner := f.app.SignUp(t, "dunned-owner@example.com")
		wsID := createWorkspace(t, f, owner, "dunned")
		ws, _ := kernel.ParseID(kernel.PrefixWorkspace, wsID)
		ledger := f.app.Services.Billing.Ledger
		view := func(status billing.Status, version int64) billing.ProviderSubscription {
			now := f.app.Clock.Now()
			return billing.ProviderSubscription{Provider: billing.ProviderStripe, ID: "sub_dunned", CustomerID: "cus_dunned",
				WorkspaceID: ws, PlanKey: "pro", Interval: billing.Monthly, Currency: "usd", Status: status,
				CurrentPeriodStart: now, CurrentPeriodEnd: now.AddDate(0, 1, 0), Quantity: 1, Version: version}
		}
		apply := func(id string, v billing.ProviderSubscription) {
			if _, err := ledger.Apply(ctx, billing.ProviderEvent{Provider: billing.ProviderStripe, ID: id,
				Type: billing.EventSubscriptionUpdated, Subscription: &v}); err != nil {
				t.Fatal(err)
			}
		}
		apply("evt_paid", view(billing.StatusActive, 1))
		apply("evt_failed", view(billing.StatusPastDue, 2))
		f.app.Clock.Advance(31 * 24 * time.Hour)
		if n, err := ledger.AdvanceDunning(ctx, f.app.DB); err != nil || n != 2 {
			t.Fatalf("dunning took %d steps, %v", n, err)
		}
		owner = f.app.LogIn(t, "dunned-owner@example.com")
		base := "/api/v1/workspaces/" + wsID
		assertEnvelope(t, call(t, f.url, "PATCH", base, owner.Headers(), `{"name": "Renamed"}`), 403, kernel.CodeWorkspaceInactive)
		if r := call(t, f.url, "GET", base, owner.Headers(), ""); r.status != 200 || r.body["name"] == "Renamed" {
			t.Fatalf("read while suspended: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", base+"/subscription", owner.Headers(), ""); r.status != 200 || r.body["dunning_step"] != "suspended" ||
			r.body["effective_plan"] != "free" {
			t.Fatalf("subscription while suspended: %d %s", r.status, r.raw)
		}
		// The billing routes stay open: this one reaches the service (409: nothing to resume).
		assertEnvelope(t, call(t, f.url, "POST", base+"/subscription/resume", owner.Headers(), ""), 503, kernel.CodeUnavailable)

		mails, err := f.app.Services.Mailbox.List(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for _, m := range mails {
			if len(m.To) == 1 && m.To[0] == "dunned-owner@example.com" {
				subjects = append(subjects, m.Subject)
			}
		}
		for _, want := range []string{"A payment for Team dunned failed", "is on the Free plan's features", "is read-only"} {
			if !slices.ContainsFunc(subjects, func(s string) bool { return strings.Contains(s, want) }) {
				t.Errorf("no notice %q among %q", want, subjects)
			}
		}

		apply("evt_recovered", view(billing.StatusActive, 3))
		if r := call(t, f.url, "PATCH", base, owner.Headers(), `{"name": "Renamed"}`); r.status != 200 {
			t.Fatalf("a paid workspace stays read-only: %d %s", r.status, r.raw)
		}
	})
}
