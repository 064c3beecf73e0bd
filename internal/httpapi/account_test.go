package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// pastRecentAuth is long enough after a login for it no longer to count as recent.
const pastRecentAuth = policy.RecentAuthWindow + time.Minute

// userCount counts app_user rows matching the condition, through the system path.
func userCount(t *testing.T, f fixture, cond string, args ...any) int {
	t.Helper()
	var n int
	err := f.app.DB.System(context.Background(), "test: count users", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM app_user WHERE "+cond, args...).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestProfileNameChangeAndMassAssignment(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		r := call(t, f.url, "PATCH", "/api/v1/me", ada.Headers(), `{"name": "  Ada Lovelace "}`)
		if r.status != 200 || r.body["name"] != "Ada Lovelace" || r.body["email"] != "ada@example.com" {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
		if n := platformAudit(t, f, "user.updated"); n != 1 {
			t.Fatalf("user.updated entries: %d", n)
		}
		cases := []struct{ name, body, field string }{
			{"email_verified", `{"email_verified": true}`, "body.email_verified"},
			{"id", `{"id": "usr_01h455vb4pex5vsknk084sn02q"}`, "body.id"},
			{"role", `{"name": "x", "role": "owner"}`, "body.role"},
			{"password_hash", `{"password_hash": ""}`, "body.password_hash"},
			{"deleted_at", `{"deleted_at": null}`, "body.deleted_at"},
			{"wrong type", `{"name": 42}`, "body.name"},
			{"empty name", `{"name": ""}`, "name"},
			{"control characters", `{"name": "a\u0000b"}`, "name"},
			{"malformed email", `{"email": "not an address"}`, "email"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/me", ada.Headers(), c.body), 400, kernel.CodeInvalid, c.field)
			})
		}
		assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/me", ada.Headers(), `{"name": "x"`), 400, kernel.CodeInvalid)
		me := call(t, f.url, "GET", "/api/v1/me", ada.Headers(), "")
		if me.body["name"] != "Ada Lovelace" || me.body["email_verified"] != true || me.body["id"] != ada.UserID() {
			t.Fatalf("bad input changed the account: %s", me.raw)
		}
		assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/me", f.bearer, `{"name": "Key"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/me", nil, `{"name": "Anon"}`), 401, kernel.CodeUnauthenticated)
	})
}

func TestEmailChangeJourney(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		f.app.SignUp(t, "eve@example.com")
		f.app.Clock.Advance(pastRecentAuth)
		assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/me", ada.Headers(), `{"email": "ada@new.example"}`), 403, kernel.CodeReauthRequired)
		// A name change alone needs no recent authentication; an unchanged address is no change.
		if r := call(t, f.url, "PATCH", "/api/v1/me", ada.Headers(), `{"name": "Ada", "email": "ADA@example.com"}`); r.status != 200 {
			t.Fatalf("stale session, unchanged address: %d %s", r.status, r.raw)
		}

		laptop := cookieHeader(logIn(t, f, "ada@example.com"))
		phone := cookieHeader(logIn(t, f, "ada@example.com"))
		free := call(t, f.url, "PATCH", "/api/v1/me", laptop, `{"email": "ada@new.example"}`)
		if free.status != 200 || free.body["email"] != "ada@example.com" {
			t.Fatalf("request a change: %d %s", free.status, free.raw)
		}
		token := mailedLinkToken(t, f, mail.TemplateEmailChange, "ada@new.example", "/confirm-email-change")
		if token == "" {
			t.Fatal("no confirmation link sent to the new address")
		}
		if notices := mailsTo(t, f, mail.TemplateEmailChangeNotice, "ada@example.com"); notices != 1 {
			t.Fatalf("%d notices to the old address", notices)
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@new.example", "password": "`+goodPassword+`"}`); r.status != 401 {
			t.Fatalf("the new address logs in before confirmation: %d %s", r.status, r.raw)
		}

		r := call(t, f.url, "POST", "/api/v1/auth/email/change", laptop, `{"token": "`+token+`"}`)
		if r.status != 200 || r.body["email"] != "ada@new.example" || r.body["email_verified"] != true {
			t.Fatalf("confirm: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", phone, ""), 401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "GET", "/api/v1/me", laptop, ""); r.status != 200 || r.body["email"] != "ada@new.example" {
			t.Fatalf("the confirming session: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`),
			401, kernel.CodeUnauthenticated)
		logIn(t, f, "ada@new.example")
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/change", nil, `{"token": "`+token+`"}`), 400, kernel.CodeInvalid, "token")
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/change", nil, `{"token": "`+token[:20]+`"}`), 400, kernel.CodeInvalid, "token")
		if n := userCount(t, f, "email = 'ada@new.example' AND email_verified_at IS NOT NULL"); n != 1 {
			t.Fatalf("accounts with the new address: %d", n)
		}
		assertAuditHidesAddresses(t, f)

		// A taken address is answered as a free one, and refused at confirmation.
		recent := cookieHeader(logIn(t, f, "ada@new.example"))
		taken := call(t, f.url, "PATCH", "/api/v1/me", recent, `{"email": "eve@example.com"}`)
		if taken.status != free.status || taken.body["email"] != "ada@new.example" {
			t.Fatalf("request a taken address: %d %s", taken.status, taken.raw)
		}
		token = mailedLinkToken(t, f, mail.TemplateEmailChange, "eve@example.com", "/confirm-email-change")
		// Confirming works without a session, and with a stale one (the phone's ended above).
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/change", phone, `{"token": "`+token+`"}`), 409, kernel.CodeConflict)
		if n := userCount(t, f, "email = 'eve@example.com'"); n != 1 {
			t.Fatalf("accounts with eve's address: %d", n)
		}
		// The refused link stays usable until it expires, after 24 hours.
		f.app.Clock.Advance(24 * time.Hour)
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/change", nil, `{"token": "`+token+`"}`), 400, kernel.CodeInvalid, "token")
		if strings.Contains(f.app.Logs(), token) {
			t.Error("a confirmation token is in the log")
		}
	})
}

