package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"atrium/internal/identity"
	"atrium/internal/kernel"
)

// SessionCookieName is the cookie that carries a session token. The __Host-
// prefix makes browsers refuse the cookie unless it is Secure, has Path=/ and
// no Domain, so no sibling subdomain can set or shadow it.
//
// The cookie is always Secure, in development too: browsers (Chromium,
// Firefox, Safari) treat http://localhost and http://127.0.0.1 as secure
// contexts and accept Secure cookies there, so plain-HTTP development on
// loopback works unchanged. Other plain-HTTP origins cannot hold a session;
// serve them over HTTPS.
const SessionCookieName = "__Host-atrium_session"

// SessionAuthenticator resolves a session token; identity.Service is one.
type SessionAuthenticator interface {
	Authenticate(ctx context.Context, token string) (kernel.Actor, identity.Session, error)
}

// SessionCookie authenticates a request by its session cookie. A request
// without the cookie is left to the next Authenticator of a chain.
type SessionCookie struct {
	Sessions SessionAuthenticator
}

// errStaleSession marks a session cookie that no longer authenticates, so
// the auth middleware can tell the browser to drop it.
var errStaleSession = errors.New("httpapi: stale session cookie")

// Authenticate returns the session's user (Via cookie), the anonymous actor
// when there is no session cookie, an unauthenticated *kernel.Error when the
// cookie's session has ended or never existed, or the store's error.
func (a SessionCookie) Authenticate(r *http.Request) (kernel.Actor, error) {
	c, err := r.Cookie(SessionCookieName)
	if err != nil || c.Value == "" {
		return kernel.Actor{}, nil
	}
	actor, _, err := a.Sessions.Authenticate(r.Context(), c.Value)
	if kernel.IsCode(err, kernel.CodeUnauthenticated) {
		return kernel.Actor{}, &kernel.Error{Code: kernel.CodeUnauthenticated, Message: kernel.As(err).Message, Err: errStaleSession}
	}
	return actor, err
}

// AuthChain tries each Authenticator in turn. The first to find credentials
// decides, with an actor or with an error for bad ones; when none finds any,
// the caller is anonymous. Atrium puts the session cookie first and bearer
// credentials (API keys, personal access tokens) after it, so a request
// carrying a cookie is always held to the cookie's CSRF rules.
type AuthChain []Authenticator

// Authenticate returns the first authenticated actor or error of the chain.
func (c AuthChain) Authenticate(r *http.Request) (kernel.Actor, error) {
	for _, a := range c {
		actor, err := a.Authenticate(r)
		if err != nil || actor.IsAuthenticated() {
			return actor, err
		}
	}
	return kernel.Actor{}, nil
}

// sessionCookie is the Set-Cookie value that hands token to the browser for
// maxAge: HttpOnly (no script reads it), Secure, SameSite=Lax (not sent on
// cross-site subrequests or cross-site POSTs), Path=/ and no Domain.
func sessionCookie(token string, maxAge time.Duration) string {
	c := http.Cookie{Name: SessionCookieName, Value: token, Path: "/", MaxAge: int(maxAge / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	return c.String()
}

// clearedSessionCookie is the Set-Cookie value that makes the browser drop
// the session cookie. It repeats the attributes the __Host- prefix demands,
// or the browser would ignore it.
func clearedSessionCookie() string {
	c := http.Cookie{Name: SessionCookieName, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	return c.String()
}

// credentialRoutes work without a session and so also with a stale one: a
// browser whose session ended must still be able to log in again (with a
// password or a magic link), sign up, verify an address, reset a password or
// log out.
var credentialRoutes = map[string]bool{
	authPrefix + "signup":       true,
	authPrefix + "login":        true,
	authPrefix + "login/mfa":    true,
	authPrefix + "logout":       true,
	authPrefix + "email/verify": true,
	authPrefix + "email/change": true, // the confirmation link may be opened anywhere
	// Someone whose session ended is exactly who needs these.
	authPrefix + "password/forgot":   true,
	authPrefix + "password/reset":    true,
	authPrefix + "magic-link":        true,
	authPrefix + "magic-link/verify": true,
}

// authPrefix starts the routes that issue or end credentials.
const authPrefix = "/api/v1/auth/"
