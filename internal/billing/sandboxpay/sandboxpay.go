// Package sandboxpay is the sandbox payment provider, Atrium's default: a
// billing.Provider that behaves like a payment provider (checkout page,
// subscriptions, invoices, renewals, declined cards, retries) with its own
// state in its own tables (sandbox_*), and moves no money. The whole
// billing path can be tried and tested with it, without an account
// anywhere.
//
// # Test cards
//
// The checkout page takes these numbers (spaces and dashes are ignored);
// only the last four digits are kept:
//
//	4242 4242 4242 4242  succeeds, at checkout and at every later charge
//	4000 0000 0000 0002  is declined at checkout: the page says so, nothing changes
//	4000 0000 0000 0341  is accepted at checkout, then every later charge fails
//	                     (renewals and upgrades: payment failed, past due, retries)
//
// Any other number is refused as an unknown test card. FailNextCharge (and
// the development route that calls it) makes the next charge of a
// workspace's subscription fail once, whatever its card.
//
// # Proration
//
// A change made now is prorated by whole days. daysInPeriod is the number
// of days of the current period and remaining the number of whole days left
// in it when the change is made (the day in progress counts as used), then:
//
//	credit = round(old amount × remaining / daysInPeriod)   (a negative line)
//	charge = round(new amount × remaining / daysInPeriod)
//
// each rounded to the nearest minor unit, halves up, and the amount due now
// is charge − credit. A change of interval (monthly to yearly) starts a new
// period now instead: the credit is the same, and the charge is the new
// interval's full price. A positive amount due is reduced by any credit
// balance and charged at once to the card; when the charge fails, nothing
// changes and Change returns payment_required. A negative amount due (a
// downgrade made now) is kept as credit balance and spent by the next
// charges. A change with AtPeriodEnd is stored as pending, charges nothing,
// and is made by the renewal at the period end. PreviewChange computes with
// the same function, so at the same clock reading it answers exactly what
// Change charges.
//
// # Renewals and retries
//
// Renew, run by the scheduler, renews every subscription whose period has
// ended: one set to cancel at the period end ends (subscription.deleted);
// the others take their pending change, start the next period and are
// charged for it, the first charge of a trial included. A failed charge
// leaves the invoice open and the subscription past due, and the invoice is
// retried 1 day after the failure, then 2, 4 and 7 days after each retry
// before (days 1, 3, 7 and 14), then every 7 days, until it is paid (the
// subscription is active again) or the subscription ends. A card changed on
// the portal page retries the open invoices at once. What happens to the
// workspace meanwhile is for the billing ledger's dunning to decide.
//
// # Events
//
// Every change bumps the subscription's version (and each invoice's own)
// and produces billing.ProviderEvents, with IDs evt_sbx_<uuid>, carrying
// views of the subscription and invoice as they are after the change. The
// events are written to sandbox_event in the transaction of the change and
// handed to the ledger right after it commits; a row is deleted once the
// ledger has applied its event. If the process dies between the two, or the
// ledger fails, DeliverPending (a scheduled task) delivers what is left: the
// ledger applies an event once whatever the number of deliveries, and
// ignores a view older than the one it holds.
//
// # IDs
//
// Customers are cus_sbx_<workspace>, one per workspace; checkout sessions,
// subscriptions and invoices are cs_sbx_, sub_sbx_ and in_sbx_ followed by
// the workspace and 128 random bits, each part 26 characters of TypeID's
// base32. The provider's methods name objects by ID alone, as with Stripe;
// carrying the workspace lets each call work inside that workspace's
// transaction, under its row-level security, with no cross-tenant lookup.
// The random part makes a checkout session's ID the capability of its page.
package sandboxpay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// CheckoutPath is where the sandbox's pages are served, followed by a
// checkout session's ID.
const CheckoutPath = "/sandbox/checkout/"

// DefaultReturnPath is where the pages send the customer back when the
// caller names no URL, relative to the public base URL.
const DefaultReturnPath = "/billing"

// Lifetimes of the pages' sessions.
const (
	checkoutLifetime = 24 * time.Hour
	portalLifetime   = time.Hour
)

// ledger applies the sandbox's events (billing.Ledger): the one path every
// provider feeds, idempotent by event ID.
type ledger interface {
	Apply(ctx context.Context, ev billing.ProviderEvent) (applied bool, err error)
}

// Config is what New needs.
type Config struct {
	// DB holds the sandbox's tables; every call works in a workspace
	// transaction, whose clock (the store's) is the sandbox's.
	DB store.DB
	// Catalog prices checkouts and changes.
	Catalog *billing.Catalog
	// Ledger receives the sandbox's events.
	Ledger ledger
	// PublicBaseURL is where Atrium is reached from a browser: the pages'
	// URLs start with it, and return URLs must be of its origin.
	PublicBaseURL string
}

