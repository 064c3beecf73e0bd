// Package realtime streams each workspace's events to the clients of this
// node as they happen (Server-Sent Events).
//
// A Hub reads the event stream once per node, through one JetStream ordered
// consumer over every workspace's subjects, and hands each event to the
// local subscribers of its workspace. Nodes share nothing else: an event
// committed on one node reaches the subscribers of every node through NATS.
// A subscriber costs a small buffer and a heartbeat ticker: no goroutine and
// no NATS subscription of its own, so an idle connection costs little more
// than net/http's own (about 40 KB, nearly all of it net/http's buffers and
// goroutine stacks).
//
// Events are identified to clients by their stream sequence, sealed with a
// key (see ids.go), so that a client can resume on any node with
// Last-Event-ID: the missed events are read back from the stream, which
// keeps them for natsbus.EventsMaxAge.
package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
)

// Defaults of Config.
const (
	DefaultHeartbeat       = 15 * time.Second
	DefaultMaxPerWorkspace = 100
	DefaultBuffer          = 32
	DefaultReplayRequests  = 64
)

// Config is what a Hub needs.
type Config struct {
	// JS reaches the events stream (natsbus.EventsStream).
	JS     jetstream.JetStream
	Logger *slog.Logger
	// Key seals event IDs: 16, 24 or 32 bytes, the same on every node.
	Key []byte
	// MaxPerWorkspace caps one workspace's open streams on this node.
	MaxPerWorkspace int
	// Heartbeat is how often an idle stream gets a comment line, and how
	// often its access is checked again (default 15 s).
	Heartbeat time.Duration
	// Buffer is how many events a subscriber may lag behind before it falls
	// back to reading the stream (default 32).
	Buffer int
	// ReplayRequests bounds the stream reads in flight for resuming clients
	// on this node (default 64), so a reconnecting crowd cannot swamp NATS.
	ReplayRequests int
}

// Hub fans the event stream out to this node's subscribers.
type Hub struct {
	js        jetstream.JetStream
	logger    *slog.Logger
	ids       idCodec
	max       int
	buffer    int
	heartbeat atomic.Int64 // time.Duration

	replaySlots chan struct{}
	closed      chan struct{}
	closeOnce   sync.Once
	live        chan struct{} // closed once the hub reads the stream
	liveOnce    sync.Once
	// lastSeq is the hub's horizon: every event after it will be offered to
	// the subscribers registered at the time. It is the last event dispatched,
	// or where the consumer started.
	lastSeq atomic.Uint64

	mu    sync.RWMutex
	rooms map[string]*room // by the workspace's subject token, ws_…

	streamMu sync.Mutex
	stream   jetstream.Stream // cached handle for replays
}

// room is the subscribers of one workspace on this node.
type room struct {
	workspace uuid.UUID
	subs      map[*Subscription]struct{}
}

// New builds a hub. It returns an error if the key is not a valid AES key.
func New(cfg Config) (*Hub, error) {
	ids, err := newIDCodec(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hub{js: cfg.JS, logger: cfg.Logger, ids: ids,
		max:         positive(cfg.MaxPerWorkspace, DefaultMaxPerWorkspace),
		buffer:      positive(cfg.Buffer, DefaultBuffer),
		replaySlots: make(chan struct{}, positive(cfg.ReplayRequests, DefaultReplayRequests)),
		closed:      make(chan struct{}), live: make(chan struct{}), rooms: map[string]*room{}}
	h.SetHeartbeat(cfg.Heartbeat)
	return h, nil
}

func positive[T int | time.Duration](v, fallback T) T {
	if v <= 0 {
		return fallback
	}
	return v
}

// SetHeartbeat changes the heartbeat of the streams opened from now on (0
// restores the default). Tests shorten it.
func (h *Hub) SetHeartbeat(d time.Duration) {
	h.heartbeat.Store(int64(positive(d, DefaultHeartbeat)))
}

// MaxPerWorkspace is the cap on one workspace's streams on this node.
func (h *Hub) MaxPerWorkspace() int { return h.max }

// Run reads the event stream and fans it out until ctx ends or Close is
// called. It waits for the stream to exist (the events runtime creates it)
// and recreates its consumer whenever it stops, backing off meanwhile. The
// hub is closed when Run returns: no stream outlives its live events.
func (h *Hub) Run(ctx context.Context) {
	defer h.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := h.consume(ctx)
		if ctx.Err() != nil {
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			h.logger.Warn("event stream hub: no consumer; retrying", "error", fmt.Sprint(err), "attempt", attempt)
		}
		if !sleep(ctx, delay) {
			return
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// consume runs one ordered consumer over every workspace's events until ctx
// ends or the consumer stops. The first starts with the events published
// from now on, a later one after the last event dispatched. Within one, the
// library recreates the server-side consumer after a NATS outage and resumes
// after the last event it delivered. Either way the hub sees no gap.
func (h *Hub) consume(ctx context.Context) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if last := h.lastSeq.Load(); last > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: last + 1}
	}
	cons, err := h.js.OrderedConsumer(ctx, natsbus.EventsStream, cfg)
	if err != nil {
		return fmt.Errorf("ordered consumer on %s: %w", natsbus.EventsStream, err)
	}
	// Every event after the consumer's start reaches dispatch from here on:
	// that start is the first horizon of new subscriptions.
	if info := cons.CachedInfo(); info != nil && info.Delivered.Stream > h.lastSeq.Load() {
		h.lastSeq.Store(info.Delivered.Stream)
	}
	h.liveOnce.Do(func() { close(h.live) })
	cc, err := cons.Consume(h.dispatch, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		h.logger.Debug("event stream hub: consumer error", "error", err.Error())
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", natsbus.EventsStream, err)
	}
	stopped := cc.Closed()
	select {
	case <-ctx.Done():
		// Wait for a dispatch in progress, so that the next consumer's never
		// runs beside it and events keep their order.
		cc.Stop()
		<-stopped
		return nil
	case <-stopped:
		return errors.New("the consumer stopped")
	}
}

