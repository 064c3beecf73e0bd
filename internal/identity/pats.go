package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

const (
	patColumns = "id, user_id, name, only_workspace_id, prefix, created_at, expires_at, last_used_at, revoked_at"

	insertPATSQL = `INSERT INTO personal_token (id, user_id, name, only_workspace_id, token_hash, prefix, created_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	selectPATByHashSQL = "SELECT " + patColumns + " FROM personal_token WHERE token_hash = $1"
	touchPATSQL        = `UPDATE personal_token SET last_used_at = $2
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)`
	listPATsFirstSQL = "SELECT " + patColumns + ` FROM personal_token WHERE user_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2`
	listPATsAfterSQL = "SELECT " + patColumns + ` FROM personal_token WHERE user_id = $1
          AND (created_at, id) < ($3, $4)
        ORDER BY created_at DESC, id DESC LIMIT $2`
	revokePATSQL = "UPDATE personal_token SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL"
)

// PAT is a personal access token as its owner sees it. Its secret is shown
// once, at creation; its hash never leaves this package.
type PAT struct {
	ID     uuid.UUID
	UserID uuid.UUID
	Name   string
	// OnlyWorkspace confines the token to one workspace; uuid.Nil for none.
	OnlyWorkspace uuid.UUID
	Prefix        string
	CreatedAt     time.Time
	ExpiresAt     *time.Time
	LastUsedAt    *time.Time
	RevokedAt     *time.Time
}

// NewPAT is what a personal access token is created from.
type NewPAT struct {
	Name          string
	OnlyWorkspace uuid.UUID // uuid.Nil: every workspace the person belongs to
	ExpiresAt     *time.Time
}

// CreatePAT makes a token for the person acting and returns it with its
// secret, which is never available again; the creation is audited in the
// same transaction. Only a person signed in with a session may create one,
// so a leaked token cannot mint others. It returns forbidden for any other
// actor, invalid for a bad name or expiry, reauthentication_required unless
// the session authenticated recently (policy.RequireRecentAuth), or the
// store's error.
func (s *Service) CreatePAT(ctx context.Context, in NewPAT) (PAT, string, error) {
	actor := kernel.ActorFrom(ctx)
	if actor.Kind != kernel.ActorUser || actor.Via != kernel.ViaCookie {
		return PAT{}, "", &kernel.Error{Code: kernel.CodeForbidden, Message: "sign in with a session to create a token"}
	}
	name, err := validateName(in.Name)
	if err != nil {
		return PAT{}, "", err
	}
	secret, hash, prefix := newPATSecret()
	pat := PAT{ID: kernel.NewID(), UserID: actor.ID, Name: name, OnlyWorkspace: in.OnlyWorkspace, Prefix: prefix,
		ExpiresAt: in.ExpiresAt}
	var only *uuid.UUID
	if in.OnlyWorkspace != uuid.Nil {
		only = &in.OnlyWorkspace
	}
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		if err := policy.RequireRecentAuth(actor, tx.Now()); err != nil {
			return err
		}
		pat.CreatedAt = tx.Now()
		if err := validExpiry(tx.Now(), in.ExpiresAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertPATSQL, pat.ID, pat.UserID, pat.Name, only, hash, prefix, pat.CreatedAt,
			pat.ExpiresAt); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "personal_token.created", TargetType: "personal_token",
			TargetID: kernel.FormatID(kernel.PrefixPAT, pat.ID), Metadata: map[string]any{"name": pat.Name}})
		return err
	})
	if err != nil {
		return PAT{}, "", fmt.Errorf("identity: create token: %w", err)
	}
	return pat, secret, nil
}

// ListPATs returns up to limit of the person's tokens, revoked ones included,
// newest first, starting after position (nil for the first page). It returns
// the store's error.
func (s *Service) ListPATs(ctx context.Context, userID uuid.UUID, after *TokenPosition, limit int) ([]PAT, error) {
	var out []PAT
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == nil {
			rows, err = tx.Query(ctx, listPATsFirstSQL, userID, limit)
		} else {
			rows, err = tx.Query(ctx, listPATsAfterSQL, userID, limit, after.CreatedAt, after.ID)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanPAT)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("identity: list tokens: %w", err)
	}
	return out, nil
}

// RevokePAT ends one of the person's tokens and audits it. It returns
// not_found when the token does not exist, is someone else's or is already
// revoked, or the store's error.
func (s *Service) RevokePAT(ctx context.Context, userID, id uuid.UUID) error {
	defer s.forgetUser(userID)
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		n, err := tx.Exec(ctx, revokePATSQL, id, userID, tx.Now())
		if err != nil {
			return err
		}
		if n == 0 {
			return kernel.NotFound("token")
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "personal_token.revoked", TargetType: "personal_token",
			TargetID: kernel.FormatID(kernel.PrefixPAT, id)})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: revoke token: %w", err)
	}
	return nil
}

// authenticatePAT reads the token in one platform read (one round trip, none
// when the auth cache holds it) and returns its
// person, confined to its workspace when it has one. At most once a minute
// per token it also records the use. It returns the generic unauthenticated
// error for a malformed, unknown, revoked or expired token, or the store's
// error.
func (s *Service) authenticatePAT(ctx context.Context, secret string) (kernel.Actor, error) {
	if !parsePAT(secret) {
		return kernel.Actor{}, errBadBearer()
	}
	hash := hashToken(secret)
	ticket, cached := s.cache.Begin(ctx)
	pat, err := s.readPAT(ctx, ticket, cached, hash)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.Actor{}, errBadBearer()
	}
	if err != nil {
		return kernel.Actor{}, fmt.Errorf("identity: authenticate token: %w", err)
	}
	now := s.clock.Now()
	if !usable(now, pat.ExpiresAt, pat.RevokedAt) {
		return kernel.Actor{}, errBadBearer()
	}
	if stale(now, pat.LastUsedAt) && s.touchPAT(ctx, pat.ID) && cached {
		pat.LastUsedAt = &now
		s.cache.Update(ticket, patCacheKey(hash), pat)
	}
	return kernel.Actor{Kind: kernel.ActorUser, ID: pat.UserID, Via: kernel.ViaBearer, OnlyWorkspace: pat.OnlyWorkspace}, nil
}

// readPAT returns the token whose secret hashes to hash: from the cache when
// cached is true and it holds it, else in one platform read, caching an
// unrevoked token until its expiry at the latest. It returns not_found or
// the store's error, neither cached.
func (s *Service) readPAT(ctx context.Context, ticket authcache.Ticket, cached bool, hash string) (PAT, error) {
	key := patCacheKey(hash)
	if cached {
		if v, ok := s.cache.Get(key); ok {
			return v.(PAT), nil
		}
	}
	pat, err := scanPAT(s.db.PlatformRow(ctx, selectPATByHashSQL, hash))
	if err == nil && cached && pat.RevokedAt == nil {
		s.cache.Put(ticket, key, pat, expiryOrNever(pat.ExpiresAt), authcache.PATTag(pat.ID), authcache.UserTag(pat.UserID))
	}
	return pat, err
}

func patCacheKey(hash string) string { return "pat/" + hash }

// touchPAT records that the token was used now. A failure is logged and
// otherwise ignored: the request it serves is valid. It reports whether the
// write succeeded.
func (s *Service) touchPAT(ctx context.Context, id uuid.UUID) bool {
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, touchPATSQL, id, tx.Now(), tx.Now().Add(-touchInterval))
		return err
	})
	if err != nil {
		s.logger.WarnContext(ctx, "record token use", "token_id", kernel.FormatID(kernel.PrefixPAT, id), "error", err.Error())
	}
	return err == nil
}

func scanPAT(row store.Row) (PAT, error) {
	var p PAT
	var only uuid.NullUUID
	err := row.Scan(&p.ID, &p.UserID, &p.Name, &only, &p.Prefix, &p.CreatedAt, &p.ExpiresAt, &p.LastUsedAt, &p.RevokedAt)
	if err != nil {
		return PAT{}, err
	}
	if only.Valid {
		p.OnlyWorkspace = only.UUID
	}
	p.CreatedAt = p.CreatedAt.UTC()
	p.ExpiresAt, p.LastUsedAt, p.RevokedAt = utcPtr(p.ExpiresAt), utcPtr(p.LastUsedAt), utcPtr(p.RevokedAt)
	return p, nil
}