// Provider is the sandbox payment provider. It is safe for concurrent use.
type Provider struct {
	db      store.DB
	catalog *billing.Catalog
	ledger  ledger
	base    *url.URL
	// deliverAfterCommit hands a change's events to the ledger as soon as
	// it commits; tests turn it off to stand for a crash at that moment.
	deliverAfterCommit bool
}

var _ billing.Provider = (*Provider)(nil)

// New builds the provider. It returns an error naming what is missing or
// malformed: the store, the catalogue, the ledger or the public base URL.
func New(cfg Config) (*Provider, error) {
	if cfg.DB == nil {
		return nil, errors.New("sandbox payments: a store is required")
	}
	if cfg.Catalog == nil {
		return nil, errors.New("sandbox payments: a plan catalogue is required")
	}
	if cfg.Ledger == nil {
		return nil, errors.New("sandbox payments: the billing ledger is required")
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.PublicBaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("sandbox payments: the public base URL %q (ATRIUM_BASE_URL) must be an absolute http(s) URL", cfg.PublicBaseURL)
	}
	return &Provider{db: cfg.DB, catalog: cfg.Catalog, ledger: cfg.Ledger, base: base, deliverAfterCommit: true}, nil
}

// Name is "sandbox".
func (p *Provider) Name() string { return billing.ProviderSandbox }

// ID prefixes of the sandbox's objects.
const (
	prefixCheckout     = "cs_sbx_"
	prefixCustomer     = "cus_sbx_"
	prefixSubscription = "sub_sbx_"
	prefixInvoice      = "in_sbx_"
	prefixEvent        = "evt_sbx_"
	// idPartLength is the length of one part (a UUID) of an ID.
	idPartLength = 26
)

// idPart renders a UUID as 26 characters of TypeID's base32.
func idPart(id uuid.UUID) string {
	return strings.TrimPrefix(kernel.FormatID("x", id), "x_")
}

// parseIDPart reads what idPart wrote, or returns false.
func parseIDPart(s string) (uuid.UUID, bool) {
	id, err := kernel.ParseID("x", "x_"+s)
	return id, err == nil
}

// newID returns a fresh ID of an object of workspaceID: prefix, the
// workspace, then 128 random bits.
func newID(prefix string, workspaceID uuid.UUID) string {
	var random uuid.UUID
	_, _ = rand.Read(random[:]) // never fails: crypto/rand crashes the program rather than return short
	return prefix + idPart(workspaceID) + idPart(random)
}

// customerID is the sandbox customer of a workspace.
func customerID(workspaceID uuid.UUID) string { return prefixCustomer + idPart(workspaceID) }

// workspaceOf reads the workspace out of an ID with prefix. It returns
// not_found, naming what, for an ID that is not one the sandbox makes: a
// hostile or mistyped ID ends here, before any query.
func workspaceOf(prefix, id, what string) (uuid.UUID, error) {
	rest, ok := strings.CutPrefix(id, prefix)
	want := 2 * idPartLength
	if prefix == prefixCustomer {
		want = idPartLength
	}
	if !ok || len(rest) != want {
		return uuid.Nil, kernel.NotFound(what)
	}
	workspaceID, ok := parseIDPart(rest[:idPartLength])
	if !ok || workspaceID == uuid.Nil {
		return uuid.Nil, kernel.NotFound(what)
	}
	if want > idPartLength {
		if _, ok := parseIDPart(rest[idPartLength:]); !ok {
			return uuid.Nil, kernel.NotFound(what)
		}
	}
	return workspaceID, nil
}

// absoluteURL resolves a return URL against the public base URL; an empty
// one becomes fallback. A URL of another origin is refused as invalid: the
// page sends the customer there, so Atrium must not become an open redirect.
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

// pageURL is the URL of a checkout session's page.
func (p *Provider) pageURL(checkoutID string) string {
	return p.base.String() + CheckoutPath + checkoutID
}

// errRaced reports that a row changed between its read and its write in
// the same transaction (another call got there first): the transaction is
// rolled back and run again.
var errRaced = errors.New("sandbox payments: a concurrent change won")

// maxRuns bounds how often write runs a transaction that keeps losing races.
const maxRuns = 5

// write runs fn in a transaction of workspaceID, again when it lost a race
// (errRaced, or an idempotency key stored by a concurrent call), and hands
// the events fn emitted to the ledger once it commits.
func (p *Provider) write(ctx context.Context, workspaceID uuid.UUID, fn func(tx store.Tx, b *batch) error) error {
	for run := 1; ; run++ {
		b := &batch{workspaceID: workspaceID}
		err := p.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
			b.tx = tx
			return fn(tx, b)
		})
		if errors.Is(err, errRaced) && run < maxRuns {
			continue
		}
		if errors.Is(err, errRaced) {
			return &kernel.Error{Code: kernel.CodeConflict, Message: "the subscription is changing, try again", Err: err}
		}
		if err != nil {
			return err
		}
		if p.deliverAfterCommit {
			p.deliver(ctx, workspaceID, b.events)
		}
		return nil
	}
}
