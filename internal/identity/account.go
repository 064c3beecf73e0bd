package identity

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

// DeletedName is the name a deleted account keeps, so that audit entries
// naming its ID still show someone.
const DeletedName = "Deleted user"

// exportLimit bounds each list of an export (sessions, tokens): far more than
// one person has, and still a bounded read.
const exportLimit = 1000

const (
	selectLiveUserSQL  = "SELECT " + userColumns + ", password_hash FROM app_user WHERE id = $1 AND deleted_at IS NULL"
	selectDeletedAtSQL = "SELECT deleted_at FROM app_user WHERE id = $1"
	renameUserSQL      = "UPDATE app_user SET name = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL"
	// changePasswordSQL replaces the password only if it is still the one
	// checked, so two changes racing do not both apply.
	changePasswordSQL = `UPDATE app_user SET password_hash = $2, updated_at = $3
        WHERE id = $1 AND password_hash = $4 AND deleted_at IS NULL`
	anonymiseUserSQL = `UPDATE app_user SET name = $2, email = $3, password_hash = '', email_verified_at = NULL,
        updated_at = $4, deleted_at = $4 WHERE id = $1 AND deleted_at IS NULL`
	revokeAllPATsSQL  = "UPDATE personal_token SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL"
	voidAllTokensSQL  = "UPDATE user_token SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL"
	exportSessionsSQL = "SELECT " + sessionColumns + ` FROM user_session WHERE user_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2`
)

// UpdateName sets the account's display name and audits user.updated; an
// unchanged name changes and audits nothing. It returns the account, an
// invalid *kernel.Error on field "name" for a bad name, not_found for an
// unknown or deleted account, or the store's error.
func (s *Service) UpdateName(ctx context.Context, userID uuid.UUID, name string) (User, error) {
	name, err := validateName(name)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		var hash string
		if u, err = scanUser(tx.QueryRow(ctx, selectLiveUserSQL, userID), &hash); err != nil {
			return err
		}
		if u.Name == name {
			return nil
		}
		if _, err := tx.Exec(ctx, renameUserSQL, userID, name, tx.Now()); err != nil {
			return err
		}
		u.Name, u.UpdatedAt = name, tx.Now()
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.updated", TargetType: "user", TargetID: apiUserID(userID),
			Metadata: map[string]any{"fields": []string{"name"}}})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return User{}, kernel.NotFound("user")
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: update name: %w", err)
	}
	return u, nil
}

// PasswordChange is a signed-in person changing their password.
type PasswordChange struct {
	UserID uuid.UUID
	// KeepSession is the session asking, which stays signed in; every other
	// session of the account ends. uuid.Nil keeps none.
	KeepSession uuid.UUID
	// Current is the password the account has; empty for an account without
	// one (magic-link only).
	Current string
	New     string
	// RecentAuth is the caller's answer to the recent-authentication rule
	// (nil when they proved who they are recently). An account without a
	// password may set one only with a recent authentication, since no
	// current password can be asked for.
	RecentAuth error
}

// ChangePassword checks the current password, stores the new one, voids the
// account's emailed reset and magic links, ends its other sessions, audits
// user.password_changed and emails the owner a notice.
//
// It returns an unauthenticated *kernel.Error with the login's message when
// the current password does not match (or one is given for an account that
// has none); rate_limited after too many wrong ones; c.RecentAuth for an account without a password when it is not
// nil; an invalid *kernel.Error on field "password" when the new one breaks
// the policy; conflict when the password changed meanwhile; not_found for an
// unknown or deleted account; ctx.Err() if ctx ends while waiting to hash; or
// the store's error.
func (s *Service) ChangePassword(ctx context.Context, c PasswordChange) error {
	defer s.forgetUser(c.UserID)
	var u User
	var oldHash string
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, selectLiveUserSQL, c.UserID), &oldHash)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.NotFound("user")
	}
	if err != nil {
		return fmt.Errorf("identity: change password: %w", err)
	}
	if err := s.checkCurrent(ctx, c, oldHash); err != nil {
		return err
	}
	if err := password.Check(c.New, u.Email); err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, c.New)
	if err != nil {
		return fmt.Errorf("identity: change password: %w", err)
	}
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		n, err := tx.Exec(ctx, changePasswordSQL, c.UserID, hash, now, oldHash)
		if err != nil {
			return err
		}
		if n != 1 {
			return kernel.Errorf(kernel.CodeConflict, "the password changed meanwhile; try again")
		}
		if _, err := tx.Exec(ctx, voidEmailedLinksSQL, c.UserID, now); err != nil {
			return err
		}
		ended, err := tx.Exec(ctx, revokeOtherSessionsSQL, c.UserID, c.KeepSession, now)
		if err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.password_changed", TargetType: "user", TargetID: apiUserID(c.UserID),
			Metadata: map[string]any{"sessions_ended": ended, "had_password": oldHash != ""}})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: change password: %w", err)
	}
	s.notify(ctx, u, mail.TemplatePasswordChanged, mail.PasswordChanged{Name: u.Name, ResetLink: s.link("/forgot-password", nil)})
	return nil
}

