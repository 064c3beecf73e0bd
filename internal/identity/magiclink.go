package identity

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

// RequestMagicLink emails a single-use login link, valid for 15 minutes, to
// the account with that address if it has one, verified or not. Sending a
// link voids the account's earlier ones.
//
// The answer is the same, after comparable work, whether or not the address
// has an account or has already had linksPerHour links this hour (then
// nothing is sent). It returns an invalid *kernel.Error on field "email" for
// an address that is not one, or the store's error. A failure to send is
// logged, not returned.
func (s *Service) RequestMagicLink(ctx context.Context, email string) error {
	normalized, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	u, token, err := s.issueLink(ctx, normalized, magicLoginLink)
	if err != nil {
		return err
	}
	if token != "" {
		s.notify(ctx, u, mail.TemplateMagicLink, mail.MagicLink{Name: u.Name,
			Link: s.linkURL(magicLoginLink, token), ExpiresIn: magicLoginLink.expiresIn})
	}
	return nil
}

// LoginWithMagicLink uses up the token of a magic link and starts a session
// for client exactly as a password login does (ending the session ctx's
// actor came with, auditing user.login_succeeded with method magic_link).
// The link proves its user reads mail at the address, so an unverified
// address becomes verified (see adoptAddress), and the account's
// brute-force counters and lockout are cleared (see throttle.go).
//
// An account with MFA gets no session yet but a login challenge
// (LoginResult.MFAChallenge), the same second step as after a password.
//
// It returns an invalid *kernel.Error on field "token" if the token is
// malformed, unknown, of another purpose, used (also by a concurrent
// request), expired, or was sent to an address the account no longer has;
// or the store's error.
func (s *Service) LoginWithMagicLink(ctx context.Context, token string, client kernel.Client) (LoginResult, error) {
	if !wellFormed(token) {
		return LoginResult{}, errBadLink()
	}
	var res LoginResult
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		t, err := useToken(ctx, tx, token, purposeMagicLink)
		if err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, selectUserSQL, t.UserID))
		if err != nil {
			return err
		}
		if u.Email != t.Email {
			return errBadLink()
		}
		if _, err := tx.Exec(ctx, voidTokensSQL, u.ID, purposeMagicLink, tx.Now()); err != nil {
			return err
		}
		if !u.EmailVerified() {
			if u, err = adoptAddress(ctx, tx, u); err != nil {
				return err
			}
		}
		res, err = s.sessionOrChallenge(ctx, tx, u, client, loginMagicLink)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return LoginResult{}, errBadLink()
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: magic-link login: %w", err)
	}
	s.clearLoginLimits(ctx, res.User) // the link proves the owner: a lockout must not outlive it
	return res, nil
}

// adoptAddress hands an account whose address nobody had proved to the
// person who just proved it with a magic link: it marks the address
// verified, voids the outstanding verification links and audits
// user.email_verified.
//
// It also clears the password and any MFA, and ends every session. Whoever
// signed up chose that password (and second factor) without proving the
// address, so it may belong to someone who signed up with another person's
// address and waited for them to use it ("pre-hijacking"); kept, it would
// let them in for good. The owner,
// now verified, sets a password with a reset if they want one. It returns
// the updated account or the store's error.
func adoptAddress(ctx context.Context, tx store.Tx, u User) (User, error) {
	now := tx.Now()
	if _, err := tx.Exec(ctx, markVerifiedSQL, u.ID, now, u.Email); err != nil {
		return User{}, err
	}
	if _, err := tx.Exec(ctx, voidTokensSQL, u.ID, purposeVerifyEmail, now); err != nil {
		return User{}, err
	}
	if _, err := tx.Exec(ctx, updatePasswordSQL, u.ID, "", now); err != nil {
		return User{}, err
	}
	ended, err := tx.Exec(ctx, revokeOtherSessionsSQL, u.ID, uuid.Nil, now)
	if err != nil {
		return User{}, err
	}
	if err := clearMFA(ctx, tx, u.ID); err != nil { // so does a second factor set up before the address was proved
		return User{}, err
	}
	self := userActor(u.ID)
	_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.email_verified", TargetType: "user", TargetID: apiUserID(u.ID),
		Actor: &self, Metadata: map[string]any{"method": loginMagicLink, "password_cleared": true, "sessions_ended": ended}})
	if err != nil {
		return User{}, err
	}
	return scanUser(tx.QueryRow(ctx, selectUserSQL, u.ID))
}
