package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atrium/internal/app"
	"atrium/internal/config"
	"atrium/internal/events"
	"atrium/internal/events/catalog"
	"atrium/internal/events/natsbus"
	"atrium/internal/events/realtime"
	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestEventStreamAcrossNodes runs two nodes on one PostgreSQL schema and one
// NATS server: an event committed through one reaches a stream on the other,
// and an ID one node sent resumes on the other.
func TestEventStreamAcrossNodes(t *testing.T) {
	server := testkit.StartNATS(t)
	schema := testkit.NewPostgresSchema(t) // skips without PostgreSQL
	env := map[string]string{"ATRIUM_DATABASE_URL": schema.AppURL, "ATRIUM_AUTO_MIGRATE": "false",
		"ATRIUM_NATS_URL": server.URL(), "ATRIUM_SECRET_KEY": strings.Repeat("k", 40)}
	one := testkit.Boot(t, store.SQLite, testkit.AppOptions{Env: env}) // the env makes both PostgreSQL nodes
	two := testkit.Boot(t, store.SQLite, testkit.AppOptions{Env: env})
	ws, err := one.Services.Workspaces.Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	wsID := kernel.FormatID(kernel.PrefixWorkspace, ws.ID)
	key := map[string]string{"Authorization": testkit.KeyFor(ws.ID)}
	renameOn := func(n *testkit.TestApp, name string) {
		t.Helper()
		if r := call(t, n.URL(), "PATCH", "/api/v1/workspaces/"+wsID, key, `{"name": "`+name+`"}`); r.status != http.StatusOK {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
	}

	onTwo := openStream(t, two.URL(), streamPath(wsID), key)
	renameOn(one, "Renamed on one")
	seen := expectRename(t, onTwo, wsID, "Renamed on one")
	onTwo.close()
	renameOn(two, "Missed")
	onOne := openStream(t, one.URL(), streamPath(wsID), withHeader(key, "Last-Event-ID", seen.id))
	expectRename(t, onOne, wsID, "Missed")
	renameOn(two, "Live")
	expectRename(t, onOne, wsID, "Live")
}

// TestEventStreamsEndAtShutdown checks that open streams do not hold a
// node's shutdown up for its grace period.
func TestEventStreamsEndAtShutdown(t *testing.T) {
	env := map[string]string{"ATRIUM_ADDR": "127.0.0.1:0", "ATRIUM_DATA_DIR": filepath.Join(t.TempDir(), "data"),
		"ATRIUM_SHUTDOWN_TIMEOUT": "30s"}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	params := testkit.FastPasswordParams()
	a, err := app.New(context.Background(), cfg, app.Options{LogOutput: &testkit.SyncBuffer{}, Auth: testkit.TestAuth{}, PasswordParams: &params})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ws, err := a.Services.Workspaces.Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	s := openStream(t, a.URL(), streamPath(kernel.FormatID(kernel.PrefixWorkspace, ws.ID)), map[string]string{"Authorization": testkit.KeyFor(ws.ID)})
	if s.status != http.StatusOK {
		t.Fatalf("stream: %d %s", s.status, s.raw)
	}
	s.next(t, true) // the preamble: the stream is open
	cancel()
	s.ended(t, 5*time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the node took more than 5s to shut down with a stream open")
	}
}

// TestEventStreamOutlivesServerTimeouts serves a stream from a server whose
// read and write timeouts are far shorter than the stream: it must go on
// carrying heartbeats and events past both.
func TestEventStreamOutlivesServerTimeouts(t *testing.T) {
	bus, err := natsbus.Open(natsbus.Options{Dir: filepath.Join(t.TempDir(), "nats"), Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	if err := bus.EnsureStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	hub, err := realtime.New(realtime.Config{JS: bus.JS, Key: key, Logger: testkit.DiscardLogger(), Heartbeat: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go hub.Run(context.Background())
	t.Cleanup(hub.Close)
	srv := httptest.NewUnstartedServer(httpapi.NewHandler(httpapi.Deps{Logger: testkit.DiscardLogger(),
		Auth: testkit.TestAuth{}, EventCatalog: catalog.Atrium, EventStream: hub}))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close) // after the stream's own cleanup has closed it

	ws := kernel.NewID()
	wsID := kernel.FormatID(kernel.PrefixWorkspace, ws)
	s := openStream(t, srv.URL, streamPath(wsID), map[string]string{"Authorization": testkit.KeyFor(ws)})
	if s.status != http.StatusOK {
		t.Fatalf("stream: %d %s", s.status, s.raw)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if m := s.next(t, true); m.event != "" {
			t.Fatalf("unexpected event %+v", m)
		}
	}
	body, _ := json.Marshal(events.Envelope{ID: kernel.FormatID(kernel.PrefixEvent, kernel.NewID()), Type: "workspace.updated",
		WorkspaceID: wsID, CreatedAt: time.Now().UTC(), Data: json.RawMessage(`{"id":"` + wsID + `","slug":"a","name":"Late"}`)})
	if _, err := bus.JS.Publish(context.Background(), events.EventSubject(ws, "workspace.updated"), body); err != nil {
		t.Fatal(err)
	}
	expectRename(t, s, wsID, "Late")
}

// TestOpenAPIDocumentsEveryEvent checks the OpenAPI document's webhooks: one
// per catalogued event type, whose body is the envelope with that type's
// data schema, and the event stream's text/event-stream answer.
func TestOpenAPIDocumentsEveryEvent(t *testing.T) {
	f := setup(t, store.SQLite, testkit.AppOptions{})
	r := call(t, f.url, "GET", "/api/openapi.json", nil, "")
	var doc struct {
		Webhooks map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Schema struct {
							Ref string `json:"$ref"`
						} `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"post"`
		} `json:"webhooks"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Content map[string]json.RawMessage `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatal(err)
	}
	schema := func(ref string) map[string]any {
		var s map[string]any
		_ = json.Unmarshal(doc.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")], &s)
		return s
	}
	for _, typ := range catalog.Atrium.Types() {
		hook, ok := doc.Webhooks[typ.Name]
		if !ok {
			t.Errorf("no webhook documents %s", typ.Name)
			continue
		}
		envelope := schema(hook.Post.RequestBody.Content["application/json"].Schema.Ref)
		props, _ := envelope["properties"].(map[string]any)
		data, _ := props["data"].(map[string]any)
		ref, _ := data["$ref"].(string)
		payload, _ := schema(ref)["properties"].(map[string]any)
		if len(payload) == 0 || props["id"] == nil || props["workspace_id"] == nil || props["created_at"] == nil {
			t.Errorf("%s: envelope %v, data schema %q with properties %v", typ.Name, envelope, ref, payload)
		}
	}
	if len(doc.Webhooks) != len(catalog.Atrium.Types()) {
		t.Errorf("%d webhooks for %d catalogued types", len(doc.Webhooks), len(catalog.Atrium.Types()))
	}
	stream := doc.Paths["/api/v1/workspaces/{workspace_id}/events/stream"]["get"]
	if _, ok := stream.Responses["200"].Content["text/event-stream"]; !ok {
		t.Errorf("the event stream's 200 answer documents %v, want text/event-stream", stream.Responses["200"].Content)
	}
}