// mailsTo counts the messages with the tag sent to email.
func mailsTo(t *testing.T, f fixture, tag, email string) int {
	t.Helper()
	msgs, err := f.app.Services.Mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Tag == tag && m.To[0] == email {
			n++
		}
	}
	return n
}

// assertAuditHidesAddresses checks that user.email_changed was audited
// without either address in plain text.
func assertAuditHidesAddresses(t *testing.T, f fixture) {
	t.Helper()
	var meta string
	err := f.app.DB.System(context.Background(), "test: read audit", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT metadata FROM audit_log WHERE action = 'user.email_changed'").Scan(&meta)
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(meta, "ada@example.com") || strings.Contains(meta, "ada@new.example") || !strings.Contains(meta, "new.example") {
		t.Fatalf("user.email_changed metadata: %s", meta)
	}
}

func TestPasswordChange(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		phone := cookieHeader(logIn(t, f, "ada@example.com"))
		wrong := call(t, f.url, "POST", "/api/v1/me/password", ada.Headers(), `{"current_password": "not it at all", "new_password": "`+newPassword+`"}`)
		assertEnvelope(t, wrong, 401, kernel.CodeUnauthenticated)
		failedLogin := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "not it at all"}`)
		if wrong.body["error"].(map[string]any)["message"] != failedLogin.body["error"].(map[string]any)["message"] {
			t.Fatalf("mismatch answers %s, a failed login %s", wrong.raw, failedLogin.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/me/password", ada.Headers(), `{"current_password": "`+goodPassword+`", "new_password": "password"}`),
			400, kernel.CodeInvalid, "password")
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/me/password", ada.Headers(), `{"current_password": "`+goodPassword+`", "new_password": "`+newPassword+`", "email": "x@y.z"}`),
			400, kernel.CodeInvalid, "body.email")

		r := call(t, f.url, "POST", "/api/v1/me/password", ada.Headers(), `{"current_password": "`+goodPassword+`", "new_password": "`+newPassword+`"}`)
		if r.status != http.StatusNoContent {
			t.Fatalf("change: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", phone, ""), 401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "GET", "/api/v1/me", ada.Headers(), ""); r.status != 200 {
			t.Fatalf("the session that changed it: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`),
			401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+newPassword+`"}`); r.status != 200 {
			t.Fatalf("login with the new password: %d %s", r.status, r.raw)
		}
		if n := mailsTo(t, f, mail.TemplatePasswordChanged, "ada@example.com"); n != 1 {
			t.Fatalf("%d password_changed notices", n)
		}
		if n := platformAudit(t, f, "user.password_changed"); n != 1 {
			t.Fatalf("%d user.password_changed entries", n)
		}
	})
}

