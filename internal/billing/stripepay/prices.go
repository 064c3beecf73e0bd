package stripepay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/stripe/stripe-go/v85"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

// A catalogue price without a configured Stripe price ID is still sold
// through a real Stripe price rather than an inline price_data: Checkout
// could describe it inline, but a subscription update cannot (its
// price_data needs an existing product), the Billing Portal can offer plan
// switches only between real prices, and an inline price is a new,
// anonymous price object on every checkout. So Atrium keeps one product per
// plan (ID "atrium_<plan>") and one price per plan, currency, interval and
// amount, found again by its lookup key. A changed amount in the catalogue
// makes a new price; subscriptions on the old one keep it until they change.

// priceID returns the Stripe price of a plan's price: the configured
// provider ID, else the price Atrium created for it before (found by its
// lookup key, and cached), else a new one. It returns invalid when the plan
// has no such price and an error of apiError when Stripe fails.
func (p *Provider) priceID(ctx context.Context, plan billing.Plan, currency string, interval billing.Interval) (string, error) {
	price, ok := plan.Price(currency, interval)
	if !ok {
		return "", kernel.Invalid("currency", fmt.Sprintf("plan %q has no %s price per %s", plan.Key, currency, interval))
	}
	if id := price.ProviderIDs[billing.ProviderStripe]; id != "" {
		return id, nil
	}
	key := lookupKey(plan.Key, price)
	if id, ok := p.prices.Load(key); ok {
		return id.(string), nil
	}
	list := p.client.V1Prices.List(ctx, &stripe.PriceListParams{
		LookupKeys: []*string{stripe.String(key)},
		Active:     stripe.Bool(true),
		ListParams: stripe.ListParams{Limit: stripe.Int64(1)},
	})
	if err := list.Err(); err != nil {
		return "", apiError("price "+key, err)
	}
	for _, found := range list.Data() {
		// The lookup key is a filter, but check it: a price found must be this one.
		if found.LookupKey == key {
			p.prices.Store(key, found.ID)
			return found.ID, nil
		}
	}
	productID, err := p.productID(ctx, plan)
	if err != nil {
		return "", err
	}
	params := &stripe.PriceCreateParams{
		Product:    stripe.String(productID),
		Currency:   stripe.String(price.Currency),
		UnitAmount: stripe.Int64(price.Amount),
		Recurring:  &stripe.PriceCreateRecurringParams{Interval: stripe.String(string(price.Interval))},
		LookupKey:  stripe.String(key),
		Nickname:   stripe.String(fmt.Sprintf("%s (%s per %s)", plan.Name, price.Currency, price.Interval)),
	}
	params.AddMetadata(MetaPlan, plan.Key)
	params.AddMetadata(MetaInterval, string(price.Interval))
	// One key per lookup key: nodes creating the same price at once get one.
	params.SetIdempotencyKey("atrium-price-" + key)
	created, err := p.client.V1Prices.Create(ctx, params)
	if err != nil {
		return "", apiError("price "+key, err)
	}
	p.prices.Store(key, created.ID)
	return created.ID, nil
}

// productID returns the Stripe product of a plan, "atrium_<plan>", creating
// it when Stripe does not have it.
func (p *Provider) productID(ctx context.Context, plan billing.Plan) (string, error) {
	id := "atrium_" + plan.Key
	if _, ok := p.products.Load(id); ok {
		return id, nil
	}
	_, err := p.client.V1Products.Retrieve(ctx, id, nil)
	if err == nil {
		p.products.Store(id, true)
		return id, nil
	}
	if !kernel.IsCode(apiError("product", err), kernel.CodeNotFound) {
		return "", apiError("product "+id, err)
	}
	params := &stripe.ProductCreateParams{ID: stripe.String(id), Name: stripe.String(plan.Name)}
	if plan.Description != "" {
		params.Description = stripe.String(plan.Description)
	}
	params.AddMetadata(MetaPlan, plan.Key)
	params.SetIdempotencyKey("atrium-product-" + id)
	if _, err := p.client.V1Products.Create(ctx, params); err != nil {
		return "", apiError("product "+id, err)
	}
	p.products.Store(id, true)
	return id, nil
}

// lookupKey names the Stripe price of one catalogue price.
func lookupKey(planKey string, price billing.Price) string {
	return "atrium_" + planKey + "_" + price.Currency + "_" + string(price.Interval) + "_" + strconv.FormatInt(price.Amount, 10)
}

// planOfPrice maps a Stripe price back to a plan and interval: through the
// catalogue's configured price IDs, else through the metadata of a price
// Atrium created. It returns false for a price Atrium does not know.
func (p *Provider) planOfPrice(price *stripe.Price) (string, billing.Interval, bool) {
	if price == nil {
		return "", "", false
	}
	if plan, pr, ok := p.catalog.PlanForProviderPrice(billing.ProviderStripe, price.ID); ok {
		return plan.Key, pr.Interval, true
	}
	key := price.Metadata[MetaPlan]
	if key == "" || p.catalog.Plan(key) == nil {
		return "", "", false
	}
	return key, intervalOf(price), true
}

// intervalOf is a price's billing interval; Atrium sells only monthly and
// yearly prices, so anything else is read from its metadata or taken as monthly.
func intervalOf(price *stripe.Price) billing.Interval {
	if price != nil && price.Recurring != nil {
		switch billing.Interval(price.Recurring.Interval) {
		case billing.Monthly:
			return billing.Monthly
		case billing.Yearly:
			return billing.Yearly
		}
	}
	if price != nil && price.Metadata[MetaInterval] == string(billing.Yearly) {
		return billing.Yearly
	}
	return billing.Monthly
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
