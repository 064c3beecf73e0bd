package identity

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// Bearer secrets. A workspace API key reads
//
//	atr_<26 characters: the workspace's TypeID suffix>_<43 characters of secret>
//
// so that authentication knows which workspace to read the key in before it
// reads anything; a personal access token reads atp_<43 characters>. Only the
// SHA-256 of the whole text is stored, so editing the workspace part of a real
// key yields a hash that matches nothing.
const (
	APIKeyPrefix = "atr_"
	PATPrefix    = "atp_"

	workspacePartLength = 26
	apiKeyLength        = len(APIKeyPrefix) + workspacePartLength + 1 + TokenLength
	patLength           = len(PATPrefix) + TokenLength

	// shownSecretChars is how many characters of a secret's random part the
	// stored prefix keeps, so people can tell their keys apart in a list.
	shownSecretChars = 6
)

// errBadBearer is the one answer for a bearer secret that is malformed,
// unknown, revoked, expired or forged: which of these it was is nobody's
// business but the log's.
func errBadBearer() error {
	return &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "invalid credentials"}
}

// IsBearerSecret reports whether s is shaped like an API key or a personal
// access token (by its prefix only), so an authenticator can tell Atrium's
// secrets from other bearer credentials.
func IsBearerSecret(s string) bool {
	return strings.HasPrefix(s, APIKeyPrefix) || strings.HasPrefix(s, PATPrefix)
}

// AuthenticateBearer returns the actor an API key or a personal access token
// stands for. It returns an unauthenticated *kernel.Error, the same for every
// reason, when the secret is malformed, unknown, revoked or expired, or the
// store's error.
func (s *Service) AuthenticateBearer(ctx context.Context, secret string) (kernel.Actor, error) {
	switch {
	case strings.HasPrefix(secret, APIKeyPrefix):
		return s.authenticateAPIKey(ctx, secret)
	case strings.HasPrefix(secret, PATPrefix):
		return s.authenticatePAT(ctx, secret)
	}
	return kernel.Actor{}, errBadBearer()
}

// newAPIKeySecret returns a fresh API-key secret for workspaceID, its hash and
// the prefix to show in lists.
func newAPIKeySecret(workspaceID uuid.UUID) (secret, hash, prefix string) {
	random, _ := newToken()
	secret = APIKeyPrefix + workspacePart(workspaceID) + "_" + random
	return secret, hashToken(secret), secret[:apiKeyLength-TokenLength+shownSecretChars]
}

// newPATSecret returns a fresh personal access token, its hash and the prefix
// to show in lists.
func newPATSecret() (secret, hash, prefix string) {
	random, _ := newToken()
	secret = PATPrefix + random
	return secret, hashToken(secret), secret[:len(PATPrefix)+shownSecretChars]
}

// workspacePart is the workspace's TypeID without its "ws_".
func workspacePart(workspaceID uuid.UUID) string {
	return kernel.FormatID(kernel.PrefixWorkspace, workspaceID)[len(kernel.PrefixWorkspace)+1:]
}

// parseAPIKey returns the workspace an API-key secret names. It reports false
// for anything not shaped exactly like an issued key.
func parseAPIKey(secret string) (uuid.UUID, bool) {
	if len(secret) != apiKeyLength || !strings.HasPrefix(secret, APIKeyPrefix) {
		return uuid.Nil, false
	}
	rest := secret[len(APIKeyPrefix):]
	if rest[workspacePartLength] != '_' || !wellFormed(rest[workspacePartLength+1:]) {
		return uuid.Nil, false
	}
	ws, err := kernel.ParseID(kernel.PrefixWorkspace, kernel.PrefixWorkspace+"_"+rest[:workspacePartLength])
	return ws, err == nil && ws != uuid.Nil
}

// parsePAT reports whether secret is shaped exactly like an issued personal
// access token.
func parsePAT(secret string) bool {
	return len(secret) == patLength && strings.HasPrefix(secret, PATPrefix) && wellFormed(secret[len(PATPrefix):])
}

// usable reports whether a secret with these dates works at now.
func usable(now time.Time, expiresAt, revokedAt *time.Time) bool {
	return revokedAt == nil && (expiresAt == nil || now.Before(*expiresAt))
}

// stale reports whether last_used_at should be written again.
func stale(now time.Time, lastUsedAt *time.Time) bool {
	return lastUsedAt == nil || now.Sub(*lastUsedAt) >= touchInterval
}

// expiryOrNever is expiresAt, or the zero time (no bound but the auth
// cache's own TTL) for a secret that never expires.
func expiryOrNever(expiresAt *time.Time) time.Time {
	if expiresAt == nil {
		return time.Time{}
	}
	return *expiresAt
}

// validExpiry returns an invalid *kernel.Error naming expires_at unless it is
// nil or after now.
func validExpiry(now time.Time, expiresAt *time.Time) error {
	if expiresAt != nil && !expiresAt.After(now) {
		return kernel.Invalid("expires_at", "must be in the future")
	}
	return nil
}

// TokenPosition is where a page of API keys or tokens ends: the sort key of
// its last item.
type TokenPosition struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}
