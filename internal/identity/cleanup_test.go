package identity_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// credentialInserts add a row $1 expiring at $3 for the account $2, created
// at $4 with the token hash $5, to each table DeleteExpiredCredentials cleans.
var credentialInserts = map[string]string{
	"user_session": `INSERT INTO user_session (id, user_id, token_hash, created_at, last_seen_at, idle_expires_at, expires_at,
        reauthenticated_at, ip, user_agent) VALUES ($1, $2, $5, $4, $4, $3, $3, $4, '192.0.2.1', 'test')`,
	"user_token": `INSERT INTO user_token (id, user_id, purpose, token_hash, email, created_at, expires_at)
        VALUES ($1, $2, 'magic_link', $5, 'ada@example.com', $4, $3)`,
	"email_change": `INSERT INTO email_change (id, user_id, new_email, token_hash, created_at, expires_at)
        VALUES ($1, $2, 'new@example.com', $5, $4, $3)`,
	"mfa_challenge": `INSERT INTO mfa_challenge (id, user_id, token_hash, method, created_at, expires_at, ip, user_agent)
        VALUES ($1, $2, $5, 'password', $4, $3, '192.0.2.1', 'test')`,
}

// insertCredential adds a row to table for userID that expires at expiresAt
// and returns its ID.
func insertCredential(t *testing.T, b bundle, table string, userID uuid.UUID, expiresAt time.Time) uuid.UUID {
	t.Helper()
	id := kernel.NewID()
	err := b.db.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Exec(context.Background(), credentialInserts[table], id, userID, expiresAt, expiresAt.Add(-time.Hour), id.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// rowExists reports whether table has a row with id.
func rowExists(t *testing.T, b bundle, table string, id uuid.UUID) bool {
	t.Helper()
	var n int
	err := b.db.ReadTx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE id = $1", id).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestDeleteExpiredCredentials(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ada := signUp(t, b, "ada@example.com") // her fresh session and verification link stay
		now := b.clock.Now()
		gone, kept := map[uuid.UUID]string{}, map[uuid.UUID]string{}
		for table := range credentialInserts {
			gone[insertCredential(t, b, table, ada, now.Add(-identity.ExpiredCredentialRetention-time.Minute))] = table
			kept[insertCredential(t, b, table, ada, now.Add(-identity.ExpiredCredentialRetention+time.Minute))] = table
			kept[insertCredential(t, b, table, ada, now.Add(time.Hour))] = table
		}
		deleted, err := identity.DeleteExpiredCredentials(context.Background(), b.db)
		want := map[string]int64{"user_session": 1, "user_token": 1, "email_change": 1, "mfa_challenge": 1}
		if err != nil || !maps.Equal(deleted, want) {
			t.Fatalf("deleted %v (%v), want one row per table", deleted, err)
		}
		for id, table := range gone {
			if rowExists(t, b, table, id) {
				t.Errorf("%s row expired past the retention survived", table)
			}
		}
		for id, table := range kept {
			if !rowExists(t, b, table, id) {
				t.Errorf("%s row within the retention was deleted", table)
			}
		}
		if _, err := b.svc.Login(context.Background(), "ada@example.com", pw, client); err != nil {
			t.Fatalf("login after the cleanup: %v", err)
		}
	})
}
