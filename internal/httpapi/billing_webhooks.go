package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

// maxProviderWebhookBytes caps a payment provider's webhook body. Stripe's
// events are a few kilobytes; the cap applies before the signature is
// checked, so an unsigned flood costs little.
const maxProviderWebhookBytes = 64 << 10

// StripeWebhooks verifies Stripe's webhooks and reads them as the ledger's
// events (stripepay.Provider). ParseWebhook returns invalid for a missing,
// malformed, wrong or stale signature.
type StripeWebhooks interface {
	ParseWebhook(ctx context.Context, payload []byte, signature string) (billing.ProviderEvent, error)
}

// LedgerApplier applies a provider's event once (billing.Ledger): applied is
// false, without an error, for an event applied before.
type LedgerApplier interface {
	Apply(ctx context.Context, ev billing.ProviderEvent) (applied bool, err error)
}

type stripeWebhookInput struct {
	Signature string `header:"Stripe-Signature" doc:"Stripe's signature of the body: t=<unix time>,v1=<HMAC-SHA256>"`
	RawBody   []byte `contentType:"application/json"`
}

// WebhookReceivedBody acknowledges a provider's webhook.
type WebhookReceivedBody struct {
	Received bool `json:"received" example:"true"`
}

type webhookReceivedOutput struct {
	Body WebhookReceivedBody
}

// registerBillingWebhooks serves the Stripe webhook endpoint. It needs no
// credentials: the signature proves the body comes from Stripe. It reads
// the body raw (the signature covers its exact bytes), capped at 64 KiB.
func registerBillingWebhooks(api huma.API, stripe StripeWebhooks, ledger LedgerApplier) {
	if ledger == nil {
		panic("httpapi: Deps.StripeWebhooks needs Deps.BillingLedger to apply the events")
	}
	huma.Register(api, huma.Operation{
		OperationID: "receive-stripe-webhook", Method: http.MethodPost, Path: "/api/v1/billing/webhooks/stripe",
		Summary: "Receive a Stripe event", Tags: []string{"Billing"},
		Description: "Stripe's webhook endpoint; point a Stripe webhook at it. No credentials: the Stripe-Signature " +
			"header must match the body under the endpoint's signing secret and be at most 300 seconds old, " +
			"else the answer is 400 and nothing changes. Bodies over 64 KiB answer 413. Every event is applied " +
			"once, whatever the order and number of its deliveries: a repeated or concurrent delivery answers " +
			"200 without applying it again, and so do event types Atrium does not act on. A 500 or 503 asks " +
			"Stripe to deliver again later.",
		// Huma refuses a body that reaches MaxBodyBytes, so one more byte
		// lets a body of exactly 64 KiB through.
		MaxBodyBytes: maxProviderWebhookBytes + 1,
		// The body is read raw for the signature; ParseWebhook reads it after.
		SkipValidateBody: true,
		Errors: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusInternalServerError,
			http.StatusServiceUnavailable},
	}, func(ctx context.Context, in *stripeWebhookInput) (*webhookReceivedOutput, error) {
		if err := receiveProviderEvent(ctx, stripe, ledger, in.RawBody, in.Signature); err != nil {
			return nil, err
		}
		return &webhookReceivedOutput{Body: WebhookReceivedBody{Received: true}}, nil
	})
}

// receiveProviderEvent verifies one webhook and applies its event. Events
// of types Atrium does not act on are logged and dropped; the ledger stores
// the rest with their effect, once. It returns ParseWebhook's invalid for a
// bad signature, and the ledger's error (internal: Stripe retries) when it
// cannot apply the event.
func receiveProviderEvent(ctx context.Context, parser StripeWebhooks, ledger LedgerApplier, payload []byte, signature string) error {
	log := kernel.Logger(ctx)
	ev, err := parser.ParseWebhook(ctx, payload, signature)
	if err != nil {
		if !kernel.IsCode(err, kernel.CodeInvalid) {
			// The provider is told to retry; the cause stays here.
			log.WarnContext(ctx, "billing webhook not received", "error", err.Error())
		}
		return err
	}
	if ev.Type == billing.EventIgnored {
		log.InfoContext(ctx, "billing webhook ignored", "provider", ev.Provider, "event", ev.ID, "type", ev.ProviderType)
		return nil
	}
	applied, err := ledger.Apply(ctx, ev)
	if err != nil {
		return err
	}
	log.DebugContext(ctx, "billing webhook received", "provider", ev.Provider, "event", ev.ID, "type", ev.ProviderType,
		"applied", applied)
	return nil
}
