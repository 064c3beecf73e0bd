package mailqueue

import (
	"context"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// Defaults of Options.
const (
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 4
	DefaultSendTimeout  = 60 * time.Second
	DefaultClaimTTL     = 5 * time.Minute
	DefaultMaxAttempts  = 10
	// bookkeepingTimeout bounds the write that records a send's outcome; it
	// runs even while the worker stops, so that a delivered message is deleted.
	bookkeepingTimeout = 5 * time.Second
	maxErrorLength     = 1000
)

// Options tune a Worker; zero fields take the defaults above.
type Options struct {
	Logger *slog.Logger
	// PollInterval is how often the worker looks for due messages when this
	// process has queued none meanwhile.
	PollInterval time.Duration
	// BatchSize is how many messages one claim takes; they are sent in parallel.
	BatchSize int
	// SendTimeout bounds one delivery; it must stay well below ClaimTTL, or a
	// slow send may be taken over and sent twice.
	SendTimeout time.Duration
	// ClaimTTL is the lease of a claim: a node that dies holding one delays its
	// messages by at most this long.
	ClaimTTL time.Duration
	// MaxAttempts is how many failed sends make a message dead.
	MaxAttempts int
	// Backoff is the wait after the n-th failed attempt; Backoff when nil.
	Backoff func(attempt int) time.Duration
}

// Backoff doubles the wait after each failed attempt, from 30 seconds up to
// one hour: ten attempts span about three and a half hours.
func Backoff(attempt int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Worker delivers queued messages through a backend. Run it on every node.
type Worker struct {
	queue   *Queue
	backend mail.Mailer
	opts    Options
}

// NewWorker returns a Worker delivering q's messages through backend.
func NewWorker(q *Queue, backend mail.Mailer, opts Options) *Worker {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = DefaultSendTimeout
	}
	if opts.ClaimTTL <= 0 {
		opts.ClaimTTL = DefaultClaimTTL
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff == nil {
		opts.Backoff = Backoff
	}
	return &Worker{queue: q, backend: backend, opts: opts}
}

// Run delivers due messages until ctx ends: at once when this process queues
// one, else every PollInterval. It returns after the sends under way have
// ended; those that ctx cut short are handed back for another try.
func (w *Worker) Run(ctx context.Context) {
	ticker := time.NewTicker(w.opts.PollInterval)
	defer ticker.Stop()
	for {
		if _, err := w.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			w.opts.Logger.WarnContext(ctx, "mail queue: cannot claim messages", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-w.queue.wake:
		case <-ticker.C:
		}
	}
}

// DeliverDue claims and sends due messages, a batch at a time, until none is
// due or ctx ends. It returns how many it delivered, and the store's error if
// a claim fails. A failed send is no error here: the message is retried
// later or, after MaxAttempts, marked dead, and either is logged.
func (w *Worker) DeliverDue(ctx context.Context) (int, error) {
	delivered := 0
	if due, err := w.queue.anyDue(ctx); err != nil || !due {
		return 0, err
	}
	for ctx.Err() == nil {
		batch, err := w.queue.claim(ctx, w.opts.BatchSize, w.opts.ClaimTTL)
		if err != nil {
			return delivered, err
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range batch {
			wg.Go(func() {
				if w.deliver(ctx, c) {
					mu.Lock()
					delivered++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(batch) < w.opts.BatchSize {
			break
		}
	}
	return delivered, nil
}

// deliver sends one claimed message and records the outcome. It reports
// whether the message was delivered.
func (w *Worker) deliver(ctx context.Context, c claimed) bool {
	sendCtx, cancel := context.WithTimeout(ctx, w.opts.SendTimeout)
	sendErr := w.backend.Send(sendCtx, c.Message)
	cancel()
	// The outcome is written even while the worker stops: a delivered message
	// must not be sent again.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer bcancel()
	log := w.opts.Logger
	attrs := []any{"mail_id", c.ID.String(), "tag", c.Message.Tag, "attempt", c.Attempts}
	var err error
	switch {
	case sendErr == nil:
		err = w.queue.exec(bctx, deleteSQL, func(time.Time) []any { return []any{c.ID} })
		if err == nil {
			log.DebugContext(ctx, "mail delivered", attrs...)
		}
	case ctx.Err() != nil:
		err = w.queue.exec(bctx, releaseSQL, func(time.Time) []any { return []any{c.ID, c.Attempts} })
	case c.Attempts >= w.opts.MaxAttempts || kernel.IsCode(sendErr, kernel.CodeInvalid):
		err = w.queue.exec(bctx, deadSQL, func(now time.Time) []any { return []any{c.ID, c.Attempts, now, describe(sendErr)} })
		if err == nil {
			log.ErrorContext(ctx, "mail delivery abandoned", append(attrs, "error", describe(sendErr))...)
		}
	default:
		wait := w.opts.Backoff(c.Attempts)
		err = w.queue.exec(bctx, retrySQL, func(now time.Time) []any {
			return []any{c.ID, c.Attempts, now.Add(wait), describe(sendErr)}
		})
		if err == nil {
			log.WarnContext(ctx, "mail delivery failed; will retry", append(attrs, "retry_in", wait.String(), "error", describe(sendErr))...)
		}
	}
	if err != nil {
		// The lease runs out and another attempt follows; if the message was
		// delivered, it is delivered twice (at least once).
		log.ErrorContext(ctx, "mail queue: cannot record a delivery outcome", append(attrs, "delivered", sendErr == nil, "error", err.Error())...)
	}
	return sendErr == nil
}

// describe returns err's text for last_error and the log, bounded. Backend
// errors name the server and the step, never the message's content.
func describe(err error) string {
	s := err.Error()
	if len(s) > maxErrorLength {
		s = s[:maxErrorLength]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
