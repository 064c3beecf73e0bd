package identity

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// linksPerHour bounds the password-reset links, and separately the magic
// links, one account is sent in an hour. Past it a request is answered as
// usual and nothing is sent: answering 429 would tell the caller the address
// has an account. The count comes from user_token rows, so it survives
// restarts and holds across nodes.
const linksPerHour = 3

const (
	// lockUserSQL changes nothing but holds the account's row until the
	// transaction ends, so that on PostgreSQL two requests for links to one
	// account queue up and count each other (SQLite has one writer anyway).
	lockUserSQL = "UPDATE app_user SET updated_at = updated_at WHERE id = $1"
	// countRecentTokensSQL serves the link limit from the user_token_user_purpose index.
	countRecentTokensSQL = `SELECT count(*) FROM user_token
        WHERE user_id = $1 AND purpose = $2 AND created_at > $3`
)

// linkKind is one kind of link sent by email to someone who is not signed in.
type linkKind struct {
	purpose   string
	path      string // where the link points on the public site
	ttl       time.Duration
	expiresIn string // ttl in words, for the email
	// verifiedOnly sends the link only to an address its owner has proved.
	verifiedOnly bool
}

var (
	// A reset link is sent only to a verified address: an unverified one may
	// have been typed by someone else at sign-up, and a reset would hand them
	// the account.
	passwordResetLink = linkKind{purpose: purposePasswordReset, path: "/reset-password",
		ttl: time.Hour, expiresIn: "1 hour", verifiedOnly: true}
	magicLoginLink = linkKind{purpose: purposeMagicLink, path: "/magic-link",
		ttl: 15 * time.Minute, expiresIn: "15 minutes"}
)

// issueLink stores a new link of kind for the account with the normalised
// address email, voids the account's outstanding links of that kind, and
// returns the account and the token to mail.
//
// It returns an empty token, and no error, when nothing is to be sent: the
// address has no account, kind needs a verified address and this one is not,
// or the account has had linksPerHour links of this kind in the last hour.
// Up to that decision every address costs the same: a token is generated,
// and the same write transaction looks the address up, locks and counts
// (with the nil ID for an unknown address). No Argon2id is involved on any
// path. It returns the store's error.
func (s *Service) issueLink(ctx context.Context, email string, kind linkKind) (User, string, error) {
	token, tokenHash := newToken()
	var u User
	withheld := ""
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		u, _, err = userByEmail(ctx, tx, email)
		switch {
		case kernel.IsCode(err, kernel.CodeNotFound):
			u, withheld = User{}, "unknown_email"
		case err != nil:
			return err
		case kind.verifiedOnly && !u.EmailVerified():
			withheld = "unverified_email"
		}
		if _, err := tx.Exec(ctx, lockUserSQL, u.ID); err != nil {
			return err
		}
		var recent int
		if err := tx.QueryRow(ctx, countRecentTokensSQL, u.ID, kind.purpose, tx.Now().Add(-time.Hour)).Scan(&recent); err != nil {
			return err
		}
		if withheld == "" && recent >= linksPerHour {
			withheld = "rate_limited"
		}
		if withheld != "" {
			return nil
		}
		if _, err := tx.Exec(ctx, voidTokensSQL, u.ID, kind.purpose, tx.Now()); err != nil {
			return err
		}
		return insertToken(ctx, tx, u, kind.purpose, tokenHash, kind.ttl)
	})
	if err != nil {
		return User{}, "", fmt.Errorf("identity: issue %s link: %w", kind.purpose, err)
	}
	if withheld != "" {
		if withheld != "unknown_email" {
			s.logger.InfoContext(ctx, "emailed link withheld", "purpose", kind.purpose, "user_id", apiUserID(u.ID), "reason", withheld)
		}
		return u, "", nil
	}
	return u, token, nil
}

// linkURL returns the absolute link of kind carrying token.
func (s *Service) linkURL(kind linkKind, token string) string {
	return s.link(kind.path, url.Values{"token": {token}})
}

// notify emails u the message the template tpl renders from data. A failure
// is logged, never returned: for links answered the same whether or not an
// account exists, an error only for accounts that exist would tell the caller
// which addresses have one. Errors from rendering or sending never contain
// the data, so a token in a link is not logged.
func (s *Service) notify(ctx context.Context, u User, tpl string, data any) {
	m, err := s.templates.Message(tpl, []string{u.Email}, data)
	if err == nil {
		err = s.mailer.Send(context.WithoutCancel(ctx), m)
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "send email", "template", tpl, "user_id", apiUserID(u.ID), "error", err.Error())
	}
}
