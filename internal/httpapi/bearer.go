package httpapi

import (
	"context"
	"net/http"
	"strings"

	"atrium/internal/identity"
	"atrium/internal/kernel"
)

// BearerAuthenticator resolves an API key or a personal access token;
// identity.Service is one.
type BearerAuthenticator interface {
	AuthenticateBearer(ctx context.Context, secret string) (kernel.Actor, error)
}

// BearerTokens authenticates a request by an API key or a personal access
// token in its Authorization header, and only there: a secret in the query
// string is never read (and unknown query parameters are refused anyway).
// A request with no Authorization header, or one carrying some other kind of
// credential, is left to the next Authenticator of a chain; RefuseUnclaimed
// ends the chain so that nothing unclaimed passes as anonymous.
type BearerTokens struct {
	Tokens BearerAuthenticator
}

// Authenticate returns the key's or the token's actor, the anonymous actor
// when the request carries no Atrium bearer secret, an unauthenticated
// *kernel.Error when it carries one that does not authenticate, or the
// store's error.
func (a BearerTokens) Authenticate(r *http.Request) (kernel.Actor, error) {
	secret, ok := bearerSecret(r)
	if !ok || !identity.IsBearerSecret(secret) {
		return kernel.Actor{}, nil
	}
	return a.Tokens.AuthenticateBearer(r.Context(), secret)
}

// RefuseUnclaimed is the last Authenticator of a chain: an Authorization
// header no one before it accepted is bad credentials, never none.
type RefuseUnclaimed struct{}

// Authenticate returns an unauthenticated *kernel.Error when the request has
// an Authorization header, and the anonymous actor otherwise.
func (RefuseUnclaimed) Authenticate(r *http.Request) (kernel.Actor, error) {
	if r.Header.Get("Authorization") != "" {
		return kernel.Actor{}, &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "invalid credentials"}
	}
	return kernel.Actor{}, nil
}

// bearerSecret returns the credential of an "Authorization: Bearer" header.
func bearerSecret(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return "", false
	}
	return secret, true
}
