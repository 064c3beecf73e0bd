package httpapi_test

import (
	"testing"

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
