package identity

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

const (
	// emailChangeTTL is how long a confirmation link for a new address works.
	emailChangeTTL = 24 * time.Hour
	// emailChangesPerHour bounds the confirmation links one account sends in
	// an hour, so that a session cannot be used to mail strangers at will.
	emailChangesPerHour = 3
)

const (
	insertEmailChangeSQL = `INSERT INTO email_change (id, user_id, new_email, token_hash, created_at, expires_at, used_at)
        VALUES ($1, $2, $3, $4, $5, $6, NULL)`
	selectEmailChangeSQL = "SELECT id, user_id, new_email, expires_at, used_at FROM email_change WHERE token_hash = $1"
	claimEmailChangeSQL  = "UPDATE email_change SET used_at = $2 WHERE id = $1 AND used_at IS NULL"
	// voidEmailChangesSQL voids a user's pending changes: a newer request,
	// a confirmed change or a deletion supersedes them.
	voidEmailChangesSQL  = "UPDATE email_change SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL"
	recentEmailChangeSQL = `SELECT created_at FROM email_change WHERE user_id = $1 AND created_at > $2
        ORDER BY created_at LIMIT $3`
	countOtherAccountsSQL = "SELECT count(*) FROM app_user WHERE email = $1 AND id <> $2"
	changeEmailSQL        = `UPDATE app_user SET email = $2, email_verified_at = $3, updated_at = $3
        WHERE id = $1 AND deleted_at IS NULL`
)

// RequestEmailChange starts changing the account's address to newEmail: it
// voids earlier pending changes, stores a single-use confirmation link valid
// for 24 hours, emails it to the new address and emails a notice to the
// current one. Nothing changes until the link is used (ConfirmEmailChange).
// The caller checks the recent authentication this needs.
//
// The answer is the same whether or not another account has newEmail: that
// is found out only at confirmation, by whoever reads mail there. It returns
// an invalid *kernel.Error on field "email" for an address that is not one
// or is already the account's; rate_limited, with RetryAfter, after three
// requests in an hour; not_found for an unknown or deleted account;
// unavailable if the link cannot be sent; or the store's error.
func (s *Service) RequestEmailChange(ctx context.Context, userID uuid.UUID, newEmail string) error {
	normalized, err := NormalizeEmail(newEmail)
	if err != nil {
		return err
	}
	token, tokenHash := newToken()
	var u User
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		var hash string
		if _, err := tx.Exec(ctx, lockUserSQL, userID); err != nil {
			return err
		}
		if u, err = scanUser(tx.QueryRow(ctx, selectLiveUserSQL, userID), &hash); err != nil {
			return err
		}
		if u.Email == normalized {
			return kernel.Invalid("email", "is already your address")
		}
		if err := emailChangeAllowed(ctx, tx, userID); err != nil {
			return err
		}
		now := tx.Now()
		if _, err := tx.Exec(ctx, voidEmailChangesSQL, userID, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertEmailChangeSQL, kernel.NewID(), userID, normalized, tokenHash, now, now.Add(emailChangeTTL)); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.email_change_requested", TargetType: "user",
			TargetID: apiUserID(userID), Metadata: map[string]any{"to": maskEmail(normalized)}})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.NotFound("user")
	}
	if err != nil {
		return fmt.Errorf("identity: request email change: %w", err)
	}
	link := s.link("/confirm-email-change", url.Values{"token": {token}})
	m, err := s.templates.Message(mail.TemplateEmailChange, []string{normalized},
		mail.EmailChange{Name: u.Name, Link: link, ExpiresIn: "24 hours"})
	if err == nil {
		err = s.mailer.Send(context.WithoutCancel(ctx), m)
	}
	if err != nil {
		return kernel.Unavailable("email", err)
	}
	s.notify(ctx, u, mail.TemplateEmailChangeNotice, mail.EmailChangeNotice{Name: u.Name, NewEmail: normalized,
		ResetLink: s.link("/forgot-password", nil)})
	return nil
}

// emailChangeAllowed returns a rate_limited *kernel.Error, with RetryAfter,
// when the user asked for emailChangesPerHour changes in the last hour.
func emailChangeAllowed(ctx context.Context, tx store.Tx, userID uuid.UUID) error {
	now := tx.Now()
	rows, err := tx.Query(ctx, recentEmailChangeSQL, userID, now.Add(-time.Hour), emailChangesPerHour)
	if err != nil {
		return err
	}
	recent, err := store.Collect(rows, func(row store.Row) (time.Time, error) {
		var at time.Time
		return at, row.Scan(&at)
	})
	if err != nil || len(recent) < emailChangesPerHour {
		return err
	}
	return &kernel.Error{Code: kernel.CodeRateLimited, Message: "too many address changes were asked for; try again later",
		RetryAfter: recent[0].Add(time.Hour).Sub(now)}
}

