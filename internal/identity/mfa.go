package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

const (
	// startTOTPSQL stores a pending enrolment, replacing an earlier pending
	// one; it changes no row (0 affected) when MFA is already on.
	startTOTPSQL = `INSERT INTO user_mfa (user_id, secret, created_at, confirmed_at, last_step)
        VALUES ($1, $2, $3, NULL, 0)
        ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = 0
        WHERE user_mfa.confirmed_at IS NULL`
	selectMFASQL = "SELECT secret, created_at, confirmed_at, last_step FROM user_mfa WHERE user_id = $1"
	// confirmTOTPSQL and useTOTPStepSQL move last_step forward only, so of
	// two requests racing with one code, one wins.
	confirmTOTPSQL = `UPDATE user_mfa SET confirmed_at = $2, last_step = $3
        WHERE user_id = $1 AND confirmed_at IS NULL AND last_step < $3`
	useTOTPStepSQL = `UPDATE user_mfa SET last_step = $2
        WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2`
	insertBackupCodeSQL = `INSERT INTO mfa_backup_code (id, user_id, code_hash, created_at, used_at)
        VALUES ($1, $2, $3, $4, NULL)`
	useBackupCodeSQL = `UPDATE mfa_backup_code SET used_at = $3
        WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`
	countBackupCodesSQL = "SELECT count(*) FROM mfa_backup_code WHERE user_id = $1 AND used_at IS NULL"

	deleteUserMFASQL     = "DELETE FROM user_mfa WHERE user_id = $1"
	deleteBackupCodesSQL = "DELETE FROM mfa_backup_code WHERE user_id = $1"
	deleteChallengesSQL  = "DELETE FROM mfa_challenge WHERE user_id = $1"
)

// MFAStatus is what a person sees of their second factor: never the secret.
type MFAStatus struct {
	Enabled    bool
	EnrolledAt *time.Time // when the enrolment was confirmed; nil while MFA is off
	// Pending is true between starting an enrolment and confirming it.
	Pending              bool
	BackupCodesRemaining int
}

// TOTPEnrolment is a started enrolment: the secret, as base32 and as the
// otpauth:// URI an authenticator app scans. It is shown once.
type TOTPEnrolment struct {
	Secret string
	URI    string
}

// mfaRow is a user_mfa row with its secret still sealed.
type mfaRow struct {
	sealed      string
	createdAt   time.Time
	confirmedAt *time.Time
	lastStep    int64
}

func mfaOf(ctx context.Context, tx store.Tx, userID uuid.UUID) (mfaRow, error) {
	var m mfaRow
	err := tx.QueryRow(ctx, selectMFASQL, userID).Scan(&m.sealed, &m.createdAt, &m.confirmedAt, &m.lastStep)
	m.createdAt, m.confirmedAt = m.createdAt.UTC(), utcPtr(m.confirmedAt)
	return m, err
}

// MFA returns the person's MFA status. It returns the store's error.
func (s *Service) MFA(ctx context.Context, userID uuid.UUID) (MFAStatus, error) {
	var st MFAStatus
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		m, err := mfaOf(ctx, tx, userID)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		st.Enabled, st.EnrolledAt, st.Pending = m.confirmedAt != nil, m.confirmedAt, m.confirmedAt == nil
		if st.Enabled {
			return tx.QueryRow(ctx, countBackupCodesSQL, userID).Scan(&st.BackupCodesRemaining)
		}
		return nil
	})
	if err != nil {
		return MFAStatus{}, fmt.Errorf("identity: MFA status: %w", err)
	}
	return st, nil
}

// StartTOTP begins a TOTP enrolment for the person acting: it stores a new
// secret, sealed and not yet active, replacing any earlier pending one, and
// returns it once. It returns reauthentication_required unless the actor is
// a session that authenticated recently, conflict when MFA is already on,
// or the store's error.
func (s *Service) StartTOTP(ctx context.Context) (TOTPEnrolment, error) {
	actor := kernel.ActorFrom(ctx)
	var out TOTPEnrolment
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		if err := policy.RequireRecentAuth(actor, tx.Now()); err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, selectUserSQL, actor.ID))
		if err != nil {
			return err
		}
		key, err := s.newTOTPKey(u.Email)
		if err != nil {
			return kernel.Internal(err)
		}
		sealed, err := s.sealSecret(u.ID, key.Secret())
		if err != nil {
			return err
		}
		n, err := tx.Exec(ctx, startTOTPSQL, u.ID, sealed, tx.Now())
		if err != nil {
			return err
		}
		if n == 0 {
			return &kernel.Error{Code: kernel.CodeConflict, Message: "MFA is already on; turn it off before enrolling again"}
		}
		out = TOTPEnrolment{Secret: key.Secret(), URI: key.URL()}
		return nil
	})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("identity: start TOTP: %w", err)
	}
	return out, nil
}

