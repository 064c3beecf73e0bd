package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"atrium/internal/httpapi"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

const goodPassword = "correct horse battery staple"

// cookieHeader is the Cookie header a browser holding the session sends.
func cookieHeader(token string) map[string]string {
	return map[string]string{"Cookie": httpapi.SessionCookieName + "=" + token}
}

// sessionCookie returns the session cookie a response sets, or fails.
func sessionCookie(t *testing.T, r response) *http.Cookie {
	t.Helper()
	for _, line := range r.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == httpapi.SessionCookieName {
			return c
		}
	}
	t.Fatalf("no session cookie set: %v", r.header.Values("Set-Cookie"))
	return nil
}

// assertCookieCleared checks that r tells the browser to drop the session cookie.
func assertCookieCleared(t *testing.T, r response) {
	t.Helper()
	if c := sessionCookie(t, r); c.MaxAge >= 0 || c.Value != "" || !c.Secure || c.Path != "/" {
		t.Fatalf("cookie not cleared: %+v", c)
	}
}

// verificationToken reads the token of the newest verification link sent to email.
func verificationToken(t *testing.T, f fixture, email string) string {
	t.Helper()
	msgs, err := f.app.Services.Mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Tag != mail.TemplateVerifyEmail || m.To[0] != email {
			continue
		}
		link := regexp.MustCompile(`\S+/verify-email\?token=\S+`).FindString(m.Text)
		u, err := url.Parse(link)
		if err != nil || !strings.HasPrefix(link, f.app.Config.BaseURL+"/verify-email?") {
			t.Fatalf("verification link %q in %q", link, m.Text)
		}
		return u.Query().Get("token")
	}
	t.Fatalf("no verification mail to %s", email)
	return ""
}

// signUp creates and verifies an account through the API.
func signUp(t *testing.T, f fixture, email string) {
	t.Helper()
	body := `{"email": "` + email + `", "password": "` + goodPassword + `", "name": "Ada"}`
	if r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, body); r.status != http.StatusAccepted {
		t.Fatalf("signup: %d %s", r.status, r.raw)
	}
	token := verificationToken(t, f, email)
	if r := call(t, f.url, "POST", "/api/v1/auth/email/verify", nil, `{"token": "`+token+`"}`); r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
}