// checkCurrent returns nil when c may replace the password stored as hash:
// the current password matches, or the account has none and the caller
// authenticated recently. Wrong guesses count against the account's
// re-authentication limit (throttle.go), the other place a signed-in person
// proves their password, so a borrowed session cannot guess it at will.
func (s *Service) checkCurrent(ctx context.Context, c PasswordChange, hash string) error {
	if hash == "" && c.Current == "" {
		return c.RecentAuth
	}
	if err := s.checkReauth(ctx, c.UserID); err != nil {
		return err
	}
	ok := false
	if hash != "" {
		var err error
		if ok, _, err = s.hasher.Verify(ctx, c.Current, hash); err != nil {
			return fmt.Errorf("identity: change password %s: verify: %w", apiUserID(c.UserID), err)
		}
	}
	if !ok {
		if err := s.reauthFailedCount(ctx, c.UserID); err != nil {
			return err
		}
		return errLoginFailed()
	}
	return nil
}

// DeleteAccount anonymises the account for good, in one transaction: every
// session ends, every personal access token is revoked, every emailed link
// and pending email change is voided, the second factor is removed, the name
// becomes DeletedName, the address one that matches nobody
// (deleted+<hex ID>@deleted.invalid), the password is cleared and deleted_at
// is set; user.deleted is audited. The row stays, so audit entries keep
// naming the ID. Memberships are not this package's: the caller removes them
// first (account.Service does).
//
// Deleting an account already deleted does nothing and is not an error, so
// an interrupted deletion can be retried. It returns not_found for an
// unknown account, or the store's error.
func (s *Service) DeleteAccount(ctx context.Context, userID uuid.UUID) error {
	defer s.forgetUser(userID)
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		now := tx.Now()
		n, err := tx.Exec(ctx, anonymiseUserSQL, userID, DeletedName, deletedEmail(userID), now)
		if err != nil {
			return err
		}
		if n == 0 {
			var deletedAt *time.Time
			return tx.QueryRow(ctx, selectDeletedAtSQL, userID).Scan(&deletedAt) // not_found, or already deleted
		}
		ended, err := tx.Exec(ctx, revokeOtherSessionsSQL, userID, uuid.Nil, now)
		if err != nil {
			return err
		}
		revoked, err := tx.Exec(ctx, revokeAllPATsSQL, userID, now)
		if err != nil {
			return err
		}
		for _, sql := range []string{voidAllTokensSQL, voidEmailChangesSQL} {
			if _, err := tx.Exec(ctx, sql, userID, now); err != nil {
				return err
			}
		}
		if err := s.deleteMFA(ctx, tx, userID); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.deleted", TargetType: "user", TargetID: apiUserID(userID),
			Metadata: map[string]any{"sessions_ended": ended, "tokens_revoked": revoked}})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.NotFound("user")
	}
	if err != nil {
		return fmt.Errorf("identity: delete account: %w", err)
	}
	return nil
}

// deletedEmail is the address a deleted account keeps: unique (it carries
// the ID), in the reserved .invalid domain (RFC 2606), so no mail reaches it,
// and never typed by anyone, since sign-in by address skips deleted accounts.
func deletedEmail(id uuid.UUID) string {
	return "deleted+" + hex.EncodeToString(id[:]) + "@deleted.invalid"
}

// AccountData is what identity holds about a person, for their export:
// never a password, token or secret, nor their hashes.
type AccountData struct {
	User User
	// Sessions are the most recent sessions, ended ones included, newest first.
	Sessions []Session
	// Tokens are the personal access tokens, revoked ones included, newest first.
	Tokens []PAT
	// MFAEnabled reports whether a second factor is confirmed.
	MFAEnabled bool
}

// AccountData returns what identity holds about the account, each list
// capped at a thousand entries. It returns not_found for an unknown or
// deleted account, or the store's error.
func (s *Service) AccountData(ctx context.Context, userID uuid.UUID) (AccountData, error) {
	var d AccountData
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		var hash string
		var err error
		if d.User, err = scanUser(tx.QueryRow(ctx, selectLiveUserSQL, userID), &hash); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, exportSessionsSQL, userID, exportLimit)
		if err != nil {
			return err
		}
		if d.Sessions, err = store.Collect(rows, scanSession); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, listPATsFirstSQL, userID, exportLimit); err != nil {
			return err
		}
		if d.Tokens, err = store.Collect(rows, scanPAT); err != nil {
			return err
		}
		d.MFAEnabled, err = mfaEnabled(ctx, tx, userID)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return AccountData{}, kernel.NotFound("user")
	}
	if err != nil {
		return AccountData{}, fmt.Errorf("identity: account data: %w", err)
	}
	return d, nil
}