// emailChange is an email_change row.
type emailChange struct {
	ID        uuid.UUID
	UserID    uuid.UUID
	NewEmail  string
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// ConfirmEmailChange uses up the token of a confirmation link and makes the
// address it was sent to the account's verified address. It voids the
// account's other pending changes and emailed links, ends every session of
// the account but the one asking (if the request carries one of its
// sessions) and audits user.email_changed with both addresses masked. It
// needs no session: the link may be opened on another device. It returns the
// account.
//
// It returns an invalid *kernel.Error on field "token" if the token is
// malformed, unknown, used (also by a concurrent request) or expired;
// conflict when another account has the address by now (the link then stays
// usable); or the store's error.
func (s *Service) ConfirmEmailChange(ctx context.Context, token string) (User, error) {
	if !wellFormed(token) {
		return User{}, errBadLink()
	}
	var u User
	defer func() { s.forgetUser(u.ID) }()
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		c, err := useEmailChange(ctx, tx, token)
		if err != nil {
			return err
		}
		var hash string
		if u, err = scanUser(tx.QueryRow(ctx, selectLiveUserSQL, c.UserID), &hash); err != nil {
			return err
		}
		old := u.Email
		if u, err = applyEmailChange(ctx, tx, u, c.NewEmail); err != nil {
			return err
		}
		keep := uuid.Nil
		if actor := kernel.ActorFrom(ctx); actor.Kind == kernel.ActorUser && actor.ID == u.ID {
			keep = actor.SessionID
		}
		ended, err := tx.Exec(ctx, revokeOtherSessionsSQL, u.ID, keep, tx.Now())
		if err != nil {
			return err
		}
		self := userActor(u.ID)
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.email_changed", TargetType: "user", TargetID: apiUserID(u.ID),
			Actor: &self, Metadata: map[string]any{"from": maskEmail(old), "to": maskEmail(u.Email), "sessions_ended": ended}})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return User{}, errBadLink()
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: confirm email change: %w", err)
	}
	return u, nil
}

// useEmailChange claims the live email change whose link carries token. It
// returns errBadLink for one that is unknown, used or expired, or the
// store's error.
func useEmailChange(ctx context.Context, tx store.Tx, token string) (emailChange, error) {
	var c emailChange
	err := tx.QueryRow(ctx, selectEmailChangeSQL, hashToken(token)).Scan(&c.ID, &c.UserID, &c.NewEmail, &c.ExpiresAt, &c.UsedAt)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return emailChange{}, errBadLink()
	}
	if err != nil {
		return emailChange{}, err
	}
	if c.UsedAt != nil || !tx.Now().Before(c.ExpiresAt) {
		return emailChange{}, errBadLink()
	}
	claimed, err := tx.Exec(ctx, claimEmailChangeSQL, c.ID, tx.Now())
	if err != nil {
		return emailChange{}, err
	}
	if claimed != 1 {
		return emailChange{}, errBadLink()
	}
	return c, nil
}

// applyEmailChange stores newEmail as u's verified address and voids u's
// pending changes and emailed links (sent to the old address). It returns
// the updated account, conflict when another account has the address, or
// the store's error.
func applyEmailChange(ctx context.Context, tx store.Tx, u User, newEmail string) (User, error) {
	taken := &kernel.Error{Code: kernel.CodeConflict, Message: "another account has this email address"}
	var others int
	if err := tx.QueryRow(ctx, countOtherAccountsSQL, newEmail, u.ID).Scan(&others); err != nil {
		return User{}, err
	}
	if others > 0 {
		return User{}, taken
	}
	now := tx.Now()
	if _, err := tx.Exec(ctx, changeEmailSQL, u.ID, newEmail, now); err != nil {
		if kernel.IsCode(err, kernel.CodeConflict) {
			taken.Err = err
			return User{}, taken
		}
		return User{}, err
	}
	for _, sql := range []string{voidEmailChangesSQL, voidAllTokensSQL} {
		if _, err := tx.Exec(ctx, sql, u.ID, now); err != nil {
			return User{}, err
		}
	}
	u.Email, u.EmailVerifiedAt, u.UpdatedAt = newEmail, &now, now
	return u, nil
}

// maskEmail returns the address with its local part hidden but for its first
// character ("a***@example.com"), for audit entries: enough to recognise an
// address, not to collect it.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	first := []rune(local)[0]
	return string(first) + "***@" + domain
}
