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
)

const (
	selectSessionByHashSQL = "SELECT " + sessionColumns + " FROM user_session WHERE token_hash = $1"
	// touchSessionSQL moves the idle expiry; the last_seen_at condition makes
	// two requests racing past the minute write once.
	touchSessionSQL = `UPDATE user_session SET last_seen_at = $2, idle_expires_at = $3
        WHERE id = $1 AND revoked_at IS NULL AND last_seen_at <= $4`
	// Active sessions of a user, newest first, served by user_session_user_created.
	listSessionsFirstSQL = "SELECT " + sessionColumns + ` FROM user_session
        WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 AND expires_at > $2
        ORDER BY created_at DESC, id DESC LIMIT $3`
	listSessionsAfterSQL = "SELECT " + sessionColumns + ` FROM user_session
        WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 AND expires_at > $2
          AND (created_at, id) < ($4, $5)
        ORDER BY created_at DESC, id DESC LIMIT $3`
	revokeSessionSQL = `UPDATE user_session SET revoked_at = $3
        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND idle_expires_at > $3 AND expires_at > $3`
	revokeOtherSessionsSQL = `UPDATE user_session SET revoked_at = $3
        WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL`
)

// errSessionEnded is the one answer for a session token that is malformed,
// unknown, revoked or expired.
func errSessionEnded() error {
	return &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "the session has ended; log in again"}
}

// Authenticate returns the actor a session token stands for (a user, via a
// cookie, carrying the session's ID) and the session. It costs one store
// round trip (store.DB.PlatformRow), or none when the auth cache holds the
// session; at most once a minute per session it
// also writes, to push the idle expiry forward. It returns an unauthenticated *kernel.Error if the token is
// malformed or unknown, or its session is revoked, idle for longer than the
// idle timeout or older than the lifetime; or the store's error.
func (s *Service) Authenticate(ctx context.Context, token string) (kernel.Actor, Session, error) {
	if !wellFormed(token) {
		return kernel.Actor{}, Session{}, errSessionEnded()
	}
	hash := hashToken(token)
	ticket, cached := s.cache.Begin(ctx)
	sess, err := s.readSession(ctx, ticket, cached, hash)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.Actor{}, Session{}, errSessionEnded()
	}
	if err != nil {
		return kernel.Actor{}, Session{}, fmt.Errorf("identity: authenticate: %w", err)
	}
	now := s.clock.Now()
	if !sess.ActiveAt(now) {
		return kernel.Actor{}, Session{}, errSessionEnded()
	}
	if now.Sub(sess.LastSeenAt) >= touchInterval && s.touch(ctx, &sess) && cached {
		// Whether this node or another wrote it, last_seen_at is recent now:
		// the cached copy must not make every request write again.
		recent := sess
		if recent.LastSeenAt.Before(now) {
			recent.LastSeenAt = now
		}
		s.cache.Update(ticket, sessionCacheKey(hash), recent)
	}
	actor := kernel.Actor{Kind: kernel.ActorUser, ID: sess.UserID, Via: kernel.ViaCookie, SessionID: sess.ID,
		AuthenticatedAt: sess.ReauthenticatedAt}
	return actor, sess, nil
}

// readSession returns the session whose token hashes to hash: from the cache
// when cached is true and it holds it, else in one store round trip (a
// platform read needs no transaction of its own), caching an unrevoked
// session until its idle expiry at the latest. It returns not_found or the
// store's error, neither cached.
func (s *Service) readSession(ctx context.Context, ticket authcache.Ticket, cached bool, hash string) (Session, error) {
	key := sessionCacheKey(hash)
	if cached {
		if v, ok := s.cache.Get(key); ok {
			return v.(Session), nil
		}
	}
	sess, err := scanSession(s.db.PlatformRow(ctx, selectSessionByHashSQL, hash))
	if err == nil && cached && sess.RevokedAt == nil {
		s.cache.Put(ticket, key, sess, minTime(sess.IdleExpiresAt, sess.ExpiresAt),
			authcache.SessionTag(sess.ID), authcache.UserTag(sess.UserID))
	}
	return sess, err
}

