package billing_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"atrium/internal/billing"
	"atrium/internal/testkit"
)

func TestEmbeddedCatalogIsValid(t *testing.T) {
	c := mustCatalog(t, "")
	if c.Default().Key != "free" || c.Trial.Plan != "pro" || c.Trial.Days != 14 || c.Trial.ExtensionDays != 7 {
		t.Fatalf("defaults changed: %+v", c)
	}
	if c.Plan("enterprise").Limit(billing.LimitMembers) != billing.Unlimited {
		t.Fatal("enterprise members are limited")
	}
	if p, ok := c.Plan("pro").Price("usd", billing.Yearly); !ok || p.Amount != 29000 {
		t.Fatalf("pro yearly usd %+v", p)
	}
}

// TestInvalidCatalogNamesPlanAndField: a bad plans file stops the start with
// a line that says which plan and which field to fix.
func TestInvalidCatalogNamesPlanAndField(t *testing.T) {
	valid, err := os.ReadFile("plans.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, from, to, want string }{
		{"limit below -1", `"members": 25`, `"members": -2`, `plan "pro": field "limits.members"`},
		{"missing feature", `"sso": false,
        "audit_log_export": true`, `"audit_log_export": true`, `plan "pro": field "features.sso": missing`},
		{"unknown field", `"key": "pro"`, `"key": "pro", "limts": {}`, `unknown field "limts"`},
		{"bad interval", `{"currency": "usd", "interval": "month", "amount": 2900}`, `{"currency": "usd", "interval": "week", "amount": 2900}`, `plan "pro": field "prices[0].interval"`},
		{"bad currency", `{"currency": "usd", "interval": "month", "amount": 2900}`, `{"currency": "US$", "interval": "month", "amount": 2900}`, `plan "pro": field "prices[0].currency"`},
		{"unknown default", `"default_plan": "free"`, `"default_plan": "gratis"`, `field "default_plan"`},
		{"trial of no plan", `"plan": "pro", "days": 14`, `"plan": "platinum", "days": 14`, `field "trial.plan"`},
		{"duplicate key", `"key": "enterprise"`, `"key": "pro"`, `plan "pro": field "key": appears twice`},
		{"paid default", `{"currency": "usd", "interval": "month", "amount": 0}`, `{"currency": "usd", "interval": "month", "amount": 100}`, `plan "free": field "prices"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			changed := strings.Replace(string(valid), tc.from, tc.to, 1)
			if changed == string(valid) {
				t.Fatalf("the case does not change the file: %q not found", tc.from)
			}
			path := filepath.Join(t.TempDir(), "plans.json")
			if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := billing.LoadCatalog(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want an error naming the file and containing %q", err, tc.want)
			}
		})
	}
}

// TestPriceChangeKeepsWhatSubscribersPay: a changed price makes a new plan
// version; a subscriber keeps the price of the version it bought.
func TestPriceChangeKeepsWhatSubscribersPay(t *testing.T) {
	for _, dialect := range testkit.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			r := setup(t, dialect)
			ws := r.workspace(t)
			r.apply(t, "evt_1", billing.EventSubscriptionUpdated, r.paid(ws, "pro", 1))

			raw, _ := os.ReadFile("plans.json")
			path := filepath.Join(t.TempDir(), "plans.json")
			dearer := strings.Replace(string(raw), `"amount": 2900}`, `"amount": 3900}`, 1)
			if err := os.WriteFile(path, []byte(dearer), 0o600); err != nil {
				t.Fatal(err)
			}
			c2 := mustCatalog(t, path)
			v1, _ := billing.SyncPlans(r.ctx, r.db, r.catalog)
			v2, err := billing.SyncPlans(r.ctx, r.db, c2)
			if err != nil {
				t.Fatal(err)
			}
			if v1["pro"] == v2["pro"] || v1["free"] != v2["free"] {
				t.Fatalf("versions: before %v after %v", v1, v2)
			}
			again, _ := billing.SyncPlans(r.ctx, r.db, c2)
			if again["pro"] != v2["pro"] {
				t.Fatal("an unchanged catalogue made a new version")
			}
			ledger := billing.NewLedger(billing.LedgerConfig{DB: r.db, Catalog: c2, Versions: v2, Logger: testkit.DiscardLogger()})
			renewed := r.paid(ws, "pro", 2)
			renewed.CurrentPeriodEnd = renewed.CurrentPeriodEnd.AddDate(0, 1, 0)
			if _, err := ledger.Apply(r.ctx, billing.ProviderEvent{Provider: billing.ProviderStripe, ID: "evt_2",
				Type: billing.EventSubscriptionUpdated, Subscription: &renewed}); err != nil {
				t.Fatal(err)
			}
			s, _ := ledger.Subscription(r.ctx, ws)
			if s.Amount != 2900 || s.PlanVersionID != v1["pro"] {
				t.Fatalf("the subscriber's price changed: %+v", s)
			}
			other := r.workspace(t)
			fresh := r.paid(other, "pro", 1)
			fresh.ID = "sub_other"
			if _, err := ledger.Apply(r.ctx, billing.ProviderEvent{Provider: billing.ProviderStripe, ID: "evt_3",
				Type: billing.EventSubscriptionUpdated, Subscription: &fresh}); err != nil {
				t.Fatal(err)
			}
			if s, _ := ledger.Subscription(r.ctx, other); s.Amount != 3900 || s.PlanVersionID != v2["pro"] {
				t.Fatalf("a new subscriber pays %d on %s", s.Amount, s.PlanVersionID)
			}
		})
	}
}
