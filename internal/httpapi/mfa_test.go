package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

var backupCodeShape = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{2}$`)

// mfaLogin logs email in with the password and returns the answer, which
// must be an MFA challenge without a cookie; it returns the challenge.
func mfaLogin(t *testing.T, f fixture, email string) string {
	t.Helper()
	r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "`+email+`", "password": "`+goodPassword+`"}`)
	challenge, _ := r.body["challenge"].(string)
	if r.status != 200 || r.body["mfa_required"] != true || len(challenge) != 43 || r.body["id"] != nil ||
		r.body["email"] != nil || len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("login of an MFA account: %d %s %v", r.status, r.raw, r.header.Values("Set-Cookie"))
	}
	return challenge
}

// answer sends a challenge and a code to the second step of a login.
func answer(t *testing.T, f fixture, challenge, code string) response {
	t.Helper()
	return call(t, f.url, "POST", "/api/v1/auth/login/mfa", nil, `{"challenge": "`+challenge+`", "code": "`+code+`"}`)
}

// assertMFAFailed checks the one answer of a failed second step.
func assertMFAFailed(t *testing.T, r response) {
	t.Helper()
	assertEnvelope(t, r, http.StatusUnauthorized, kernel.CodeUnauthenticated)
	if len(r.header.Values("Set-Cookie")) != 0 {
		t.Fatalf("a failed second step set a cookie: %v", r.header.Values("Set-Cookie"))
	}
}

