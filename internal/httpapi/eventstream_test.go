package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// sseMessage is one message of an event stream: an event, or the comment
// and retry lines of the preamble and the heartbeats.
type sseMessage struct {
	id, event, data string
	comment, retry  string
}

// sseStream is a client's open event stream, read in the background.
type sseStream struct {
	response
	msgs   chan sseMessage // closed when the server ends the stream
	cancel context.CancelFunc
}

// openStream opens GET path with headers. A refused stream comes back with
// its status and envelope and no messages.
func openStream(t *testing.T, base, path string, headers map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{response: response{status: resp.StatusCode, header: resp.Header}, msgs: make(chan sseMessage, 1000), cancel: cancel}
	t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		s.raw = string(raw)
		_ = json.Unmarshal(raw, &s.body)
		close(s.msgs)
		return s
	}
	go s.read(resp.Body)
	return s
}

func (s *sseStream) close() { s.cancel() }

// read parses the stream as an EventSource would, until it ends.
func (s *sseStream) read(body io.ReadCloser) {
	defer close(s.msgs)
	defer body.Close()
	sc := bufio.NewScanner(body)
	var m sseMessage
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if m != (sseMessage{}) {
				s.msgs <- m
			}
			m = sseMessage{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			m.comment = value
		case "id":
			m.id = value
		case "event":
			m.event = value
		case "data":
			m.data = value
		case "retry":
			m.retry = value
		}
	}
}

// next returns the next message that is an event (skip comments) or, with
// comments, any message. It fails the test if none comes within 10 s.
func (s *sseStream) next(t *testing.T, comments bool) sseMessage {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatal("the stream ended")
			}
			if comments || m.event != "" {
				return m
			}
		case <-timeout:
			t.Fatal("no message within 10s")
		}
	}
}

// envelope is an event's data line, decoded.
type streamedEvent struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	WorkspaceID string         `json:"workspace_id"`
	CreatedAt   time.Time      `json:"created_at"`
	Data        map[string]any `json:"data"`
}

// nextEvent returns the next event, checking that its lines agree.
func (s *sseStream) nextEvent(t *testing.T) (sseMessage, streamedEvent) {
	t.Helper()
	m := s.next(t, false)
	var e streamedEvent
	if err := json.Unmarshal([]byte(m.data), &e); err != nil {
		t.Fatalf("data is not an envelope: %v: %q", err, m.data)
	}
	if m.id == "" || e.Type != m.event || !strings.HasPrefix(e.ID, "evt_") || e.CreatedAt.IsZero() {
		t.Fatalf("inconsistent event: %+v %+v", m, e)
	}
	return m, e
}

// ended waits up to within for the server to end the stream.
func (s *sseStream) ended(t *testing.T, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case _, ok := <-s.msgs:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("the stream is still open after %s", within)
		}
	}
}

func streamPath(wsID string) string { return "/api/v1/workspaces/" + wsID + "/events/stream" }

func rename(t *testing.T, f fixture, wsID string, headers map[string]string, name string) {
	t.Helper()
	if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+wsID, headers, `{"name": "`+name+`"}`); r.status != http.StatusOK {
		t.Fatalf("rename %s: %d %s", wsID, r.status, r.raw)
	}
}

// expectRename reads the next event and checks it is wsID's rename to name.
// It skips the workspace's creation: committed before the stream opened, it
// may still be on its way and arrive live.
func expectRename(t *testing.T, s *sseStream, wsID, name string) sseMessage {
	t.Helper()
	m, e := s.nextEvent(t)
	if m.event == "workspace.created" && e.WorkspaceID == wsID {
		m, e = s.nextEvent(t)
	}
	if m.event != "workspace.updated" || e.WorkspaceID != wsID || e.Data["id"] != wsID || e.Data["name"] != name {
		t.Fatalf("want %s renamed %q, got %s %+v", wsID, name, m.event, e)
	}
	return m
}

func TestEventStreamCarriesItsWorkspaceOnly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		otherID := kernel.FormatID(kernel.PrefixWorkspace, f.other)
		otherKey := map[string]string{"Authorization": testkit.KeyFor(f.other)}
		a := openStream(t, f.url, streamPath(f.wsID), f.bearer)
		b := openStream(t, f.url, streamPath(otherID), otherKey)
		if a.status != http.StatusOK || a.header.Get("Content-Type") != "text/event-stream" ||
			a.header.Get("X-Accel-Buffering") != "no" || a.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("stream answer: %d %v", a.status, a.header)
		}
		if m := a.next(t, true); m.retry != "3000" {
			t.Fatalf("first message %+v, want the retry preamble", m)
		}

		rename(t, f, f.wsID, f.bearer, "Acme One")
		expectRename(t, a, f.wsID, "Acme One")
		rename(t, f, otherID, otherKey, "Globex One")
		expectRename(t, b, otherID, "Globex One")
		// Events reach the hub in commit order: had A's stream carried B's
		// rename, it would come before A's second one.
		rename(t, f, f.wsID, f.bearer, "Acme Two")
		expectRename(t, a, f.wsID, "Acme Two")
	})
}

