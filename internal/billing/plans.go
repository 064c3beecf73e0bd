// Package billing keeps Atrium's own subscription ledger and answers what a
// workspace's plan allows. The plan catalogue (this file) says what plans
// exist; the ledger (ledger.go) says which one each workspace is on, fed by a
// payment provider (the sandbox by default, Stripe when configured) through
// one code path; entitlements (entitlements.go) answer can and limit from an
// in-process cache.
package billing

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Features every plan must state, true or false. A plan file may add its own.
const (
	FeatureCustomBranding  = "custom_branding"
	FeatureSSO             = "sso"
	FeatureAuditLogExport  = "audit_log_export"
	FeatureWebhooks        = "webhooks"
	FeatureAPIAccess       = "api_access"
	FeaturePrioritySupport = "priority_support"
)

// Limits every plan must state, -1 meaning unlimited. A plan file may add its own.
const (
	LimitMembers          = "members"
	LimitStorageBytes     = "storage_bytes"
	LimitAPICallsPerMonth = "api_calls_per_month"
	LimitAPICallsPerHour  = "api_calls_per_hour"
)

// Unlimited is the limit that never binds.
const Unlimited int64 = -1

var (
	requiredFeatures = []string{FeatureCustomBranding, FeatureSSO, FeatureAuditLogExport, FeatureWebhooks, FeatureAPIAccess, FeaturePrioritySupport}
	requiredLimits   = []string{LimitMembers, LimitStorageBytes, LimitAPICallsPerMonth, LimitAPICallsPerHour}
	keyPattern       = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	currencyPattern  = regexp.MustCompile(`^[a-z]{3}$`)
)

//go:embed plans.json
var defaultPlans []byte

// Catalog is the plan catalogue: the plans in the order they are shown
// (cheapest first: a later plan is an upgrade of an earlier one), the plan
// every workspace starts on, and the trial offer.
type Catalog struct {
	DefaultPlan string  `json:"default_plan"`
	Trial       Trial   `json:"trial"`
	Plans       []*Plan `json:"plans"`
}

// Trial is the trial every workspace may start once, without a card.
type Trial struct {
	// Plan is the plan tried.
	Plan string `json:"plan"`
	// Days is how long the trial lasts; ExtensionDays how much one extension adds.
	Days          int `json:"days"`
	ExtensionDays int `json:"extension_days"`
}

// Plan is one plan of the catalogue.
type Plan struct {
	Key         string           `json:"key"`
	Name        string           `json:"name"`
	Description string           `json:"description,omitempty"`
	Prices      []Price          `json:"prices"`
	Features    map[string]bool  `json:"features"`
	Limits      map[string]int64 `json:"limits"`
	// Rank is the plan's place in the catalogue (0 = first): a move to a
	// higher rank is an upgrade, charged now; to a lower one a downgrade,
	// applied at the period end.
	Rank int `json:"-"`
}

// Price is what a plan costs per interval in one currency, in the currency's
// minor units (cents). ProviderIDs maps a provider's name to its price ID
// ("stripe": "price_…"); without one the provider describes the price inline.
type Price struct {
	Currency    string            `json:"currency"`
	Interval    Interval          `json:"interval"`
	Amount      int64             `json:"amount"`
	ProviderIDs map[string]string `json:"provider_ids,omitempty"`
}

// DefaultPlansJSON is the embedded catalogue's file, for a fork or a
// benchmark that starts from it.
func DefaultPlansJSON() []byte { return slices.Clone(defaultPlans) }

