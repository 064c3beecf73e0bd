package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// createWorkspace creates a workspace through the API as p and returns its ID.
func createWorkspace(t *testing.T, f fixture, p testkit.Person, slug string) string {
	t.Helper()
	r := call(t, f.url, "POST", "/api/v1/workspaces", p.Headers(), `{"name": "Team `+slug+`", "slug": "`+slug+`"}`)
	if r.status != http.StatusCreated || r.body["role"] != "owner" || r.body["slug"] != slug {
		t.Fatalf("create %s: %d %s", slug, r.status, r.raw)
	}
	return r.body["id"].(string)
}

func addMember(t *testing.T, f fixture, wsID string, p testkit.Person, role policy.Role) {
	t.Helper()
	id, err := kernel.ParseID(kernel.PrefixWorkspace, wsID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.app.Services.Workspaces.AddMember(context.Background(), id, p.ID, role); err != nil {
		t.Fatal(err)
	}
}

func items(r response) []map[string]any {
	raw, _ := r.body["items"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

func TestCreatingAndListingMyWorkspaces(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		unverified := f.app.SignUpUnverified(t, "bob@example.com")
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/workspaces", unverified.Headers(), `{"name": "Bob", "slug": "bob"}`),
			403, kernel.CodeEmailUnverified)
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/workspaces", f.bearer, `{"name": "Key", "slug": "key"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/workspaces", nil, `{"name": "Anon", "slug": "anon"}`), 401, kernel.CodeUnauthenticated)

		first := createWorkspace(t, f, ada, "ada-one")
		second := createWorkspace(t, f, ada, "ada-two")
		eves := createWorkspace(t, f, eve, "eve-one")
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/workspaces", eve.Headers(), `{"name": "Taken", "slug": "ada-one"}`),
			409, kernel.CodeConflict, "slug")

		page := call(t, f.url, "GET", "/api/v1/workspaces?limit=1", ada.Headers(), "")
		if page.status != 200 || len(items(page)) != 1 || items(page)[0]["id"] != first || page.body["has_more"] != true {
			t.Fatalf("first page: %d %s", page.status, page.raw)
		}
		next := call(t, f.url, "GET", "/api/v1/workspaces?limit=1&cursor="+page.body["next_cursor"].(string), ada.Headers(), "")
		if next.status != 200 || len(items(next)) != 1 || items(next)[0]["id"] != second || next.body["has_more"] != false {
			t.Fatalf("second page: %d %s", next.status, next.raw)
		}
		// Eve's cursor scope is her own: Ada's cursor means nothing to her.
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces?cursor="+page.body["next_cursor"].(string), eve.Headers(), ""),
			400, kernel.CodeInvalid, "query.cursor")
		mine := call(t, f.url, "GET", "/api/v1/workspaces", eve.Headers(), "")
		if list := items(mine); len(list) != 1 || list[0]["id"] != eves || list[0]["role"] != "owner" {
			t.Fatalf("eve's workspaces: %s", mine.raw)
		}
		addMember(t, f, first, eve, policy.Viewer)
		mine = call(t, f.url, "GET", "/api/v1/workspaces", eve.Headers(), "")
		if list := items(mine); len(list) != 2 || list[0]["id"] != first || list[0]["role"] != "viewer" {
			t.Fatalf("eve's workspaces after joining ada-one: %s", mine.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces", f.bearer, ""), 403, kernel.CodeForbidden)
		wsID, _ := kernel.ParseID(kernel.PrefixWorkspace, first)
		assertCount(t, fixture{app: f.app, ws: wsID}, "SELECT count(*) FROM membership WHERE workspace_id = $1 AND role = 'owner'", 1)
		assertCount(t, fixture{app: f.app, ws: wsID}, "SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = 'workspace.created'", 1)
	})
}

