package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"atrium/internal/httpapi"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestTheWholeJourney walks issue 3's acceptance path through the API only, as
// a new user would, on each store: sign up, read the verification mail from
// the dev mailbox, verify, log in, enrol TOTP, log in with it, create a
// workspace, invite a second person, who accepts; change roles, create and use
// an API key, revoke it, delete the workspace (after re-authenticating) and
// restore it.
func TestTheWholeJourney(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			a := testkit.Boot(t, d, testkit.AppOptions{})
			journey(t, a)
		})
	}
}

func journey(t *testing.T, a *testkit.TestApp) {
	ada := &browser{t: t, base: a.URL()}
	const adaEmail, password = "ada@example.com", "a long and private passphrase"

	// Sign up, verify through the link in the dev mailbox, log in.
	ada.must(http.StatusAccepted, "POST", "/api/v1/auth/signup", `{"email":"`+adaEmail+`","password":"`+password+`","name":"Ada"}`)
	token := ada.mailToken(adaEmail, "verify_email", "/verify-email")
	ada.must(http.StatusOK, "POST", "/api/v1/auth/email/verify", `{"token":"`+token+`"}`)
	me := ada.must(http.StatusOK, "POST", "/api/v1/auth/login", `{"email":"`+adaEmail+`","password":"`+password+`"}`)
	if me["email_verified"] != true || ada.cookie == "" {
		t.Fatalf("login: %v, cookie %q", me, ada.cookie)
	}

	// Enrol TOTP, confirm it with a code, and log in again with both factors.
	enrol := ada.must(http.StatusCreated, "POST", "/api/v1/me/mfa/totp", `{}`)
	secret, _ := enrol["secret"].(string)
	if secret == "" || !strings.HasPrefix(enrol["uri"].(string), "otpauth://totp/") {
		t.Fatalf("enrolment: %v", enrol)
	}
	confirmed := ada.must(http.StatusOK, "POST", "/api/v1/me/mfa/totp/confirm", `{"code":"`+code(t, a, secret)+`"}`)
	if codes, _ := confirmed["backup_codes"].([]any); len(codes) != 10 {
		t.Fatalf("backup codes: %v", confirmed)
	}
	if status := ada.must(http.StatusOK, "GET", "/api/v1/me/mfa", ""); status["enabled"] != true || status["secret"] != nil {
		t.Fatalf("mfa status: %v", status)
	}
	ada.must(http.StatusNoContent, "POST", "/api/v1/auth/logout", "")
	ada.cookie = ""
	challenge := ada.must(http.StatusOK, "POST", "/api/v1/auth/login", `{"email":"`+adaEmail+`","password":"`+password+`"}`)
	if challenge["mfa_required"] != true || challenge["challenge"] == "" || ada.cookie != "" {
		t.Fatalf("login with MFA on must answer a challenge and no cookie: %v (cookie %q)", challenge, ada.cookie)
	}
	a.Clock.Advance(30 * time.Second) // the enrolment code's time step is used up
	ada.must(http.StatusOK, "POST", "/api/v1/auth/login/mfa",
		`{"challenge":"`+challenge["challenge"].(string)+`","code":"`+code(t, a, secret)+`"}`)
	if ada.cookie == "" {
		t.Fatal("the second factor did not start a session")
	}

	// A workspace, and an invitation that a new person accepts by signing up.
	ws := ada.must(http.StatusCreated, "POST", "/api/v1/workspaces", `{"name":"Analytical Engines","slug":"engines"}`)
	wsPath := "/api/v1/workspaces/" + ws["id"].(string)
	ada.must(http.StatusCreated, "POST", wsPath+"/invites", `{"email":"grace@example.com","role":"member"}`)
	grace := &browser{t: t, base: a.URL()}
	inviteToken := grace.mailToken("grace@example.com", "invite", "/invite")
	accepted := grace.must(http.StatusOK, "POST", "/api/v1/invites/accept",
		`{"token":"`+inviteToken+`","name":"Grace","password":"another long passphrase"}`)
	graceID, _ := accepted["user_id"].(string)
	if graceID == "" || grace.cookie == "" {
		t.Fatalf("accepting as a new person must sign up and log in: %v (cookie %q)", accepted, grace.cookie)
	}
	if got := grace.must(http.StatusOK, "GET", wsPath, ""); got["role"] != "member" {
		t.Fatalf("grace's role: %v", got)
	}

	// Roles change: Grace becomes an admin, and may now list the audit log.
	grace.must(http.StatusForbidden, "GET", wsPath+"/audit-log", "")
	ada.must(http.StatusOK, "PATCH", wsPath+"/members/"+graceID, `{"role":"admin"}`)
	grace.must(http.StatusOK, "GET", wsPath+"/audit-log", "")

	// An API key: created once with its secret, used, revoked, refused.
	key := ada.must(http.StatusCreated, "POST", wsPath+"/api-keys", `{"name":"CI","scopes":["read"]}`)
	bot := &browser{t: t, base: a.URL(), bearer: key["secret"].(string)}
	if got := bot.must(http.StatusOK, "GET", wsPath, ""); got["id"] != ws["id"] {
		t.Fatalf("the key read %v", got)
	}
	bot.must(http.StatusForbidden, "PATCH", wsPath, `{"name":"Renamed by a read key"}`)
	ada.must(http.StatusNoContent, "DELETE", wsPath+"/api-keys/"+key["id"].(string), "")
	bot.must(http.StatusUnauthorized, "GET", wsPath, "")

	// Deleting the workspace needs a recent authentication.
	a.Clock.Advance(20 * time.Minute)
	refused := ada.must(http.StatusForbidden, "DELETE", wsPath, "")
	if refused["code"] != "reauthentication_required" {
		t.Fatalf("delete after 20 minutes: %v", refused)
	}
	before := ada.cookie
	ada.must(http.StatusOK, "POST", "/api/v1/auth/reauthenticate", `{"password":"`+password+`","code":"`+code(t, a, secret)+`"}`)
	if ada.cookie == before {
		t.Fatal("re-authenticating must rotate the session token")
	}
	deleted := ada.must(http.StatusOK, "DELETE", wsPath, "")
	if deleted["deleted_at"] == nil {
		t.Fatalf("deleted workspace: %v", deleted)
	}
	if inactive := grace.must(http.StatusForbidden, "PATCH", wsPath, `{"name":"Too late"}`); inactive["code"] != "workspace_inactive" {
		t.Fatalf("write to a deleted workspace: %v", inactive)
	}
	restored := ada.must(http.StatusOK, "POST", wsPath+"/restore", "")
	if restored["deleted_at"] != nil {
		t.Fatalf("restored workspace: %v", restored)
	}

	// Every privileged step is in the audit log.
	log := ada.must(http.StatusOK, "GET", wsPath+"/audit-log?limit=100", "")
	seen := map[string]bool{}
	for _, e := range log["items"].([]any) {
		seen[e.(map[string]any)["action"].(string)] = true
	}
	for _, action := range []string{"invite.created", "invite.accepted", "member.role_changed", "api_key.created",
		"api_key.revoked", "workspace.deleted", "workspace.restored"} {
		if !seen[action] {
			t.Errorf("audit log lacks %s; has %v", action, seen)
		}
	}
}

