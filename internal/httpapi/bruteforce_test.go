package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// realLimits boots the app with the brute-force limits of production.
func realLimits() testkit.AppOptions {
	l := identity.DefaultLoginLimits()
	return testkit.AppOptions{LoginLimits: &l}
}

// loginFrom logs in through the whole HTTP chain as a client at ip would.
// The booted server sees every test request from 127.0.0.1, so requests
// from elsewhere go to the handler in-process with their RemoteAddr set.
func loginFrom(t *testing.T, f fixture, ip, email, password string) response {
	t.Helper()
	body := `{"email": "` + email + `", "password": "` + password + `"}`
	req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/api/v1/auth/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = ip + ":40000"
	rec := httptest.NewRecorder()
	f.app.Handler().ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	_ = json.Unmarshal(rec.Body.Bytes(), &r.body)
	return r
}

// assert429 checks a rate-limited answer whose Retry-After is within
// [min, max] seconds.
func assert429(t *testing.T, r response, min, max int) {
	t.Helper()
	assertEnvelope(t, r, http.StatusTooManyRequests, kernel.CodeRateLimited)
	after, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || after < min || after > max {
		t.Fatalf("Retry-After %q, want %d to %d seconds", r.header.Get("Retry-After"), min, max)
	}
}

// lockoutMails counts the account_locked emails sent to email.
func lockoutMails(t *testing.T, f fixture, email string) int {
	t.Helper()
	msgs, err := f.app.Services.Mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Tag == mail.TemplateAccountLocked && m.To[0] == email {
			n++
		}
	}
	return n
}

func TestLoginIsLimitedPerAddressOverHTTP(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, realLimits())
		signUp(t, f, "ada@example.com")
		for i := range 5 {
			r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "x`+strconv.Itoa(i)+`@example.com", "password": "wrong"}`)
			assertEnvelope(t, r, http.StatusUnauthorized, kernel.CodeUnauthenticated)
		}
		r := call(t, f.url, "POST", "/api/v1/auth/login", nil, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`)
		assert429(t, r, 12, 13)
		if len(r.header.Values("Set-Cookie")) != 0 {
			t.Fatal("a refused login set a cookie")
		}
		// Another address is not affected; this one is admitted again after Retry-After.
		if r := loginFrom(t, f, "198.51.100.1", "ada@example.com", goodPassword); r.status != http.StatusOK {
			t.Fatalf("another address: %d %s", r.status, r.raw)
		}
		f.app.Clock.Advance(13 * time.Second)
		logIn(t, f, "ada@example.com")
	})
}

// failFromTenAddresses fails ten logins for email, each from its own
// address, and returns the answers.
func failFromTenAddresses(t *testing.T, f fixture, email string, first int) []response {
	t.Helper()
	var out []response
	for i := range 10 {
		r := loginFrom(t, f, "203.0.113."+strconv.Itoa(first+i), email, "not the password at all")
		assertEnvelope(t, r, http.StatusUnauthorized, kernel.CodeUnauthenticated)
		out = append(out, r)
	}
	return out
}

func TestAccountLockoutOverHTTP(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, realLimits())
		signUp(t, f, "ada@example.com")
		known := failFromTenAddresses(t, f, "ada@example.com", 10)
		unknown := failFromTenAddresses(t, f, "ghost@example.com", 30)
		for i := range known {
			if a, b := withoutRequestID(known[i]), withoutRequestID(unknown[i]); a != b {
				t.Fatalf("failure %d answers differently for a known and an unknown address:\n%s\n%s", i+1, a, b)
			}
		}
		// The 11th try is refused, whatever the password and the address.
		lockedKnown := loginFrom(t, f, "203.0.113.99", "ada@example.com", goodPassword)
		lockedUnknown := loginFrom(t, f, "203.0.113.98", "ghost@example.com", goodPassword)
		assert429(t, lockedKnown, 15*60-1, 15*60+1)
		assert429(t, lockedUnknown, 15*60-1, 15*60+1)
		if a, b := withoutRequestID(lockedKnown), withoutRequestID(lockedUnknown); a != b ||
			lockedKnown.header.Get("Retry-After") != lockedUnknown.header.Get("Retry-After") {
			t.Fatalf("the lockout answers differently for a known and an unknown address:\n%s\n%s", a, b)
		}
		if n := lockoutMails(t, f, "ada@example.com"); n != 1 {
			t.Fatalf("%d lockout emails to the owner, want 1", n)
		}
		if n := platformAudit(t, f, "user.locked_out"); n != 2 {
			t.Fatalf("%d user.locked_out entries, want 2", n)
		}
		f.app.Clock.Advance(15 * time.Minute)
		if r := loginFrom(t, f, "203.0.113.97", "ada@example.com", goodPassword); r.status != http.StatusOK {
			t.Fatalf("login after the lockout: %d %s", r.status, r.raw)
		}
	})
}