func TestSettingAFirstPasswordNeedsRecentAuth(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		f.app.SignUpUnverified(t, "bob@example.com")
		// A magic link proving an address nobody had proved clears the sign-up password.
		login := func() map[string]string {
			r := call(t, f.url, "POST", "/api/v1/auth/magic-link/verify", nil, `{"token": "`+magicToken(t, f, "bob@example.com")+`"}`)
			if r.status != 200 {
				t.Fatalf("magic link: %d %s", r.status, r.raw)
			}
			return cookieHeader(sessionCookie(t, r).Value)
		}
		bob := login()
		f.app.Clock.Advance(pastRecentAuth)
		body := `{"new_password": "` + newPassword + `"}`
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/me/password", bob, body), 403, kernel.CodeReauthRequired)
		bob = login()
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/me/password", bob, `{"current_password": "guess", "new_password": "`+newPassword+`"}`),
			401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "POST", "/api/v1/me/password", bob, body); r.status != http.StatusNoContent {
			t.Fatalf("set a first password: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "bob@example.com", "password": "`+newPassword+`"}`); r.status != 200 {
			t.Fatalf("login with it: %d %s", r.status, r.raw)
		}
	})
}

func TestExportHoldsMyDataAndNoSecrets(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		adaWS := createWorkspace(t, f, ada, "ada-team")
		eveWS := createWorkspace(t, f, eve, "eve-team")
		pat := call(t, f.url, "POST", "/api/v1/me/tokens", ada.Headers(), `{"name": "scripts"}`)
		if pat.status != http.StatusCreated {
			t.Fatalf("create token: %d %s", pat.status, pat.raw)
		}
		r := call(t, f.url, "GET", "/api/v1/me/export", ada.Headers(), "")
		if r.status != 200 || r.header.Get("Content-Disposition") != `attachment; filename="atrium-export-`+ada.UserID()+`.json"` {
			t.Fatalf("export: %d %v %s", r.status, r.header, r.raw)
		}
		user, _ := r.body["user"].(map[string]any)
		memberships, _ := r.body["memberships"].([]any)
		if user["id"] != ada.UserID() || len(memberships) != 1 || len(r.body["sessions"].([]any)) == 0 ||
			len(r.body["personal_access_tokens"].([]any)) != 1 || r.body["mfa"].(map[string]any)["enabled"] != false {
			t.Fatalf("export body: %s", r.raw)
		}
		if m := memberships[0].(map[string]any); m["workspace_id"] != adaWS || m["role"] != "owner" || m["workspace_name"] != "Team ada-team" {
			t.Fatalf("membership: %v", m)
		}
		for _, leak := range []string{eveWS, "eve@example.com", ada.Session, pat.body["secret"].(string)} {
			if strings.Contains(r.raw, leak) {
				t.Errorf("the export holds %q", leak)
			}
		}
		var doc any
		if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
			t.Fatal(err)
		}
		assertNoSecretFields(t, "", doc)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me/export", f.bearer, ""), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me/export", nil, ""), 401, kernel.CodeUnauthenticated)
	})
}

// assertNoSecretFields fails on any key of v naming a hash, a secret or a
// token that carries a value.
func assertNoSecretFields(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			lower := strings.ToLower(k)
			if (strings.Contains(lower, "hash") || strings.Contains(lower, "secret") || lower == "token" || lower == "code") && x != nil && x != "" {
				t.Errorf("export field %s.%s has a value", path, k)
			}
			assertNoSecretFields(t, path+"."+k, x)
		}
	case []any:
		for _, x := range v {
			assertNoSecretFields(t, path+"[]", x)
		}
	}
}

