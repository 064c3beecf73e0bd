package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/events"
	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
)

// frame is one event rendered as an SSE message, shared by every subscriber
// of its workspace on this node.
type frame struct {
	seq  uint64
	data []byte
}

// Preamble opens every stream: how long a client should wait before it
// reconnects, and a comment so that proxies pass the headers on at once.
const Preamble = "retry: 3000\n: stream open\n\n"

// heartbeatFrame keeps an idle connection from being closed by proxies.
var heartbeatFrame = []byte(": ping\n\n")

// render writes one SSE message: the sealed ID, the event type and the
// envelope on one data line. The relay marshals envelopes compactly, so they
// hold no line break; one that did is compacted rather than split the event.
func render(id, eventType string, envelope []byte) []byte {
	if bytes.ContainsAny(envelope, "\r\n") {
		var compact bytes.Buffer
		if json.Compact(&compact, envelope) == nil {
			envelope = compact.Bytes()
		}
	}
	out := make([]byte, 0, len(id)+len(eventType)+len(envelope)+24)
	out = append(out, "id: "...)
	out = append(out, id...)
	out = append(out, "\nevent: "...)
	out = append(out, eventType...)
	out = append(out, "\ndata: "...)
	out = append(out, envelope...)
	return append(out, "\n\n"...)
}

// Sink is where a stream writes: each call writes one message and flushes it
// to the client, or fails (the client is gone or stopped reading).
type Sink func(p []byte) error

// Subscription is one client's subscription to a workspace's events.
type Subscription struct {
	hub       *Hub
	token     string
	workspace uuid.UUID
	// horizon is the hub's horizon when the subscription opened: every event
	// after it is offered to the subscription, none before it.
	horizon uint64
	frames  chan *frame
	// lost is set by the hub when frames was full: it has dropped an event
	// and sends nothing more until the subscriber has caught up from the
	// stream, so that everything in frames precedes what was dropped.
	lost       atomic.Bool
	lostSignal chan struct{}
	closeOnce  sync.Once
}

// offer queues f without blocking; see lost.
func (s *Subscription) offer(f *frame) {
	if s.lost.Load() {
		return
	}
	select {
	case s.frames <- f:
	default:
		s.lost.Store(true)
		select {
		case s.lostSignal <- struct{}{}:
		default:
		}
	}
}

// Close ends the subscription and frees its place in the workspace's limit.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() { s.hub.unsubscribe(s) })
}

// ServeOptions say how one stream runs.
type ServeOptions struct {
	// After, when positive, is the stream sequence of the last event the
	// client saw (from Last-Event-ID): the events after it are replayed
	// first. Events older than the stream's retention are gone; the replay
	// then starts with the oldest one kept.
	After uint64
	// StillAllowed is asked at every heartbeat whether the client may still
	// read the workspace's events; an error ends the stream with it.
	StillAllowed func(ctx context.Context) error
}

// ErrClosed is what Serve returns when the hub closed (the node is shutting
// down): the client should reconnect, to this node or another.
var ErrClosed = errors.New("realtime: the event stream hub closed")

// Serve writes the subscription's events to out until ctx ends (the client
// left), the hub closes (ErrClosed), access ends (StillAllowed's error) or a
// write fails (its error). It writes the Preamble, replays the events after
// opts.After, then sends events as they happen, each exactly once and in
// stream order. At every heartbeat it asks opts.StillAllowed, and writes a
// comment if nothing else was written since the previous one.
func (s *Subscription) Serve(ctx context.Context, out Sink, opts ServeOptions) error {
	if err := out([]byte(Preamble)); err != nil {
		return err
	}
	last, err := s.resume(ctx, out, opts.After)
	if err != nil {
		return err
	}
	heartbeat := time.NewTicker(time.Duration(s.hub.heartbeat.Load()))
	defer heartbeat.Stop()
	busy := false // something was written since the last heartbeat
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.hub.closed:
			return ErrClosed
		case f := <-s.frames:
			if f.seq > last {
				err, busy = out(f.data), true
				last = f.seq
			}
		case <-s.lostSignal:
			last, err = s.catchUp(ctx, out, last)
			busy = true
		case <-heartbeat.C:
			if opts.StillAllowed != nil {
				err = opts.StillAllowed(ctx)
			}
			if err == nil && !busy {
				err = out(heartbeatFrame)
			}
			busy = false
		}
		if err != nil {
			return err
		}
	}
}

