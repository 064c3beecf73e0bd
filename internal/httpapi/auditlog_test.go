package httpapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// auditWorld is a workspace with a known log:
//
//	t0  workspace.created     ada (owner)
//	t0  member.added ×2       anonymous (the test adds eve and vic directly)
//	t1  api_key.created       ada
//	t2  workspace.renamed     the key "deploy bot"
//	t3  member.role_changed   ada
//	t4  membership.swept      the system (a member.* filter must not match it)
type auditWorld struct {
	fixture
	ada, eve, vic, out testkit.Person
	wsID, keyID        string
	t                  [5]time.Time
}

func newAuditWorld(t *testing.T, d store.Dialect) auditWorld {
	t.Helper()
	w := auditWorld{fixture: setup(t, d, testkit.AppOptions{})}
	f := w.fixture
	w.ada, w.eve = f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
	w.vic, w.out = f.app.SignUp(t, "vic@example.com"), f.app.SignUp(t, "out@example.com")
	w.t[0] = f.app.Clock.Now()
	w.wsID = createWorkspace(t, f, w.ada, "acme-team")
	addMember(t, f, w.wsID, w.eve, policy.Member)
	addMember(t, f, w.wsID, w.vic, policy.Viewer)

	f.app.Clock.Advance(time.Minute)
	w.t[1] = f.app.Clock.Now()
	key := createKey(t, f, w.ada, w.wsID, `{"name": "deploy bot", "scopes": ["read", "write"]}`)
	w.keyID = key.body["id"].(string)

	f.app.Clock.Advance(time.Minute)
	w.t[2] = f.app.Clock.Now()
	if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+w.wsID, bearer(key.body["secret"].(string)), `{"name": "Acme 2"}`); r.status != 200 {
		t.Fatalf("rename with the key: %d %s", r.status, r.raw)
	}
	f.app.Clock.Advance(time.Minute)
	w.t[3] = f.app.Clock.Now()
	path := "/api/v1/workspaces/" + w.wsID + "/members/" + w.eve.UserID()
	if r := call(t, f.url, "PATCH", path, w.ada.Headers(), `{"role": "admin"}`); r.status != 200 {
		t.Fatalf("change eve's role: %d %s", r.status, r.raw)
	}
	f.app.Clock.Advance(time.Minute)
	w.t[4] = f.app.Clock.Now()
	ws, _ := kernel.ParseID(kernel.PrefixWorkspace, w.wsID)
	ctx := kernel.WithActor(context.Background(), kernel.SystemActor)
	err := f.app.DB.InWorkspace(ctx, ws, func(tx store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "membership.swept", TargetType: "workspace", TargetID: w.wsID})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// log asks for the log with the query (already encoded) as ada.
func (w auditWorld) log(t *testing.T, query string) response {
	t.Helper()
	return call(t, w.url, "GET", "/api/v1/workspaces/"+w.wsID+"/audit-log?"+query, w.ada.Headers(), "")
}

// actions returns the actions of a page, in order.
func actions(t *testing.T, r response) []string {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("audit log: %d %s", r.status, r.raw)
	}
	var out []string
	for _, e := range items(r) {
		out = append(out, e["action"].(string))
	}
	return out
}

func TestAuditLogFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newAuditWorld(t, d)
		at := func(i int) string { return url.QueryEscape(w.t[i].Format(time.RFC3339Nano)) }
		for _, c := range []struct {
			query string
			want  string
		}{
			{"", "membership.swept member.role_changed workspace.renamed api_key.created member.added member.added workspace.created"},
			{"action=workspace.renamed", "workspace.renamed"},
			{"action=member.*", "member.role_changed member.added member.added"},
			{"action=workspace.*", "workspace.renamed workspace.created"},
			{"action=membership.*", "membership.swept"},
			{"action=member", ""},
			{"action=member.added.*", ""},
			{"action=members.*", ""},
			{"actor=" + w.ada.UserID(), "member.role_changed api_key.created workspace.created"},
			{"actor=" + w.keyID, "workspace.renamed"},
			{"actor=" + w.eve.UserID(), ""},
			{"since=" + at(1), "membership.swept member.role_changed workspace.renamed api_key.created"},
			{"until=" + at(2), "api_key.created member.added member.added workspace.created"},
			{"since=" + at(1) + "&until=" + at(3), "workspace.renamed api_key.created"},
			{"since=" + at(2) + "&until=" + at(2), ""},
			{"action=member.*&actor=" + w.ada.UserID(), "member.role_changed"},
			{"action=workspace.*&actor=" + w.ada.UserID() + "&since=" + at(1), ""},
			{"action=api_key.created&actor=" + w.ada.UserID() + "&since=" + at(1) + "&until=" + at(2), "api_key.created"},
		} {
			if got := strings.Join(actions(t, w.log(t, c.query)), " "); got != c.want {
				t.Errorf("?%s: %q, want %q", c.query, got, c.want)
			}
		}
	})
}

