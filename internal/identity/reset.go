package identity

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

const (
	// resetPasswordSQL sets the password only while the account still has
	// the address the link was sent to.
	resetPasswordSQL = "UPDATE app_user SET password_hash = $2, updated_at = $3 WHERE id = $1 AND email = $4"
	// voidEmailedLinksSQL uses up a user's outstanding reset and magic links.
	voidEmailedLinksSQL = `UPDATE user_token SET used_at = $2
        WHERE user_id = $1 AND purpose IN ('password_reset', 'magic_link') AND used_at IS NULL`
)

// RequestPasswordReset emails a single-use password-reset link, valid for an
// hour, to the account with that address, if it has one and the address is
// verified. Sending a link voids the account's earlier ones.
//
// The answer is the same, after comparable work, whether or not the address
// has an account, is verified, or has already had linksPerHour links this
// hour (then nothing is sent). It returns an invalid *kernel.Error on field
// "email" for an address that is not one (which reveals nothing about
// accounts), or the store's error. A failure to send is logged, not returned.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	normalized, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, token, err := s.issueLink(ctx, normalized, passwordResetLink)
	if err != nil {
		return err
	}
	if token != "" {
		s.notify(ctx, u, mail.TemplatePasswordReset, mail.PasswordReset{Name: u.Name,
			Link: s.linkURL(passwordResetLink, token), ExpiresIn: passwordResetLink.expiresIn})
	}
	return nil
}

// ResetPassword uses up the token of a reset link and sets pw as the
// account's password. It also ends every session of the account (whoever
// had the old password is signed out; the person resetting logs in
// afterwards, with the second factor once MFA exists, so a reset never
// bypasses it), voids its other reset and magic links, audits
// user.password_reset and emails the owner a notice. It returns the account.
//
// It returns an invalid *kernel.Error on field "token" if the token is
// malformed, unknown, of another purpose, used, expired, or was sent to an
// address the account no longer has (also when a concurrent reset used it
// first); an invalid *kernel.Error on field "password" if pw breaks the
// policy (the token is then still usable); ctx.Err() if ctx ends while
// waiting to hash; or the store's error.
func (s *Service) ResetPassword(ctx context.Context, token, pw string) (User, error) {
	if !wellFormed(token) {
		return User{}, errBadLink()
	}
	u, err := s.resetAccount(ctx, token)
	if err != nil {
		return User{}, err
	}
	defer s.forgetUser(u.ID)
	if err := password.Check(pw, u.Email); err != nil {
		return User{}, err
	}
	// Hashed outside the transaction, so the writer is not held during Argon2id.
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return User{}, fmt.Errorf("identity: reset password: %w", err)
	}
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		return applyReset(ctx, tx, token, hash)
	})
	if err != nil {
		return User{}, fmt.Errorf("identity: reset password: %w", err)
	}
	s.clearLoginLimits(ctx, u) // a lockout ends with the reset (see throttle.go)
	s.notify(ctx, u, mail.TemplatePasswordChanged, mail.PasswordChanged{Name: u.Name,
		ResetLink: s.link("/forgot-password", nil)})
	return u, nil
}

// resetAccount returns the account a reset token is for, without using the
// token up, so the password can be checked and hashed before the write. It
// returns errBadLink for a token that is not live or whose address the
// account no longer has, or the store's error.
func (s *Service) resetAccount(ctx context.Context, token string) (User, error) {
	var u User
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		t, err := tokenByHash(ctx, tx, hashToken(token), purposePasswordReset)
		if err != nil {
			return err
		}
		if t.UsedAt != nil || !tx.Now().Before(t.ExpiresAt) {
			return errBadLink()
		}
		if u, err = scanUser(tx.QueryRow(ctx, selectUserSQL, t.UserID)); err != nil {
			return err
		}
		if u.Email != t.Email {
			return errBadLink()
		}
		return nil
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return User{}, errBadLink()
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: reset password: %w", err)
	}
	return u, nil
}

// applyReset uses up the reset token, stores hash as the password, voids the
// account's emailed links, ends all its sessions and audits the reset, in tx.
// It returns errBadLink if the token is no longer live (a concurrent reset
// used it) or the address changed since it was sent; or the store's error.
func applyReset(ctx context.Context, tx store.Tx, token, hash string) error {
	now := tx.Now()
	t, err := useToken(ctx, tx, token, purposePasswordReset)
	if err != nil {
		return err
	}
	n, err := tx.Exec(ctx, resetPasswordSQL, t.UserID, hash, now, t.Email)
	if err != nil {
		return err
	}
	if n != 1 {
		return errBadLink()
	}
	if _, err := tx.Exec(ctx, voidEmailedLinksSQL, t.UserID, now); err != nil {
		return err
	}
	ended, err := tx.Exec(ctx, revokeOtherSessionsSQL, t.UserID, uuid.Nil, now)
	if err != nil {
		return err
	}
	self := userActor(t.UserID)
	_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.password_reset", TargetType: "user",
		TargetID: apiUserID(t.UserID), Actor: &self, Metadata: map[string]any{"sessions_ended": ended}})
	return err
}
