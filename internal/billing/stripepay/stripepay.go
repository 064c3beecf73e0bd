// Package stripepay is the Stripe payment provider: a billing.Provider over
// stripe-go. Upgrades go through Stripe Checkout, self-service through the
// Billing Portal, plan changes through subscription updates with a proration
// preview. Stripe's webhooks come back through ParseWebhook, which verifies
// their signature and turns them into billing.ProviderEvent views for the
// ledger.
//
// Every call that changes something at Stripe carries an idempotency key
// (the caller's, or one derived from it), so a retry never charges twice.
// None of them may run inside a database transaction: the caller calls the
// provider, then records what it answered.
//
// Objects Atrium creates carry metadata that maps them back:
// atrium_workspace_id (the workspace's API form, ws_…) on customers,
// Checkout sessions and subscriptions, and atrium_plan (the plan's key) on
// sessions, subscriptions and the prices Atrium creates.
package stripepay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/stripe/stripe-go/v85"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

// Metadata keys Atrium sets on Stripe objects.
const (
	MetaWorkspace = "atrium_workspace_id"
	MetaPlan      = "atrium_plan"
	MetaInterval  = "atrium_interval"
)

// Config configures the provider.
type Config struct {
	// SecretKey is the Stripe API secret key (sk_live_…, sk_test_… or rk_…).
	SecretKey string
	// WebhookSecret is the signing secret of the webhook endpoint (whsec_…).
	WebhookSecret string
	// APIBase replaces Stripe's API URL, for stripe-mock; empty means Stripe.
	APIBase string
	// Catalog is the plan catalogue whose prices are sold.
	Catalog *billing.Catalog
	// PublicBaseURL is where Atrium is reached from a browser; relative
	// return URLs are resolved against it, since Stripe needs absolute ones.
	PublicBaseURL string
	// HTTPClient carries the calls to Stripe; nil uses a client with a
	// 30-second timeout.
	HTTPClient *http.Client
	// Clock stamps the versions of the views (see Provider.version); nil is
	// the system clock.
	Clock kernel.Clock
	// Logger receives what the provider notices but does not fail for.
	Logger *slog.Logger
}

// Provider is the Stripe payment provider. It is safe for concurrent use.
type Provider struct {
	client        *stripe.Client
	webhookSecret string
	catalog       *billing.Catalog
	base          *url.URL
	clock         kernel.Clock
	logger        *slog.Logger

	// lastVersion makes versions strictly increasing within the process.
	lastVersion atomic.Int64
	// prices caches the Stripe price ID of each catalogue price without a
	// configured one (see priceID), by lookup key.
	prices sync.Map
	// products caches the products known to exist, by ID.
	products sync.Map
}

var _ billing.Provider = (*Provider)(nil)

// New builds the provider. It returns an error naming the setting at fault
// when the secret key, webhook secret, catalogue or public base URL is
// missing or malformed; it makes no call to Stripe.
func New(cfg Config) (*Provider, error) {
	if strings.TrimSpace(cfg.SecretKey) == "" {
		return nil, errors.New("stripe: the secret key (ATRIUM_STRIPE_SECRET_KEY) is required")
	}
	if strings.TrimSpace(cfg.WebhookSecret) == "" {
		return nil, errors.New("stripe: the webhook signing secret (ATRIUM_STRIPE_WEBHOOK_SECRET) is required")
	}
	if cfg.Catalog == nil {
		return nil, errors.New("stripe: a plan catalogue is required")
	}
	base, err := url.Parse(cfg.PublicBaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("stripe: the public base URL %q must be an absolute http(s) URL", cfg.PublicBaseURL)
	}
	httpClient := cfg.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	backendCfg := &stripe.BackendConfig{
		HTTPClient: httpClient,
		// Errors are returned and logged once by whoever handles them.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIBase != "" {
		u, err := url.Parse(cfg.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("stripe: the API base URL %q (ATRIUM_STRIPE_API_BASE) must be an absolute http(s) URL", cfg.APIBase)
		}
		backendCfg.URL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
	}
	clock := cfg.Clock
	if clock == nil {
		clock = kernel.SystemClock{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Provider{
		client:        stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(backendCfg))),
		webhookSecret: cfg.WebhookSecret,
		catalog:       cfg.Catalog,
		base:          base,
		clock:         clock,
		logger:        logger,
	}, nil
}

// Name is "stripe".
func (p *Provider) Name() string { return billing.ProviderStripe }

