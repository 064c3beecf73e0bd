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

// Platform admins run the deployment itself rather than a workspace: they
// read the scheduler's runs and the event relay's lag, and the admin console
// of a later issue. The right is app_user.platform_admin_at, granted and
// revoked only from the operator's command line (atrium admin grant|revoke),
// never through the API, and checked on every use, never cached, so a
// revocation takes effect at the next request. A deleted account is no
// admin, whatever its column says.
const (
	isPlatformAdminSQL  = "SELECT platform_admin_at IS NOT NULL FROM app_user WHERE id = $1 AND deleted_at IS NULL"
	adminStateSQL       = "SELECT id, platform_admin_at FROM app_user WHERE email = $1 AND deleted_at IS NULL"
	setPlatformAdminSQL = "UPDATE app_user SET platform_admin_at = $2, updated_at = $3 WHERE id = $1"
)

// IsPlatformAdmin reports whether userID is a platform admin; see the
// package-level IsPlatformAdmin.
func (s *Service) IsPlatformAdmin(ctx context.Context, userID uuid.UUID) (bool, error) {
	return IsPlatformAdmin(ctx, s.db, userID)
}

// SetPlatformAdmin grants or revokes the platform-admin right of the account
// at email; see the package-level SetPlatformAdmin.
func (s *Service) SetPlatformAdmin(ctx context.Context, email string, admin bool) error {
	return SetPlatformAdmin(ctx, s.db, email, admin)
}

// IsPlatformAdmin reports whether userID is a platform admin, reading db in
// one round trip. An unknown or deleted account is not one. It returns the
// store's error.
func IsPlatformAdmin(ctx context.Context, db store.DB, userID uuid.UUID) (bool, error) {
	var admin bool
	err := db.PlatformRow(ctx, isPlatformAdminSQL, userID).Scan(&admin)
	switch {
	case kernel.IsCode(err, kernel.CodeNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("identity: platform admin check: %w", err)
	}
	return admin, nil
}

// SetPlatformAdmin grants (admin true) or revokes the platform-admin right
// of the live account at email, and audits platform_admin.granted or
// platform_admin.revoked as a platform entry by the actor in ctx. Granting
// to an admin, or revoking from someone who is none, changes and audits
// nothing. It is a function over the store, not only a Service method, so
// that the command line can call it without the services of a running node.
//
// It returns an invalid *kernel.Error on field "email" for a malformed
// address, not_found when no live account has it, or the store's error.
func SetPlatformAdmin(ctx context.Context, db store.DB, email string, admin bool) error {
	normalized, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	err = db.Tx(ctx, func(tx store.Tx) error {
		var userID uuid.UUID
		var since *time.Time
		if err := tx.QueryRow(ctx, adminStateSQL, normalized).Scan(&userID, &since); err != nil {
			return err
		}
		if (since != nil) == admin {
			return nil
		}
		var at *time.Time
		action := "platform_admin.revoked"
		if admin {
			now := tx.Now()
			at, action = &now, "platform_admin.granted"
		}
		if _, err := tx.Exec(ctx, setPlatformAdminSQL, userID, at, tx.Now()); err != nil {
			return err
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Action: action, TargetType: "user", TargetID: apiUserID(userID)})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.Errorf(kernel.CodeNotFound, "no account has the address %s", normalized)
	}
	if err != nil {
		return fmt.Errorf("identity: set platform admin: %w", err)
	}
	return nil
}
