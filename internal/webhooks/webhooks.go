// Package webhooks sends a workspace's events to the endpoints it registers,
// signed per the Standard Webhooks specification (webhook-id,
// webhook-timestamp, webhook-signature).
//
// An events subscriber fans each event out: in the workspace's transaction
// it writes one delivery per enabled endpoint whose filter matches and
// enqueues the job that sends it, so a delivery exists exactly when its job
// does, and an event the bus hands over twice is delivered once. The job
// posts the event's envelope with a 15-second limit, follows no redirect,
// reads at most a little of the answer and records every attempt; it is
// retried with growing delays for about three days. A 410 disables the
// endpoint at once; an endpoint that keeps failing for five days is
// disabled and its workspace's owners and admins are told by email.
//
// Endpoints never reach inside: the Guard refuses internal addresses when
// an endpoint is registered and again for every connection a delivery makes.
package webhooks

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/tenancy"
)

// Directory tells who runs a workspace; tenancy.Service is one.
type Directory interface {
	// Admins returns the workspace and its owners and admins, with their
	// names and addresses.
	Admins(ctx context.Context, workspaceID uuid.UUID) (tenancy.Workspace, []tenancy.Member, error)
}

// Config is what a Service needs.
type Config struct {
	DB store.DB
	// Key seals endpoint secrets at rest: KeySize bytes, derived from the
	// app secret for this use only.
	Key []byte
	// Guard vets endpoint URLs and every address a delivery dials.
	Guard *Guard
	// Mailer and Templates send the notice of an endpoint disabled for
	// failing; Directory names who receives it.
	Mailer    mail.Mailer
	Templates *mail.Templates
	Directory Directory
	Logger    *slog.Logger
	// Clock stamps the signatures (kernel.SystemClock when nil).
	Clock kernel.Clock
	// Timeout bounds one attempt's request, answer included (default 15 s).
	Timeout time.Duration
	// DisableAfter is how long an endpoint may fail without a success
	// before it is disabled (default 5 days).
	DisableAfter time.Duration
}

// Defaults of Config and the delivery job.
const (
	DefaultTimeout      = 15 * time.Second
	DefaultDisableAfter = 5 * 24 * time.Hour
	// MaxAttempts is how many times one delivery is tried.
	MaxAttempts = 10
	// DeliverJob is the job kind that sends one delivery.
	DeliverJob = "webhook.deliver"
	// TestEventType is the type of the event "send a test event" delivers.
	TestEventType = "webhook.test"
	// MaxEndpoints is how many endpoints one workspace may have.
	MaxEndpoints = 50
	// previousSecretGrace is how long a rotated-out secret keeps signing.
	previousSecretGrace = 24 * time.Hour
)

// retrySchedule spaces a delivery's attempts: at once, then after 5 s,
// 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 20 h, about three days in all.
var retrySchedule = events.ScheduleBackoff(5*time.Second, 5*time.Minute, 30*time.Minute, 2*time.Hour,
	5*time.Hour, 10*time.Hour, 14*time.Hour, 20*time.Hour, 20*time.Hour)

// Service manages endpoints and delivers events to them.
type Service struct {
	db           store.DB
	sealer       *sealer
	guard        *Guard
	client       *http.Client
	mailer       mail.Mailer
	templates    *mail.Templates
	directory    Directory
	logger       *slog.Logger
	clock        kernel.Clock
	disableAfter time.Duration
	plans        Plans
}

// New returns a Service. It returns an error when the key is not KeySize
// bytes or DB or Guard is missing.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Guard == nil {
		return nil, fmt.Errorf("webhooks: Config needs a DB and a Guard")
	}
	sealer, err := newSealer(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.SystemClock{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.DisableAfter <= 0 {
		cfg.DisableAfter = DefaultDisableAfter
	}
	return &Service{db: cfg.DB, sealer: sealer, guard: cfg.Guard, client: newClient(cfg.Guard, cfg.Timeout),
		mailer: cfg.Mailer, templates: cfg.Templates, directory: cfg.Directory, logger: cfg.Logger,
		clock: cfg.Clock, disableAfter: cfg.DisableAfter}, nil
}

// Register subscribes the fan-out to every event and handles the delivery
// job on rt. It must be called before rt runs (rt panics otherwise).
func (s *Service) Register(rt *events.Runtime) {
	rt.Subscribe("webhooks", nil, events.SubscribeOptions{}, s.fanOut)
	rt.HandleJob(DeliverJob, events.JobOptions{
		MaxAttempts: MaxAttempts,
		Backoff:     retrySchedule,
		// The request's own limit, and time to record the attempt.
		Timeout:     s.client.Timeout + 15*time.Second,
		Concurrency: deliveryConcurrency,
	}, s.deliver)
}

// deliveryConcurrency is how many deliveries one node makes at once.
const deliveryConcurrency = 16

func endpointAPIID(id uuid.UUID) string { return kernel.FormatID(kernel.PrefixWebhookEndpoint, id) }

func deliveryAPIID(id uuid.UUID) string { return kernel.FormatID(kernel.PrefixDelivery, id) }
