package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_MAX_BODY_BYTES": "2048"}})
		path := "/api/v1/workspaces/" + f.wsID
		deep := strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)
		cases := []struct {
			name        string
			body        string
			contentType string
			status      int
			code        kernel.Code
			field       string
		}{
			{"malformed", `{"name": "x"`, "", 400, kernel.CodeInvalid, "body"},
			{"unknown field", `{"name": "x", "color": "red"}`, "", 400, kernel.CodeInvalid, "body.color"},
			{"wrong type", `{"name": 42}`, "", 400, kernel.CodeInvalid, "body.name"},
			{"duplicate key", `{"name": "x", "name": "y"}`, "", 400, kernel.CodeInvalid, "body.name"},
			{"trailing data", `{"name": "x"} {"name": "y"}`, "", 400, kernel.CodeInvalid, "body"},
			{"too deep", deep, "", 400, kernel.CodeInvalid, ""},
			{"not an object", `["x"]`, "", 400, kernel.CodeInvalid, ""},
			{"empty name", `{"name": ""}`, "", 400, kernel.CodeInvalid, "body.name"},
			{"control characters", `{"name": "a\u0000b"}`, "", 400, kernel.CodeInvalid, "name"},
			{"too large", `{"name": "` + strings.Repeat("x", 3000) + `"}`, "", 413, kernel.CodeTooLarge, ""},
			{"form body", `name=x`, "application/x-www-form-urlencoded", 415, kernel.CodeUnsupportedMediaType, ""},
			{"text body", `{"name": "x"}`, "text/plain", 415, kernel.CodeUnsupportedMediaType, ""},
			{"latin-1 JSON", `{"name": "x"}`, "application/json; charset=latin1", 415, kernel.CodeUnsupportedMediaType, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				headers := map[string]string{"Authorization": f.bearer["Authorization"]}
				if c.contentType != "" {
					headers["Content-Type"] = c.contentType
				}
				r := call(t, f.url, "PATCH", path, headers, c.body)
				if c.field != "" {
					assertEnvelope(t, r, c.status, c.code, c.field)
				} else {
					assertEnvelope(t, r, c.status, c.code)
				}
			})
		}
		r := call(t, f.url, "GET", path, f.bearer, "")
		if r.body["name"] != "Acme" || r.body["updated_at"] != r.body["created_at"] {
			t.Fatalf("bad input changed the workspace: %s", r.raw)
		}
		assertCount(t, f, "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'workspace.renamed'", 0)
	})
}

func TestRenameIsAuditedAndEmitted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+f.wsID, f.bearer, `{"name": "  Acme Industries "}`)
		if r.status != 200 || r.body["name"] != "Acme Industries" {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
		assertCount(t, f, "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'workspace.renamed' AND request_id = '"+r.header.Get("X-Request-ID")+"'", 1)
		assertCount(t, f, "SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = 'workspace.updated'", 1)
	})
}

func assertCount(t *testing.T, f fixture, query string, want int) {
	t.Helper()
	var n int
	if err := f.app.DB.WorkspaceRow(context.Background(), f.ws, query, f.ws).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("%s: %d, want %d", query, n, want)
	}
}

func TestPanicAnswers500AndServingGoesOn(t *testing.T) {
	f := setup(t, store.SQLite, testkit.AppOptions{Routes: []func(huma.API){func(api huma.API) {
		huma.Get(api, "/api/v1/test/panic", func(context.Context, *struct{}) (*struct{}, error) { panic("boom") })
	}}})
	assertEnvelope(t, call(t, f.url, "GET", "/api/v1/test/panic", nil, ""), 500, kernel.CodeInternal)
	if r := call(t, f.url, "GET", "/healthz", nil, ""); r.status != 200 {
		t.Fatalf("after panic: %d", r.status)
	}
	if !strings.Contains(f.app.Logs(), "panic serving request") {
		t.Fatal("the panic was not logged")
	}
}