// dispatch hands one event to the subscribers of its workspace. It never
// blocks: a subscriber whose buffer is full is marked lost and catches up
// from the stream itself.
func (h *Hub) dispatch(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		h.logger.Warn("event stream hub: message without metadata", "subject", msg.Subject(), "error", err.Error())
		return
	}
	h.lastSeq.Store(meta.Sequence.Stream)
	token, eventType, ok := splitSubject(msg.Subject())
	if !ok {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[token]
	if r == nil {
		return
	}
	f := &frame{seq: meta.Sequence.Stream, data: render(h.ids.format(r.workspace, meta.Sequence.Stream), eventType, msg.Data())}
	for sub := range r.subs {
		sub.offer(f)
	}
}

// splitSubject splits ws.<workspace>.<event type> into its workspace token
// and its event type.
func splitSubject(subject string) (token, eventType string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "ws.")
	if !ok {
		return "", "", false
	}
	token, eventType, ok = strings.Cut(rest, ".")
	return token, eventType, ok && token != "" && eventType != ""
}

// Subscribe opens a subscription to workspaceID's events on this node; the
// caller must Close it. Every event published after Subscribe returns
// reaches the subscription: while the hub is not reading the stream yet (the
// node is starting, NATS is not there yet), Subscribe waits for it until ctx
// ends. It returns rate_limited when the workspace already holds
// MaxPerWorkspace streams here, and unavailable when ctx ends first or the
// hub is closed.
func (h *Hub) Subscribe(ctx context.Context, workspaceID uuid.UUID) (*Subscription, error) {
	select {
	case <-h.live:
	case <-h.closed:
	case <-ctx.Done():
		return nil, &kernel.Error{Code: kernel.CodeUnavailable, Message: "the event stream is unavailable, try again shortly",
			RetryAfter: 5 * time.Second, Err: ctx.Err()}
	}
	token := kernel.FormatID(kernel.PrefixWorkspace, workspaceID)
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
		return nil, kernel.Unavailable("the event stream", errors.New("the hub is closed"))
	default:
	}
	r := h.rooms[token]
	if r == nil {
		r = &room{workspace: workspaceID, subs: map[*Subscription]struct{}{}}
		h.rooms[token] = r
	}
	if len(r.subs) >= h.max {
		return nil, &kernel.Error{Code: kernel.CodeRateLimited, RetryAfter: DefaultHeartbeat,
			Message: fmt.Sprintf("this workspace already has %d event streams open on this server: close one, or try again later", h.max)}
	}
	s := &Subscription{hub: h, token: token, workspace: workspaceID, horizon: h.lastSeq.Load(),
		frames: make(chan *frame, h.buffer), lostSignal: make(chan struct{}, 1)}
	r.subs[s] = struct{}{}
	return s, nil
}

// unsubscribe removes s, and its workspace's room when it was the last one.
func (h *Hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[s.token]
	if r == nil {
		return
	}
	delete(r.subs, s)
	if len(r.subs) == 0 {
		delete(h.rooms, s.token)
	}
}

// OpenStreams reports how many streams of workspaceID are open on this node.
func (h *Hub) OpenStreams(workspaceID uuid.UUID) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r := h.rooms[kernel.FormatID(kernel.PrefixWorkspace, workspaceID)]; r != nil {
		return len(r.subs)
	}
	return 0
}

// Close ends every open stream at once and refuses new ones; Run returns.
// The app calls it when the HTTP server starts shutting down, so that
// streams do not hold the shutdown up. It is safe to call more than once.
func (h *Hub) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// sleep waits d or until ctx ends; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
