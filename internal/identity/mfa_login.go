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

// A login challenge lives mfaChallengeTTL and takes at most
// mfaChallengeAttempts codes, right or wrong; then the person starts again
// from the password (or the magic link), which has its own limits.
const (
	mfaChallengeTTL      = 5 * time.Minute
	mfaChallengeAttempts = 5
)

// Second factors, as appended to the login method in user.login_succeeded
// ("password+totp", "magic_link+backup_code").
const (
	factorTOTP       = "totp"
	factorBackupCode = "backup_code"
)

const (
	mfaEnabledSQL      = "SELECT count(*) FROM user_mfa WHERE user_id = $1 AND confirmed_at IS NOT NULL"
	insertChallengeSQL = `INSERT INTO mfa_challenge
        (id, user_id, token_hash, method, created_at, expires_at, attempts, used_at, ip, user_agent)
        VALUES ($1, $2, $3, $4, $5, $6, 0, NULL, $7, $8)`
	// pruneChallengesSQL drops the account's dead challenges when it is
	// given a new one, so they do not pile up.
	pruneChallengesSQL = "DELETE FROM mfa_challenge WHERE user_id = $1 AND (expires_at <= $2 OR used_at IS NOT NULL)"
	// claimChallengeSQL counts an attempt against a live challenge and
	// returns it; it matches nothing for an unknown, used, expired or
	// exhausted one. The row lock it takes makes racing attempts queue, so
	// no more than mfaChallengeAttempts codes are ever tried.
	claimChallengeSQL = `UPDATE mfa_challenge SET attempts = attempts + 1
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3
        RETURNING id, user_id, method`
	useChallengeSQL = "UPDATE mfa_challenge SET used_at = $2 WHERE id = $1 AND used_at IS NULL"
)

// errMFAFailed is the one answer for a wrong code and for a challenge that
// is malformed, unknown, used, expired or out of attempts.
func errMFAFailed() error {
	return &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "the code is incorrect or the login has expired; log in again if it keeps failing"}
}

// mfaEnabled reports whether the account has confirmed MFA.
func mfaEnabled(ctx context.Context, tx store.Tx, userID uuid.UUID) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, mfaEnabledSQL, userID).Scan(&n)
	return n > 0, err
}

// sessionOrChallenge ends a first factor (method: password or magic link)
// that u has just proved inside tx. Without MFA it opens a session as
// openSession does. With MFA it opens none: it stores a login challenge
// (single use, mfaChallengeTTL) and returns it in LoginResult.MFAChallenge,
// to be answered with LoginMFA; user.mfa_challenged is audited. It returns
// the store's error.
func (s *Service) sessionOrChallenge(ctx context.Context, tx store.Tx, u User, client kernel.Client, method string) (LoginResult, error) {
	on, err := mfaEnabled(ctx, tx, u.ID)
	if err != nil {
		return LoginResult{}, err
	}
	if !on {
		return s.openSession(ctx, tx, u, client, method)
	}
	now := tx.Now()
	if _, err := tx.Exec(ctx, pruneChallengesSQL, u.ID, now); err != nil {
		return LoginResult{}, err
	}
	token, hash := newToken()
	id := kernel.NewID()
	if _, err := tx.Exec(ctx, insertChallengeSQL, id, u.ID, hash, method, now, now.Add(mfaChallengeTTL),
		kernel.BoundedText(client.IP, 64), kernel.BoundedText(client.UserAgent, maxUserAgentBytes)); err != nil {
		return LoginResult{}, err
	}
	self := userActor(u.ID)
	_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.mfa_challenged", TargetType: "user", TargetID: apiUserID(u.ID),
		Actor: &self, Metadata: map[string]any{"method": method}})
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{User: u, MFAChallenge: token}, nil
}

// challenge is a claimed mfa_challenge row.
type challenge struct {
	id     uuid.UUID
	userID uuid.UUID
	method string
}

