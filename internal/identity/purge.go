package identity

import (
	"context"
	"fmt"
	"time"

	"atrium/internal/store"
)

// DeletedAccountRetention is how long after an account's deletion its
// remaining traces stay, before PurgeDeletedAccounts removes them: the same 30 days
// as a deleted workspace's restore window.
const DeletedAccountRetention = 30 * 24 * time.Hour

// What a deleted account leaves that still says something about the person:
// its sessions (addresses and browsers), its personal access tokens (their
// names), and its voided emailed links and email changes (addresses).
// DeleteAccount already removed its second factor and challenges, and
// anonymised the account's row, which stays so that audit entries keep
// naming the ID. Each statement deletes a batch, served by app_user_deleted
// and the table's user_id index.
var deletedAccountTraces = []struct{ table, sql string }{
	{"user_session", `DELETE FROM user_session WHERE id IN (SELECT s.id FROM user_session s JOIN app_user u ON u.id = s.user_id
        WHERE u.deleted_at IS NOT NULL AND u.deleted_at < $1 LIMIT $2)`},
	{"personal_token", `DELETE FROM personal_token WHERE id IN (SELECT t.id FROM personal_token t JOIN app_user u ON u.id = t.user_id
        WHERE u.deleted_at IS NOT NULL AND u.deleted_at < $1 LIMIT $2)`},
	{"user_token", `DELETE FROM user_token WHERE id IN (SELECT t.id FROM user_token t JOIN app_user u ON u.id = t.user_id
        WHERE u.deleted_at IS NOT NULL AND u.deleted_at < $1 LIMIT $2)`},
	{"email_change", `DELETE FROM email_change WHERE id IN (SELECT c.id FROM email_change c JOIN app_user u ON u.id = c.user_id
        WHERE u.deleted_at IS NOT NULL AND u.deleted_at < $1 LIMIT $2)`},
}

// PurgeDeletedAccounts removes what accounts deleted more than
// DeletedAccountRetention ago still hold about their person (see
// deletedAccountTraces), a batch per transaction. It returns how many rows
// it deleted per table, with the store's error or ctx's.
func PurgeDeletedAccounts(ctx context.Context, db store.DB) (map[string]int64, error) {
	deleted := map[string]int64{}
	for _, c := range deletedAccountTraces {
		n, err := store.DeleteInBatches(ctx, cleanupBatch, func(ctx context.Context, limit int) (int64, error) {
			return deleteBatch(ctx, db, c.sql, DeletedAccountRetention, limit)
		})
		deleted[c.table] = n
		if err != nil {
			return deleted, fmt.Errorf("identity: purge deleted accounts' %s: %w", c.table, err)
		}
	}
	return deleted, nil
}
