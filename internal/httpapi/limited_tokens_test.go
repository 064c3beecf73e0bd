package httpapi_test

import (
	"strings"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

func TestWorkspaceLimitedTokens(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		first, second := createWorkspace(t, f, ada, "ada-one"), createWorkspace(t, f, ada, "ada-two")
		evesID := createWorkspace(t, f, eve, "eve-one")
		addMember(t, f, evesID, ada, policy.Viewer)

		token := func(body string) map[string]string {
			r := call(t, f.url, "POST", "/api/v1/me/tokens", ada.Headers(), body)
			if r.status != 201 {
				t.Fatalf("create token %s: %d %s", body, r.status, r.raw)
			}
			return bearer(r.body["secret"].(string))
		}
		all := token(`{"name": "scripts"}`)
		only := token(`{"name": "ci", "workspace_id": "` + second + `"}`)
		onlyEves := token(`{"name": "eve's", "workspace_id": "` + evesID + `"}`)

		listed := func(headers map[string]string, query string) []string {
			r := call(t, f.url, "GET", "/api/v1/workspaces"+query, headers, "")
			if r.status != 200 {
				t.Fatalf("list%s: %d %s", query, r.status, r.raw)
			}
			var ids []string
			for _, w := range items(r) {
				ids = append(ids, w["id"].(string)+":"+w["role"].(string))
			}
			if more := r.body["has_more"] == true; more != (r.body["next_cursor"] != nil) {
				t.Fatalf("has_more and next_cursor disagree: %s", r.raw)
			}
			return ids
		}
		if got := strings.Join(listed(all, ""), " "); got != first+":owner "+second+":owner "+evesID+":viewer" {
			t.Fatalf("an unlimited token lists %s", got)
		}
		if got := strings.Join(listed(only, ""), " "); got != second+":owner" {
			t.Fatalf("a token limited to %s lists %s", second, got)
		}
		if got := strings.Join(listed(only, "?limit=1"), " "); got != second+":owner" {
			t.Fatalf("a limited token, one a page, lists %s", got)
		}
		if got := strings.Join(listed(onlyEves, ""), " "); got != evesID+":viewer" {
			t.Fatalf("a token limited to eve's workspace lists %s", got)
		}
		// Leaving the workspace empties the list rather than showing others.
		if r := call(t, f.url, "DELETE", "/api/v1/workspaces/"+evesID+"/members/"+ada.UserID(), ada.Headers(), ""); r.status != 204 {
			t.Fatalf("leave eve's workspace: %d %s", r.status, r.raw)
		}
		if got := listed(onlyEves, ""); len(got) != 0 {
			t.Fatalf("a token limited to a workspace its person left lists %v", got)
		}

		refused := call(t, f.url, "POST", "/api/v1/workspaces", only, `{"name": "Sneaky", "slug": "sneaky"}`)
		assertEnvelope(t, refused, 403, kernel.CodeForbidden)
		if msg := refused.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "limited to one workspace") {
			t.Fatalf("refusal message %q", msg)
		}
		if got := listed(ada.Headers(), ""); len(got) != 2 {
			t.Fatalf("a refused creation made a workspace: %v", got)
		}
		if r := call(t, f.url, "POST", "/api/v1/workspaces", all, `{"name": "Scripted", "slug": "scripted"}`); r.status != 201 {
			t.Fatalf("an unlimited token creates workspaces: %d %s", r.status, r.raw)
		}
	})
}
