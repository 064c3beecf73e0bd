package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

const newPassword = "a brand new passphrase"

// mailedLinkToken reads the token of the newest mail with the tag sent to
// email, whose link must point at BASE_URL+path; "" when there is none.
func mailedLinkToken(t *testing.T, f fixture, tag, email, path string) string {
	t.Helper()
	msgs, err := f.app.Services.Mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Tag != tag || m.To[0] != email {
			continue
		}
		link := regexp.MustCompile(`\S+` + regexp.QuoteMeta(path) + `\?token=\S+`).FindString(m.Text)
		u, err := url.Parse(link)
		if err != nil || !strings.HasPrefix(link, f.app.Config.BaseURL+path+"?") {
			t.Fatalf("%s link %q in %q", tag, link, m.Text)
		}
		return u.Query().Get("token")
	}
	return ""
}

func resetToken(t *testing.T, f fixture, email string) string {
	t.Helper()
	r := call(t, f.url, "POST", "/api/v1/auth/password/forgot", nil, `{"email": "`+email+`"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("forgot: %d %s", r.status, r.raw)
	}
	token := mailedLinkToken(t, f, mail.TemplatePasswordReset, email, "/reset-password")
	if token == "" {
		t.Fatalf("no reset mail to %s", email)
	}
	return token
}

func magicToken(t *testing.T, f fixture, email string) string {
	t.Helper()
	r := call(t, f.url, "POST", "/api/v1/auth/magic-link", nil, `{"email": "`+email+`"}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("magic link: %d %s", r.status, r.raw)
	}
	token := mailedLinkToken(t, f, mail.TemplateMagicLink, email, "/magic-link")
	if token == "" {
		t.Fatalf("no magic link mailed to %s", email)
	}
	return token
}

func resetBody(token, password string) string {
	return `{"token": "` + token + `", "password": "` + password + `"}`
}

func TestPasswordResetJourney(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		laptop := cookieHeader(logIn(t, f, "ada@example.com"))
		phone := cookieHeader(logIn(t, f, "ada@example.com"))
		token := resetToken(t, f, "ada@example.com")
		if len(token) != identity.TokenLength {
			t.Fatalf("reset token %q", token)
		}
		reset := func(headers map[string]string, password string) response {
			return call(t, f.url, "POST", "/api/v1/auth/password/reset", headers, resetBody(token, password))
		}
		assertEnvelope(t, reset(nil, "password123"), 400, kernel.CodeInvalid, "password")
		r := reset(laptop, newPassword)
		if r.status != http.StatusNoContent {
			t.Fatalf("reset: %d %s", r.status, r.raw)
		}
		assertCookieCleared(t, r)
		for name, old := range map[string]map[string]string{"laptop": laptop, "phone": phone} {
			r := call(t, f.url, "GET", "/api/v1/me", old, "")
			assertEnvelope(t, r, 401, kernel.CodeUnauthenticated)
			if name == "phone" {
				assertCookieCleared(t, r)
			}
		}
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`),
			401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+newPassword+`"}`); r.status != 200 {
			t.Fatalf("login with the new password: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, reset(nil, "yet another passphrase"), 400, kernel.CodeInvalid, "token")

		msgs, _ := f.app.Services.Mailbox.List(context.Background(), 1)
		if msgs[0].Tag != mail.TemplatePasswordChanged || msgs[0].To[0] != "ada@example.com" || strings.Contains(msgs[0].Text, token) {
			t.Fatalf("password-changed notice: %+v", msgs[0])
		}
		if platformAudit(t, f, "user.password_reset") != 1 {
			t.Fatal("no user.password_reset audit entry")
		}
		logs := f.app.Logs()
		for name, secret := range map[string]string{"reset token": token, "new password": newPassword} {
			if strings.Contains(logs, secret) {
				t.Errorf("the %s is in the log", name)
			}
		}
	})
}

