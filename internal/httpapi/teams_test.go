package httpapi_test

import (
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

func TestTeamsThroughTheAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newInviteWorld(t, d)
		f := w.f
		teams := "/api/v1/workspaces/" + w.ws + "/teams"
		r := call(t, f.url, "POST", teams, w.owner.Headers(), `{"name": "Design"}`)
		if r.status != 201 || r.body["name"] != "Design" || r.body["member_count"] != float64(0) {
			t.Fatalf("create: %d %s", r.status, r.raw)
		}
		team := teams + "/" + r.body["id"].(string)
		assertEnvelope(t, call(t, f.url, "POST", teams, w.owner.Headers(), `{"name": "DESIGN"}`), 409, kernel.CodeConflict, "name")
		assertEnvelope(t, call(t, f.url, "POST", teams, w.owner.Headers(), `{"name": "Ops", "workspace_id": "`+w.ws+`"}`),
			400, kernel.CodeInvalid, "body.workspace_id")
		assertEnvelope(t, call(t, f.url, "POST", teams, w.member.Headers(), `{"name": "Mine"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "POST", teams, w.outsider.Headers(), `{"name": "Theirs"}`), 404, kernel.CodeNotFound)
		assertEnvelope(t, call(t, f.url, "POST", teams, w.owner.Headers(), `{"name": ""}`), 400, kernel.CodeInvalid)

		members := team + "/members"
		for _, p := range []testkit.Person{w.member, w.viewer} {
			r := call(t, f.url, "POST", members, w.owner.Headers(), `{"user_id": "`+p.UserID()+`"}`)
			if r.status != 201 || r.body["user_id"] != p.UserID() || r.body["email"] != p.Email {
				t.Fatalf("add %s: %d %s", p.Email, r.status, r.raw)
			}
		}
		assertEnvelope(t, call(t, f.url, "POST", members, w.owner.Headers(), `{"user_id": "`+w.member.UserID()+`"}`), 409, kernel.CodeConflict)
		assertEnvelope(t, call(t, f.url, "POST", members, w.owner.Headers(), `{"user_id": "`+w.outsider.UserID()+`"}`),
			400, kernel.CodeInvalid, "user_id")
		assertEnvelope(t, call(t, f.url, "POST", members, w.owner.Headers(), `{"user_id": "nonsense"}`), 400, kernel.CodeInvalid, "user_id")

		// Every member reads teams.
		for _, h := range []map[string]string{w.viewer.Headers(), w.member.Headers()} {
			if r := call(t, f.url, "GET", team, h, ""); r.status != 200 || r.body["member_count"] != float64(2) {
				t.Fatalf("get: %d %s", r.status, r.raw)
			}
		}
		page := call(t, f.url, "GET", members+"?limit=1", w.viewer.Headers(), "")
		if page.status != 200 || len(items(page)) != 1 || page.body["has_more"] != true {
			t.Fatalf("first page: %d %s", page.status, page.raw)
		}
		next := call(t, f.url, "GET", members+"?limit=1&cursor="+page.body["next_cursor"].(string), w.viewer.Headers(), "")
		if next.status != 200 || len(items(next)) != 1 || next.body["has_more"] != false {
			t.Fatalf("second page: %d %s", next.status, next.raw)
		}

		// Removing the viewer from the workspace takes them out of the team.
		if r := call(t, f.url, "DELETE", "/api/v1/workspaces/"+w.ws+"/members/"+w.viewer.UserID(), w.owner.Headers(), ""); r.status != 204 {
			t.Fatalf("remove the viewer: %d %s", r.status, r.raw)
		}
		list := call(t, f.url, "GET", members, w.member.Headers(), "")
		if got := items(list); len(got) != 1 || got[0]["user_id"] != w.member.UserID() || got[0]["role"] != "member" {
			t.Fatalf("members after the viewer left the workspace: %s", list.raw)
		}
		addMember(t, f, w.ws, w.viewer, policy.Viewer)
		if r := call(t, f.url, "GET", members, w.member.Headers(), ""); len(items(r)) != 1 {
			t.Fatalf("rejoining the workspace rejoined the team: %s", r.raw)
		}

		if r := call(t, f.url, "PATCH", team, w.owner.Headers(), `{"name": "Product design"}`); r.status != 200 || r.body["name"] != "Product design" {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "PATCH", team, w.viewer.Headers(), `{"name": "Mine"}`), 403, kernel.CodeForbidden)
		if r := call(t, f.url, "DELETE", members+"/"+w.member.UserID(), w.owner.Headers(), ""); r.status != 204 {
			t.Fatalf("remove from team: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "DELETE", members+"/"+w.member.UserID(), w.owner.Headers(), ""), 404, kernel.CodeNotFound)
		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+w.ws, w.member.Headers(), ""); r.status != 200 {
			t.Fatalf("leaving a team left the workspace: %d %s", r.status, r.raw)
		}

		list = call(t, f.url, "GET", teams, w.viewer.Headers(), "")
		if got := items(list); list.status != 200 || len(got) != 1 || got[0]["name"] != "Product design" {
			t.Fatalf("list: %d %s", list.status, list.raw)
		}
		for _, id := range []string{"team_nope", "%27%20OR%201=1--", kernel.FormatID(kernel.PrefixTeam, kernel.NewID()), w.ws} {
			assertEnvelope(t, call(t, f.url, "GET", teams+"/"+id, w.owner.Headers(), ""), 404, kernel.CodeNotFound)
			assertEnvelope(t, call(t, f.url, "GET", teams+"/"+id+"/members", w.owner.Headers(), ""), 404, kernel.CodeNotFound)
		}
		if r := call(t, f.url, "DELETE", team, w.owner.Headers(), ""); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", team, w.owner.Headers(), ""), 404, kernel.CodeNotFound)
		log := call(t, f.url, "GET", "/api/v1/workspaces/"+w.ws+"/audit-log", w.owner.Headers(), "")
		for _, action := range []string{"team.created", "team.renamed", "team.deleted", "team.member_added", "team.member_removed"} {
			if countAction(log, action) == 0 {
				t.Errorf("no %s in the audit log", action)
			}
		}
	})
}
