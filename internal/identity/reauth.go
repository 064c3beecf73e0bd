package identity

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

const (
	// rotateSessionSQL gives a live session a new token and records the
	// proof. The old token's hash is gone, so the old token stops working at
	// once.
	rotateSessionSQL = `UPDATE user_session SET token_hash = $3, reauthenticated_at = $4
        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND idle_expires_at > $4 AND expires_at > $4`
	selectSessionSQL = "SELECT " + sessionColumns + " FROM user_session WHERE id = $1"
	passwordHashSQL  = "SELECT password_hash FROM app_user WHERE id = $1"
)

// errReauthFailed is the one answer for a wrong password and a wrong code.
func errReauthFailed() error {
	return &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "the password or code is incorrect"}
}

// Reauthenticate proves again, inside a signed-in session, that the person
// is who the session says, for the actions that need a recent proof
// (policy.RequireRecentAuth). The proof is the password and, when the
// account has MFA, a TOTP code or a backup code; an account without a
// password (it logs in with magic links) proves itself with its second
// factor alone. On success the session gets a new token, returned with the
// session (the old token stops working), its reauthenticated_at becomes now,
// and user.reauthenticated is audited.
//
// It returns forbidden unless the actor is a person signed in with a
// session, or when the account has neither a password nor MFA (it must log
// in again with a login link); invalid on field "code" when MFA is on and no
// code was given; one unauthenticated *kernel.Error for a wrong password or
// code (audited, user.reauthentication_failed); unauthenticated when the
// session has ended meanwhile; or the store's error.
func (s *Service) Reauthenticate(ctx context.Context, pw, code string) (Session, string, error) {
	defer s.forgetUser(kernel.ActorFrom(ctx).ID)
	actor := kernel.ActorFrom(ctx)
	if actor.Kind != kernel.ActorUser || actor.Via != kernel.ViaCookie || actor.SessionID == uuid.Nil {
		return Session{}, "", &kernel.Error{Code: kernel.CodeForbidden, Message: "re-authentication needs a signed-in session"}
	}
	hash, hasMFA, err := s.reauthFactors(ctx, actor.ID)
	if err != nil {
		return Session{}, "", err
	}
	switch {
	case hash == "" && !hasMFA:
		return Session{}, "", &kernel.Error{Code: kernel.CodeForbidden,
			Message: "this account has no password: log in again with a login link (POST /api/v1/auth/magic-link)"}
	case hasMFA && normalizeCode(code) == "":
		return Session{}, "", kernel.Invalid("code", "enter a code from your authenticator app or a backup code")
	}
	if err := s.checkReauth(ctx, actor.ID); err != nil { // 429 past PerAccount failures, before hashing (throttle.go)
		return Session{}, "", err
	}
	if hash != "" {
		ok, _, err := s.hasher.Verify(ctx, pw, hash)
		if err != nil {
			return Session{}, "", fmt.Errorf("identity: reauthenticate %s: verify: %w", apiUserID(actor.ID), err)
		}
		if !ok {
			return Session{}, "", s.reauthFailed(ctx, actor.ID, "wrong_password")
		}
	}
	sess, token, factor, err := s.rotateSession(ctx, actor, hasMFA, code)
	if err != nil {
		return Session{}, "", err
	}
	if hasMFA && factor == "" {
		return Session{}, "", s.reauthFailed(ctx, actor.ID, "wrong_code")
	}
	return sess, token, nil
}

// reauthFactors returns what the account proves itself with: its password
// hash ("" for none) and whether it has MFA. It returns unauthenticated for
// an account that no longer exists, or the store's error.
func (s *Service) reauthFactors(ctx context.Context, userID uuid.UUID) (string, bool, error) {
	var hash string
	var hasMFA bool
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		if err := tx.QueryRow(ctx, passwordHashSQL, userID).Scan(&hash); err != nil {
			return err
		}
		var err error
		hasMFA, err = mfaEnabled(ctx, tx, userID)
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return "", false, errSessionEnded()
	}
	if err != nil {
		return "", false, fmt.Errorf("identity: reauthenticate %s: %w", apiUserID(userID), err)
	}
	return hash, hasMFA, nil
}

// rotateSession checks the second factor when hasMFA (returning factor ""
// and changing nothing when code is wrong), then gives the actor's session a
// new token and audits user.reauthenticated. It returns the session, its new
// token and the factor used, errSessionEnded when the session has ended, or
// the store's error.
func (s *Service) rotateSession(ctx context.Context, actor kernel.Actor, hasMFA bool, code string) (Session, string, string, error) {
	var sess Session
	var token, factor string
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		if hasMFA {
			var err error
			if factor, err = s.secondFactor(ctx, tx, actor.ID, code); err != nil || factor == "" {
				return err
			}
		}
		fresh, hash := newToken()
		n, err := tx.Exec(ctx, rotateSessionSQL, actor.SessionID, actor.ID, hash, tx.Now())
		if err != nil {
			return err
		}
		if n == 0 {
			return errSessionEnded()
		}
		if sess, err = scanSession(tx.QueryRow(ctx, selectSessionSQL, actor.SessionID)); err != nil {
			return err
		}
		token = fresh
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.reauthenticated", TargetType: "user", TargetID: apiUserID(actor.ID),
			Metadata: map[string]any{"session_id": apiSessionID(actor.SessionID), "second_factor": factor}})
		return err
	})
	if err != nil {
		return Session{}, "", "", fmt.Errorf("identity: reauthenticate %s: %w", apiUserID(actor.ID), err)
	}
	return sess, token, factor, nil
}

// reauthFailed audits a failed re-authentication and returns the answer to
// give.
func (s *Service) reauthFailed(ctx context.Context, userID uuid.UUID, reason string) error {
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.reauthentication_failed", TargetType: "user",
			TargetID: apiUserID(userID), Metadata: map[string]any{"reason": reason}})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: reauthenticate %s: %w", apiUserID(userID), err)
	}
	if err := s.reauthFailedCount(ctx, userID); err != nil {
		return err
	}
	return errReauthFailed()
}
