package realtime

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"atrium/internal/events"
	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
)

// rig is an embedded NATS with Atrium's streams and a running hub.
type rig struct {
	bus *natsbus.Bus
	hub *Hub
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	return newRigAfter(t, cfg, nil)
}

// newRigAfter is newRig with before run ahead of the hub's start.
func newRigAfter(t *testing.T, cfg Config, before func(*rig)) *rig {
	t.Helper()
	bus, err := natsbus.Open(natsbus.Options{Dir: filepath.Join(t.TempDir(), "nats"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	if err := bus.EnsureStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.JS, cfg.Logger, cfg.Key = bus.JS, slog.New(slog.DiscardHandler), make([]byte, 32)
	_, _ = rand.Read(cfg.Key)
	hub, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{bus: bus, hub: hub}
	if before != nil {
		before(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// publish puts one event of workspaceID on the stream, as the relay would,
// and returns its stream sequence.
func (r *rig) publish(t *testing.T, workspaceID uuid.UUID, n int) uint64 {
	t.Helper()
	body, _ := json.Marshal(events.Envelope{ID: kernel.FormatID(kernel.PrefixEvent, kernel.NewID()), Type: "test.happened",
		WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, workspaceID), CreatedAt: time.Now().UTC(),
		Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))})
	ack, err := r.bus.JS.Publish(context.Background(), events.EventSubject(workspaceID, "test.happened"), body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// client is one Serve call whose sink records what it was sent.
type client struct {
	frames chan string
	done   chan error
	cancel context.CancelFunc
}

// serve subscribes to workspaceID and serves it into a recording sink, and
// reads the preamble. A gate, when not nil, holds every write, the
// preamble's too, until it can receive.
func (r *rig) serve(t *testing.T, workspaceID uuid.UUID, opts ServeOptions, gate chan struct{}) *client {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := r.hub.Subscribe(ctx, workspaceID)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &client{frames: make(chan string, 1000), done: make(chan error, 1), cancel: cancel}
	sink := func(p []byte) error {
		if gate != nil {
			<-gate
		}
		c.frames <- string(p)
		return nil
	}
	go func() { defer sub.Close(); c.done <- sub.Serve(ctx, sink, opts) }()
	t.Cleanup(cancel)
	if gate == nil {
		c.preamble(t)
	}
	return c
}

func (c *client) preamble(t *testing.T) {
	t.Helper()
	if got := c.next(t); got != Preamble {
		t.Fatalf("first frame %q, want the preamble", got)
	}
}

func (c *client) next(t *testing.T) string {
	t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame within 10s")
		return ""
	}
}

// nextEvent returns the n of the next event frame, skipping heartbeats, and
// its id line.
func (c *client) nextEvent(t *testing.T) (int, string) {
	t.Helper()
	for {
		f := c.next(t)
		if strings.HasPrefix(f, ":") {
			continue
		}
		var id, data string
		for line := range strings.Lines(f) {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			}
		}
		var e struct {
			Data struct{ N int } `json:"data"`
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil || id == "" || !strings.Contains(f, "\nevent: test.happened\n") {
			t.Fatalf("malformed frame %q", f)
		}
		return e.Data.N, id
	}
}

// expect reads events and checks their n are want, in order.
func (c *client) expect(t *testing.T, want ...int) {
	t.Helper()
	for _, w := range want {
		if n, _ := c.nextEvent(t); n != w {
			t.Fatalf("event %d, want %d", n, w)
		}
	}
}

func (c *client) expectQuiet(t *testing.T) {
	t.Helper()
	select {
	case f := <-c.frames:
		t.Fatalf("unexpected frame %q", f)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestLiveEventsReachOnlyTheirWorkspace(t *testing.T) {
	r := newRig(t, Config{})
	a, b := kernel.NewID(), kernel.NewID()
	ca, cb := r.serve(t, a, ServeOptions{}, nil), r.serve(t, b, ServeOptions{}, nil)
	r.publish(t, a, 1)
	r.publish(t, b, 2)
	r.publish(t, a, 3)
	ca.expect(t, 1, 3)
	cb.expect(t, 2)
	ca.expectQuiet(t)
	cb.expectQuiet(t)
}

func TestSlowSubscriberCatchesUpFromTheStream(t *testing.T) {
	r := newRig(t, Config{Buffer: 2})
	ws := kernel.NewID()
	gate := make(chan struct{})
	c := r.serve(t, ws, ServeOptions{}, nil)
	slow := r.serve(t, ws, ServeOptions{}, gate)
	for n := 1; n <= 50; n++ {
		r.publish(t, ws, n)
	}
	want := make([]int, 50)
	for i := range want {
		want[i] = i + 1
	}
	c.expect(t, want...)
	// The slow one dropped most of these from its buffer: it reads them back
	// from the stream, once each, in order.
	close(gate)
	slow.preamble(t)
	slow.expect(t, want...)
	r.publish(t, ws, 51)
	slow.expect(t, 51)
	slow.expectQuiet(t)
}

func TestFallingBehindNeverReplaysHistory(t *testing.T) {
	ws := kernel.NewID()
	// History from before the hub started, and from after: neither may reach
	// a new subscriber, not even one that falls behind and catches up.
	r := newRigAfter(t, Config{Buffer: 2}, func(r *rig) { r.publish(t, ws, -1) })
	probe := r.serve(t, ws, ServeOptions{}, nil)
	r.publish(t, ws, 0)
	probe.expect(t, 0)
	gate := make(chan struct{})
	slow := r.serve(t, ws, ServeOptions{}, gate)
	for n := 1; n <= 10; n++ {
		r.publish(t, ws, n)
	}
	probe.expect(t, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	close(gate)
	slow.preamble(t)
	slow.expect(t, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	slow.expectQuiet(t)
}

func TestFallingBehindOnAFreshHub(t *testing.T) {
	ws := kernel.NewID()
	r := newRigAfter(t, Config{Buffer: 2}, func(r *rig) { r.publish(t, ws, -1) })
	gate := make(chan struct{})
	slow := r.serve(t, ws, ServeOptions{}, gate)
	for n := 1; n <= 10; n++ {
		r.publish(t, ws, n)
	}
	close(gate)
	slow.preamble(t)
	slow.expect(t, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	slow.expectQuiet(t)
}

func TestResumeReplaysThenGoesLive(t *testing.T) {
	r := newRig(t, Config{})
	ws, other := kernel.NewID(), kernel.NewID()
	first := r.publish(t, ws, 1)
	r.publish(t, other, 100)
	r.publish(t, ws, 2)
	r.publish(t, ws, 3)
	c := r.serve(t, ws, ServeOptions{After: first}, nil)
	c.expect(t, 2, 3)
	r.publish(t, ws, 4)
	c.expect(t, 4)
	c.expectQuiet(t)

	// Events purged from the stream (older than its retention) are gone:
	// the replay starts with the oldest kept.
	stream, err := r.bus.JS.Stream(context.Background(), natsbus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(context.Background(), jetstream.WithPurgeSequence(first+3)); err != nil {
		t.Fatal(err)
	}
	r.serve(t, ws, ServeOptions{After: first}, nil).expect(t, 3, 4)
	// A sequence past the stream's end (the stream was recreated since) does
	// not hold live events back.
	beyond := r.serve(t, ws, ServeOptions{After: first + 1_000_000}, nil)
	r.publish(t, ws, 5)
	beyond.expect(t, 5)
}

func TestEventIDs(t *testing.T) {
	r := newRig(t, Config{})
	ws, other := kernel.NewID(), kernel.NewID()
	c := r.serve(t, ws, ServeOptions{}, nil)
	seq := r.publish(t, ws, 1)
	_, id := c.nextEvent(t)
	if len(id) != sealedIDLength || id == fmt.Sprint(seq) {
		t.Fatalf("id %q, want a sealed one", id)
	}
	if got, err := r.hub.ParseEventID("id", ws, id); err != nil || got != seq {
		t.Fatalf("parse %q: %d, %v; want %d", id, got, err, seq)
	}
	for _, bad := range []struct {
		ws uuid.UUID
		id string
	}{{other, id}, {ws, "x"}, {ws, strings.Repeat("A", sealedIDLength)}, {ws, id + "A"}} {
		if _, err := r.hub.ParseEventID("id", bad.ws, bad.id); !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("parse %q for %s: %v, want invalid", bad.id, bad.ws, err)
		}
	}
}

func TestLimitAndClose(t *testing.T) {
	r := newRig(t, Config{MaxPerWorkspace: 2, Heartbeat: 20 * time.Millisecond})
	ws := kernel.NewID()
	c := r.serve(t, ws, ServeOptions{}, nil)
	r.serve(t, ws, ServeOptions{}, nil)
	if _, err := r.hub.Subscribe(context.Background(), ws); !kernel.IsCode(err, kernel.CodeRateLimited) {
		t.Fatalf("third subscription: %v, want rate_limited", err)
	}
	if f := c.next(t); f != string(heartbeatFrame) {
		t.Fatalf("idle frame %q, want a heartbeat", f)
	}
	r.hub.Close()
	select {
	case err := <-c.done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if _, err := r.hub.Subscribe(context.Background(), ws); !kernel.IsCode(err, kernel.CodeUnavailable) {
		t.Fatalf("subscription after Close: %v, want unavailable", err)
	}
}

func TestStillAllowedEndsTheStream(t *testing.T) {
	r := newRig(t, Config{Heartbeat: 20 * time.Millisecond})
	revoked := kernel.NotFound("workspace")
	allowed := make(chan error, 1)
	allowed <- nil
	c := r.serve(t, kernel.NewID(), ServeOptions{StillAllowed: func(context.Context) error {
		select {
		case err := <-allowed:
			return err
		default:
			return revoked
		}
	}}, nil)
	select {
	case err := <-c.done:
		if !errors.Is(err, revoked) {
			t.Fatalf("Serve: %v, want the access error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived its access")
	}
}

func TestSubscribeWaitsForTheStream(t *testing.T) {
	hub, err := New(Config{Key: make([]byte, 16), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := hub.Subscribe(ctx, kernel.NewID()); !kernel.IsCode(err, kernel.CodeUnavailable) {
		t.Fatalf("subscription to a hub that reads nothing: %v, want unavailable", err)
	}
}