func TestAuditLogNamesItsActors(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newAuditWorld(t, d)
		names := func() map[string]string {
			out := map[string]string{}
			for _, e := range items(w.log(t, "")) {
				out[e["action"].(string)] = e["actor_name"].(string)
			}
			return out
		}
		want := map[string]string{
			"workspace.created": "ada", "member.added": "Anonymous", "api_key.created": "ada",
			"workspace.renamed": "deploy bot", "member.role_changed": "ada", "membership.swept": "System",
		}
		if got := names(); len(got) != len(want) {
			t.Fatalf("names %v, want %v", got, want)
		} else {
			for action, name := range want {
				if got[action] != name {
					t.Errorf("%s by %q, want %q", action, got[action], name)
				}
			}
		}
		// The name is the person's current one: an anonymised account reads
		// as its new name, whatever it was called when it acted.
		err := w.app.DB.Tx(context.Background(), func(tx store.Tx) error {
			_, err := tx.Exec(context.Background(), "UPDATE app_user SET name = 'Deleted user' WHERE id = $1", w.ada.ID)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(); got["workspace.created"] != "Deleted user" || got["api_key.created"] != "Deleted user" {
			t.Fatalf("after ada's account was anonymised: %v", got)
		}
	})
}

func TestAuditLogFiltersBindTheCursor(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newAuditWorld(t, d)
		// Walk member.* one entry a page.
		var walked []string
		query := "action=member.*&limit=1"
		r := w.log(t, query)
		for {
			walked = append(walked, actions(t, r)...)
			next, _ := r.body["next_cursor"].(string)
			if next == "" {
				break
			}
			if len(walked) > 3 {
				t.Fatalf("more than 3 pages: %v", walked)
			}
			// The cursor answers only to the filters it was served with.
			for _, other := range []string{"", "action=workspace.*", "action=member.*&actor=" + w.ada.UserID(), "action=member.*&since=" + url.QueryEscape(w.t[0].Format(time.RFC3339))} {
				assertEnvelope(t, w.log(t, other+"&cursor="+next), 400, kernel.CodeInvalid, "query.cursor")
			}
			r = w.log(t, query+"&cursor="+next)
		}
		if got := strings.Join(walked, " "); got != "member.role_changed member.added member.added" {
			t.Fatalf("walked %q", got)
		}
		// The same filters spelled differently are the same filters.
		since := w.t[0].Add(-time.Hour)
		first := w.log(t, "limit=2&since="+url.QueryEscape(since.Format(time.RFC3339)))
		next := first.body["next_cursor"].(string)
		inParis := since.In(time.FixedZone("CET", 3600)).Format(time.RFC3339)
		if got := actions(t, w.log(t, "limit=2&since="+url.QueryEscape(inParis)+"&cursor="+next)); len(got) != 2 {
			t.Fatalf("the same since in another zone: %v", got)
		}
	})
}

func TestAuditLogRefusesMalformedFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newAuditWorld(t, d)
		bad := map[string][]string{
			"query.action": {"Member.*", "member.", "*", ".*", "member.*.added", "member..added", "member added",
				"member.%", "member.*'--", strings.Repeat("a", 101), "member.\u00e9"},
			"query.actor": {"usr_nope", "ada", w.ada.UserID() + "x", strings.ToUpper(w.ada.UserID()), "key_",
				strings.Replace(w.wsID, "ws_", "usr_", 1) + "0", w.wsID, "aud_01h455vb4pex5vsknk084sn02q", "system"},
			"query.since": {"yesterday", "2026-13-01T00:00:00Z", "2026-01-01", "1700000000", "2026-01-01T00:00:00"},
			"query.until": {"tomorrow", "2026-01-01 00:00:00Z"},
		}
		for field, values := range bad {
			name := strings.TrimPrefix(field, "query.")
			for _, v := range values {
				assertEnvelope(t, w.log(t, name+"="+url.QueryEscape(v)), 400, kernel.CodeInvalid, field)
			}
		}
		later, earlier := url.QueryEscape(w.t[2].Format(time.RFC3339)), url.QueryEscape(w.t[1].Format(time.RFC3339))
		assertEnvelope(t, w.log(t, "since="+later+"&until="+earlier), 400, kernel.CodeInvalid, "query.since")
		assertEnvelope(t, w.log(t, "actors="+w.ada.UserID()), 400, kernel.CodeInvalid, "query.actors")
	})
}

func TestAuditLogIsForOwnersAndAdmins(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newAuditWorld(t, d)
		path := "/api/v1/workspaces/" + w.wsID + "/audit-log"
		assertEnvelope(t, call(t, w.url, "GET", path, w.vic.Headers(), ""), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, w.url, "GET", path+"?action=member.*", w.vic.Headers(), ""), 403, kernel.CodeForbidden)
		// eve became an admin.
		if got := actions(t, call(t, w.url, "GET", path+"?action=member.*", w.eve.Headers(), "")); len(got) != 3 {
			t.Fatalf("admin: %v", got)
		}
		// An outsider learns nothing, not even whether a filter is malformed.
		missing := "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, kernel.NewID()) + "/audit-log"
		for _, q := range []string{"", "?action=member.*", "?action=BAD", "?since=yesterday"} {
			a := call(t, w.url, "GET", path+q, w.out.Headers(), "")
			b := call(t, w.url, "GET", missing+q, w.out.Headers(), "")
			assertEnvelope(t, a, 404, kernel.CodeNotFound)
			if withoutRequestID(a) != withoutRequestID(b) {
				t.Fatalf("an outsider tells a real workspace from a missing one:\n%s\n%s", a.raw, b.raw)
			}
		}
		assertEnvelope(t, call(t, w.url, "GET", path, nil, ""), 401, kernel.CodeUnauthenticated)
	})
}
