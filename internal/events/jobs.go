package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Job is one job as its handler receives it.
type Job struct {
	ID          uuid.UUID
	Kind        string
	WorkspaceID uuid.UUID
	Payload     json.RawMessage
	// Attempt is 1 on the first run, 2 on the first retry, and so on.
	Attempt   int
	CreatedAt time.Time

	rt *Runtime
}

// JobHandler does one job. Its result is stored on the job's record (nil
// stores nothing). An error makes the attempt fail: retried with backoff until
// the kind's MaxAttempts, at once final if wrapped in Permanent. A handler may
// run more than once for one job (a node dying between the work and its
// acknowledgement), so it must be idempotent by Job.ID.
type JobHandler func(ctx context.Context, job *Job) (result any, err error)

// JobOptions tune one kind of job.
type JobOptions struct {
	// MaxAttempts is how many times a job runs before it fails (default 5).
	MaxAttempts int
	// Backoff is the delay after failed attempt n (default exponential from
	// 1 s, capped at 1 h, with jitter).
	Backoff func(attempt int) time.Duration
	// Timeout bounds one attempt (default 1 min).
	Timeout time.Duration
	// Concurrency is how many jobs of the kind one node runs at once (default 4).
	Concurrency int
}

func (o JobOptions) withDefaults() JobOptions {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff == nil {
		o.Backoff = ExponentialBackoff(time.Second, time.Hour)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	return o
}

type jobKind struct {
	kind    string
	opts    JobOptions
	handler JobHandler
}

var jobKindPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// HandleJob registers the handler of kind. It panics if kind is malformed or
// registered twice, or if Run has started: both are programming errors.
func (r *Runtime) HandleJob(kind string, opts JobOptions, h JobHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.register("job " + kind)
	if !jobKindPattern.MatchString(kind) {
		panic(fmt.Sprintf("events: malformed job kind %q", kind))
	}
	if _, dup := r.kinds[kind]; dup {
		panic(fmt.Sprintf("events: job kind %q registered twice", kind))
	}
	r.kinds[kind] = jobKind{kind: kind, opts: opts.withDefaults(), handler: h}
}

// Enqueue schedules a job of kind inside tx, which must be a workspace
// transaction: the job's record and its outbox row commit with the data that
// caused it, or not at all. It returns the job's ID, which the API shows as
// job_… and the bus uses to drop duplicates.
func Enqueue(ctx context.Context, tx store.Tx, kind string, payload any) (uuid.UUID, error) {
	workspaceID := tx.WorkspaceID()
	if workspaceID == uuid.Nil {
		return uuid.Nil, kernel.Internal(fmt.Errorf("jobs: %q enqueued outside a workspace transaction", kind))
	}
	if !jobKindPattern.MatchString(kind) {
		return uuid.Nil, kernel.Internal(fmt.Errorf("jobs: malformed job kind %q", kind))
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return uuid.Nil, kernel.Internal(fmt.Errorf("jobs: payload of %s: %w", kind, err))
	}
	id := kernel.NewID()
	now := tx.Now()
	if _, err := tx.Exec(ctx, `INSERT INTO job (id, workspace_id, kind, status, payload, created_at, updated_at)
        VALUES ($1, $2, $3, 'queued', $4, $5, $5)`, id, workspaceID, kind, string(body), now); err != nil {
		return uuid.Nil, fmt.Errorf("job %s: %w", kind, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO outbox (id, workspace_id, kind, event_type, payload, created_at)
        VALUES ($1, $2, 'job', $3, $4, $5)`, id, workspaceID, kind, string(body), now); err != nil {
		return uuid.Nil, fmt.Errorf("job %s: outbox: %w", kind, err)
	}
	return id, nil
}

// jobMessage is a job as the bus carries it.
type jobMessage struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	WorkspaceID string          `json:"workspace_id"`
	CreatedAt   time.Time       `json:"created_at"`
	Payload     json.RawMessage `json:"payload"`
}

// ErrCanceled is what Job.Progress returns once someone has asked to cancel
// the job: the handler should stop and return it.
var ErrCanceled = errors.New("job canceled")

// Progress records how far the job has come (0–100). It returns ErrCanceled
// when a cancellation has been asked for, or the store's error.
func (j *Job) Progress(ctx context.Context, percent int) error {
	percent = min(max(percent, 0), 100)
	var canceled bool
	err := j.rt.db.InWorkspace(ctx, j.WorkspaceID, func(tx store.Tx) error {
		var requested *time.Time
		if err := tx.QueryRow(ctx, `UPDATE job SET progress = $2, updated_at = $3 WHERE id = $1
            RETURNING cancel_requested_at`, j.ID, percent, tx.Now()).Scan(&requested); err != nil {
			return err
		}
		canceled = requested != nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("job %s: progress: %w", j.ID, err)
	}
	if canceled {
		return ErrCanceled
	}
	return nil
}

// consumeJobs runs kind's durable consumer until ctx ends.
func (r *Runtime) consumeJobs(ctx context.Context, k jobKind) error {
	cons, err := r.bus.JS.CreateOrUpdateConsumer(ctx, natsbus.JobsStream, jetstream.ConsumerConfig{
		Durable:       durableName("job", k.kind),
		Description:   "Atrium jobs of kind " + k.kind,
		FilterSubject: JobSubject(k.kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // the job's record counts attempts, across redeliveries and nodes
		MaxAckPending: max(k.opts.Concurrency*4, 64),
	})
	if err != nil {
		return fmt.Errorf("consumer for %s: %w", k.kind, err)
	}
	return r.consume(ctx, cons, k.opts.Concurrency, func(ctx context.Context, msg jetstream.Msg) { r.runJob(ctx, k, msg) })
}

// consume hands each message of cons to handle, at most concurrency at a
// time, until ctx ends; then it waits for the handlers in progress.
func (r *Runtime) consume(ctx context.Context, cons jetstream.Consumer, concurrency int, handle func(context.Context, jetstream.Msg)) error {
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	// stopped is set once the consumer has been stopped: a message already
	// received can still reach the callback then, and must be handed back
	// (it comes again, to this node or another) rather than started while
	// wg.Wait runs.
	var mu sync.Mutex
	stopped := false
	// The handlers finish on a context that outlives ctx by their own timeout:
	// a shutdown lets the current attempt end rather than cutting it off.
	work := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		slots <- struct{}{}
		mu.Lock()
		if stopped {
			mu.Unlock()
			<-slots
			_ = msg.Nak()
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			handle(work, msg)
		}()
	}, jetstream.PullMaxMessages(concurrency),
		// Short pulls with heartbeats: with the default 30 s expiry a pull
		// the client failed to renew left the consumer idle for up to 30 s
		// with messages waiting (measured by bench/events; cf. nats.go#1622).
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				r.logger.Debug("consume", "error", err.Error())
			}
		}))
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Stop()
	mu.Lock()
	stopped = true
	mu.Unlock()
	wg.Wait()
	return nil
}

// runJob runs one delivery of a job message: it claims the job's record,
// runs the handler, and records the outcome, then acknowledges, schedules a
// retry, or dead-letters the message.
func (r *Runtime) runJob(ctx context.Context, k jobKind, msg jetstream.Msg) {
	var m jobMessage
	job := &Job{Kind: k.kind, rt: r}
	var parseErr error
	if parseErr = json.Unmarshal(msg.Data(), &m); parseErr == nil {
		job.ID, parseErr = kernel.ParseID(kernel.PrefixJob, m.ID)
	}
	if parseErr == nil {
		job.WorkspaceID, parseErr = kernel.ParseID(kernel.PrefixWorkspace, m.WorkspaceID)
	}
	if parseErr != nil {
		r.deadLetter(ctx, msg, "dead.jobs."+k.kind, "malformed job message: "+parseErr.Error(), 0)
		return
	}
	job.Payload, job.CreatedAt = m.Payload, m.CreatedAt
	logger := r.logger.With("job_id", m.ID, "kind", k.kind, "workspace_id", m.WorkspaceID)

	attempt, run, err := r.claimJob(ctx, job.WorkspaceID, job.ID)
	if err != nil {
		logger.Error("job: claim", "error", err.Error())
		_ = msg.NakWithDelay(Jitter(5 * time.Second))
		return
	}
	if !run {
		_ = msg.Ack() // done already, canceled, or its workspace is gone
		return
	}
	job.Attempt = attempt

	stopHeartbeat := inProgress(msg)
	jctx, cancel := context.WithTimeout(kernel.WithActor(ctx, kernel.SystemActor), k.opts.Timeout)
	var result any
	started := time.Now()
	err = safely(func() error {
		var herr error
		result, herr = k.handler(jctx, job)
		return herr
	})
	cancel()
	stopHeartbeat()

	switch {
	case err == nil:
		if ferr := r.finishJob(ctx, job, "succeeded", result, ""); ferr != nil {
			logger.Error("job: record success", "error", ferr.Error())
			_ = msg.NakWithDelay(Jitter(5 * time.Second))
			return
		}
		_ = msg.Ack()
		logger.Debug("job succeeded", "attempt", attempt, "duration_ms", time.Since(started).Milliseconds())
	case errors.Is(err, ErrCanceled):
		_ = r.finishJob(ctx, job, "canceled", nil, "")
		_ = msg.Ack()
	case isPermanent(err) || attempt >= k.opts.MaxAttempts:
		logger.Warn("job failed for good", "attempt", attempt, "error", err.Error())
		// The dead letter first: a failed record means its message is in the
		// dead-letter stream. If that publish fails, the message comes back
		// and this attempt's outcome is decided again.
		if r.deadLetter(ctx, msg, "dead.jobs."+k.kind, err.Error(), attempt) {
			_ = r.finishJob(ctx, job, "failed", nil, err.Error())
		}
	default:
		delay := k.opts.Backoff(attempt)
		logger.Info("job attempt failed; retrying", "attempt", attempt, "retry_in", delay.String(), "error", err.Error())
		_ = r.db.InWorkspace(ctx, job.WorkspaceID, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE job SET status = 'retrying', error = $2, updated_at = $3
                WHERE id = $1 AND status = 'running'`, job.ID, truncate(err.Error(), 2000), tx.Now())
			return err
		})
		_ = msg.NakWithDelay(delay)
	}
}