func TestMFAJourney(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		laptop := f.app.LogIn(t, "ada@example.com")
		var seen []string // every response body after the enrolment answer

		r := call(t, f.url, "POST", "/api/v1/me/mfa/totp", ada.Headers(), "")
		secret, _ := r.body["secret"].(string)
		uri, _ := r.body["uri"].(string)
		if r.status != http.StatusCreated || len(secret) != 32 || !strings.HasPrefix(uri, "otpauth://totp/") || !strings.Contains(uri, secret) {
			t.Fatalf("start enrolment: %d %s", r.status, r.raw)
		}
		r = call(t, f.url, "GET", "/api/v1/me/mfa", ada.Headers(), "")
		if r.status != 200 || r.body["enabled"] != false || r.body["pending"] != true {
			t.Fatalf("status while pending: %d %s", r.status, r.raw)
		}
		seen = append(seen, r.raw)
		if r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`); r.status != 200 || r.body["mfa_required"] != false {
			t.Fatalf("a pending enrolment changed the login: %d %s", r.status, r.raw)
		}

		wrong := testkit.TOTPCode(t, secret, f.app.Clock.Now().Add(time.Hour))
		r = call(t, f.url, "POST", "/api/v1/me/mfa/totp/confirm", ada.Headers(), `{"code": "`+wrong+`"}`)
		assertEnvelope(t, r, http.StatusBadRequest, kernel.CodeInvalid, "code")
		code := testkit.TOTPCode(t, secret, f.app.Clock.Now())
		r = call(t, f.url, "POST", "/api/v1/me/mfa/totp/confirm", ada.Headers(), `{"code": "`+code+`"}`)
		raw, _ := r.body["backup_codes"].([]any)
		if r.status != 200 || len(raw) != 10 {
			t.Fatalf("confirm: %d %s", r.status, r.raw)
		}
		backup := make([]string, len(raw))
		for i, c := range raw {
			if backup[i], _ = c.(string); !backupCodeShape.MatchString(backup[i]) {
				t.Fatalf("backup code %q", c)
			}
		}
		if r := call(t, f.url, "GET", "/api/v1/me", laptop.Headers(), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("enabling MFA left another session alive: %d %s", r.status, r.raw)
		}
		r = call(t, f.url, "GET", "/api/v1/me/mfa", ada.Headers(), "")
		if r.status != 200 || r.body["enabled"] != true || r.body["backup_codes_remaining"] != float64(10) || r.body["enrolled_at"] == nil {
			t.Fatalf("status: %d %s", r.status, r.raw)
		}
		seen = append(seen, r.raw)
		if platformAudit(t, f, "mfa.enabled") != 1 {
			t.Fatal("mfa.enabled not audited")
		}
		seen = append(seen, call(t, f.url, "POST", "/api/v1/auth/logout", ada.Headers(), "").raw)

		// The code that confirmed the enrolment cannot log in: its step is used.
		challenge := mfaLogin(t, f, "ada@example.com")
		r = answer(t, f, challenge, code)
		assertMFAFailed(t, r)
		seen = append(seen, r.raw)

		f.app.Clock.Advance(30 * time.Second)
		code = testkit.TOTPCode(t, secret, f.app.Clock.Now())
		r = answer(t, f, challenge, code)
		if r.status != 200 || r.body["mfa_required"] != false || r.body["email"] != "ada@example.com" {
			t.Fatalf("second step: %d %s", r.status, r.raw)
		}
		session := sessionCookie(t, r).Value
		seen = append(seen, r.raw)
		if r := call(t, f.url, "GET", "/api/v1/me", cookieHeader(session), ""); r.status != 200 {
			t.Fatalf("the MFA session does not work: %d %s", r.status, r.raw)
		}
		assertMFAFailed(t, answer(t, f, challenge, code))                         // a challenge works once
		assertMFAFailed(t, answer(t, f, mfaLogin(t, f, "ada@example.com"), code)) // a code works once

		// A backup code works once, in any case and with or without dashes.
		r = answer(t, f, mfaLogin(t, f, "ada@example.com"), strings.ToUpper(strings.ReplaceAll(backup[0], "-", "")))
		if r.status != 200 {
			t.Fatalf("backup code: %d %s", r.status, r.raw)
		}
		seen = append(seen, r.raw)
		assertMFAFailed(t, answer(t, f, mfaLogin(t, f, "ada@example.com"), backup[0]))
		r = call(t, f.url, "GET", "/api/v1/me/mfa", cookieHeader(session), "")
		if r.body["backup_codes_remaining"] != float64(9) {
			t.Fatalf("after a backup code: %s", r.raw)
		}
		seen = append(seen, r.raw)
		for _, method := range []string{"password+totp", "password+backup_code"} {
			if n := loginsWithMethod(t, f, method); n != 1 {
				t.Fatalf("%d logins audited with method %s, want 1", n, method)
			}
		}
		for _, body := range seen {
			if strings.Contains(body, secret) || strings.Contains(body, backup[1]) {
				t.Fatalf("a response after enrolment carries the secret or a backup code: %s", body)
			}
		}
	})
}

// loginsWithMethod counts user.login_succeeded entries with the method.
func loginsWithMethod(t *testing.T, f fixture, method string) int {
	t.Helper()
	n := 0
	err := f.app.DB.System(context.Background(), "test: read audit metadata", func(tx store.Tx) error {
		rows, err := tx.Query(context.Background(), "SELECT metadata FROM audit_log WHERE action = 'user.login_succeeded'")
		if err != nil {
			return err
		}
		metas, err := store.Collect(rows, func(row store.Row) ([]byte, error) {
			var m []byte
			return m, row.Scan(&m)
		})
		for _, m := range metas {
			var meta map[string]any
			if json.Unmarshal(m, &meta) == nil && meta["method"] == method {
				n++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMFAChallengeIsShortLivedAndLimited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		secret, _ := f.app.EnrolTOTP(t, ada)
		f.app.Clock.Advance(30 * time.Second)
		wrong := testkit.TOTPCode(t, secret, f.app.Clock.Now().Add(time.Hour))

		challenge := mfaLogin(t, f, "ada@example.com")
		first := answer(t, f, challenge, wrong)
		assertMFAFailed(t, first)
		for range 4 {
			assertMFAFailed(t, answer(t, f, challenge, wrong))
		}
		dead := answer(t, f, challenge, testkit.TOTPCode(t, secret, f.app.Clock.Now()))
		assertMFAFailed(t, dead)
		if withoutRequestID(dead) != withoutRequestID(first) {
			t.Fatalf("an exhausted challenge answers differently from a wrong code:\n%s\n%s", dead.raw, first.raw)
		}
		if n := platformAudit(t, f, "user.mfa_failed"); n != 5 {
			t.Fatalf("%d wrong codes audited, want 5", n)
		}

		challenge = mfaLogin(t, f, "ada@example.com")
		f.app.Clock.Advance(6 * time.Minute)
		assertMFAFailed(t, answer(t, f, challenge, testkit.TOTPCode(t, secret, f.app.Clock.Now())))

		challenge = mfaLogin(t, f, "ada@example.com")
		code := testkit.TOTPCode(t, secret, f.app.Clock.Now())
		for _, bad := range []string{challenge[:42], challenge + "A", strings.Repeat("A", 43), "", "../../etc"} {
			r := answer(t, f, bad, code)
			if r.status != http.StatusBadRequest {
				assertMFAFailed(t, r)
			}
		}
		if r := answer(t, f, challenge, code); r.status != 200 {
			t.Fatalf("the challenge after hostile ones: %d %s", r.status, r.raw)
		}
	})
}

func TestMagicLinkOfAnMFAAccountAsksForTheSecondFactor(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		secret, _ := f.app.EnrolTOTP(t, ada)
		f.app.Clock.Advance(30 * time.Second)
		r := call(t, f.url, "POST", "/api/v1/auth/magic-link/verify", nil, `{"token": "`+magicToken(t, f, "ada@example.com")+`"}`)
		challenge, _ := r.body["challenge"].(string)
		if r.status != 200 || r.body["mfa_required"] != true || challenge == "" || len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatalf("magic link of an MFA account: %d %s", r.status, r.raw)
		}
		r = answer(t, f, challenge, testkit.TOTPCode(t, secret, f.app.Clock.Now()))
		if r.status != 200 || sessionCookie(t, r).Value == "" || loginsWithMethod(t, f, "magic_link+totp") != 1 {
			t.Fatalf("second step after a magic link: %d %s", r.status, r.raw)
		}
	})
}

func TestRecentAuthentication(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		wsID := createWorkspace(t, f, ada, "ada")
		f.app.Clock.Advance(16 * time.Minute)

		for _, c := range []struct{ method, path, body string }{
			{"POST", "/api/v1/me/mfa/totp", ""},
			{"POST", "/api/v1/me/tokens", `{"name": "laptop"}`},
			{"POST", "/api/v1/workspaces/" + wsID + "/api-keys", `{"name": "ci", "scopes": ["read"]}`},
			{"DELETE", "/api/v1/workspaces/" + wsID, ""},
		} {
			r := call(t, f.url, c.method, c.path, ada.Headers(), c.body)
			assertEnvelope(t, r, http.StatusForbidden, kernel.CodeReauthRequired)
		}

		r := call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(), `{"password": "not the password"}`)
		assertEnvelope(t, r, http.StatusUnauthorized, kernel.CodeUnauthenticated)
		r = call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(), `{"password": "`+goodPassword+`"}`)
		if r.status != 200 || r.body["reauthenticated_at"] == nil {
			t.Fatalf("reauthenticate: %d %s", r.status, r.raw)
		}
		fresh := cookieHeader(sessionCookie(t, r).Value)
		if r := call(t, f.url, "GET", "/api/v1/me", ada.Headers(), ""); r.status != http.StatusUnauthorized {
			t.Fatalf("the token before re-authentication still works: %d %s", r.status, r.raw)
		}
		if platformAudit(t, f, "user.reauthenticated") != 1 {
			t.Fatal("re-authentication not audited")
		}
		r = call(t, f.url, "POST", "/api/v1/me/tokens", fresh, `{"name": "laptop"}`)
		pat, _ := r.body["secret"].(string)
		if r.status != http.StatusCreated || pat == "" {
			t.Fatalf("create a token after re-authenticating: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "POST", "/api/v1/workspaces/"+wsID+"/api-keys", fresh, `{"name": "ci", "scopes": ["read"]}`); r.status != http.StatusCreated {
			t.Fatalf("create a key after re-authenticating: %d %s", r.status, r.raw)
		}

		// A personal access token never counts as a recent authentication.
		for _, c := range []struct{ method, path string }{
			{"POST", "/api/v1/me/mfa/totp"},
			{"POST", "/api/v1/me/mfa/backup-codes"},
			{"DELETE", "/api/v1/me/mfa/totp"},
			{"DELETE", "/api/v1/workspaces/" + wsID},
		} {
			if r := call(t, f.url, c.method, c.path, bearer(pat), ""); r.status != http.StatusForbidden {
				t.Fatalf("%s %s with a token: %d %s", c.method, c.path, r.status, r.raw)
			}
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/reauthenticate", bearer(pat), `{"password": "`+goodPassword+`"}`); r.status != http.StatusForbidden {
			t.Fatalf("re-authenticate with a token: %d %s", r.status, r.raw)
		}
		// Nor may a token change how its person signs in, even knowing the password.
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/api/v1/me/password", `{"current_password": "` + goodPassword + `", "new_password": "a brand new long passphrase"}`},
			{"POST", "/api/v1/me/mfa/totp/confirm", `{"code": "123456"}`},
			{"DELETE", "/api/v1/me", ""},
		} {
			r := call(t, f.url, c.method, c.path, bearer(pat), c.body)
			assertEnvelope(t, r, http.StatusForbidden, kernel.CodeForbidden)
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`); r.status != 200 {
			t.Fatalf("the password must be unchanged: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "DELETE", "/api/v1/workspaces/"+wsID, fresh, ""); r.status != 200 {
			t.Fatalf("delete the workspace after re-authenticating: %d %s", r.status, r.raw)
		}
	})
}

