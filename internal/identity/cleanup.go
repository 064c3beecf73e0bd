package identity

import (
	"context"
	"fmt"
	"time"

	"atrium/internal/store"
)

// ExpiredCredentialRetention is how long sessions, emailed links, email
// change links and MFA challenges are kept after they expired, before
// DeleteExpiredCredentials removes them. The day keeps every row the
// per-hour request limits count (links sent in the last hour, say), and
// keeps an ended session in its person's export a little longer.
const ExpiredCredentialRetention = 24 * time.Hour

// cleanupBatch is how many rows one cleanup transaction deletes at most.
const cleanupBatch = 500

// expiredCredentials are the batch deletes of DeleteExpiredCredentials, each served by
// its table's expires_at index. A session is judged by its absolute expiry
// (expires_at, never extended): one revoked or idle before it stays until
// then, so the index is not rewritten each time a session is used.
var expiredCredentials = []struct{ table, sql string }{
	{"user_session", "DELETE FROM user_session WHERE id IN (SELECT id FROM user_session WHERE expires_at < $1 LIMIT $2)"},
	{"user_token", "DELETE FROM user_token WHERE id IN (SELECT id FROM user_token WHERE expires_at < $1 LIMIT $2)"},
	{"email_change", "DELETE FROM email_change WHERE id IN (SELECT id FROM email_change WHERE expires_at < $1 LIMIT $2)"},
	{"mfa_challenge", "DELETE FROM mfa_challenge WHERE id IN (SELECT id FROM mfa_challenge WHERE expires_at < $1 LIMIT $2)"},
}

// DeleteExpiredCredentials deletes the sessions, verification, reset and magic links,
// email change links and MFA challenges that expired more than
// ExpiredCredentialRetention ago, a batch per transaction. They are platform
// tables, so no system path is needed. It returns how many rows it deleted
// per table, with the store's error or ctx's.
func DeleteExpiredCredentials(ctx context.Context, db store.DB) (map[string]int64, error) {
	deleted := map[string]int64{}
	for _, c := range expiredCredentials {
		n, err := store.DeleteInBatches(ctx, cleanupBatch, func(ctx context.Context, limit int) (int64, error) {
			return deleteBatch(ctx, db, c.sql, ExpiredCredentialRetention, limit)
		})
		deleted[c.table] = n
		if err != nil {
			return deleted, fmt.Errorf("identity: delete expired %s: %w", c.table, err)
		}
	}
	return deleted, nil
}

// deleteBatch runs query, a batch delete taking a cutoff ($1, age before the
// transaction's time) and a limit ($2), in a transaction of its own. It
// returns how many rows it deleted, or the store's error.
func deleteBatch(ctx context.Context, db store.DB, query string, age time.Duration, limit int) (int64, error) {
	var n int64
	err := db.Tx(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.Exec(ctx, query, tx.Now().Add(-age), limit)
		return err
	})
	return n, err
}
