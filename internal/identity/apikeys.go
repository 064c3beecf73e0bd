package identity

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

const (
	apiKeyColumns = "id, workspace_id, name, scopes, prefix, created_by, created_at, expires_at, last_used_at, revoked_at"

	insertAPIKeySQL = `INSERT INTO api_key (id, workspace_id, name, scopes, token_hash, prefix, created_by, created_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	// The workspace_id filter repeats what row-level security enforces on
	// PostgreSQL, for SQLite, which has none.
	selectAPIKeyByHashSQL = "SELECT " + apiKeyColumns + " FROM api_key WHERE token_hash = $1 AND workspace_id = $2"
	touchAPIKeySQL        = `UPDATE api_key SET last_used_at = $2
        WHERE id = $1 AND workspace_id = $3 AND (last_used_at IS NULL OR last_used_at <= $4)`
	listAPIKeysFirstSQL = "SELECT " + apiKeyColumns + ` FROM api_key WHERE workspace_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2`
	listAPIKeysAfterSQL = "SELECT " + apiKeyColumns + ` FROM api_key WHERE workspace_id = $1
          AND (created_at, id) < ($3, $4)
        ORDER BY created_at DESC, id DESC LIMIT $2`
	revokeAPIKeySQL = `UPDATE api_key SET revoked_at = $3 WHERE id = $1 AND workspace_id = $2 AND revoked_at IS NULL
        RETURNING ` + apiKeyColumns
	workspaceDeletedAtSQL = "SELECT deleted_at FROM workspace WHERE id = $1"
)

// APIKey is a workspace API key as its workspace's admins see it. Its secret
// is shown once, at creation; its hash never leaves this package.
type APIKey struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	Scopes      kernel.Scopes
	// Prefix is the start of the secret, to tell keys apart.
	Prefix     string
	CreatedBy  uuid.UUID
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// NewAPIKey is what a key is created from.
type NewAPIKey struct {
	Name      string
	Scopes    []string
	ExpiresAt *time.Time
}

// CreateAPIKey makes a key for the workspace of res and returns it with its
// secret, which is never available again; it is audited and emitted as
// api_key.created in the same transaction. It returns forbidden unless the
// actor is a person whose role allows policy.APIKeyManage, email_unverified
// when that person has not verified their address, invalid for a bad name,
// scope or expiry, reauthentication_required unless the actor is a session
// that authenticated recently (policy.RequireRecentAuth), workspace_inactive
// for a deleted workspace, or the store's error.
func (s *Service) CreateAPIKey(ctx context.Context, res policy.Resource, in NewAPIKey) (APIKey, string, error) {
	actor := kernel.ActorFrom(ctx)
	if err := policy.Check(actor, policy.APIKeyManage, res); err != nil {
		return APIKey{}, "", err
	}
	if err := s.requireVerified(ctx, actor.ID); err != nil {
		return APIKey{}, "", err
	}
	name, err := validateName(in.Name)
	if err != nil {
		return APIKey{}, "", err
	}
	scopes, err := policy.ParseScopes("scopes", in.Scopes)
	if err != nil {
		return APIKey{}, "", err
	}
	secret, hash, prefix := newAPIKeySecret(res.Workspace)
	key := APIKey{ID: kernel.NewID(), WorkspaceID: res.Workspace, Name: name, Scopes: scopes, Prefix: prefix,
		CreatedBy: actor.ID, ExpiresAt: in.ExpiresAt}
	err = s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if err := policy.RequireRecentAuth(actor, tx.Now()); err != nil {
			return err
		}
		key.CreatedAt = tx.Now()
		if err := validExpiry(tx.Now(), in.ExpiresAt); err != nil {
			return err
		}
		if err := requireActive(ctx, tx, res.Workspace); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertAPIKeySQL, key.ID, key.WorkspaceID, key.Name, strings.Join(policy.ScopeNames(scopes), ","),
			hash, prefix, key.CreatedBy, key.CreatedAt, key.ExpiresAt)
		if err != nil {
			return err
		}
		return recordKey(ctx, tx, EventAPIKeyCreated, key)
	})
	if err != nil {
		return APIKey{}, "", fmt.Errorf("identity: create API key: %w", err)
	}
	return key, secret, nil
}

// requireVerified returns email_unverified unless the person has verified
// their address, or the store's error.
func (s *Service) requireVerified(ctx context.Context, userID uuid.UUID) error {
	u, err := s.User(ctx, userID)
	if err != nil {
		return err
	}
	if !u.EmailVerified() {
		return &kernel.Error{Code: kernel.CodeEmailUnverified, Message: "verify your email address before creating a key"}
	}
	return nil
}

// requireActive returns workspace_inactive when the workspace is deleted,
// not_found when it does not exist, or the store's error.
func requireActive(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) error {
	var deletedAt *time.Time
	if err := tx.QueryRow(ctx, workspaceDeletedAtSQL, workspaceID).Scan(&deletedAt); err != nil {
		return err
	}
	if deletedAt != nil {
		return &kernel.Error{Code: kernel.CodeWorkspaceInactive, Message: "the workspace is deleted: restore it to make changes"}
	}
	return nil
}

// recordKey audits a key's creation or revocation and emits the event.
func recordKey(ctx context.Context, tx store.Tx, action string, key APIKey) error {
	id := kernel.FormatID(kernel.PrefixAPIKey, key.ID)
	_, err := audit.Record(ctx, tx, audit.Entry{Action: action, TargetType: "api_key", TargetID: id,
		Metadata: map[string]any{"name": key.Name, "scopes": policy.ScopeNames(key.Scopes)}})
	if err != nil {
		return err
	}
	_, err = events.Append(ctx, tx, events.Event{Type: action, Payload: apiKeyEvent(key)})
	return err
}

// ListAPIKeys returns up to limit of the workspace's keys, revoked ones
// included, newest first, starting after position (nil for the first page).
// It returns forbidden unless the actor may manage keys, or the store's error.
func (s *Service) ListAPIKeys(ctx context.Context, res policy.Resource, after *TokenPosition, limit int) ([]APIKey, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.APIKeyManage, res); err != nil {
		return nil, err
	}
	var out []APIKey
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == nil {
			rows, err = tx.Query(ctx, listAPIKeysFirstSQL, res.Workspace, limit)
		} else {
			rows, err = tx.Query(ctx, listAPIKeysAfterSQL, res.Workspace, limit, after.CreatedAt, after.ID)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanAPIKey)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("identity: list API keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey ends a key for good, audited and emitted as api_key.revoked.
// It returns forbidden unless the actor may manage keys, not_found when the
// key does not exist, belongs to another workspace or is already revoked, or
// the store's error.
func (s *Service) RevokeAPIKey(ctx context.Context, res policy.Resource, id uuid.UUID) error {
	defer s.forget(authcache.KeyTag(id))
	if err := policy.Check(kernel.ActorFrom(ctx), policy.APIKeyManage, res); err != nil {
		return err
	}
	err := s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		key, err := scanAPIKey(tx.QueryRow(ctx, revokeAPIKeySQL, id, res.Workspace, tx.Now()))
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return kernel.NotFound("API key")
		}
		if err != nil {
			return err
		}
		return recordKey(ctx, tx, EventAPIKeyRevoked, key)
	})
	if err != nil {
		return fmt.Errorf("identity: revoke API key: %w", err)
	}
	return nil
}

// authenticateAPIKey reads the key in the workspace its secret names, in one
// round trip or none when the auth cache holds it, and returns its actor. At most once a minute per key it also
// records the use. It returns the generic unauthenticated error for a
// malformed, unknown, revoked or expired key, or the store's error.
func (s *Service) authenticateAPIKey(ctx context.Context, secret string) (kernel.Actor, error) {
	workspaceID, ok := parseAPIKey(secret)
	if !ok {
		return kernel.Actor{}, errBadBearer()
	}
	hash := hashToken(secret)
	ticket, cached := s.cache.Begin(ctx)
	key, err := s.readAPIKey(ctx, ticket, cached, workspaceID, hash)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.Actor{}, errBadBearer()
	}
	if err != nil {
		return kernel.Actor{}, fmt.Errorf("identity: authenticate API key: %w", err)
	}
	now := s.clock.Now()
	if !usable(now, key.ExpiresAt, key.RevokedAt) {
		return kernel.Actor{}, errBadBearer()
	}
	if stale(now, key.LastUsedAt) && s.touchAPIKey(ctx, key) && cached {
		key.LastUsedAt = &now
		s.cache.Update(ticket, apiKeyCacheKey(hash), key)
	}
	return kernel.Actor{Kind: kernel.ActorAPIKey, ID: key.ID, Via: kernel.ViaBearer, WorkspaceID: key.WorkspaceID,
		Scopes: key.Scopes}, nil
}

// readAPIKey returns the key of workspaceID whose secret hashes to hash: from
// the cache when cached is true and it holds it, else in one round trip,
// caching an unrevoked key until its expiry at the latest. It returns
// not_found or the store's error, neither cached.
func (s *Service) readAPIKey(ctx context.Context, ticket authcache.Ticket, cached bool, workspaceID uuid.UUID, hash string) (APIKey, error) {
	cacheKey := apiKeyCacheKey(hash)
	if cached {
		if v, ok := s.cache.Get(cacheKey); ok {
			return v.(APIKey), nil
		}
	}
	key, err := scanAPIKey(s.db.WorkspaceRow(ctx, workspaceID, selectAPIKeyByHashSQL, hash, workspaceID))
	if err == nil && cached && key.RevokedAt == nil {
		s.cache.Put(ticket, cacheKey, key, expiryOrNever(key.ExpiresAt), authcache.KeyTag(key.ID))
	}
	return key, err
}

func apiKeyCacheKey(hash string) string { return "api_key/" + hash }

// touchAPIKey records that the key was used now. A failure is logged and
// otherwise ignored: the request it serves is valid. It reports whether the
// write succeeded.
func (s *Service) touchAPIKey(ctx context.Context, key APIKey) bool {
	err := s.db.InWorkspace(ctx, key.WorkspaceID, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, touchAPIKeySQL, key.ID, tx.Now(), key.WorkspaceID, tx.Now().Add(-touchInterval))
		return err
	})
	if err != nil {
		s.logger.WarnContext(ctx, "record API key use", "api_key_id", kernel.FormatID(kernel.PrefixAPIKey, key.ID),
			"error", err.Error())
	}
	return err == nil
}

func scanAPIKey(row store.Row) (APIKey, error) {
	var k APIKey
	var scopes string
	err := row.Scan(&k.ID, &k.WorkspaceID, &k.Name, &scopes, &k.Prefix, &k.CreatedBy, &k.CreatedAt,
		&k.ExpiresAt, &k.LastUsedAt, &k.RevokedAt)
	if err != nil {
		return APIKey{}, err
	}
	if k.Scopes, err = policy.ParseScopes("scopes", strings.Split(scopes, ",")); err != nil {
		return APIKey{}, kernel.Internal(fmt.Errorf("api key %s: stored scopes %q: %w", k.ID, scopes, err))
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = utcPtr(k.ExpiresAt), utcPtr(k.LastUsedAt), utcPtr(k.RevokedAt)
	return k, nil
}