func TestLinkRequestsAnswerTheSameForEveryAddress(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		if r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "eve@example.com", "password": "`+goodPassword+`", "name": "Eve"}`); r.status != 202 {
			t.Fatalf("signup: %d %s", r.status, r.raw)
		}
		for _, path := range []string{"/api/v1/auth/password/forgot", "/api/v1/auth/magic-link"} {
			var first response
			for i, email := range []string{"ada@example.com", "eve@example.com", "nobody@example.com", "NOBODY@example.org"} {
				r := call(t, f.url, "POST", path, nil, `{"email": "`+email+`"}`)
				if r.status != http.StatusAccepted || len(r.header.Values("Set-Cookie")) != 0 || strings.Contains(strings.ToLower(r.raw), "example") {
					t.Fatalf("%s %s: %d %s", path, email, r.status, r.raw)
				}
				if i == 0 {
					first = r
				} else if withoutRequestID(r) != withoutRequestID(first) {
					t.Fatalf("%s answers %s differently:\n%s\n%s", path, email, first.raw, r.raw)
				}
			}
			assertEnvelope(t, call(t, f.url, "POST", path, nil, `{"email": "not an address"}`), 400, kernel.CodeInvalid, "email")
			assertEnvelope(t, call(t, f.url, "POST", path, nil, `{"email": "ada@example.com", "user_id": "usr_x"}`), 400, kernel.CodeInvalid, "body.user_id")
		}
		if mailedLinkToken(t, f, mail.TemplatePasswordReset, "ada@example.com", "/reset-password") == "" {
			t.Fatal("no reset mail to the verified address")
		}
		if mailedLinkToken(t, f, mail.TemplatePasswordReset, "eve@example.com", "/reset-password") != "" {
			t.Fatal("a reset link went to an unverified address")
		}
		if mailedLinkToken(t, f, mail.TemplateMagicLink, "eve@example.com", "/magic-link") == "" {
			t.Fatal("no magic link to the unverified account")
		}
		msgs, _ := f.app.Services.Mailbox.List(context.Background(), 100)
		for _, m := range msgs {
			if strings.Contains(m.To[0], "nobody") {
				t.Fatalf("mail to an unknown address: %+v", m)
			}
		}
	})
}

func TestMagicLinkJourney(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		token := magicToken(t, f, "ada@example.com")
		verify := func(tok string) response {
			return call(t, f.url, "POST", "/api/v1/auth/magic-link/verify", nil, `{"token": "`+tok+`"}`)
		}
		f.app.Clock.Advance(14 * time.Minute)
		r := verify(token)
		if r.status != 200 || r.body["email"] != "ada@example.com" || r.body["mfa_required"] != false || !strings.HasPrefix(r.body["id"].(string), "usr_") {
			t.Fatalf("magic-link login: %d %s", r.status, r.raw)
		}
		c := sessionCookie(t, r)
		if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" ||
			c.MaxAge != int(identity.DefaultLifetime.Seconds()) || len(c.Value) != identity.TokenLength {
			t.Fatalf("session cookie: %+v", c)
		}
		if me := call(t, f.url, "GET", "/api/v1/me", cookieHeader(c.Value), ""); me.status != 200 || me.body["id"] != r.body["id"] {
			t.Fatalf("me: %d %s", me.status, me.raw)
		}
		assertEnvelope(t, verify(token), 400, kernel.CodeInvalid, "token")
		if n := magicLinkLogins(t, f); n != 1 {
			t.Fatalf("%d magic-link logins audited, want 1", n)
		}
		if strings.Contains(f.app.Logs(), token) {
			t.Fatal("the magic-link token is in the log")
		}

		// An unverified account: the link proves the address.
		if r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "eve@example.com", "password": "`+goodPassword+`", "name": "Eve"}`); r.status != 202 {
			t.Fatalf("signup: %d %s", r.status, r.raw)
		}
		if r := verify(magicToken(t, f, "eve@example.com")); r.status != 200 || r.body["email_verified"] != true {
			t.Fatalf("magic link of an unverified account: %d %s", r.status, r.raw)
		}
	})
}

// magicLinkLogins counts the platform audit entries of magic-link logins.
func magicLinkLogins(t *testing.T, f fixture) int {
	t.Helper()
	var n int
	err := f.app.DB.System(context.Background(), "test: count audit entries", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE workspace_id IS NULL
            AND action = 'user.login_succeeded' AND metadata->>'method' = 'magic_link'`).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEmailedTokenMisuse(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		if r := call(t, f.url, "POST", "/api/v1/auth/signup", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`", "name": "Ada"}`); r.status != 202 {
			t.Fatalf("signup: %d %s", r.status, r.raw)
		}
		verifyToken := verificationToken(t, f, "ada@example.com")
		magic := magicToken(t, f, "ada@example.com") // also verifies the address
		reset := func(tok string) response {
			return call(t, f.url, "POST", "/api/v1/auth/password/reset", nil, resetBody(tok, newPassword))
		}
		login := func(tok string) response {
			return call(t, f.url, "POST", "/api/v1/auth/magic-link/verify", nil, `{"token": "`+tok+`"}`)
		}
		if r := login(magic); r.status != 200 {
			t.Fatalf("magic-link login: %d %s", r.status, r.raw)
		}
		resetTok := resetToken(t, f, "ada@example.com")
		magic2 := magicToken(t, f, "ada@example.com")
		cases := []struct {
			name  string
			try   func(string) response
			token string
		}{
			{"magic link at reset", reset, magic2},
			{"verification at reset", reset, verifyToken},
			{"truncated reset", reset, resetTok[:len(resetTok)-1]},
			{"forged reset", reset, strings.Repeat("A", identity.TokenLength)},
			{"reset at magic link", login, resetTok},
			{"verification at magic link", login, verifyToken},
			{"used magic link", login, magic},
			{"truncated magic link", login, magic2[:20]},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				assertEnvelope(t, c.try(c.token), 400, kernel.CodeInvalid, "token")
			})
		}
		assertEnvelope(t, reset(strings.Repeat("A", 200)), 400, kernel.CodeInvalid, "body.token")
		f.app.Clock.Advance(15 * time.Minute)
		assertEnvelope(t, login(magic2), 400, kernel.CodeInvalid, "token")
		f.app.Clock.Advance(45 * time.Minute)
		assertEnvelope(t, reset(resetTok), 400, kernel.CodeInvalid, "token")
		if platformAudit(t, f, "user.password_reset") != 0 {
			t.Fatal("a refused token reset the password")
		}
	})
}