// ConfirmTOTP turns MFA on for the person acting with a code from the
// authenticator app of the pending enrolment, and returns ten backup codes,
// shown once. It ends the person's other sessions and audits mfa.enabled.
// It returns forbidden unless the actor is a person, conflict when there is
// no pending enrolment (none started, or MFA already on), invalid on field
// "code" for a wrong code, or the store's error.
func (s *Service) ConfirmTOTP(ctx context.Context, code string) ([]string, error) {
	defer s.forgetUser(kernel.ActorFrom(ctx).ID)
	actor := kernel.ActorFrom(ctx)
	if actor.Kind != kernel.ActorUser {
		return nil, &kernel.Error{Code: kernel.CodeForbidden, Message: "only a signed-in person can do this"}
	}
	var codes []string
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		m, err := mfaOf(ctx, tx, actor.ID)
		if kernel.IsCode(err, kernel.CodeNotFound) || (err == nil && m.confirmedAt != nil) {
			return &kernel.Error{Code: kernel.CodeConflict, Message: "no TOTP enrolment is waiting for confirmation; start one first"}
		}
		if err != nil {
			return err
		}
		secret, err := s.openSecret(actor.ID, m.sealed)
		if err != nil {
			return err
		}
		step, ok := matchTOTP(secret, normalizeCode(code), tx.Now(), m.lastStep)
		if !ok {
			return kernel.Invalid("code", "the code is not valid; check the time on your device and try the next one")
		}
		if n, err := tx.Exec(ctx, confirmTOTPSQL, actor.ID, tx.Now(), step); err != nil || n == 0 {
			return firstErr(err, kernel.Invalid("code", "the code has already been used"))
		}
		if codes, err = replaceBackupCodes(ctx, tx, actor.ID); err != nil {
			return err
		}
		return s.recordMFAChange(ctx, tx, actor, "mfa.enabled")
	})
	if err != nil {
		return nil, fmt.Errorf("identity: confirm TOTP: %w", err)
	}
	return codes, nil
}

// DisableTOTP turns MFA off for the person acting: it deletes the secret,
// the backup codes and any open login challenge, ends the person's other
// sessions and audits mfa.disabled. A pending enrolment is simply dropped.
// It returns reauthentication_required unless the actor is a session that
// authenticated recently, not_found when there is neither MFA nor a pending
// enrolment, or the store's error.
func (s *Service) DisableTOTP(ctx context.Context) error {
	defer s.forgetUser(kernel.ActorFrom(ctx).ID)
	actor := kernel.ActorFrom(ctx)
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		if err := policy.RequireRecentAuth(actor, tx.Now()); err != nil {
			return err
		}
		m, err := mfaOf(ctx, tx, actor.ID)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			return kernel.NotFound("MFA enrolment")
		}
		if err != nil {
			return err
		}
		if err := s.deleteMFA(ctx, tx, actor.ID); err != nil {
			return err
		}
		if m.confirmedAt == nil {
			return nil
		}
		return s.recordMFAChange(ctx, tx, actor, "mfa.disabled")
	})
	if err != nil {
		return fmt.Errorf("identity: disable TOTP: %w", err)
	}
	return nil
}

// RegenerateBackupCodes replaces the backup codes of the person acting with
// ten new ones, returned once; the old ones stop working. It ends the
// person's other sessions and audits mfa.backup_codes_regenerated. It
// returns reauthentication_required unless the actor is a session that
// authenticated recently, conflict when MFA is off, or the store's error.
func (s *Service) RegenerateBackupCodes(ctx context.Context) ([]string, error) {
	defer s.forgetUser(kernel.ActorFrom(ctx).ID)
	actor := kernel.ActorFrom(ctx)
	var codes []string
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		if err := policy.RequireRecentAuth(actor, tx.Now()); err != nil {
			return err
		}
		m, err := mfaOf(ctx, tx, actor.ID)
		if kernel.IsCode(err, kernel.CodeNotFound) || (err == nil && m.confirmedAt == nil) {
			return &kernel.Error{Code: kernel.CodeConflict, Message: "MFA is off: there are no backup codes to replace"}
		}
		if err != nil {
			return err
		}
		if codes, err = replaceBackupCodes(ctx, tx, actor.ID); err != nil {
			return err
		}
		return s.recordMFAChange(ctx, tx, actor, "mfa.backup_codes_regenerated")
	})
	if err != nil {
		return nil, fmt.Errorf("identity: regenerate backup codes: %w", err)
	}
	return codes, nil
}

// replaceBackupCodes deletes the person's backup codes, stores ten new ones
// and returns them. It returns the store's error.
func replaceBackupCodes(ctx context.Context, tx store.Tx, userID uuid.UUID) ([]string, error) {
	if _, err := tx.Exec(ctx, deleteBackupCodesSQL, userID); err != nil {
		return nil, err
	}
	codes, hashes := newBackupCodes()
	for _, h := range hashes {
		if _, err := tx.Exec(ctx, insertBackupCodeSQL, kernel.NewID(), userID, h, tx.Now()); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// recordMFAChange ends every session of the actor's account but the one
// acting (a change of second factor ends the others, as a password change
// does) and audits action with how many it ended.
func (s *Service) recordMFAChange(ctx context.Context, tx store.Tx, actor kernel.Actor, action string) error {
	ended, err := tx.Exec(ctx, revokeOtherSessionsSQL, actor.ID, actor.SessionID, tx.Now())
	if err != nil {
		return err
	}
	_, err = audit.Record(ctx, tx, audit.Entry{Action: action, TargetType: "user", TargetID: apiUserID(actor.ID),
		Metadata: map[string]any{"sessions_ended": ended}})
	return err
}

// deleteMFA removes everything MFA keeps for the account inside tx: the
// TOTP secret (confirmed or pending), the backup codes and the login
// challenges. It is used when MFA is turned off and when an account is
// deleted, and audits nothing itself. It returns the store's error.
func (s *Service) deleteMFA(ctx context.Context, tx store.Tx, userID uuid.UUID) error {
	return clearMFA(ctx, tx, userID)
}

// clearMFA is deleteMFA for code that has no Service at hand.
func clearMFA(ctx context.Context, tx store.Tx, userID uuid.UUID) error {
	for _, q := range []string{deleteChallengesSQL, deleteBackupCodesSQL, deleteUserMFASQL} {
		if _, err := tx.Exec(ctx, q, userID); err != nil {
			return err
		}
	}
	return nil
}

// firstErr returns err if it is set, and otherwise fallback.
func firstErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
