package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestSessionsExpire(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		idle := cookieHeader(logIn(t, f, "ada@example.com"))
		f.app.Clock.Advance(identity.DefaultIdleTimeout - time.Minute)
		if r := call(t, f.url, "GET", "/api/v1/me", idle, ""); r.status != 200 {
			t.Fatalf("inside the idle timeout: %d %s", r.status, r.raw)
		}
		f.app.Clock.Advance(identity.DefaultIdleTimeout)
		r := call(t, f.url, "GET", "/api/v1/me", idle, "")
		assertEnvelope(t, r, 401, kernel.CodeUnauthenticated)
		assertCookieCleared(t, r)

		busy := cookieHeader(logIn(t, f, "ada@example.com"))
		for elapsed := time.Duration(0); elapsed < identity.DefaultLifetime-6*24*time.Hour; elapsed += 6 * 24 * time.Hour {
			f.app.Clock.Advance(6 * 24 * time.Hour)
			if r := call(t, f.url, "GET", "/api/v1/me", busy, ""); r.status != 200 {
				t.Fatalf("used every 6 days, day %d: %d %s", (elapsed+6*24*time.Hour)/(24*time.Hour), r.status, r.raw)
			}
		}
		f.app.Clock.Advance(6 * 24 * time.Hour) // 30 days after login
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", busy, ""), 401, kernel.CodeUnauthenticated)
	})
}

func TestSessionRoutesActOnYourOwnSessionsOnly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		signUp(t, f, "eve@example.com")
		ada := cookieHeader(logIn(t, f, "ada@example.com"))
		f.app.Clock.Advance(time.Second)
		adaPhone := cookieHeader(logIn(t, f, "ada@example.com"))
		eve := cookieHeader(logIn(t, f, "eve@example.com"))

		first := call(t, f.url, "GET", "/api/v1/me/sessions?limit=1", ada, "")
		items, _ := first.body["items"].([]any)
		if first.status != 200 || len(items) != 1 || first.body["has_more"] != true {
			t.Fatalf("first page: %d %s", first.status, first.raw)
		}
		phoneID := items[0].(map[string]any)["id"].(string)
		next := first.body["next_cursor"].(string)
		if r := call(t, f.url, "GET", "/api/v1/me/sessions?limit=1&cursor="+next, ada, ""); r.status != 200 || r.body["has_more"] != false {
			t.Fatalf("second page: %d %s", r.status, r.raw)
		}
		// One person's cursor means nothing in another's list.
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me/sessions?cursor="+next, eve, ""), 400, kernel.CodeInvalid, "query.cursor")

		missing := kernel.FormatID(kernel.PrefixSession, kernel.NewID())
		for name, path := range map[string]string{
			"another person's session": "/api/v1/me/sessions/" + phoneID,
			"unknown session":          "/api/v1/me/sessions/" + missing,
			"malformed ID":             "/api/v1/me/sessions/ses_nope",
			"user ID":                  "/api/v1/me/sessions/" + strings.Replace(phoneID, "ses_", "usr_", 1),
		} {
			t.Run(name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, "DELETE", path, eve, ""), 404, kernel.CodeNotFound)
			})
		}
		if r := call(t, f.url, "GET", "/api/v1/me", adaPhone, ""); r.status != 200 {
			t.Fatalf("eve ended ada's session: %d %s", r.status, r.raw)
		}

		r := call(t, f.url, "POST", "/api/v1/me/sessions/revoke-others", ada, "")
		if r.status != 200 || r.body["revoked"] != float64(1) {
			t.Fatalf("revoke others: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", adaPhone, ""), 401, kernel.CodeUnauthenticated)
		if r := call(t, f.url, "GET", "/api/v1/me", ada, ""); r.status != 200 {
			t.Fatalf("revoke-others ended the current session: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/me", eve, ""); r.status != 200 {
			t.Fatalf("revoke-others ended another person's session: %d %s", r.status, r.raw)
		}
		// Ending the current session through the list clears its cookie.
		current := call(t, f.url, "GET", "/api/v1/me/sessions", ada, "").body["items"].([]any)[0].(map[string]any)["id"].(string)
		r = call(t, f.url, "DELETE", "/api/v1/me/sessions/"+current, ada, "")
		if r.status != http.StatusNoContent {
			t.Fatalf("end the current session: %d %s", r.status, r.raw)
		}
		assertCookieCleared(t, r)
	})
}

