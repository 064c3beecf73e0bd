package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

// Config configures New. DB, Counters and Limits are required.
type Config struct {
	DB store.DB
	// Counters is the meter's backend: storemeter.New(db), or
	// redismeter.New(client, db) when ATRIUM_REDIS_URL is set.
	Counters Counters
	Limits   PlanLimits
	// Periods defaults to CalendarMonths.
	Periods Periods
	Clock   kernel.Clock
	Logger  *slog.Logger
	// FlushEvery is the meter's flush interval (see MeterConfig); 0 is a second.
	FlushEvery time.Duration
	// Storage lists what the storage_bytes gauge sums; none is valid (0 bytes).
	Storage []StorageSource
	// Mailer, Templates and Directory send the warning mails (Register);
	// without all three no mail is sent.
	Mailer    mail.Mailer
	Templates *mail.Templates
	Directory Directory
}

// Service meters usage and applies the quota rules. It is safe for
// concurrent use.
type Service struct {
	db        store.DB
	meter     *Meter
	limits    PlanLimits
	periods   Periods
	clock     kernel.Clock
	logger    *slog.Logger
	storage   []StorageSource
	mailer    mail.Mailer
	templates *mail.Templates
	directory Directory
	cache     nodeCache
}

// New returns a Service and starts its meter, which Close stops. It returns
// an error when DB, Counters or Limits is missing.
func New(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Counters == nil || cfg.Limits == nil {
		return nil, errors.New("usage: DB, Counters and Limits are required")
	}
	s := &Service{db: cfg.DB, limits: cfg.Limits, periods: cfg.Periods, clock: cfg.Clock, logger: cfg.Logger,
		storage: cfg.Storage, mailer: cfg.Mailer, templates: cfg.Templates, directory: cfg.Directory}
	if s.periods == nil {
		s.periods = CalendarMonths{}
	}
	if s.clock == nil {
		s.clock = kernel.SystemClock{}
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.cache.init()
	s.meter = NewMeter(MeterConfig{Counters: cfg.Counters, Periods: s.periods, Clock: s.clock, Logger: s.logger,
		FlushEvery: cfg.FlushEvery, AfterFlush: s.observe})
	return s, nil
}

// Meter is the service's meter, for counting metrics of a fork's own.
func (s *Service) Meter() *Meter { return s.meter }

// Close stops the meter, flushing what it holds (see Meter.Close); the app
// calls it after the HTTP server has shut down, before the store closes.
func (s *Service) Close(ctx context.Context) error { return s.meter.Close(ctx) }

// Increment adds n to workspaceID's counter metric (api_calls) without any
// I/O; see Meter.Increment. It returns invalid for a metric that is not a
// counter.
func (s *Service) Increment(ctx context.Context, workspaceID uuid.UUID, metricName string, n int64) error {
	if m, ok := lookupMetric(metricName); !ok || !m.Counter {
		return kernel.Errorf(kernel.CodeInvalid, "usage: %q is not a counted metric", metricName)
	}
	return s.meter.Increment(ctx, workspaceID, metricName, n)
}

// Register subscribes the warning mails to rt's usage.warning events. rt
// must not be running yet.
func (s *Service) Register(rt *events.Runtime) {
	rt.Subscribe("usage_warning_mail", []string{EventWarning}, events.SubscribeOptions{}, s.mailWarning)
}

// period returns the key of workspaceID's metric in the period now is in.
func (s *Service) period(ctx context.Context, workspaceID uuid.UUID, metricName string, now time.Time) (Key, error) {
	start, end, err := s.periods.Period(ctx, workspaceID, now)
	if err != nil {
		return Key{}, fmt.Errorf("usage: period of %s: %w", workspaceID, err)
	}
	return Key{WorkspaceID: workspaceID, Metric: metricName, PeriodStart: start.UTC(), PeriodEnd: end.UTC()}, nil
}

// limit returns the plan's limit of m for workspaceID.
func (s *Service) limit(ctx context.Context, workspaceID uuid.UUID, m metric) (int64, error) {
	l, err := s.limits.Limit(ctx, workspaceID, m.Limit)
	if err != nil {
		return 0, fmt.Errorf("usage: %s limit of %s: %w", m.Name, workspaceID, err)
	}
	return l, nil
}
