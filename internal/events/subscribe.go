package events

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
)

// EventHandler handles one event. An error makes the delivery fail: it is
// retried with backoff, and after MaxAttempts (or at once, if wrapped in
// Permanent) goes to the dead-letter stream. An event can arrive more than
// once (a node dying before it acknowledged), so a handler must be
// idempotent by the event's ID.
type EventHandler func(ctx context.Context, e Envelope) error

// SubscribeOptions tune one subscriber; the zero value is JobOptions' defaults.
type SubscribeOptions = JobOptions

type subscription struct {
	name    string
	types   []string
	opts    JobOptions
	handler EventHandler
}

var subscriberName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,60}$`)

// Subscribe registers handler for the events of the given types (all types
// when none are given), in every workspace. The subscription is durable and
// shared: across N nodes each event reaches one of them, and events that
// arrive while every node is down wait for the first to come back. It starts
// with the events published after it was first created. Subscribe panics if
// name is malformed or taken, or if Run has started.
func (r *Runtime) Subscribe(name string, types []string, opts SubscribeOptions, handler EventHandler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.register("subscriber " + name)
	if !subscriberName.MatchString(name) {
		panic(fmt.Sprintf("events: malformed subscriber name %q", name))
	}
	if _, dup := r.subs[name]; dup {
		panic(fmt.Sprintf("events: subscriber %q registered twice", name))
	}
	for _, t := range types {
		if !eventType.MatchString(t) {
			panic(fmt.Sprintf("events: subscriber %q: malformed event type %q", name, t))
		}
	}
	r.subs[name] = subscription{name: name, types: types, opts: opts.withDefaults(), handler: handler}
}

// consumeEvents runs a subscriber's durable consumer until ctx ends.
func (r *Runtime) consumeEvents(ctx context.Context, s subscription) error {
	filters := []string{"ws.>"}
	if len(s.types) > 0 {
		filters = filters[:0]
		for _, t := range s.types {
			filters = append(filters, TypeSubjects(t))
		}
	}
	cons, err := r.bus.JS.CreateOrUpdateConsumer(ctx, natsbus.EventsStream, jetstream.ConsumerConfig{
		Durable:        durableName("sub", s.name),
		Description:    "Atrium event subscriber " + s.name,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1, // attempts are counted below, so the last one can be dead-lettered with its reason
		MaxAckPending:  max(s.opts.Concurrency*4, 64),
	})
	if err != nil {
		return fmt.Errorf("consumer for subscriber %s: %w", s.name, err)
	}
	return r.consume(ctx, cons, s.opts.Concurrency, func(ctx context.Context, msg jetstream.Msg) { r.deliverEvent(ctx, s, msg) })
}

// deliverEvent hands one event to a subscriber and settles the message.
func (r *Runtime) deliverEvent(ctx context.Context, s subscription, msg jetstream.Msg) {
	dead := "dead.events." + s.name
	var e Envelope
	if err := json.Unmarshal(msg.Data(), &e); err != nil {
		r.deadLetter(ctx, msg, dead, "malformed event: "+err.Error(), 0)
		return
	}
	attempt := 1
	if meta, err := msg.Metadata(); err == nil {
		attempt = int(meta.NumDelivered)
	}
	stopHeartbeat := inProgress(msg)
	hctx, cancel := context.WithTimeout(kernel.WithActor(ctx, kernel.SystemActor), s.opts.Timeout)
	err := safely(func() error { return s.handler(hctx, e) })
	cancel()
	stopHeartbeat()
	switch {
	case err == nil:
		_ = msg.Ack()
	case isPermanent(err) || attempt >= s.opts.MaxAttempts:
		r.logger.Warn("event delivery failed for good", "subscriber", s.name, "event_id", e.ID, "attempt", attempt, "error", err.Error())
		r.deadLetter(ctx, msg, dead, err.Error(), attempt)
	default:
		delay := s.opts.Backoff(attempt)
		r.logger.Info("event delivery failed; retrying", "subscriber", s.name, "event_id", e.ID, "attempt", attempt,
			"retry_in", delay.String(), "error", err.Error())
		_ = msg.NakWithDelay(delay)
	}
}
