package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// response is what a scenario asserts on.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, base, method, path string, headers map[string]string, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return response{status: resp.StatusCode, header: resp.Header} // an open stream: closing it ends it
	}
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// assertEnvelope checks an error answer: the status, the code, the request ID
// matching the header, and the fields named when given.
func assertEnvelope(t *testing.T, r response, status int, code kernel.Code, fields ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	env, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope: %s", r.raw)
	}
	if env["code"] != string(code) {
		t.Fatalf("code %v, want %s; body %s", env["code"], code, r.raw)
	}
	if id := r.header.Get("X-Request-ID"); id == "" || env["request_id"] != id {
		t.Fatalf("request_id %v does not match header %q", env["request_id"], id)
	}
	if msg, _ := env["message"].(string); msg == "" {
		t.Fatalf("empty message: %s", r.raw)
	}
	got, _ := env["fields"].(map[string]any)
	for _, f := range fields {
		if _, ok := got[f]; !ok {
			t.Fatalf("fields %v do not name %s", got, f)
		}
	}
}

type fixture struct {
	app    *testkit.TestApp
	url    string
	ws     uuid.UUID
	wsID   string
	other  uuid.UUID
	bearer map[string]string
}

func setup(t *testing.T, dialect store.Dialect, opts testkit.AppOptions) fixture {
	t.Helper()
	a := testkit.Boot(t, dialect, opts)
	ctx := context.Background()
	ws, err := a.Services.Workspaces.Create(ctx, "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	other, err := a.Services.Workspaces.Create(ctx, "Globex", "globex")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{
		app: a, url: a.URL(), ws: ws.ID, wsID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), other: other.ID,
		bearer: map[string]string{"Authorization": testkit.KeyFor(ws.ID)},
	}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, dialect store.Dialect)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func TestOperationalRoutes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		if r := call(t, f.url, "GET", "/healthz", nil, ""); r.status != 200 || r.body["status"] != "ok" {
			t.Fatalf("healthz: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", "/readyz", nil, ""); r.status != 200 || r.body["status"] != "ready" {
			t.Fatalf("readyz: %d %s", r.status, r.raw)
		}
		r := call(t, f.url, "GET", "/api/openapi.json", nil, "")
		if r.status != 200 || !strings.HasPrefix(r.body["openapi"].(string), "3.1") {
			t.Fatalf("openapi: %d %.200s", r.status, r.raw)
		}
		paths, _ := r.body["paths"].(map[string]any)
		if _, ok := paths["/api/v1/workspaces/{workspace_id}"]; !ok {
			t.Fatalf("openapi lacks the workspace route: %v", paths)
		}
		if r := call(t, f.url, "GET", "/api/docs", nil, ""); r.status != 200 || !strings.Contains(r.raw, "<html") {
			t.Fatalf("docs: %d %.200s", r.status, r.raw)
		}
	})
}

func TestRequestIDs(t *testing.T) {
	f := setup(t, store.SQLite, testkit.AppOptions{})
	r := call(t, f.url, "GET", "/nope", map[string]string{"X-Request-ID": "client-abc.123"}, "")
	assertEnvelope(t, r, 404, kernel.CodeNotFound)
	if r.header.Get("X-Request-ID") != "client-abc.123" {
		t.Fatalf("inbound request ID not echoed: %q", r.header.Get("X-Request-ID"))
	}
	r = call(t, f.url, "GET", "/nope", map[string]string{"X-Request-ID": "bad id\twith <html>"}, "")
	assertEnvelope(t, r, 404, kernel.CodeNotFound)
	if got := r.header.Get("X-Request-ID"); !strings.HasPrefix(got, "req_") {
		t.Fatalf("hostile request ID kept: %q", got)
	}
}