// code is the TOTP code of secret at the app's clock.
func code(t *testing.T, a *testkit.TestApp, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, a.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// browser is a client that keeps the session cookie as a browser would, or
// sends a bearer secret.
type browser struct {
	t      *testing.T
	base   string
	cookie string
	bearer string
}

// must sends the request and fails the test unless it answers want. It
// returns the JSON object answered (the error object for an error envelope).
func (b *browser) must(want int, method, path, body string) map[string]any {
	b.t.Helper()
	status, raw := b.do(method, path, body)
	if status != want {
		b.t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			b.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	if e, ok := out["error"].(map[string]any); ok {
		return e
	}
	return out
}

func (b *browser) do(method, path, body string) (int, []byte) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.cookie != "" {
		req.Header.Set("Cookie", httpapi.SessionCookieName+"="+b.cookie)
	}
	if b.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+b.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range resp.Header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == httpapi.SessionCookieName {
			b.cookie = c.Value
			if c.MaxAge < 0 {
				b.cookie = ""
			}
		}
	}
	return resp.StatusCode, bytes.TrimSpace(raw)
}

var mailLink = regexp.MustCompile(`https?://\S+`)

// mailToken reads the newest message of kind tag to email through GET
// /dev/mailbox and returns the token of its link to path.
func (b *browser) mailToken(email, tag, path string) string {
	b.t.Helper()
	page := b.must(http.StatusOK, "GET", "/dev/mailbox?to="+url.QueryEscape(email), "")
	for _, item := range page["items"].([]any) {
		m := item.(map[string]any)
		if m["tag"] != tag {
			continue
		}
		for _, link := range mailLink.FindAllString(m["text"].(string), -1) {
			if u, err := url.Parse(link); err == nil && u.Path == path && u.Query().Get("token") != "" {
				return u.Query().Get("token")
			}
		}
	}
	b.t.Fatalf("no %s mail to %s with a link to %s in %v", tag, email, path, page)
	return ""
}