// resume replays the events after seq, if seq is set and within the stream,
// and returns the sequence of the last event the client has: the last one
// replayed, or the subscription's horizon without a replay.
func (s *Subscription) resume(ctx context.Context, out Sink, seq uint64) (uint64, error) {
	if seq == 0 {
		return s.horizon, nil
	}
	seq, err := s.hub.clampToStream(ctx, seq)
	if err != nil {
		return 0, err
	}
	if seq == 0 {
		return s.horizon, nil
	}
	return s.catchUp(ctx, out, seq)
}

// catchUp re-enables live delivery, then writes every event of the
// workspace after seq that the stream holds, and returns the sequence of the
// last one written. Live events that arrive meanwhile queue up and, being
// repeated by the replay, are skipped by Serve.
func (s *Subscription) catchUp(ctx context.Context, out Sink, after uint64) (uint64, error) {
	s.lost.Store(false)
	select {
	case <-s.lostSignal:
	default:
	}
	return s.hub.replay(ctx, s.workspace, after, func(seq uint64, eventType string, envelope []byte) error {
		return out(render(s.hub.ids.format(s.workspace, seq), eventType, envelope))
	})
}

// replay reads workspaceID's events after seq from the stream, oldest first,
// one request each, and hands them to emit until none is left. Reading by
// subject needs no consumer: resuming clients cost the cluster no consumer
// creation, and a node that dies mid-replay leaves nothing behind. It
// returns the sequence of the last event emitted (seq if none), or the first
// error of the stream or of emit.
func (h *Hub) replay(ctx context.Context, workspaceID uuid.UUID, seq uint64,
	emit func(seq uint64, eventType string, envelope []byte) error) (uint64, error) {
	stream, err := h.eventStream(ctx)
	if err != nil {
		return seq, err
	}
	subjects := events.WorkspaceSubjects(workspaceID)
	for {
		select {
		case <-h.closed:
			return seq, ErrClosed
		default:
		}
		msg, err := h.getNext(ctx, stream, seq+1, subjects)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return seq, nil
		}
		if err != nil {
			return seq, kernel.Unavailable("the event stream", fmt.Errorf("replay after %d: %w", seq, err))
		}
		_, eventType, ok := splitSubject(msg.Subject)
		if ok {
			if err := emit(msg.Sequence, eventType, msg.Data); err != nil {
				return seq, err
			}
		}
		seq = msg.Sequence
	}
}

// getNext reads the first message at or after seq on subjects, waiting for
// one of the node's replay slots first.
func (h *Hub) getNext(ctx context.Context, stream jetstream.Stream, seq uint64, subjects string) (*jetstream.RawStreamMsg, error) {
	select {
	case h.replaySlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-h.closed:
		return nil, ErrClosed
	}
	defer func() { <-h.replaySlots }()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return stream.GetMsg(rctx, seq, jetstream.WithGetMsgSubject(subjects))
}

// eventStream returns the events stream's handle, looked up once.
func (h *Hub) eventStream(ctx context.Context) (jetstream.Stream, error) {
	h.streamMu.Lock()
	defer h.streamMu.Unlock()
	if h.stream != nil {
		return h.stream, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := h.js.Stream(sctx, natsbus.EventsStream)
	if err != nil {
		return nil, kernel.Unavailable("the event stream", fmt.Errorf("stream %s: %w", natsbus.EventsStream, err))
	}
	h.stream = stream
	return stream, nil
}

// clampToStream returns seq, or 0 when seq is past the stream's end: an ID
// issued before the stream was recreated (its sequences restart) must not
// make Serve skip every new event as already seen. A genuine ID is never
// past the end, since the client received its event before it asked. The
// stream then serves as if no ID had been sent: from its horizon on.
func (h *Hub) clampToStream(ctx context.Context, seq uint64) (uint64, error) {
	stream, err := h.eventStream(ctx)
	if err != nil {
		return seq, err
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := stream.Info(ictx)
	if err != nil {
		return seq, kernel.Unavailable("the event stream", fmt.Errorf("stream %s: %w", natsbus.EventsStream, err))
	}
	if seq > info.State.LastSeq {
		return 0, nil
	}
	return seq, nil
}