func TestMeNeedsAPerson(t *testing.T) {
	f := setup(t, store.SQLite, testkit.AppOptions{})
	for _, path := range []string{"/api/v1/me", "/api/v1/me/sessions"} {
		assertEnvelope(t, call(t, f.url, "GET", path, nil, ""), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, call(t, f.url, "GET", path, f.bearer, ""), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "GET", path, cookieHeader("not-a-session"), ""), 401, kernel.CodeUnauthenticated)
	}
	// Logging out without a session still clears the cookie.
	r := call(t, f.url, "POST", "/api/v1/auth/logout", nil, "")
	if r.status != http.StatusNoContent {
		t.Fatalf("logout without a session: %d %s", r.status, r.raw)
	}
	assertCookieCleared(t, r)
}

func TestStaleCookieDoesNotBlockLoggingInAgain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		stale := cookieHeader(logIn(t, f, "ada@example.com"))
		if r := call(t, f.url, "POST", "/api/v1/auth/logout", stale, ""); r.status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "POST", "/api/v1/auth/logout", stale, ""); r.status != http.StatusNoContent {
			t.Fatalf("logout with an ended session: %d %s", r.status, r.raw)
		}
		r := call(t, f.url, "POST", "/api/v1/auth/login", stale, `{"email": "ada@example.com", "password": "`+goodPassword+`"}`)
		if r.status != 200 {
			t.Fatalf("login with a stale cookie: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/me", cookieHeader(sessionCookie(t, r).Value), ""); r.status != 200 {
			t.Fatalf("the new session: %d %s", r.status, r.raw)
		}
		// A workspace route with a stale cookie is refused, not served anonymously.
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+f.wsID, stale, ""), 401, kernel.CodeUnauthenticated)
	})
}

func TestCookieRoutesRefuseCrossSiteRequests(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		token := logIn(t, f, "ada@example.com")
		other := logIn(t, f, "ada@example.com") // a second session to try to end
		crossSite := func(h map[string]string) map[string]string {
			h["Sec-Fetch-Site"], h["Origin"] = "cross-site", "https://evil.example"
			return h
		}
		cases := []struct {
			name, method, path, body string
			headers                  map[string]string
		}{
			{"logout", "POST", "/api/v1/auth/logout", "", crossSite(cookieHeader(token))},
			{"revoke others", "POST", "/api/v1/me/sessions/revoke-others", "", crossSite(cookieHeader(token))},
			{"resend", "POST", "/api/v1/auth/email/resend", "", crossSite(cookieHeader(token))},
			{"login CSRF", "POST", "/api/v1/auth/login", `{"email": "ada@example.com", "password": "` + goodPassword + `"}`, crossSite(map[string]string{})},
			{"signup", "POST", "/api/v1/auth/signup", `{"email": "eve@example.com", "password": "` + goodPassword + `", "name": "Eve"}`, crossSite(map[string]string{})},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				assertEnvelope(t, call(t, f.url, c.method, c.path, c.headers, c.body), 403, kernel.CodeForbidden)
			})
		}
		sessions := call(t, f.url, "GET", "/api/v1/me/sessions", cookieHeader(token), "")
		if items, _ := sessions.body["items"].([]any); sessions.status != 200 || len(items) != 2 {
			t.Fatalf("cross-site requests changed the sessions: %d %s", sessions.status, sessions.raw)
		}
		otherID := sessions.body["items"].([]any)[0].(map[string]any)["id"].(string)
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me/sessions/"+otherID, crossSite(cookieHeader(token)), ""), 403, kernel.CodeForbidden)
		if r := call(t, f.url, "GET", "/api/v1/me", cookieHeader(other), ""); r.status != 200 {
			t.Fatalf("a cross-site DELETE ended a session: %d %s", r.status, r.raw)
		}
		sameOrigin := cookieHeader(token)
		sameOrigin["Sec-Fetch-Site"] = "same-origin"
		if r := call(t, f.url, "DELETE", "/api/v1/me/sessions/"+otherID, sameOrigin, ""); r.status != http.StatusNoContent {
			t.Fatalf("same-origin DELETE: %d %s", r.status, r.raw)
		}
	})
}

func TestSessionAndBearerCompose(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		signUp(t, f, "ada@example.com")
		session := cookieHeader(logIn(t, f, "ada@example.com"))
		if r := call(t, f.url, "GET", "/api/v1/me", session, ""); r.status != 200 {
			t.Fatalf("session: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+f.wsID, f.bearer, ""); r.status != 200 {
			t.Fatalf("bearer test key: %d %s", r.status, r.raw)
		}
		// Users reach no workspace until memberships exist: the same 404 as a stranger.
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+f.wsID, session, ""), 404, kernel.CodeNotFound)
	})
}