// LoginMFA answers the challenge of a two-step login with a TOTP code or a
// backup code and, when it is right, starts a session for client exactly as
// a password login does (ending the session ctx's actor came with, auditing
// user.login_succeeded with method "password+totp", "magic_link+backup_code"
// and so on). The challenge is then used up, as is a backup code; a TOTP
// code's time step cannot be used again.
//
// Every answer, right or wrong, counts against the challenge's
// mfaChallengeAttempts. A wrong code is audited (user.mfa_failed). It returns
// one unauthenticated *kernel.Error, with one fixed message, for a wrong code
// and for a challenge that is malformed, unknown, used, expired or out of
// attempts; or the store's error.
func (s *Service) LoginMFA(ctx context.Context, challengeToken, code string, client kernel.Client) (LoginResult, error) {
	if !wellFormed(challengeToken) {
		return LoginResult{}, errMFAFailed()
	}
	if err := s.checkMFALimit(ctx, challengeToken); err != nil { // 429 past MFAPerAccount wrong codes (throttle.go)
		return LoginResult{}, err
	}
	var res LoginResult
	var wrong uuid.UUID // the account whose live challenge got a wrong code
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var ch challenge
		err := tx.QueryRow(ctx, claimChallengeSQL, hashToken(challengeToken), tx.Now(), mfaChallengeAttempts).
			Scan(&ch.id, &ch.userID, &ch.method)
		if err != nil {
			return err
		}
		factor, err := s.secondFactor(ctx, tx, ch.userID, code)
		if err != nil {
			return err
		}
		if factor == "" {
			wrong = ch.userID
			return nil // commit: the attempt counts
		}
		if _, err := tx.Exec(ctx, useChallengeSQL, ch.id, tx.Now()); err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, selectUserSQL, ch.userID))
		if err != nil {
			return err
		}
		res, err = s.openSession(ctx, tx, u, client, ch.method+"+"+factor)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return LoginResult{}, errMFAFailed()
	}
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: MFA login: %w", err)
	}
	if wrong != uuid.Nil {
		return LoginResult{}, s.mfaFailed(ctx, wrong, "wrong_code")
	}
	return res, nil
}

// mfaFailed audits a wrong second factor for the account (user.mfa_failed)
// and returns the answer to give. It is the one place every failed MFA
// answer of a live challenge passes through.
func (s *Service) mfaFailed(ctx context.Context, userID uuid.UUID, reason string) error {
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.mfa_failed", TargetType: "user", TargetID: apiUserID(userID),
			Metadata: map[string]any{"reason": reason}})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: MFA login: %w", err)
	}
	if err := s.countMFAFailure(ctx, userID); err != nil {
		return err
	}
	return errMFAFailed()
}

// secondFactor checks code, a TOTP code or a backup code, against the
// account's confirmed MFA inside tx and uses it up: a TOTP code's time step
// becomes the last accepted one, a backup code is marked used. It returns
// the factor used (factorTOTP, factorBackupCode), "" when code is neither
// right nor of either shape or the account has no MFA, or the store's error.
func (s *Service) secondFactor(ctx context.Context, tx store.Tx, userID uuid.UUID, code string) (string, error) {
	code = normalizeCode(code)
	if isTOTPCode(code) {
		m, err := mfaOf(ctx, tx, userID)
		if kernel.IsCode(err, kernel.CodeNotFound) || (err == nil && m.confirmedAt == nil) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		secret, err := s.openSecret(userID, m.sealed)
		if err != nil {
			return "", err
		}
		step, ok := matchTOTP(secret, code, tx.Now(), m.lastStep)
		if !ok {
			return "", nil
		}
		n, err := tx.Exec(ctx, useTOTPStepSQL, userID, step)
		if err != nil || n == 0 {
			return "", err
		}
		return factorTOTP, nil
	}
	if canonical := canonicalBackupCode(code); canonical != "" {
		n, err := tx.Exec(ctx, useBackupCodeSQL, userID, hashToken(canonical), tx.Now())
		if err != nil || n == 0 {
			return "", err
		}
		return factorBackupCode, nil
	}
	return "", nil
}