// version returns the version of a view read from Stripe by a request about
// to be sent: the current time in microseconds since the Unix epoch, made
// strictly greater than every version this process handed out before.
//
// Why the time before the request: Stripe does not number the states of an
// object, and an event's created time has a resolution of one second, so
// events (and the objects they carry) cannot be ordered from their contents.
// Atrium therefore never applies the object an event carries when it can
// read the object itself: ParseWebhook reads the subscription (invoice,
// customer) from Stripe and stamps the view with the moment the read was
// sent. Any read sent after the last change returns the final state, and
// any read sent before it gets a lower version, so whatever the order in
// which events arrive and are processed, the view the ledger keeps last is
// Stripe's final one. The one assumption is that the nodes' clocks agree to
// well within the time between two changes of one subscription; the
// reconcile job (Provider.Subscription) repairs anything a larger skew
// leaves behind.
func (p *Provider) version() int64 {
	for {
		now := p.clock.Now().UnixMicro()
		last := p.lastVersion.Load()
		if now <= last {
			now = last + 1
		}
		if p.lastVersion.CompareAndSwap(last, now) {
			return now
		}
	}
}

// absoluteURL resolves a return URL against the public base URL; an empty
// one becomes fallback, resolved the same way. A URL of another origin is
// refused as invalid: Stripe would send the customer there, so a return URL
// taken from a request must not make Atrium an open redirect.
func (p *Provider) absoluteURL(raw, fallback string) (string, error) {
	if raw == "" {
		raw = fallback
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", kernel.Invalid("return_url", "not a valid URL")
	}
	abs := p.base.ResolveReference(u)
	if abs.Scheme != p.base.Scheme || abs.Host != p.base.Host {
		return "", kernel.Invalid("return_url", "must be a URL of this deployment ("+p.base.Scheme+"://"+p.base.Host+")")
	}
	return abs.String(), nil
}

// idempotencyKey derives the key of one Stripe call from the caller's key.
// Keys are per request at Stripe (the same key with other parameters is an
// error), so each call of one operation gets its own suffix. An empty key
// leaves the choice to stripe-go, which sends a random one (reused by its
// own retries). Keys over Stripe's 255 characters are shortened to a hash.
func idempotencyKey(key, suffix string) *string {
	if key == "" {
		return nil
	}
	k := key + suffix
	if len(k) > 255 {
		k = "atrium-" + hashHex(k)
	}
	return &k
}

// workspaceMeta renders a workspace ID for Stripe metadata.
func workspaceMeta(id uuid.UUID) string { return kernel.FormatID(kernel.PrefixWorkspace, id) }

// parseWorkspaceMeta reads a workspace ID from Stripe metadata: the ws_…
// form Atrium writes, or a raw UUID someone wrote by hand in the dashboard.
// It returns uuid.Nil when there is none or it is malformed.
func parseWorkspaceMeta(s string) uuid.UUID {
	if s == "" {
		return uuid.Nil
	}
	if id, err := kernel.ParseID(kernel.PrefixWorkspace, s); err == nil {
		return id
	}
	if id, err := uuid.Parse(s); err == nil {
		return id
	}
	return uuid.Nil
}

// apiError turns an error of stripe-go into a kernel.Error: not_found for a
// missing object, payment_required for a declined card (Stripe's message,
// which is meant for the customer), conflict for an idempotency key reused
// with other parameters, unavailable for rate limits, Stripe's own faults
// and network failures (the caller may retry), internal for the rest,
// which are Atrium's mistakes.
func apiError(what string, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return kernel.Unavailable("Stripe", fmt.Errorf("stripe: %s: %w", what, err))
	}
	wrapped := fmt.Errorf("stripe: %s: %w", what, err)
	switch {
	case se.Code == stripe.ErrorCodeResourceMissing || se.HTTPStatusCode == http.StatusNotFound:
		return &kernel.Error{Code: kernel.CodeNotFound, Message: what + " not found at Stripe", Err: wrapped}
	case se.Type == stripe.ErrorTypeCard:
		msg := se.Msg
		if msg == "" {
			msg = "the payment was declined"
		}
		return &kernel.Error{Code: kernel.CodePaymentRequired, Message: msg, Err: wrapped}
	case se.Type == stripe.ErrorTypeIdempotency:
		return &kernel.Error{Code: kernel.CodeConflict, Message: "this idempotency key was used for another request", Err: wrapped}
	case se.HTTPStatusCode == http.StatusTooManyRequests || se.HTTPStatusCode >= 500 || se.Type == stripe.ErrorTypeAPI:
		return kernel.Unavailable("Stripe", wrapped)
	}
	return kernel.Internal(wrapped)
}
