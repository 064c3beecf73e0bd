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

// Session is one signed-in browser. Its token is never stored, only its hash.
type Session struct {
	ID                uuid.UUID
	UserID            uuid.UUID
	CreatedAt         time.Time
	LastSeenAt        time.Time // updated at most once a minute
	IdleExpiresAt     time.Time // LastSeenAt plus the idle timeout, capped at ExpiresAt
	ExpiresAt         time.Time // CreatedAt plus the lifetime; never moves
	ReauthenticatedAt time.Time // when the user last proved their password in this session
	IP                string
	UserAgent         string
	RevokedAt         *time.Time
}

// ActiveAt reports whether the session still authenticates at now.
func (s Session) ActiveAt(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.IdleExpiresAt) && now.Before(s.ExpiresAt)
}

// LoginResult is a successful login: the account, the new session and its
// token, which the caller hands to the browser and must not keep or log.
type LoginResult struct {
	User    User
	Session Session
	Token   string
	// MFAChallenge is set, instead of Session and Token, when the account has
	// MFA: no session exists yet, and the challenge is answered with LoginMFA.
	// Like Token, it must not be kept or logged.
	MFAChallenge string
}

// maxUserAgentBytes bounds the stored user agent; the request spine already
// cuts it to this length.
const maxUserAgentBytes = 512

const (
	sessionColumns   = "id, user_id, created_at, last_seen_at, idle_expires_at, expires_at, reauthenticated_at, ip, user_agent, revoked_at"
	insertSessionSQL = "INSERT INTO user_session (" + sessionColumns + `, token_hash)
        VALUES ($1, $2, $3, $3, $4, $5, $3, $6, $7, NULL, $8)`
	endSessionSQL = "UPDATE user_session SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
)

// errLoginFailed is the one answer for an unknown address, a malformed one and
// a wrong password alike.
func errLoginFailed() error {
	return &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "the email address or password is incorrect"}
}

// Login checks email and password and starts a new session for client. If ctx
// carries an actor signed in with a session (a browser logging in again), that
// session is ended: a new login always gets a new token, and the old one stops
// working. If the account has MFA, no session starts yet: the result carries
// only the user and an MFAChallenge to answer with LoginMFA.
//
// An unknown or malformed address costs the same Argon2id work as a wrong
// password (Hasher.DummyVerify) and gets the same answer: an unauthenticated
// *kernel.Error with one fixed message. Failures of a well-formed address and
// successes are audited (user.login_failed, user.login_succeeded). A hash made
// with weaker parameters than the current ones is replaced on success.
//
// Before any hashing, the attempt counts against client's address and a
// locked-out address is refused; failures count against the address typed
// (see throttle.go). Login returns 429 rate_limited with RetryAfter past a
// limit, 503 unavailable when the limiter fails, ctx.Err() if ctx ends while
// waiting to hash, or the store's error.
func (s *Service) Login(ctx context.Context, email, pw string, client kernel.Client) (LoginResult, error) {
	normalized, err := NormalizeEmail(email)
	if err != nil {
		normalized = "" // not an address: limited per client address only
	}
	if err := s.checkLogin(ctx, normalized, client); err != nil {
		return LoginResult{}, err
	}
	if normalized == "" {
		_, _ = s.hasher.DummyVerify(ctx)
		return LoginResult{}, errLoginFailed()
	}
	var u User
	var hash string
	err = s.db.ReadTx(ctx, func(tx store.Tx) error {
		var err error
		u, hash, err = userByEmail(ctx, tx, normalized)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		if _, err := s.hasher.DummyVerify(ctx); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, s.loginFailed(ctx, normalized, User{}, "unknown_email")
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: login: %w", err)
	}
	if hash == "" { // a password cleared when a magic link proved the address (adoptAddress): none to log in with
		if _, err := s.hasher.DummyVerify(ctx); err != nil {
			return LoginResult{}, err
		}
		return LoginResult{}, s.loginFailed(ctx, normalized, u, "no_password")
	}
	ok, rehash, err := s.hasher.Verify(ctx, pw, hash)
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: login %s: verify: %w", apiUserID(u.ID), err)
	}
	if !ok {
		return LoginResult{}, s.loginFailed(ctx, normalized, u, "wrong_password")
	}
	newHash := ""
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, pw); err != nil {
			return LoginResult{}, fmt.Errorf("identity: login %s: rehash: %w", apiUserID(u.ID), err)
		}
	}
	res, err := s.startSession(ctx, u, newHash, client)
	if err == nil {
		s.loginSucceeded(ctx, normalized)
	}
	return res, err
}

