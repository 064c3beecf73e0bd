package httpapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// inviteToken reads the token of the newest invitation link sent to email.
func inviteToken(t *testing.T, f fixture, email string) string {
	t.Helper()
	msgs, err := f.app.Services.Mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Tag != mail.TemplateInvite || len(m.To) == 0 || m.To[0] != email {
			continue
		}
		for _, field := range strings.Fields(m.Text) {
			if u, err := url.Parse(field); err == nil && u.Path == "/invite" {
				return u.Query().Get("token")
			}
		}
	}
	t.Fatalf("no invitation mail to %s", email)
	return ""
}

// inviteWorld is a workspace with an owner, a member and a viewer, and an
// outsider with a workspace of their own.
type inviteWorld struct {
	f                               fixture
	owner, member, viewer, outsider testkit.Person
	ws                              string
}

func newInviteWorld(t *testing.T, d store.Dialect) inviteWorld {
	f := setup(t, d, testkit.AppOptions{})
	w := inviteWorld{f: f, owner: f.app.SignUp(t, "owner@example.com"), member: f.app.SignUp(t, "member@example.com"),
		viewer: f.app.SignUp(t, "viewer@example.com"), outsider: f.app.SignUp(t, "outsider@example.com")}
	w.ws = createWorkspace(t, f, w.owner, "invites")
	addMember(t, f, w.ws, w.member, policy.Member)
	addMember(t, f, w.ws, w.viewer, policy.Viewer)
	createWorkspace(t, f, w.outsider, "elsewhere")
	return w
}

func (w inviteWorld) path(rest string) string {
	return "/api/v1/workspaces/" + w.ws + "/invites" + rest
}

// invite invites email as the owner and returns the invitation's API ID and
// the token emailed to it, after checking the answer does not carry it.
func (w inviteWorld) invite(t *testing.T, email, role string) (string, string) {
	t.Helper()
	r := call(t, w.f.url, "POST", w.path(""), w.owner.Headers(), `{"email": "`+email+`", "role": "`+role+`"}`)
	if r.status != 201 || r.body["status"] != "pending" || r.body["role"] != role {
		t.Fatalf("invite %s: %d %s", email, r.status, r.raw)
	}
	token := inviteToken(t, w.f, strings.ToLower(email))
	if strings.Contains(r.raw, token) {
		t.Fatal("the answer carries the token")
	}
	return r.body["id"].(string), token
}

func accept(t *testing.T, f fixture, headers map[string]string, body string) response {
	t.Helper()
	return call(t, f.url, "POST", "/api/v1/invites/accept", headers, body)
}

func TestInviteAndAcceptThroughTheAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newInviteWorld(t, d)
		f := w.f
		ada := f.app.SignUp(t, "ada@example.com")
		_, token := w.invite(t, "Ada@Example.com", "admin")
		tokenBody := `{"token": "` + token + `"}`

		r := call(t, f.url, "POST", "/api/v1/invites/lookup", nil, tokenBody)
		if r.status != 200 || r.body["workspace_name"] != "Team invites" || r.body["inviter_name"] != "owner" ||
			r.body["email"] != "ada@example.com" || r.body["role"] != "admin" || r.body["account_exists"] != true {
			t.Fatalf("lookup: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, accept(t, f, w.member.Headers(), tokenBody), 403, kernel.CodeForbidden)
		pat := call(t, f.url, "POST", "/api/v1/me/tokens", ada.Headers(), `{"name": "scripts"}`)
		if pat.status != 201 {
			t.Fatalf("create a token: %d %s", pat.status, pat.raw)
		}
		assertEnvelope(t, accept(t, f, bearer(pat.body["secret"].(string)), tokenBody), 403, kernel.CodeForbidden)
		assertEnvelope(t, accept(t, f, nil, tokenBody), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, accept(t, f, ada.Headers(), `{"token": "`+token+`", "role": "owner"}`), 400, kernel.CodeInvalid, "body.role")
		assertEnvelope(t, accept(t, f, ada.Headers(), `{"token": "`+token+`", "password": "x"}`), 400, kernel.CodeInvalid, "password")

		r = accept(t, f, ada.Headers(), tokenBody)
		if r.status != 200 || r.body["role"] != "admin" || r.body["workspace_id"] != w.ws || r.body["user_id"] != ada.UserID() {
			t.Fatalf("accept: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", w.path(""), ada.Headers(), ""); r.status != 200 {
			t.Fatalf("the new admin lists invitations: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, accept(t, f, ada.Headers(), tokenBody), 400, kernel.CodeInvalid, "token")
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/invites/lookup", nil, tokenBody), 400, kernel.CodeInvalid, "token")

		list := call(t, f.url, "GET", w.path(""), w.owner.Headers(), "")
		if got := items(list); list.status != 200 || len(got) != 1 || got[0]["status"] != "accepted" || got[0]["accepted_by"] != ada.UserID() {
			t.Fatalf("list: %d %s", list.status, list.raw)
		}
		if strings.Contains(f.app.Logs(), token) || strings.Contains(list.raw, token) {
			t.Fatal("the token leaked into the logs or a list")
		}
		log := call(t, f.url, "GET", "/api/v1/workspaces/"+w.ws+"/audit-log", w.owner.Headers(), "")
		for _, action := range []string{"invite.created", "invite.accepted", "member.added"} {
			if countAction(log, action) == 0 {
				t.Errorf("no %s in the audit log: %s", action, log.raw)
			}
		}
		if strings.Contains(log.raw, token) {
			t.Fatal("the token is in the audit log")
		}
	})
}

func TestNewPersonSignsUpByAccepting(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newInviteWorld(t, d)
		f := w.f
		_, token := w.invite(t, "grace@example.com", "member")
		r := call(t, f.url, "POST", "/api/v1/invites/lookup", nil, `{"token": "`+token+`"}`)
		if r.status != 200 || r.body["account_exists"] != false {
			t.Fatalf("lookup: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, accept(t, f, nil, `{"token": "`+token+`", "name": "Grace", "password": "password"}`),
			400, kernel.CodeInvalid, "password")
		assertEnvelope(t, accept(t, f, nil, `{"token": "`+token+`", "name": "Grace", "password": "`+goodPassword+`", "email_verified": true}`),
			400, kernel.CodeInvalid, "body.email_verified")

		r = accept(t, f, nil, `{"token": "`+token+`", "name": "Grace Hopper", "password": "`+goodPassword+`"}`)
		if r.status != 200 || r.body["role"] != "member" {
			t.Fatalf("accept: %d %s", r.status, r.raw)
		}
		user, _ := r.body["user"].(map[string]any)
		if user["email"] != "grace@example.com" || user["email_verified"] != true || user["name"] != "Grace Hopper" {
			t.Fatalf("new account: %s", r.raw)
		}
		grace := cookieHeader(sessionCookie(t, r).Value)
		me := call(t, f.url, "GET", "/api/v1/me", grace, "")
		if me.status != 200 || me.body["email_verified"] != true {
			t.Fatalf("me: %d %s", me.status, me.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+w.ws+"/members", grace, ""); r.status != 200 {
			t.Fatalf("the new member reads the members: %d %s", r.status, r.raw)
		}
		f.app.LogIn(t, "grace@example.com") // the chosen password works
		assertEnvelope(t, accept(t, f, nil, `{"token": "`+token+`", "name": "Again", "password": "`+goodPassword+`"}`),
			400, kernel.CodeInvalid, "token")

		// An address with an account is told to log in; nothing is used up.
		_, token = w.invite(t, "viewer2@example.com", "viewer")
		f.app.SignUpUnverified(t, "viewer2@example.com")
		assertEnvelope(t, accept(t, f, nil, `{"token": "`+token+`", "name": "Squatter", "password": "`+goodPassword+`"}`),
			409, kernel.CodeConflict)
		if strings.Contains(f.app.Logs(), token) {
			t.Fatal("the token was logged")
		}
	})
}

func TestInviteRevokeResendAndExpiry(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newInviteWorld(t, d)
		f := w.f
		ada := f.app.SignUp(t, "ada@example.com")
		id, token := w.invite(t, "ada@example.com", "member")
		if r := call(t, f.url, "DELETE", w.path("/"+id), w.owner.Headers(), ""); r.status != 204 {
			t.Fatalf("revoke: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, accept(t, f, ada.Headers(), `{"token": "`+token+`"}`), 400, kernel.CodeInvalid, "token")
		assertEnvelope(t, call(t, f.url, "DELETE", w.path("/"+id), w.owner.Headers(), ""), 409, kernel.CodeConflict)

		id, old := w.invite(t, "ada@example.com", "member")
		r := call(t, f.url, "POST", w.path("/"+id+"/resend"), w.owner.Headers(), "")
		if r.status != 200 || r.body["resent_at"] == nil {
			t.Fatalf("resend: %d %s", r.status, r.raw)
		}
		fresh := inviteToken(t, f, "ada@example.com")
		if fresh == old {
			t.Fatal("the resend carried the old token")
		}
		r = call(t, f.url, "POST", w.path("/"+id+"/resend"), w.owner.Headers(), "")
		assertEnvelope(t, r, 429, kernel.CodeRateLimited)
		if r.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		assertEnvelope(t, accept(t, f, ada.Headers(), `{"token": "`+old+`"}`), 400, kernel.CodeInvalid, "token")

		// Seven days and a second later the fresh link is dead too. Sessions
		// idle that long end, so everyone logs in again.
		f.app.Clock.Advance(7*24*time.Hour + time.Second)
		ada = f.app.LogIn(t, "ada@example.com")
		assertEnvelope(t, accept(t, f, ada.Headers(), `{"token": "`+fresh+`"}`), 400, kernel.CodeInvalid, "token")
		owner := f.app.LogIn(t, "owner@example.com")
		list := call(t, f.url, "GET", w.path(""), owner.Headers(), "")
		if got := items(list); len(got) != 2 || got[0]["status"] != "expired" || got[1]["status"] != "revoked" {
			t.Fatalf("list: %s", list.raw)
		}
		// Resending revives an expired invitation.
		if r := call(t, f.url, "POST", w.path("/"+id+"/resend"), owner.Headers(), ""); r.status != 200 || r.body["status"] != "pending" {
			t.Fatalf("resend an expired invitation: %d %s", r.status, r.raw)
		}
		if r := accept(t, f, ada.Headers(), `{"token": "`+inviteToken(t, f, "ada@example.com")+`"}`); r.status != 200 {
			t.Fatalf("accept the revived invitation: %d %s", r.status, r.raw)
		}
	})
}

func TestInviteRulesAndBadInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newInviteWorld(t, d)
		f := w.f
		body := `{"email": "x@example.com", "role": "member"}`
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.member.Headers(), body), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.viewer.Headers(), body), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.outsider.Headers(), body), 404, kernel.CodeNotFound)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), nil, body), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, call(t, f.url, "GET", w.path(""), w.member.Headers(), ""), 403, kernel.CodeForbidden)

		for name, bad := range map[string]string{
			"workspace_id": `{"email": "x@example.com", "role": "member", "workspace_id": "` + w.ws + `"}`,
			"invited_by":   `{"email": "x@example.com", "role": "member", "invited_by": "` + w.member.UserID() + `"}`,
			"token":        `{"email": "x@example.com", "role": "member", "token": "chosen"}`,
		} {
			t.Run("mass assignment of "+name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.owner.Headers(), bad), 400, kernel.CodeInvalid, "body."+name)
			})
		}
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.owner.Headers(), `{"email": "x@example.com", "role": "god"}`), 400, kernel.CodeInvalid)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.owner.Headers(), `{"email": "a\r\nb@example.com", "role": "member"}`),
			400, kernel.CodeInvalid)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.owner.Headers(), `{"email": "member@example.com", "role": "member"}`),
			409, kernel.CodeConflict, "email")
		w.invite(t, "x@example.com", "member")
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), w.owner.Headers(), `{"email": "X@example.com", "role": "viewer"}`),
			409, kernel.CodeConflict, "email")

		// An admin invites, but not owners; an unverified admin not at all.
		admin := f.app.SignUp(t, "admin@example.com")
		addMember(t, f, w.ws, admin, policy.Admin)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), admin.Headers(), `{"email": "boss@example.com", "role": "owner"}`),
			403, kernel.CodeForbidden)
		lazy := f.app.SignUpUnverified(t, "lazy@example.com")
		addMember(t, f, w.ws, lazy, policy.Admin)
		assertEnvelope(t, call(t, f.url, "POST", w.path(""), lazy.Headers(), body), 403, kernel.CodeEmailUnverified)

		for _, id := range []string{"inv_nope", "ws_01h455vb4pex5vsknk084sn02q", kernel.FormatID(kernel.PrefixInvite, kernel.NewID()), "%27%20OR%201=1--"} {
			assertEnvelope(t, call(t, f.url, "DELETE", w.path("/"+id), w.owner.Headers(), ""), 404, kernel.CodeNotFound)
			assertEnvelope(t, call(t, f.url, "POST", w.path("/"+id+"/resend"), w.owner.Headers(), ""), 404, kernel.CodeNotFound)
		}
		for _, token := range []string{"", "short", strings.Repeat("a", 70), strings.Repeat("a", 129)} {
			r := call(t, f.url, "POST", "/api/v1/invites/lookup", nil, `{"token": "`+token+`"}`)
			if r.status != 400 {
				t.Fatalf("lookup of %q: %d %s", token, r.status, r.raw)
			}
		}
		assertEnvelope(t, accept(t, f, f.bearer, `{"token": "`+strings.Repeat("a", 70)+`"}`), 403, kernel.CodeForbidden)
	})
}