func TestMemberRolesAndTheLastOwner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, bob, cat := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "bob@example.com"), f.app.SignUp(t, "cat@example.com")
		ws := createWorkspace(t, f, ada, "acme-co")
		addMember(t, f, ws, bob, policy.Admin)
		addMember(t, f, ws, cat, policy.Member)
		member := func(p testkit.Person) string { return "/api/v1/workspaces/" + ws + "/members/" + p.UserID() }

		assertEnvelope(t, call(t, f.url, "DELETE", member(ada), ada.Headers(), ""), 409, kernel.CodeConflict)
		assertEnvelope(t, call(t, f.url, "PATCH", member(ada), ada.Headers(), `{"role": "admin"}`), 409, kernel.CodeConflict)
		assertEnvelope(t, call(t, f.url, "PATCH", member(ada), bob.Headers(), `{"role": "viewer"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "PATCH", member(cat), bob.Headers(), `{"role": "owner"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "PATCH", member(bob), bob.Headers(), `{"role": "owner"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "PATCH", member(cat), bob.Headers(), `{"role": "superuser"}`), 400, kernel.CodeInvalid, "body.role")
		assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/workspaces/"+ws+"/members/usr_nope", ada.Headers(), `{"role": "viewer"}`), 404, kernel.CodeNotFound)
		if r := call(t, f.url, "PATCH", member(cat), bob.Headers(), `{"role": "viewer"}`); r.status != 200 || r.body["role"] != "viewer" || r.body["email"] != "cat@example.com" {
			t.Fatalf("admin demotes a member: %d %s", r.status, r.raw)
		}
		list := call(t, f.url, "GET", "/api/v1/workspaces/"+ws+"/members", cat.Headers(), "")
		if list.status != 200 || len(items(list)) != 3 {
			t.Fatalf("members: %d %s", list.status, list.raw)
		}

		transfer := `{"user_id": "` + bob.UserID() + `"}`
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/workspaces/"+ws+"/transfer-ownership", ada.Headers(), `{"user_id": "`+ada.UserID()+`"}`),
			400, kernel.CodeInvalid, "user_id")
		if r := call(t, f.url, "POST", "/api/v1/workspaces/"+ws+"/transfer-ownership", ada.Headers(), transfer); r.status != http.StatusNoContent {
			t.Fatalf("transfer: %d %s", r.status, r.raw)
		}
		roles := map[string]any{}
		for _, m := range items(call(t, f.url, "GET", "/api/v1/workspaces/"+ws+"/members", cat.Headers(), "")) {
			roles[m["email"].(string)] = m["role"]
		}
		if roles["ada@example.com"] != "admin" || roles["bob@example.com"] != "owner" {
			t.Fatalf("roles after the transfer: %v", roles)
		}
		// Ada (now admin) may leave; Bob, the last owner, may not; Cat removed by Bob.
		if r := call(t, f.url, "DELETE", member(ada), ada.Headers(), ""); r.status != http.StatusNoContent {
			t.Fatalf("ada leaves: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+ws, ada.Headers(), ""), 404, kernel.CodeNotFound)
		assertEnvelope(t, call(t, f.url, "DELETE", member(bob), bob.Headers(), ""), 409, kernel.CodeConflict)
		if r := call(t, f.url, "DELETE", member(cat), bob.Headers(), ""); r.status != http.StatusNoContent {
			t.Fatalf("bob removes cat: %d %s", r.status, r.raw)
		}
		id, _ := kernel.ParseID(kernel.PrefixWorkspace, ws)
		g := fixture{app: f.app, ws: id}
		for action, want := range map[string]int{"member.role_changed": 1, "workspace.ownership_transferred": 1, "member.left": 1, "member.removed": 1} {
			assertCount(t, g, "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = '"+action+"'", want)
			assertCount(t, g, "SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = '"+action+"'", want)
		}
		assertCount(t, g, "SELECT count(*) FROM membership WHERE workspace_id = $1", 1)
	})
}

func TestSoftDeleteAndRestore(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, bob := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "bob@example.com")
		ws := createWorkspace(t, f, ada, "acme-co")
		addMember(t, f, ws, bob, policy.Admin)
		path := "/api/v1/workspaces/" + ws
		r := call(t, f.url, "DELETE", path, ada.Headers(), "")
		until, _ := time.Parse(time.RFC3339, stringOf(r.body["restorable_until"]))
		deleted, _ := time.Parse(time.RFC3339, stringOf(r.body["deleted_at"]))
		if r.status != 200 || deleted.IsZero() || until.Sub(deleted) != tenancy.RestoreWindow {
			t.Fatalf("delete: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", path, bob.Headers(), ""); r.status != 200 || r.body["deleted_at"] == nil {
			t.Fatalf("a deleted workspace is still readable: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "PATCH", path, bob.Headers(), `{"name": "Nope"}`), 403, kernel.CodeWorkspaceInactive)
		assertEnvelope(t, call(t, f.url, "PATCH", path+"/members/"+bob.UserID(), ada.Headers(), `{"role": "viewer"}`), 403, kernel.CodeWorkspaceInactive)
		assertEnvelope(t, call(t, f.url, "DELETE", path, ada.Headers(), ""), 403, kernel.CodeWorkspaceInactive)
		assertEnvelope(t, call(t, f.url, "POST", path+"/restore", bob.Headers(), ""), 403, kernel.CodeForbidden)
		if r := call(t, f.url, "POST", path+"/restore", ada.Headers(), ""); r.status != 200 || r.body["deleted_at"] != nil {
			t.Fatalf("restore: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", path+"/restore", ada.Headers(), ""), 409, kernel.CodeConflict)
		if r := call(t, f.url, "PATCH", path, bob.Headers(), `{"name": "Back"}`); r.status != 200 {
			t.Fatalf("rename after restore: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "DELETE", path, ada.Headers(), ""); r.status != 200 {
			t.Fatalf("delete again: %d %s", r.status, r.raw)
		}
		f.app.Clock.Advance(tenancy.RestoreWindow + time.Minute)
		ada = f.app.LogIn(t, "ada@example.com")
		assertEnvelope(t, call(t, f.url, "POST", path+"/restore", ada.Headers(), ""), 409, kernel.CodeConflict)
		id, _ := kernel.ParseID(kernel.PrefixWorkspace, ws)
		g := fixture{app: f.app, ws: id}
		assertCount(t, g, "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND action = 'workspace.deleted'", 2)
		assertCount(t, g, "SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = 'workspace.restored'", 1)
	})
}

func stringOf(v any) string { s, _ := v.(string); return s }

func TestWorkspaceRoutesRefuseMassAssignment(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, bob := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "bob@example.com")
		ws := createWorkspace(t, f, ada, "acme-co")
		addMember(t, f, ws, bob, policy.Viewer)
		other := kernel.FormatID(kernel.PrefixWorkspace, f.other)
		cases := []struct{ name, method, path, body, field string }{
			{"owner at create", "POST", "/api/v1/workspaces", `{"name": "X", "slug": "x-co", "owner_id": "` + bob.UserID() + `"}`, "body.owner_id"},
			{"role at create", "POST", "/api/v1/workspaces", `{"name": "X", "slug": "x-co", "role": "viewer"}`, "body.role"},
			{"id at create", "POST", "/api/v1/workspaces", `{"name": "X", "slug": "x-co", "id": "` + other + `"}`, "body.id"},
			{"workspace at rename", "PATCH", "/api/v1/workspaces/" + ws, `{"name": "X", "workspace_id": "` + other + `"}`, "body.workspace_id"},
			{"role at rename", "PATCH", "/api/v1/workspaces/" + ws, `{"name": "X", "role": "owner"}`, "body.role"},
			{"deletion at rename", "PATCH", "/api/v1/workspaces/" + ws, `{"name": "X", "deleted_at": null}`, "body.deleted_at"},
			{"workspace at role change", "PATCH", "/api/v1/workspaces/" + ws + "/members/" + bob.UserID(), `{"role": "admin", "workspace_id": "` + other + `"}`, "body.workspace_id"},
			{"user at role change", "PATCH", "/api/v1/workspaces/" + ws + "/members/" + bob.UserID(), `{"role": "admin", "user_id": "` + ada.UserID() + `"}`, "body.user_id"},
			{"role at transfer", "POST", "/api/v1/workspaces/" + ws + "/transfer-ownership", `{"user_id": "` + bob.UserID() + `", "role": "viewer"}`, "body.role"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, c.method, c.path, ada.Headers(), c.body), 400, kernel.CodeInvalid, c.field)
			})
		}
		mine := items(call(t, f.url, "GET", "/api/v1/workspaces", bob.Headers(), ""))
		if len(mine) != 1 || mine[0]["role"] != "viewer" || mine[0]["name"] != "Team acme-co" {
			t.Fatalf("refused requests changed something: %v", mine)
		}
	})
}

// TestMyWorkspacesIsScopedToThePerson reads through the service with a
// person who belongs nowhere: nothing, though other people's workspaces exist.
func TestMyWorkspacesIsScopedToThePerson(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		createWorkspace(t, f, ada, "ada-co")
		for _, user := range []uuid.UUID{eve.ID, kernel.NewID()} {
			got, err := f.app.Services.Workspaces.ListMine(context.Background(), user, uuid.Nil, 100)
			if err != nil || len(got) != 0 {
				t.Fatalf("%s lists %v (%v)", user, got, err)
			}
		}
		if r := call(t, f.url, "GET", "/api/v1/workspaces", eve.Headers(), ""); r.status != 200 || len(items(r)) != 0 {
			t.Fatalf("eve's list: %d %s", r.status, r.raw)
		}
	})
}
