package identity

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

const (
	userColumns = "id, email, name, email_verified_at, created_at, updated_at"

	insertUserSQL = `INSERT INTO app_user (id, email, name, password_hash, email_verified_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, NULL, $5, $5)`
	selectUserSQL        = "SELECT " + userColumns + " FROM app_user WHERE id = $1"
	selectUserByEmailSQL = "SELECT " + userColumns + ", password_hash FROM app_user WHERE email = $1 AND deleted_at IS NULL" // a deleted account matches no address
	updatePasswordSQL    = "UPDATE app_user SET password_hash = $2, updated_at = $3 WHERE id = $1"
	markVerifiedSQL      = `UPDATE app_user SET email_verified_at = $2, updated_at = $2
        WHERE id = $1 AND email = $3 AND email_verified_at IS NULL`
)

// User returns the account with the given ID. It returns not_found if there is
// none, or the store's error.
func (s *Service) User(ctx context.Context, userID uuid.UUID) (User, error) {
	var u User
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		var err error
		u, err = scanUser(tx.QueryRow(ctx, selectUserSQL, userID))
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return User{}, kernel.NotFound("user")
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: user: %w", err)
	}
	return u, nil
}

// scanUser reads the userColumns of one row.
func scanUser(row store.Row, extra ...any) (User, error) {
	var u User
	dest := append([]any{&u.ID, &u.Email, &u.Name, &u.EmailVerifiedAt, &u.CreatedAt, &u.UpdatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		return User{}, err
	}
	u.EmailVerifiedAt = utcPtr(u.EmailVerifiedAt)
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, nil
}

// userByEmail returns the account with the normalised address email and its
// password hash, or not_found.
func userByEmail(ctx context.Context, tx store.Tx, email string) (User, string, error) {
	var hash string
	u, err := scanUser(tx.QueryRow(ctx, selectUserByEmailSQL, email), &hash)
	return u, hash, err
}

// utcPtr returns t in UTC, or nil for nil. Both drivers may hand back another
// location for the same instant.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