func TestConcurrentResetsWithOneToken(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		token := resetToken(t, f, "ada@example.com")
		statuses := make([]int, 2)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = call(t, f.url, "POST", "/api/v1/auth/password/reset", nil, resetBody(token, newPassword+strings.Repeat("!", i+1))).status
			}()
		}
		wg.Wait()
		if !(statuses[0] == 204 && statuses[1] == 400) && !(statuses[0] == 400 && statuses[1] == 204) {
			t.Fatalf("two resets with one token answered %v, want one 204 and one 400", statuses)
		}
		if platformAudit(t, f, "user.password_reset") != 1 {
			t.Fatal("want exactly one user.password_reset audit entry")
		}
	})
}

func TestRecoveryRoutesRefuseCrossSiteRequests(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		token := resetToken(t, f, "ada@example.com")
		magic := magicToken(t, f, "ada@example.com")
		before, _ := f.app.Services.Mailbox.List(context.Background(), 100)
		crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
		for path, body := range map[string]string{
			"/api/v1/auth/password/forgot":   `{"email": "ada@example.com"}`,
			"/api/v1/auth/password/reset":    resetBody(token, newPassword),
			"/api/v1/auth/magic-link":        `{"email": "ada@example.com"}`,
			"/api/v1/auth/magic-link/verify": `{"token": "` + magic + `"}`,
		} {
			t.Run(path, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, "POST", path, crossSite, body), 403, kernel.CodeForbidden)
			})
		}
		if after, _ := f.app.Services.Mailbox.List(context.Background(), 100); len(after) != len(before) {
			t.Fatal("a cross-site request sent mail")
		}
		// Both tokens are still unused: the refused requests changed nothing.
		if r := call(t, f.url, "POST", "/api/v1/auth/magic-link/verify", nil, `{"token": "`+magic+`"}`); r.status != 200 {
			t.Fatalf("magic link after the cross-site attempt: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/password/reset", nil, resetBody(token, newPassword)); r.status != 204 ||
			len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("reset after the cross-site attempt: %d %s %v", r.status, r.raw, r.header.Values("Set-Cookie"))
		}
	})
}

func TestStaleCookieDoesNotBlockRecovery(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		stale := cookieHeader(logIn(t, f, "ada@example.com"))
		f.app.Clock.Advance(identity.DefaultIdleTimeout + time.Minute)
		if r := call(t, f.url, "POST", "/api/v1/auth/password/forgot", stale, `{"email": "ada@example.com"}`); r.status != 202 {
			t.Fatalf("forgot with a stale cookie: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/magic-link", stale, `{"email": "ada@example.com"}`); r.status != 202 {
			t.Fatalf("magic link with a stale cookie: %d %s", r.status, r.raw)
		}
		magic := mailedLinkToken(t, f, mail.TemplateMagicLink, "ada@example.com", "/magic-link")
		r := call(t, f.url, "POST", "/api/v1/auth/magic-link/verify", stale, `{"token": "`+magic+`"}`)
		if r.status != 200 {
			t.Fatalf("magic-link login with a stale cookie: %d %s", r.status, r.raw)
		}
		fresh := sessionCookie(t, r).Value
		token := mailedLinkToken(t, f, mail.TemplatePasswordReset, "ada@example.com", "/reset-password")
		if r := call(t, f.url, "POST", "/api/v1/auth/password/reset", stale, resetBody(token, newPassword)); r.status != 204 {
			t.Fatalf("reset with a stale cookie: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", cookieHeader(fresh), ""), 401, kernel.CodeUnauthenticated)
	})
}