// logIn logs email in and returns the session token its cookie carries.
func logIn(t *testing.T, f fixture, email string) string {
	t.Helper()
	r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "`+email+`", "password": "`+goodPassword+`"}`)
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return sessionCookie(t, r).Value
}

func TestIdentityJourney(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": " Ada@Example.com", "password": "`+goodPassword+`", "name": "Ada"}`)
		if r.status != http.StatusAccepted || r.body["email"] != "ada@example.com" || len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("signup: %d %s", r.status, r.raw)
		}
		verifyToken := verificationToken(t, f, "ada@example.com")
		r = call(t, f.url, "POST", "/api/v1/auth/email/verify", nil, `{"token": "`+verifyToken+`"}`)
		if r.status != 200 || r.body["email_verified"] != true || !strings.HasPrefix(r.body["id"].(string), "usr_") {
			t.Fatalf("verify: %d %s", r.status, r.raw)
		}
		userID := r.body["id"]

		r = call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`)
		if r.status != 200 || r.body["id"] != userID || r.body["mfa_required"] != false || r.body["password_hash"] != nil {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		c := sessionCookie(t, r)
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" ||
			c.MaxAge != int(identity.DefaultLifetime.Seconds()) || len(c.Value) != identity.TokenLength {
			t.Fatalf("session cookie: %+v", c)
		}
		laptop := cookieHeader(c.Value)
		r = call(t, f.url, "GET", "/api/v1/me", laptop, "")
		if r.status != 200 || r.body["id"] != userID || r.body["email"] != "ada@example.com" || r.body["email_verified"] != true {
			t.Fatalf("me: %d %s", r.status, r.raw)
		}

		phone := cookieHeader(logIn(t, f, "ada@example.com"))
		r = call(t, f.url, "GET", "/api/v1/me/sessions", laptop, "")
		items, _ := r.body["items"].([]any)
		if r.status != 200 || len(items) != 2 || r.body["has_more"] != false {
			t.Fatalf("sessions: %d %s", r.status, r.raw)
		}
		newest, oldest := items[0].(map[string]any), items[1].(map[string]any)
		if newest["current"] != false || oldest["current"] != true || !strings.HasPrefix(newest["id"].(string), "ses_") {
			t.Fatalf("current session not marked: %s", r.raw)
		}

		if r := call(t, f.url, "DELETE", "/api/v1/me/sessions/"+newest["id"].(string), laptop, ""); r.status != http.StatusNoContent ||
			len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("revoke the phone: %d %s %v", r.status, r.raw, r.header.Values("Set-Cookie"))
		}
		r = call(t, f.url, "GET", "/api/v1/me", phone, "")
		assertEnvelope(t, r, 401, kernel.CodeUnauthenticated)
		assertCookieCleared(t, r)

		r = call(t, f.url, "POST", "/api/v1/auth/logout", laptop, "")
		if r.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.status, r.raw)
		}
		assertCookieCleared(t, r)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", laptop, ""), 401, kernel.CodeUnauthenticated)

		for _, action := range []string{"user.signed_up", "user.email_verified", "user.login_succeeded", "session.revoked", "user.logged_out"} {
			if n := platformAudit(t, f, action); n == 0 {
				t.Errorf("no %s audit entry", action)
			}
		}
		logs := f.app.Logs()
		for name, secret := range map[string]string{"verification token": verifyToken, "session token": c.Value, "password": goodPassword} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s is in the log", name)
			}
		}
	})
}

// platformAudit counts platform audit entries with the action.
func platformAudit(t *testing.T, f fixture, action string) int {
	t.Helper()
	var n int
	err := f.app.DB.System(context.Background(), "test: count audit entries", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE workspace_id IS NULL AND action = $1", action).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// withoutRequestID returns the body with its request ID blanked.
func withoutRequestID(r response) string {
	return strings.ReplaceAll(r.raw, r.header.Get("X-Request-ID"), "")
}

func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		wrong := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "not the password at all"}`)
		unknown := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "nobody@example.com", "password": "`+goodPassword+`"}`)
		malformed := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "nobody", "password": "`+goodPassword+`"}`)
		for _, r := range []response{wrong, unknown, malformed} {
			assertEnvelope(t, r, 401, kernel.CodeUnauthenticated)
			if len(r.header.Values("Set-Cookie")) != 0 {
				t.Fatalf("a failed login set a cookie: %v", r.header.Values("Set-Cookie"))
			}
		}
		if a, b := withoutRequestID(wrong), withoutRequestID(unknown); a != b {
			t.Fatalf("wrong password and unknown email answer differently:\n%s\n%s", a, b)
		}
		if a, b := withoutRequestID(wrong), withoutRequestID(malformed); a != b {
			t.Fatalf("wrong password and malformed email answer differently:\n%s\n%s", a, b)
		}
	})
}

func TestDuplicateSignupRevealsNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		first := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`", "name": "Ada"}`)
		again := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "ADA@example.com", "password": "a different passphrase", "name": "Mallory"}`)
		if first.status != http.StatusAccepted || again.status != first.status || withoutRequestID(first) != withoutRequestID(again) {
			t.Fatalf("new and registered addresses answer differently:\n%d %s\n%d %s", first.status, first.raw, again.status, again.raw)
		}
		msgs, _ := f.app.Services.Mailbox.List(context.Background(), 10)
		if len(msgs) != 2 || msgs[0].Tag != mail.TemplateAccountExists || msgs[0].To[0] != "ada@example.com" {
			t.Fatalf("mailbox after a repeated sign-up: %+v", msgs)
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "a different passphrase"}`),
			401, kernel.CodeUnauthenticated)
		if platformAudit(t, f, "user.signed_up") != 1 || platformAudit(t, f, "user.signup_repeated") != 1 {
			t.Fatal("sign-up audit entries")
		}
	})
}

func TestIdentityRoutesRefuseBadInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		cases := []struct {
			name, path, body, field string
		}{
			{"mass assignment: email_verified", "/api/v1/auth/signup", `{"email": "eve@example.com", "password": "` + goodPassword + `", "name": "Eve", "email_verified": true}`, "body.email_verified"},
			{"mass assignment: id", "/api/v1/auth/signup", `{"email": "eve@example.com", "password": "` + goodPassword + `", "name": "Eve", "id": "usr_01h455vb4pex5vsknk084sn02q"}`, "body.id"},
			{"mass assignment at login", "/api/v1/auth/login", `{"email": "ada@example.com", "password": "` + goodPassword + `", "mfa_required": false}`, "body.mfa_required"},
			{"mass assignment at verify", "/api/v1/auth/email/verify", `{"token": "x", "user_id": "usr_01h455vb4pex5vsknk084sn02q"}`, "body.user_id"},
			{"missing password", "/api/v1/auth/signup", `{"email": "eve@example.com", "name": "Eve"}`, "body"},
			{"header injection", "/api/v1/auth/signup", `{"email": "eve@example.com\r\nBcc: all@example.com", "password": "` + goodPassword + `", "name": "Eve"}`, "email"},
			{"display name", "/api/v1/auth/signup", `{"email": "Eve <eve@example.com>", "password": "` + goodPassword + `", "name": "Eve"}`, "email"},
			{"common password", "/api/v1/auth/signup", `{"email": "eve@example.com", "password": "password123", "name": "Eve"}`, "password"},
			{"password is the email", "/api/v1/auth/signup", `{"email": "eve.smith@example.com", "password": "eve.smith@example.com", "name": "Eve"}`, "password"},
			{"control characters in the name", "/api/v1/auth/signup", `{"email": "eve@example.com", "password": "` + goodPassword + `", "name": "Eve\u0007"}`, "name"},
			{"token of the wrong type", "/api/v1/auth/email/verify", `{"token": 42}`, "body.token"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, "POST", c.path, nil, c.body), 400, kernel.CodeInvalid, c.field)
			})
		}
		msgs, _ := f.app.Services.Mailbox.List(context.Background(), 10)
		if len(msgs) != 1 || platformAudit(t, f, "user.signed_up") != 1 {
			t.Fatalf("refused sign-ups left traces: %d emails", len(msgs))
		}
	})
}

func TestVerificationTokenMisuse(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		if r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`", "name": "Ada"}`); r.status != 202 {
			t.Fatalf("signup: %d %s", r.status, r.raw)
		}
		token := verificationToken(t, f, "ada@example.com")
		verify := func(tok string) response {
			return call(t, f.url, "POST", "/api/v1/auth/email/verify", nil, `{"token": "`+tok+`"}`)
		}
		flipped := []byte(token)
		flipped[10] ^= 'a' ^ 'b'
		for name, bad := range map[string]string{
			"truncated": token[:len(token)-1], "forged": string(flipped), "empty": "", "doubled": token + token[:20],
		} {
			t.Run(name, func(t *testing.T) {
				assertEnvelope(t, verify(bad), 400, kernel.CodeInvalid, "token")
			})
		}
		if r := verify(token); r.status != 200 {
			t.Fatalf("verify: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, verify(token), 400, kernel.CodeInvalid, "token")
		if strings.Contains(f.app.Logs(), token) {
			t.Fatal("the verification token is in the log")
		}
	})
}

func TestResendVerificationIsLimited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		if r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`", "name": "Ada"}`); r.status != 202 {
			t.Fatalf("signup: %d %s", r.status, r.raw)
		}
		first := verificationToken(t, f, "ada@example.com")
		session := cookieHeader(logIn(t, f, "ada@example.com")) // unverified people may log in
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/resend", nil, ""), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/resend", f.bearer, ""), 403, kernel.CodeForbidden)
		r := call(t, f.url, "POST", "/api/v1/auth/email/resend", session, "")
		assertEnvelope(t, r, 429, kernel.CodeRateLimited)
		if r.header.Get("Retry-After") != "60" {
			t.Fatalf("Retry-After %q, want 60", r.header.Get("Retry-After"))
		}
		f.app.Clock.Advance(61 * time.Second)
		if r := call(t, f.url, "POST", "/api/v1/auth/email/resend", session, ""); r.status != http.StatusAccepted {
			t.Fatalf("resend after a minute: %d %s", r.status, r.raw)
		}
		second := verificationToken(t, f, "ada@example.com")
		if second == first {
			t.Fatal("the resent link carries the old token")
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/verify", nil, `{"token": "`+first+`"}`), 400, kernel.CodeInvalid, "token")
		if r := call(t, f.url, "POST", "/api/v1/auth/email/verify", nil, `{"token": "`+second+`"}`); r.status != 200 {
			t.Fatalf("the new link: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/email/resend", session, ""), 409, kernel.CodeConflict)
	})
}