// loginFailed audits a failed login of the address normalized (u is its
// account, zero for none), counts it against the address (which may start
// a lockout) and returns the answer to give: errLoginFailed, 503 when the
// limiter fails, or the store's error. The attempted address is not
// recorded: people type passwords into email fields.
func (s *Service) loginFailed(ctx context.Context, normalized string, u User, reason string) error {
	target := ""
	if u.ID != uuid.Nil {
		target = apiUserID(u.ID)
	}
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.login_failed", TargetType: "user", TargetID: target,
			Metadata: map[string]any{"reason": reason}})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: login: %w", err)
	}
	if err := s.passwordFailed(ctx, normalized, u); err != nil {
		return err
	}
	return errLoginFailed()
}

// startSession stores a new session for u (or, with MFA, a login challenge:
// see sessionOrChallenge), replaces the password hash when newHash is set,
// ends the session ctx's actor came with, and audits the login.
func (s *Service) startSession(ctx context.Context, u User, newHash string, client kernel.Client) (LoginResult, error) {
	var res LoginResult
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		if newHash != "" {
			if _, err := tx.Exec(ctx, updatePasswordSQL, u.ID, newHash, tx.Now()); err != nil {
				return err
			}
		}
		var err error
		res, err = s.sessionOrChallenge(ctx, tx, u, client, loginPassword)
		return err
	})
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: login %s: %w", apiUserID(u.ID), err)
	}
	return res, nil
}

// Login methods, as audited in user.login_succeeded.
const (
	loginPassword  = "password"
	loginMagicLink = "magic_link"
)

// openSession stores a new session for u inside tx, ends the session ctx's
// actor came with (a new login always gets a new token) and audits the login
// with its method. It returns the store's error.
func (s *Service) openSession(ctx context.Context, tx store.Tx, u User, client kernel.Client, method string) (LoginResult, error) {
	token, tokenHash := newToken()
	now := tx.Now()
	sess := Session{ID: kernel.NewID(), UserID: u.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.lifetime),
		ReauthenticatedAt: now, IP: kernel.BoundedText(client.IP, 64), UserAgent: kernel.BoundedText(client.UserAgent, maxUserAgentBytes)}
	sess.IdleExpiresAt = minTime(now.Add(s.idle), sess.ExpiresAt)
	if _, err := tx.Exec(ctx, insertSessionSQL, sess.ID, sess.UserID, now, sess.IdleExpiresAt, sess.ExpiresAt,
		sess.IP, sess.UserAgent, tokenHash); err != nil {
		return LoginResult{}, err
	}
	if replaced := kernel.ActorFrom(ctx).SessionID; replaced != uuid.Nil {
		if _, err := tx.Exec(ctx, endSessionSQL, replaced, now); err != nil {
			return LoginResult{}, err
		}
	}
	self := userActor(u.ID)
	_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.login_succeeded", TargetType: "user", TargetID: apiUserID(u.ID),
		Actor: &self, Metadata: map[string]any{"session_id": apiSessionID(sess.ID), "method": method}})
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{User: u, Session: sess, Token: token}, nil
}

// Logout ends the session. Ending a session that has already ended does
// nothing and is not an error. It returns the store's error.
func (s *Service) Logout(ctx context.Context, id uuid.UUID) error {
	defer s.forget(authcache.SessionTag(id))
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		n, err := tx.Exec(ctx, endSessionSQL, id, tx.Now())
		if err != nil || n == 0 {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.logged_out", TargetType: "session", TargetID: apiSessionID(id)})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: logout: %w", err)
	}
	return nil
}

// apiSessionID is the API form of a session's ID.
func apiSessionID(id uuid.UUID) string { return kernel.FormatID(kernel.PrefixSession, id) }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