func TestCrossOriginProtection(t *testing.T) {
	f := setup(t, store.SQLite, testkit.AppOptions{Env: map[string]string{"ATRIUM_CORS_ORIGINS": "https://app.example.com"}})
	path := "/api/v1/workspaces/" + f.wsID
	cookie := map[string]string{"Cookie": testkit.TestCookie + "=" + testkit.TestKeyPrefix + f.ws.String()}
	crossSite := map[string]string{"Cookie": cookie["Cookie"], "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	assertEnvelope(t, call(t, f.url, "PATCH", path, crossSite, `{"name":"Pwned"}`), 403, kernel.CodeForbidden)

	sameOrigin := map[string]string{"Cookie": cookie["Cookie"], "Sec-Fetch-Site": "same-origin"}
	if r := call(t, f.url, "PATCH", path, sameOrigin, `{"name":"Mine"}`); r.status != 200 {
		t.Fatalf("same-origin cookie write: %d %s", r.status, r.raw)
	}
	// Bearer credentials are never sent by a browser on its own: no CSRF check.
	bearerCross := map[string]string{"Authorization": f.bearer["Authorization"], "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	if r := call(t, f.url, "PATCH", path, bearerCross, `{"name":"Bearer"}`); r.status != 200 {
		t.Fatalf("bearer cross-site write: %d %s", r.status, r.raw)
	}

	pre := call(t, f.url, "OPTIONS", path, map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PATCH"}, "")
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed preflight: %d %v", pre.status, pre.header)
	}
	bad := call(t, f.url, "OPTIONS", path, map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "PATCH"}, "")
	assertEnvelope(t, bad, 403, kernel.CodeForbidden)
	if bad.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("a foreign origin got CORS headers")
	}
}

func TestIdempotencyKey(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		var runs atomic.Int64
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		var once sync.Once
		type in struct {
			Body struct {
				Amount int  `json:"amount"`
				Block  bool `json:"block,omitempty"`
			}
		}
		type out struct {
			Status int
			Body   struct {
				Run int64 `json:"run"`
			}
		}
		f := setup(t, d, testkit.AppOptions{Routes: []func(huma.API){func(api huma.API) {
			huma.Register(api, huma.Operation{Method: http.MethodPost, Path: "/api/v1/workspaces/{workspace_id}/charges", DefaultStatus: 201},
				func(ctx context.Context, i *struct {
					WorkspaceID string `path:"workspace_id"`
					in
				}) (*out, error) {
					if i.Body.Block {
						started <- struct{}{}
						<-release
					}
					o := &out{Status: 201}
					o.Body.Run = runs.Add(1)
					return o, nil
				})
		}}})
		t.Cleanup(func() { once.Do(func() { close(release) }) })
		path := "/api/v1/workspaces/" + f.wsID + "/charges"
		h := map[string]string{"Authorization": f.bearer["Authorization"], "Idempotency-Key": "key-1"}
		first := call(t, f.url, "POST", path, h, `{"amount": 10}`)
		again := call(t, f.url, "POST", path, h, `{"amount": 10}`)
		if first.status != 201 || again.status != 201 || first.raw != again.raw || runs.Load() != 1 {
			t.Fatalf("replay: %d %s / %d %s, runs %d", first.status, first.raw, again.status, again.raw, runs.Load())
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatal("replay not marked")
		}
		assertEnvelope(t, call(t, f.url, "POST", path, h, `{"amount": 11}`), 422, kernel.CodeUnprocessable)
		assertEnvelope(t, call(t, f.url, "POST", path, map[string]string{"Authorization": h["Authorization"], "Idempotency-Key": "bad key"}, `{"amount": 1}`), 400, kernel.CodeInvalid)

		// While the first request with a key runs, a second one is 409.
		h2 := map[string]string{"Authorization": h["Authorization"], "Idempotency-Key": "key-2"}
		done := make(chan response, 1)
		go func() { done <- call(t, f.url, "POST", path, h2, `{"amount": 5, "block": true}`) }()
		<-started
		assertEnvelope(t, call(t, f.url, "POST", path, h2, `{"amount": 5, "block": true}`), 409, kernel.CodeConflict)
		once.Do(func() { close(release) })
		if r := <-done; r.status != 201 {
			t.Fatalf("blocked request: %d %s", r.status, r.raw)
		}
	})
}
