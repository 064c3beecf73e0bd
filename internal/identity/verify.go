package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

const (
	insertTokenSQL = `INSERT INTO user_token (id, user_id, purpose, token_hash, email, created_at, expires_at, used_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)`
	selectTokenSQL = `SELECT id, user_id, email, expires_at, used_at FROM user_token
        WHERE token_hash = $1 AND purpose = $2`
	// claimTokenSQL uses a token up; of two requests racing with one token,
	// only one changes the row.
	claimTokenSQL = "UPDATE user_token SET used_at = $2 WHERE id = $1 AND used_at IS NULL"
	// voidTokensSQL uses up a user's outstanding tokens of one purpose, when one
	// of them has served or a newer one replaces them.
	voidTokensSQL = "UPDATE user_token SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL"
	// recentTokensSQL serves the resend limit from the user_token_user_purpose index.
	recentTokensSQL = `SELECT created_at FROM user_token
        WHERE user_id = $1 AND purpose = $2 AND created_at > $3 ORDER BY created_at DESC LIMIT $4`
)

// errBadLink is the one answer for an emailed token (verification, password
// reset, magic link) that is malformed, unknown, of another purpose, used,
// expired or for an address the account no longer has: telling them apart
// would help only someone guessing.
func errBadLink() error {
	return kernel.Invalid("token", "is invalid or has expired; ask for a new link")
}

// storedToken is a user_token row.
type storedToken struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	Email     string
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// VerifyEmail uses up a verification token and marks the address it was sent
// to as verified, along with voiding the account's other verification links.
// It returns the account. It returns an invalid *kernel.Error on field "token"
// if the token is malformed, unknown, already used, expired, or was sent to an
// address the account no longer has; or the store's error.
func (s *Service) VerifyEmail(ctx context.Context, token string) (User, error) {
	if !wellFormed(token) {
		return User{}, errBadLink()
	}
	var u User
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		t, err := useToken(ctx, tx, token, purposeVerifyEmail)
		if err != nil {
			return err
		}
		newly, err := tx.Exec(ctx, markVerifiedSQL, t.UserID, now, t.Email)
		if err != nil {
			return err
		}
		if u, err = scanUser(tx.QueryRow(ctx, selectUserSQL, t.UserID)); err != nil {
			return err
		}
		if u.Email != t.Email {
			return errBadLink()
		}
		if _, err := tx.Exec(ctx, voidTokensSQL, t.UserID, purposeVerifyEmail, now); err != nil {
			return err
		}
		if newly == 0 {
			return nil
		}
		self := userActor(u.ID)
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.email_verified", TargetType: "user",
			TargetID: apiUserID(u.ID), Actor: &self})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return User{}, errBadLink()
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: verify email: %w", err)
	}
	return u, nil
}

// ResendVerification voids the account's outstanding verification links and
// emails a new one. It returns not_found for an unknown account; conflict if
// the address is already verified; rate_limited, with RetryAfter set, within a
// minute of the last link or after five links in an hour; unavailable if the
// email cannot be sent; or the store's error.
func (s *Service) ResendVerification(ctx context.Context, userID uuid.UUID) error {
	var u User
	token, tokenHash := newToken()
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		if u, err = scanUser(tx.QueryRow(ctx, selectUserSQL, userID)); err != nil {
			return err
		}
		if u.EmailVerified() {
			return &kernel.Error{Code: kernel.CodeConflict, Message: "the email address is already verified"}
		}
		if err := resendAllowed(ctx, tx, u.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, voidTokensSQL, u.ID, purposeVerifyEmail, tx.Now()); err != nil {
			return err
		}
		return insertToken(ctx, tx, u, purposeVerifyEmail, tokenHash, verifyEmailTTL)
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.NotFound("user")
	}
	if err != nil {
		return fmt.Errorf("identity: resend verification: %w", err)
	}
	if err := s.sendVerification(context.WithoutCancel(ctx), u, token); err != nil {
		return kernel.Unavailable("email", err)
	}
	return nil
}

// resendAllowed returns a rate_limited *kernel.Error when the user was sent a
// verification link less than resendInterval ago or resendPerHour of them in
// the last hour, with RetryAfter saying when the next one is allowed.
func resendAllowed(ctx context.Context, tx store.Tx, userID uuid.UUID) error {
	now := tx.Now()
	rows, err := tx.Query(ctx, recentTokensSQL, userID, purposeVerifyEmail, now.Add(-time.Hour), resendPerHour)
	if err != nil {
		return err
	}
	defer rows.Close()
	var recent []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			return err
		}
		recent = append(recent, at)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var wait time.Duration
	if len(recent) > 0 {
		wait = recent[0].Add(resendInterval).Sub(now)
	}
	if len(recent) >= resendPerHour {
		wait = max(wait, recent[len(recent)-1].Add(time.Hour).Sub(now))
	}
	if wait <= 0 {
		return nil
	}
	return &kernel.Error{Code: kernel.CodeRateLimited, Message: "a verification email was sent recently; try again later", RetryAfter: wait}
}

// insertToken stores the hash of a new single-use token for u's current address.
func insertToken(ctx context.Context, tx store.Tx, u User, purpose, hash string, ttl time.Duration) error {
	_, err := tx.Exec(ctx, insertTokenSQL, kernel.NewID(), u.ID, purpose, hash, u.Email, tx.Now(), tx.Now().Add(ttl))
	return err
}

// useToken uses up token, which must be a live token of purpose: one that
// exists, is unused and has not expired at the transaction's time. Of
// transactions racing with one token, only one changes the row (a conditional
// UPDATE checked by rows affected); the others get errBadLink. It returns the
// token's row, errBadLink for a token that is unknown, of another purpose,
// used or expired, or the store's error.
func useToken(ctx context.Context, tx store.Tx, token, purpose string) (storedToken, error) {
	now := tx.Now()
	t, err := tokenByHash(ctx, tx, hashToken(token), purpose)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return storedToken{}, errBadLink()
	}
	if err != nil {
		return storedToken{}, err
	}
	if t.UsedAt != nil || !now.Before(t.ExpiresAt) {
		return storedToken{}, errBadLink()
	}
	claimed, err := tx.Exec(ctx, claimTokenSQL, t.ID, now)
	if err != nil {
		return storedToken{}, err
	}
	if claimed != 1 {
		return storedToken{}, errBadLink()
	}
	return t, nil
}

// tokenByHash returns the token of the given purpose with that hash, or not_found.
func tokenByHash(ctx context.Context, tx store.Tx, hash, purpose string) (storedToken, error) {
	var t storedToken
	err := tx.QueryRow(ctx, selectTokenSQL, hash, purpose).Scan(&t.ID, &t.UserID, &t.Email, &t.ExpiresAt, &t.UsedAt)
	return t, err
}