func sessionCacheKey(hash string) string { return "session/" + hash }

// touch records that the session was used now and moves its idle expiry. A
// failure is logged and otherwise ignored: the request it serves is valid,
// and the next one tries again. It reports whether the write succeeded (it
// may have changed nothing, when another request or node wrote first).
func (s *Service) touch(ctx context.Context, sess *Session) bool {
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		idle := minTime(now.Add(s.idle), sess.ExpiresAt)
		n, err := tx.Exec(ctx, touchSessionSQL, sess.ID, now, idle, now.Add(-touchInterval))
		if err == nil && n == 1 {
			sess.LastSeenAt, sess.IdleExpiresAt = now, idle
		}
		return err
	})
	if err != nil {
		s.logger.WarnContext(ctx, "record session use", "session_id", apiSessionID(sess.ID), "error", err.Error())
	}
	return err == nil
}

// SessionPosition is where a page of sessions ends: the sort key of its last item.
type SessionPosition struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

// ListSessions returns up to limit of the user's active sessions, newest
// first, starting after position (nil for the first page). Callers ask for
// one more than they show to learn whether another page follows. It returns
// the store's error.
func (s *Service) ListSessions(ctx context.Context, userID uuid.UUID, after *SessionPosition, limit int) ([]Session, error) {
	var out []Session
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == nil {
			rows, err = tx.Query(ctx, listSessionsFirstSQL, userID, tx.Now(), limit)
		} else {
			rows, err = tx.Query(ctx, listSessionsAfterSQL, userID, tx.Now(), limit, after.CreatedAt, after.ID)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanSession)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("identity: list sessions: %w", err)
	}
	return out, nil
}

// RevokeSession ends one of the user's active sessions and audits it
// (session.revoked). It returns not_found if the session does not exist,
// belongs to someone else or has already ended; or the store's error.
func (s *Service) RevokeSession(ctx context.Context, userID, id uuid.UUID) error {
	defer s.forgetUser(userID)
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		n, err := tx.Exec(ctx, revokeSessionSQL, id, userID, tx.Now())
		if err != nil {
			return err
		}
		if n == 0 {
			return kernel.NotFound("session")
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "session.revoked", TargetType: "session", TargetID: apiSessionID(id)})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: revoke session: %w", err)
	}
	return nil
}

// RevokeOtherSessions ends every session of the user but keep (uuid.Nil keeps
// none) and returns how many it ended; when there were any, it audits
// session.revoked_others. It returns the store's error.
func (s *Service) RevokeOtherSessions(ctx context.Context, userID, keep uuid.UUID) (int64, error) {
	defer s.forgetUser(userID)
	var n int64
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		if n, err = tx.Exec(ctx, revokeOtherSessionsSQL, userID, keep, tx.Now()); err != nil || n == 0 {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "session.revoked_others", TargetType: "user",
			TargetID: apiUserID(userID), Metadata: map[string]any{"count": n}})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("identity: revoke other sessions: %w", err)
	}
	return n, nil
}

func scanSession(row store.Row) (Session, error) {
	var s Session
	err := row.Scan(&s.ID, &s.UserID, &s.CreatedAt, &s.LastSeenAt, &s.IdleExpiresAt, &s.ExpiresAt,
		&s.ReauthenticatedAt, &s.IP, &s.UserAgent, &s.RevokedAt)
	if err != nil {
		return Session{}, err
	}
	s.CreatedAt, s.LastSeenAt, s.IdleExpiresAt = s.CreatedAt.UTC(), s.LastSeenAt.UTC(), s.IdleExpiresAt.UTC()
	s.ExpiresAt, s.ReauthenticatedAt, s.RevokedAt = s.ExpiresAt.UTC(), s.ReauthenticatedAt.UTC(), utcPtr(s.RevokedAt)
	return s, nil
}