func TestPasswordResetEndsALockoutOverHTTP(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, realLimits())
		signUp(t, f, "ada@example.com")
		failFromTenAddresses(t, f, "ada@example.com", 10)
		assert429(t, loginFrom(t, f, "203.0.113.99", "ada@example.com", goodPassword), 899, 901)
		// Asking for and using a reset link work while locked.
		token := resetToken(t, f, "ada@example.com")
		if r := call(t, f.url, "POST", "/api/v1/auth/password/reset", nil, resetBody(token, newPassword)); r.status/100 != 2 {
			t.Fatalf("reset while locked: %d %s", r.status, r.raw)
		}
		if r := loginFrom(t, f, "203.0.113.99", "ada@example.com", newPassword); r.status != http.StatusOK {
			t.Fatalf("login after the reset: %d %s", r.status, r.raw)
		}
	})
}

// TestLoginLimitsOnRedis boots the app with ATRIUM_REDIS_URL: the limits
// hold, and /readyz checks Redis. It skips without ATRIUM_TEST_REDIS_URL
// (fails when ATRIUM_REQUIRE_REDIS=1).
func TestLoginLimitsOnRedis(t *testing.T) {
	redisURL := os.Getenv("ATRIUM_TEST_REDIS_URL")
	if redisURL == "" {
		if os.Getenv("ATRIUM_REQUIRE_REDIS") == "1" {
			t.Fatal("ATRIUM_REQUIRE_REDIS=1 but ATRIUM_TEST_REDIS_URL is not set")
		}
		t.Skip("Redis tests skipped: set ATRIUM_TEST_REDIS_URL=redis://127.0.0.1:6379/15")
	}
	f := setup(t, store.SQLite, testkit.AppOptions{Env: map[string]string{"ATRIUM_REDIS_URL": redisURL}})
	r := call(t, f.url, "GET", "/readyz", nil, "")
	if checks, _ := r.body["checks"].(map[string]any); r.status != http.StatusOK || checks["redis"] != "ok" {
		t.Fatalf("/readyz: %d %s", r.status, r.raw)
	}
	// A fresh address per run: runs in parallel share the Redis.
	var b [6]byte
	_, _ = rand.Read(b[:])
	email := "redis-" + hex.EncodeToString(b[:]) + "@example.com"
	failFromTenAddresses(t, f, email, 10)
	assert429(t, loginFrom(t, f, "203.0.113.99", email, goodPassword), 899, 901)
	if strings.Contains(f.app.Logs(), strings.TrimPrefix(redisURL, "redis://")) && strings.Contains(redisURL, "@") {
		t.Fatal("the Redis URL with its password is in the log")
	}
}

func TestWrongMFACodesAreLimitedPerAccount(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		secret, _ := f.app.EnrolTOTP(t, ada)
		f.app.Clock.Advance(30 * time.Second)
		wrong := testkit.TOTPCode(t, secret, f.app.Clock.Now().Add(time.Hour))
		for range 2 { // a challenge takes five codes; the account takes ten an hour
			challenge := mfaLogin(t, f, "ada@example.com")
			for range 5 {
				assertMFAFailed(t, answer(t, f, challenge, wrong))
			}
		}
		challenge := mfaLogin(t, f, "ada@example.com")
		assert429(t, answer(t, f, challenge, testkit.TOTPCode(t, secret, f.app.Clock.Now())), 6*60-1, 6*60+1)
		f.app.Clock.Advance(6 * time.Minute)
		challenge = mfaLogin(t, f, "ada@example.com")
		if r := answer(t, f, challenge, testkit.TOTPCode(t, secret, f.app.Clock.Now())); r.status != http.StatusOK {
			t.Fatalf("a right code after the wait: %d %s", r.status, r.raw)
		}
	})
}

func TestWrongReauthenticationsAreLimited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		for range 10 {
			r := call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(), `{"password": "not the password"}`)
			assertEnvelope(t, r, http.StatusUnauthorized, kernel.CodeUnauthenticated)
		}
		r := call(t, f.url, "POST", "/api/v1/auth/reauthenticate", ada.Headers(), `{"password": "`+goodPassword+`"}`)
		assert429(t, r, 6*60-1, 6*60+1)
		// Logging in is not locked by a stolen session's guesses.
		f.app.LogIn(t, "ada@example.com")
	})
}