func TestDeletingMyAccount(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		shared := createWorkspace(t, f, ada, "ada-team")
		solo := createWorkspace(t, f, ada, "ada-solo")
		evesWS := createWorkspace(t, f, eve, "eve-team")
		addMember(t, f, shared, eve, policy.Member)
		addMember(t, f, evesWS, ada, policy.Admin)

		f.app.Clock.Advance(pastRecentAuth)
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me", ada.Headers(), ""), 403, kernel.CodeReauthRequired)
		session := cookieHeader(logIn(t, f, "ada@example.com"))
		eveSession := cookieHeader(logIn(t, f, "eve@example.com"))
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me", session, `{"confirm": "eve@example.com"}`), 400, kernel.CodeInvalid, "confirm")
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me", session, `{"confirm": "ada@example.com", "force": true}`), 400, kernel.CodeInvalid, "body.force")
		refused := call(t, f.url, "DELETE", "/api/v1/me", session, "")
		assertEnvelope(t, refused, 409, kernel.CodeConflict)
		if msg := refused.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, shared) || strings.Contains(msg, solo) {
			t.Fatalf("the refusal names %q", msg)
		}
		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+solo, session, ""); r.status != 200 || r.body["deleted_at"] != nil {
			t.Fatalf("a refused deletion changed a workspace: %d %s", r.status, r.raw)
		}

		if r := call(t, f.url, "POST", "/api/v1/workspaces/"+shared+"/transfer-ownership", session, `{"user_id": "`+eve.UserID()+`"}`); r.status != http.StatusNoContent {
			t.Fatalf("transfer: %d %s", r.status, r.raw)
		}
		r := call(t, f.url, "DELETE", "/api/v1/me", session, `{"confirm": "Ada@Example.com"}`)
		if r.status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.status, r.raw)
		}
		assertCookieCleared(t, r)
		assertGone(t, f, session, ada)

		for _, ws := range []string{shared, evesWS} {
			members := call(t, f.url, "GET", "/api/v1/workspaces/"+ws+"/members", eveSession, "")
			if list := items(members); members.status != 200 || len(list) != 1 || list[0]["user_id"] != eve.UserID() {
				t.Fatalf("members of %s after ada left: %d %s", ws, members.status, members.raw)
			}
		}
		// The shared workspace's log keeps ada's entries, under her ID and, where names are shown, as a deleted user.
		removal := 0
		for _, e := range items(call(t, f.url, "GET", "/api/v1/workspaces/"+shared+"/audit-log", eveSession, "")) {
			if e["action"] == "member.removed" && e["actor_id"] == ada.UserID() {
				removal++
				if name, shown := e["actor_name"]; shown && name != "Deleted user" {
					t.Errorf("the deleted actor is shown as %v", name)
				}
			}
		}
		if removal != 1 {
			t.Fatalf("member.removed entries by ada in the shared workspace's log: %d", removal)
		}
		if n := userCount(t, f, "name = 'Deleted user' AND password_hash = '' AND deleted_at IS NOT NULL AND email LIKE 'deleted+%@deleted.invalid'"); n != 1 {
			t.Fatalf("anonymised accounts: %d", n)
		}
		var soloDeleted, removals, deletions int
		err := f.app.DB.System(context.Background(), "test: read audit", func(tx store.Tx) error {
			ctx := context.Background()
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM workspace WHERE slug = 'ada-solo' AND deleted_at IS NOT NULL").Scan(&soloDeleted); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE action = 'member.removed' AND actor_id = $1", ada.UserID()).Scan(&removals); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE action = 'user.deleted' AND actor_id = $1 AND target_id = $1", ada.UserID()).Scan(&deletions)
		})
		if err != nil || soloDeleted != 1 || removals != 3 || deletions != 1 {
			t.Fatalf("solo workspace deleted %d, member.removed %d, user.deleted %d: %v", soloDeleted, removals, deletions, err)
		}
		// Retrying a deletion that went through changes nothing.
		if err := f.app.Services.Identity.DeleteAccount(context.Background(), ada.ID); err != nil {
			t.Fatalf("delete again: %v", err)
		}
		// The address is free again, for a new account.
		if again := f.app.SignUp(t, "ada@example.com"); again.ID == ada.ID {
			t.Fatal("signing up again resurrected the deleted account")
		}
	})
}

// assertGone checks that nothing lets the deleted person back in: the
// session, the password, a magic link or a reset.
func assertGone(t *testing.T, f fixture, session map[string]string, p testkit.Person) {
	t.Helper()
	assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", session, ""), 401, kernel.CodeUnauthenticated)
	assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "`+p.Email+`", "password": "`+goodPassword+`"}`),
		401, kernel.CodeUnauthenticated)
	anonymised := "deleted+" + strings.ReplaceAll(p.ID.String(), "-", "") + "@deleted.invalid"
	for _, email := range []string{p.Email, anonymised} {
		for _, path := range []string{"/api/v1/auth/magic-link", "/api/v1/auth/password/forgot"} {
			if r := call(t, f.url, "POST", path, nil, `{"email": "`+email+`"}`); r.status != http.StatusAccepted {
				t.Fatalf("%s for %s: %d %s", path, email, r.status, r.raw)
			}
		}
		if n := mailsTo(t, f, mail.TemplateMagicLink, email) + mailsTo(t, f, mail.TemplatePasswordReset, email); n != 0 {
			t.Fatalf("%d links mailed to %s after deletion", n, email)
		}
	}
	assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "`+anonymised+`", "password": ""}`),
		401, kernel.CodeUnauthenticated)
}