// LoadCatalog reads the plan catalogue from path, or the embedded defaults
// when path is empty, and validates it. Its error names the file, the plan and
// the field at fault, so a bad file stops the start with a line that says what
// to fix.
func LoadCatalog(path string) (*Catalog, error) {
	raw, source := defaultPlans, "embedded plans"
	if path != "" {
		var err error
		if raw, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("plans file (ATRIUM_PLANS_FILE): %w", err)
		}
		source = "plans file " + path
	}
	c, err := ParseCatalog(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

// ParseCatalog decodes and validates a catalogue. Unknown fields are errors:
// a misspelt "limts" must not silently mean "no limits".
func ParseCatalog(raw []byte) (*Catalog, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("not a valid catalogue: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not a valid catalogue: more than one JSON value")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalog) validate() error {
	if len(c.Plans) == 0 {
		return errors.New(`field "plans": at least one plan is needed`)
	}
	seen := map[string]bool{}
	for i, p := range c.Plans {
		if p == nil {
			return fmt.Errorf("plans[%d]: a plan is an object", i)
		}
		if err := p.validate(); err != nil {
			if p.Key == "" {
				return fmt.Errorf("plans[%d]: %w", i, err)
			}
			return fmt.Errorf("plan %q: %w", p.Key, err)
		}
		if seen[p.Key] {
			return fmt.Errorf("plan %q: field \"key\": appears twice", p.Key)
		}
		seen[p.Key] = true
		p.Rank = i
	}
	def := c.Plan(c.DefaultPlan)
	if def == nil {
		return fmt.Errorf("field \"default_plan\": %q is not a plan of the catalogue", c.DefaultPlan)
	}
	for _, price := range def.Prices {
		if price.Amount != 0 {
			return fmt.Errorf("plan %q: field \"prices\": the default plan must be free (a workspace starts on it without paying)", def.Key)
		}
	}
	if c.Trial.Plan != "" {
		if c.Plan(c.Trial.Plan) == nil {
			return fmt.Errorf("field \"trial.plan\": %q is not a plan of the catalogue", c.Trial.Plan)
		}
		if c.Trial.Days < 1 || c.Trial.Days > 365 {
			return errors.New(`field "trial.days": must be between 1 and 365`)
		}
		if c.Trial.ExtensionDays < 0 || c.Trial.ExtensionDays > 365 {
			return errors.New(`field "trial.extension_days": must be between 0 and 365`)
		}
	}
	return nil
}

func (p *Plan) validate() error {
	if !keyPattern.MatchString(p.Key) {
		return errors.New(`field "key": must be lowercase letters, digits and underscores, starting with a letter, at most 40`)
	}
	if strings.TrimSpace(p.Name) == "" || len(p.Name) > 100 {
		return errors.New(`field "name": must be 1 to 100 characters`)
	}
	if len(p.Prices) == 0 {
		return errors.New(`field "prices": at least one price is needed`)
	}
	type slot struct {
		currency string
		interval Interval
	}
	seen := map[slot]bool{}
	for i, price := range p.Prices {
		field := fmt.Sprintf("prices[%d]", i)
		if !currencyPattern.MatchString(price.Currency) {
			return fmt.Errorf("field %q: currency must be a lowercase ISO 4217 code such as \"usd\"", field+".currency")
		}
		if price.Interval != Monthly && price.Interval != Yearly {
			return fmt.Errorf("field %q: must be \"month\" or \"year\"", field+".interval")
		}
		if price.Amount < 0 || price.Amount > 100_000_000_00 {
			return fmt.Errorf("field %q: must be between 0 and 10000000000 minor units", field+".amount")
		}
		s := slot{price.Currency, price.Interval}
		if seen[s] {
			return fmt.Errorf("field %q: a second %s price per %s", field, price.Currency, price.Interval)
		}
		seen[s] = true
	}
	for _, f := range requiredFeatures {
		if _, ok := p.Features[f]; !ok {
			return fmt.Errorf("field %q: missing (every plan says true or false)", "features."+f)
		}
	}
	for name := range p.Features {
		if !keyPattern.MatchString(name) {
			return fmt.Errorf("field %q: a feature name must be lowercase letters, digits and underscores", "features."+name)
		}
	}
	for _, l := range requiredLimits {
		if _, ok := p.Limits[l]; !ok {
			return fmt.Errorf("field %q: missing (a number, or -1 for unlimited)", "limits."+l)
		}
	}
	for name, v := range p.Limits {
		if !keyPattern.MatchString(name) {
			return fmt.Errorf("field %q: a limit name must be lowercase letters, digits and underscores", "limits."+name)
		}
		if v < Unlimited {
			return fmt.Errorf("field %q: must be -1 (unlimited) or a number of at least 0", "limits."+name)
		}
	}
	return nil
}

// Plan returns the plan with key, or nil.
func (c *Catalog) Plan(key string) *Plan {
	for _, p := range c.Plans {
		if p.Key == key {
			return p
		}
	}
	return nil
}

// Default is the plan every workspace starts on.
func (c *Catalog) Default() *Plan { return c.Plan(c.DefaultPlan) }

// Price returns the plan's price in currency per interval, if it has one.
func (p *Plan) Price(currency string, interval Interval) (Price, bool) {
	i := slices.IndexFunc(p.Prices, func(x Price) bool { return x.Currency == currency && x.Interval == interval })
	if i < 0 {
		return Price{}, false
	}
	return p.Prices[i], true
}

// Free reports whether the plan costs nothing in every currency.
func (p *Plan) Free() bool {
	return !slices.ContainsFunc(p.Prices, func(x Price) bool { return x.Amount != 0 })
}

// Limit is the plan's limit for metric: Unlimited for -1, and 0 for a metric
// the plan does not name (what is not granted is not allowed).
func (p *Plan) Limit(metric string) int64 { return p.Limits[metric] }

// Can reports whether the plan includes feature.
func (p *Plan) Can(feature string) bool { return p.Features[feature] }

// PlanForProviderPrice finds the plan, interval and currency of a provider's
// price ID, for events that name a price rather than a plan.
func (c *Catalog) PlanForProviderPrice(provider, priceID string) (*Plan, Price, bool) {
	if priceID == "" {
		return nil, Price{}, false
	}
	for _, p := range c.Plans {
		for _, price := range p.Prices {
			if price.ProviderIDs[provider] == priceID {
				return p, price, true
			}
		}
	}
	return nil, Price{}, false
}

// canonical is the plan as stored in a plan version: the same plan always
// encodes to the same bytes (maps encode with sorted keys), so a changed
// plan is told from an unchanged one by comparing them.
func (p *Plan) canonical() []byte {
	raw, _ := json.Marshal(p) // a validated plan always encodes
	return raw
}

// decodePlan reads a plan's canonical JSON (a stored plan version).
func decodePlan(raw []byte) (*Plan, error) {
	var p Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