func TestMFAChangesNeedRecentAuthentication(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		secret, backup := f.app.EnrolTOTP(t, ada)
		f.app.Clock.Advance(16 * time.Minute)
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me/mfa/totp", ada.Headers(), ""), http.StatusForbidden, kernel.CodeReauthRequired)
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/me/mfa/backup-codes", ada.Headers(), ""), http.StatusForbidden, kernel.CodeReauthRequired)

		// With MFA on, the password alone is not enough.
		r := call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(), `{"password": "`+goodPassword+`"}`)
		assertEnvelope(t, r, http.StatusBadRequest, kernel.CodeInvalid, "code")
		wrong := testkit.TOTPCode(t, secret, f.app.Clock.Now().Add(time.Hour))
		r = call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(), `{"password": "`+goodPassword+`", "code": "`+wrong+`"}`)
		assertEnvelope(t, r, http.StatusUnauthorized, kernel.CodeUnauthenticated)
		r = call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(),
			`{"password": "`+goodPassword+`", "code": "`+testkit.TOTPCode(t, secret, f.app.Clock.Now())+`"}`)
		if r.status != 200 {
			t.Fatalf("reauthenticate with password and code: %d %s", r.status, r.raw)
		}
		ada.Session = sessionCookie(t, r).Value

		other := mfaLogin(t, f, "ada@example.com")
		r = answer(t, f, other, backup[0])
		if r.status != 200 {
			t.Fatalf("second session: %d %s", r.status, r.raw)
		}
		laptop := cookieHeader(sessionCookie(t, r).Value)
		r = call(t, f.url, "POST", "/api/v1/me/mfa/backup-codes", ada.Headers(), "")
		if codes, _ := r.body["backup_codes"].([]any); r.status != 200 || len(codes) != 10 {
			t.Fatalf("regenerate: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/me", laptop, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("regenerating backup codes left another session alive: %d", r.status)
		}
		assertMFAFailed(t, answer(t, f, mfaLogin(t, f, "ada@example.com"), backup[1])) // the old codes are void

		if r := call(t, f.url, "DELETE", "/api/v1/me/mfa/totp", ada.Headers(), ""); r.status != http.StatusNoContent {
			t.Fatalf("disable: %d %s", r.status, r.raw)
		}
		r = call(t, f.url, "GET", "/api/v1/me/mfa", ada.Headers(), "")
		if r.body["enabled"] != false || r.body["backup_codes_remaining"] != float64(0) {
			t.Fatalf("status after disabling: %s", r.raw)
		}
		if platformAudit(t, f, "mfa.disabled") != 1 || platformAudit(t, f, "mfa.backup_codes_regenerated") != 1 {
			t.Fatal("MFA changes not audited")
		}
		logIn(t, f, "ada@example.com") // one step again
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me/mfa/totp", ada.Headers(), ""), http.StatusNotFound, kernel.CodeNotFound)
	})
}

func TestMFARoutesRefuseBadInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		for _, c := range []struct{ path, body, field string }{
			{"/api/v1/me/mfa/totp/confirm", `{"code": "123456", "enabled": true}`, "body.enabled"},
			{"/api/v1/me/mfa/totp/confirm", `{"code": 123456}`, "body.code"},
			{"/api/v1/auth/login/mfa", `{"challenge": "x", "code": "123456", "user_id": "usr_x"}`, "body.user_id"},
			{"/api/v1/auth/reauthenticate", `{"password": "` + goodPassword + `", "authenticated_at": "2030-01-01T00:00:00Z"}`, "body.authenticated_at"},
		} {
			r := call(t, f.url, "POST", c.path, ada.Headers(), c.body)
			assertEnvelope(t, r, http.StatusBadRequest, kernel.CodeInvalid, c.field)
		}
		r := call(t, f.url, "POST", "/api/v1/me/mfa/totp/confirm", ada.Headers(), `{"code": "`+strings.Repeat("1", 100)+`"}`)
		assertEnvelope(t, r, http.StatusBadRequest, kernel.CodeInvalid, "body.code")
		if r := call(t, f.url, "GET", "/api/v1/me/mfa", nil, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("MFA status without a session: %d", r.status)
		}
	})
}