// claimJob marks the job running and counts the attempt. It reports false
// when the job must not run: its record is final (done before a redelivery,
// or canceled) or gone with its workspace. A cancellation asked for while
// the job waited ends it here.
func (r *Runtime) claimJob(ctx context.Context, workspaceID, id uuid.UUID) (attempt int, run bool, err error) {
	err = r.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		var status string
		var canceled *time.Time
		err := tx.QueryRow(ctx, `SELECT status, attempts, cancel_requested_at FROM job WHERE id = $1`, id).
			Scan(&status, &attempt, &canceled)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case status == "succeeded" || status == "failed" || status == "canceled":
			return nil
		case canceled != nil:
			_, err := tx.Exec(ctx, `UPDATE job SET status = 'canceled', finished_at = $2, updated_at = $2 WHERE id = $1`, id, tx.Now())
			return err
		}
		attempt++
		run = true
		_, err = tx.Exec(ctx, `UPDATE job SET status = 'running', attempts = $2, started_at = COALESCE(started_at, $3),
            updated_at = $3 WHERE id = $1`, id, attempt, tx.Now())
		return err
	})
	return attempt, run, err
}

// finishJob records a job's final status.
func (r *Runtime) finishJob(ctx context.Context, job *Job, status string, result any, errText string) error {
	var resultJSON *string
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return fmt.Errorf("job %s: result: %w", job.ID, err)
		}
		s := string(b)
		resultJSON = &s
	}
	return r.db.InWorkspace(ctx, job.WorkspaceID, func(tx store.Tx) error {
		progress := "progress"
		if status == "succeeded" {
			progress = "100"
		}
		_, err := tx.Exec(ctx, `UPDATE job SET status = $2, result = $3, error = $4, progress = `+progress+`,
            finished_at = $5, updated_at = $5 WHERE id = $1`, job.ID, status, resultJSON, truncate(errText, 2000), tx.Now())
		return err
	})
}

