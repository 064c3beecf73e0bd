package httpapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestPlatformAdminRoutes boots Atrium with its scheduler running, lets it
// run the cleanups due at boot, and reads their runs as a platform admin;
// nobody else may read them.
func TestPlatformAdminRoutes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{Scheduler: true})
		ada := f.app.SignUp(t, "ada@example.com")
		bob := f.app.SignUp(t, "bob@example.com")
		sys := kernel.WithActor(context.Background(), kernel.SystemActor)
		if err := f.app.Services.Identity.SetPlatformAdmin(sys, "ada@example.com", true); err != nil {
			t.Fatal(err)
		}
		const runsPath = "/api/v1/admin/scheduler/runs"
		var r response
		deadline := time.Now().Add(10 * time.Second)
		for { // the clock stands at 9:30, a tick of both 15-minute cleanups
			r = call(t, f.url, "GET", runsPath+"?task=tokens.cleanup", ada.Headers(), "")
			if items := itemsOf(r); r.status != 200 || len(items) == 1 && items[0]["status"] == "succeeded" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no finished tokens.cleanup run within 10s: %s", r.raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
		run := itemsOf(r)[0]
		if r.status != 200 || !strings.HasPrefix(stringOf(run["id"]), "run_") || run["node"] != f.app.NodeID ||
			run["scheduled_at"] != "2026-01-15T09:30:00Z" || run["duration_ms"] == nil || run["error"] != nil {
			t.Fatalf("tokens.cleanup run: %d %s", r.status, r.raw)
		}

		for _, c := range []struct {
			name    string
			headers map[string]string
			status  int
			code    kernel.Code
		}{
			{"anonymous", nil, 401, kernel.CodeUnauthenticated},
			{"a person who is no platform admin", bob.Headers(), 403, kernel.CodeForbidden},
			{"an API key", f.bearer, 403, kernel.CodeForbidden},
		} {
			t.Run(c.name, func(t *testing.T) {
				for _, path := range []string{runsPath, "/api/v1/admin/scheduler/tasks", "/api/v1/admin/events/relay"} {
					assertEnvelope(t, call(t, f.url, "GET", path, c.headers, ""), c.status, c.code)
				}
			})
		}
		t.Run("pages", func(t *testing.T) {
			first := call(t, f.url, "GET", runsPath+"?limit=1", ada.Headers(), "")
			cursor := stringOf(first.body["next_cursor"])
			if first.status != 200 || len(itemsOf(first)) != 1 || first.body["has_more"] != true || cursor == "" {
				t.Fatalf("first page: %d %s", first.status, first.raw)
			}
			second := call(t, f.url, "GET", runsPath+"?limit=1&cursor="+url.QueryEscape(cursor), ada.Headers(), "")
			if second.status != 200 || len(itemsOf(second)) != 1 || itemsOf(second)[0]["id"] == itemsOf(first)[0]["id"] {
				t.Fatalf("second page: %d %s", second.status, second.raw)
			}
			assertEnvelope(t, call(t, f.url, "GET", runsPath+"?task=tokens.cleanup&cursor="+url.QueryEscape(cursor), ada.Headers(), ""),
				400, kernel.CodeInvalid)
			assertEnvelope(t, call(t, f.url, "GET", runsPath+"?task=No+Such+Task", ada.Headers(), ""), 400, kernel.CodeInvalid, "query.task")
		})
		t.Run("tasks", func(t *testing.T) {
			r := call(t, f.url, "GET", "/api/v1/admin/scheduler/tasks", ada.Headers(), "")
			byName := map[string]map[string]any{}
			for _, item := range itemsOf(r) {
				byName[stringOf(item["name"])] = item
			}
			for _, name := range []string{"workspace.hard_delete", "account.purge", "tokens.cleanup", "idempotency.cleanup", "outbox.cleanup", "scheduler.cleanup"} {
				if byName[name] == nil {
					t.Fatalf("task %s missing: %s", name, r.raw)
				}
			}
			tokens := byName["tokens.cleanup"]
			last, _ := tokens["last_run"].(map[string]any)
			if tokens["every_seconds"] != float64(900) || tokens["next_run_at"] != "2026-01-15T09:45:00Z" || last["id"] != run["id"] {
				t.Fatalf("tokens.cleanup: %v", tokens)
			}
		})
		t.Run("relay lag", func(t *testing.T) {
			r := call(t, f.url, "GET", "/api/v1/admin/events/relay", ada.Headers(), "")
			for deadline := time.Now().Add(10 * time.Second); r.status == 503 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				r = call(t, f.url, "GET", "/api/v1/admin/events/relay", ada.Headers(), "")
			}
			if _, ok := r.body["unsent"].(float64); r.status != 200 || !ok || r.body["node"] != f.app.NodeID || r.body["measured_at"] == nil {
				t.Fatalf("relay lag: %d %s", r.status, r.raw)
			}
		})

		if err := f.app.Services.Identity.SetPlatformAdmin(sys, "ada@example.com", false); err != nil {
			t.Fatal(err)
		}
		assertEnvelope(t, call(t, f.url, "GET", runsPath, ada.Headers(), ""), 403, kernel.CodeForbidden)
	})
}

// itemsOf returns the items of a list answer.
func itemsOf(r response) []map[string]any {
	raw, _ := r.body["items"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, item := range raw {
		if m, ok := item.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