func TestEventStreamResumesFromLastEventID(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		first := openStream(t, f.url, streamPath(f.wsID), f.bearer)
		rename(t, f, f.wsID, f.bearer, "Seen")
		seen := expectRename(t, first, f.wsID, "Seen")
		first.close()
		rename(t, f, f.wsID, f.bearer, "Missed one")
		rename(t, f, f.wsID, f.bearer, "Missed two")

		resumed := openStream(t, f.url, streamPath(f.wsID), withHeader(f.bearer, "Last-Event-ID", seen.id))
		expectRename(t, resumed, f.wsID, "Missed one")
		missedTwo := expectRename(t, resumed, f.wsID, "Missed two")
		rename(t, f, f.wsID, f.bearer, "Live")
		expectRename(t, resumed, f.wsID, "Live") // live after the replay, nothing repeated

		// The query parameter, for clients that cannot set headers; the header
		// (sent by EventSource on its reconnections) wins over a stale one.
		byQuery := openStream(t, f.url, streamPath(f.wsID)+"?last_event_id="+seen.id, f.bearer)
		expectRename(t, byQuery, f.wsID, "Missed one")
		both := openStream(t, f.url, streamPath(f.wsID)+"?last_event_id="+seen.id,
			withHeader(f.bearer, "Last-Event-ID", missedTwo.id))
		expectRename(t, both, f.wsID, "Live")

		otherID := kernel.FormatID(kernel.PrefixWorkspace, f.other)
		tampered := "A" + seen.id[1:]
		if seen.id[0] == 'A' {
			tampered = "B" + seen.id[1:]
		}
		for _, bad := range []string{"garbage", "12", tampered} {
			r := openStream(t, f.url, streamPath(f.wsID), withHeader(f.bearer, "Last-Event-ID", bad))
			assertEnvelope(t, r.response, 400, kernel.CodeInvalid, "header.Last-Event-ID")
		}
		// An ID of A's stream means nothing on B's.
		r := openStream(t, f.url, streamPath(otherID)+"?last_event_id="+seen.id, map[string]string{"Authorization": testkit.KeyFor(f.other)})
		assertEnvelope(t, r.response, 400, kernel.CodeInvalid, "query.last_event_id")
	})
}

func withHeader(headers map[string]string, name, value string) map[string]string {
	out := map[string]string{name: value}
	for k, v := range headers {
		out[k] = v
	}
	return out
}

func TestEventStreamAccess(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		f.app.Realtime.SetHeartbeat(50 * time.Millisecond)
		owner, viewer, outsider := f.app.SignUp(t, "owner@example.com"), f.app.SignUp(t, "viewer@example.com"), f.app.SignUp(t, "outsider@example.com")
		wsID := createWorkspace(t, f, owner, "streamed")
		addMember(t, f, wsID, viewer, policy.Viewer)

		assertEnvelope(t, openStream(t, f.url, streamPath(wsID), nil).response, 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, openStream(t, f.url, streamPath(wsID), outsider.Headers()).response, 404, kernel.CodeNotFound)
		assertEnvelope(t, openStream(t, f.url, streamPath(kernel.FormatID(kernel.PrefixWorkspace, uuid.New())), owner.Headers()).response,
			404, kernel.CodeNotFound)

		s := openStream(t, f.url, streamPath(wsID), viewer.Headers())
		if s.status != http.StatusOK {
			t.Fatalf("viewer: %d %s", s.status, s.raw)
		}
		for m := s.next(t, true); m.comment != "ping"; m = s.next(t, true) {
		}
		// The viewer leaves the workspace: the next heartbeat ends the stream.
		r := call(t, f.url, "DELETE", "/api/v1/workspaces/"+wsID+"/members/"+viewer.UserID(), owner.Headers(), "")
		if r.status != http.StatusNoContent {
			t.Fatalf("remove viewer: %d %s", r.status, r.raw)
		}
		s.ended(t, 5*time.Second)
	})
}

func TestEventStreamLimitPerWorkspace(t *testing.T) {
	f := setup(t, store.SQLite, testkit.AppOptions{Env: map[string]string{"ATRIUM_SSE_MAX_PER_WORKSPACE": "2"}})
	first := openStream(t, f.url, streamPath(f.wsID), f.bearer)
	openStream(t, f.url, streamPath(f.wsID), f.bearer)
	refused := openStream(t, f.url, streamPath(f.wsID), f.bearer)
	assertEnvelope(t, refused.response, 429, kernel.CodeRateLimited)
	if refused.header.Get("Retry-After") == "" || refused.header.Get("X-RateLimit-Limit") != "2" {
		t.Fatalf("429 headers: %v", refused.header)
	}
	other := openStream(t, f.url, streamPath(kernel.FormatID(kernel.PrefixWorkspace, f.other)),
		map[string]string{"Authorization": testkit.KeyFor(f.other)})
	if other.status != http.StatusOK {
		t.Fatalf("another workspace's stream: %d %s", other.status, other.raw)
	}
	first.close()
	pollUntil(t, "the closed stream to free its place", func() bool { return f.app.Realtime.OpenStreams(f.ws) == 1 })
	if again := openStream(t, f.url, streamPath(f.wsID), f.bearer); again.status != http.StatusOK {
		t.Fatalf("after a stream closed: %d %s", again.status, again.raw)
	}
}

// pollUntil polls cond for up to ten seconds.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
	}
}