// deadLetter copies msg to the dead-letter stream with the reason, then
// terminates it so it is never delivered again. It reports whether the copy
// was stored; if not, the message is handed back to come again later.
func (r *Runtime) deadLetter(ctx context.Context, msg jetstream.Msg, subject, reason string, attempts int) bool {
	dead := nats.NewMsg(subject)
	dead.Data = msg.Data()
	dead.Header.Set("Atrium-Reason", truncate(reason, 1000))
	dead.Header.Set("Atrium-Subject", msg.Subject())
	dead.Header.Set("Atrium-Attempts", fmt.Sprint(attempts))
	dead.Header.Set("Atrium-Failed-At", r.clock.Now().UTC().Format(time.RFC3339Nano))
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := r.bus.JS.PublishMsg(pctx, dead); err != nil {
		// Not terminated: the message comes back and fails again, rather than vanish.
		r.logger.Error("dead letter: publish", "subject", subject, "error", err.Error())
		_ = msg.NakWithDelay(time.Minute)
		return false
	}
	_ = msg.Term()
	return true
}

// ackWait is how long the server waits for a message's acknowledgement
// before handing it to another consumer: short, so that the work of a node
// that died moves to a live one within seconds. A handler that runs longer
// keeps its message with inProgress.
const ackWait = 15 * time.Second

// inProgress tells the server, every third of the ack wait, that a handler
// is still working, so the message is not handed to another node.
func inProgress(msg jetstream.Msg) (stop func()) {
	every := ackWait / 3
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