func TestWorkspaceAccess(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		otherID := kernel.FormatID(kernel.PrefixWorkspace, f.other)
		missing := kernel.NewID()
		cases := []struct {
			name    string
			headers map[string]string
			method  string
			path    string
			status  int
			code    kernel.Code
		}{
			{"anonymous", nil, "GET", "/api/v1/workspaces/" + f.wsID, 401, kernel.CodeUnauthenticated},
			{"malformed credentials", map[string]string{"Authorization": "Bearer nonsense"}, "GET", "/api/v1/workspaces/" + f.wsID, 401, kernel.CodeUnauthenticated},
			{"key of another workspace", f.bearer, "GET", "/api/v1/workspaces/" + otherID, 404, kernel.CodeNotFound},
			{"malformed ID", f.bearer, "GET", "/api/v1/workspaces/ws_nope", 404, kernel.CodeNotFound},
			{"raw UUID", f.bearer, "GET", "/api/v1/workspaces/" + f.ws.String(), 404, kernel.CodeNotFound},
			{"hostile ID", f.bearer, "GET", "/api/v1/workspaces/ws_%27%20OR%201=1--", 404, kernel.CodeNotFound},
			{"unknown workspace", map[string]string{"Authorization": testkit.KeyFor(missing)}, "GET", "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, missing), 404, kernel.CodeNotFound},
			{"wrong method", f.bearer, "PUT", "/api/v1/workspaces/" + f.wsID, 405, kernel.CodeMethodNotAllowed},
			{"unknown route", f.bearer, "GET", "/api/v1/workspaces/" + f.wsID + "/nothing", 404, kernel.CodeNotFound},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, c.method, c.path, c.headers, ""), c.status, c.code)
			})
		}
		// The same 404 body for "not yours" and "does not exist", but for the request ID.
		a := call(t, f.url, "GET", "/api/v1/workspaces/"+otherID, f.bearer, "")
		b := call(t, f.url, "GET", "/api/v1/workspaces/"+kernel.FormatID(kernel.PrefixWorkspace, missing), f.bearer, "")
		if a.body["error"].(map[string]any)["message"] != b.body["error"].(map[string]any)["message"] {
			t.Fatalf("404 bodies differ: %s vs %s", a.raw, b.raw)
		}
		r := call(t, f.url, "GET", "/api/v1/workspaces/"+f.wsID, f.bearer, "")
		if r.status != 200 || r.body["id"] != f.wsID || r.body["slug"] != "acme" || r.body["name"] != "Acme" {
			t.Fatalf("own workspace: %d %s", r.status, r.raw)
		}
	})
}

func TestAuditLogPagesWithSignedCursors(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		for i := 0; i < 5; i++ {
			f.app.Clock.Advance(time.Second)
			if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+f.wsID, f.bearer, fmt.Sprintf(`{"name": "Acme %d"}`, i)); r.status != 200 {
				t.Fatalf("rename: %d %s", r.status, r.raw)
			}
		}
		// 6 entries: workspace.created and 5 renames, newest first, 4 per page.
		base := "/api/v1/workspaces/" + f.wsID + "/audit-log"
		first := call(t, f.url, "GET", base+"?limit=4", f.bearer, "")
		data, _ := first.body["items"].([]any)
		if first.status != 200 || len(data) != 4 || first.body["has_more"] != true {
			t.Fatalf("first page: %d %s", first.status, first.raw)
		}
		if meta := data[0].(map[string]any)["metadata"].(map[string]any); meta["to"] != "Acme 4" {
			t.Fatalf("not newest first: %v", data[0])
		}
		next := first.body["next_cursor"].(string)
		second := call(t, f.url, "GET", base+"?limit=4&cursor="+next, f.bearer, "")
		data2, _ := second.body["items"].([]any)
		if second.status != 200 || len(data2) != 2 || second.body["has_more"] != false || second.body["next_cursor"] != nil {
			t.Fatalf("second page: %d %s", second.status, second.raw)
		}
		if data2[1].(map[string]any)["action"] != "workspace.created" {
			t.Fatalf("last entry: %v", data2[1])
		}
		tampered := next[:len(next)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(next, "AA")]
		assertEnvelope(t, call(t, f.url, "GET", base+"?cursor="+tampered, f.bearer, ""), 400, kernel.CodeInvalid, "query.cursor")
		// A cursor of one workspace's log is refused by another's.
		otherKey := map[string]string{"Authorization": testkit.KeyFor(f.other)}
		otherBase := "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, f.other) + "/audit-log"
		assertEnvelope(t, call(t, f.url, "GET", otherBase+"?cursor="+next, otherKey, ""), 400, kernel.CodeInvalid, "query.cursor")
		assertEnvelope(t, call(t, f.url, "GET", base+"?limit=0", f.bearer, ""), 400, kernel.CodeInvalid, "query.limit")
		assertEnvelope(t, call(t, f.url, "GET", base+"?limt=5", f.bearer, ""), 400, kernel.CodeInvalid, "query.limt")
		if r := call(t, f.url, "GET", base+"?limit=1000", f.bearer, ""); r.status != 200 {
			t.Fatalf("limit above the cap: %d %s", r.status, r.raw)
		}
	})
}

func TestHostileUserAgentIsStoredSafely(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		agent := "evil\xff\xfe" + strings.Repeat("é", 400)
		headers := map[string]string{"Authorization": f.bearer["Authorization"], "User-Agent": agent}
		if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+f.wsID, headers, `{"name": "Renamed"}`); r.status != 200 {
			t.Fatalf("rename with a hostile user agent: %d %s", r.status, r.raw)
		}
		var stored string
		err := f.app.DB.WorkspaceRow(context.Background(), f.ws,
			"SELECT user_agent FROM audit_log WHERE workspace_id = $1 AND action = 'workspace.renamed'", f.ws).Scan(&stored)
		if err != nil || !utf8.ValidString(stored) || len(stored) > 512 || !strings.HasPrefix(stored, "evil\uFFFD") {
			t.Fatalf("stored user agent %q (%d bytes): %v", stored, len(stored), err)
		}
	})
}
