package sandboxpay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// keysKeptFor is how long an idempotency key replays its first result, as
// at Stripe; Renew forgets older ones.
const keysKeptFor = 24 * time.Hour

// result is what an idempotent call answered first, replayed for its key:
// the object's view, or the error (a declined charge) it answered.
type result struct {
	Subscription *billing.ProviderSubscription `json:"subscription,omitempty"`
	Checkout     *billing.CheckoutSession      `json:"checkout,omitempty"`
	Error        *resultError                  `json:"error,omitempty"`
}

type resultError struct {
	Code    kernel.Code `json:"code"`
	Message string      `json:"message"`
}

// failed is a result that answers err, which the caller must see again on
// a repeat of the key.
func failed(err *kernel.Error) result {
	return result{Error: &resultError{Code: err.Code, Message: err.Message}}
}

// err is the error the result answers, or nil.
func (r result) err() error {
	if r.Error == nil {
		return nil
	}
	return &kernel.Error{Code: r.Error.Code, Message: r.Error.Message}
}

// fingerprint hashes an operation and its parameters: the same key sent
// with other parameters is a mistake worth refusing.
func fingerprint(operation string, params any) string {
	raw, _ := json.Marshal(params) // the requests are plain values
	sum := sha256.Sum256(append([]byte(operation+"\n"), raw...))
	return hex.EncodeToString(sum[:])
}

// replay looks up key in the transaction's workspace and reports whether
// it has a result to replay. It returns conflict when the key was used for
// another operation or other parameters. An empty key replays nothing.
func replay(ctx context.Context, tx store.Tx, key, print string) (result, bool, error) {
	if key == "" {
		return result{}, false, nil
	}
	var storedPrint, raw string
	var created time.Time
	err := tx.QueryRow(ctx, `SELECT fingerprint, result, created_at FROM sandbox_idempotency WHERE workspace_id = $1 AND key = $2`,
		tx.WorkspaceID(), key).Scan(&storedPrint, &raw, &created)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return result{}, false, nil
	}
	if err != nil {
		return result{}, false, fmt.Errorf("idempotency key: read: %w", err)
	}
	if tx.Now().Sub(created) >= keysKeptFor {
		// Past its day, not yet forgotten by Renew: the key is free again.
		_, err := tx.Exec(ctx, `DELETE FROM sandbox_idempotency WHERE workspace_id = $1 AND key = $2`, tx.WorkspaceID(), key)
		return result{}, false, err
	}
	if storedPrint != print {
		return result{}, false, &kernel.Error{Code: kernel.CodeConflict, Message: "this idempotency key was used for another request"}
	}
	var r result
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return result{}, false, kernel.Internal(fmt.Errorf("idempotency key: stored result: %w", err))
	}
	return r, true, nil
}

// remember stores a call's result under key, in the transaction of its
// effect. When a concurrent call with the same key stored its own first,
// the insert fails and remember returns errRaced: the transaction runs
// again, and replays that call's result. An empty key stores nothing.
func remember(ctx context.Context, tx store.Tx, key, print string, r result) error {
	if key == "" {
		return nil
	}
	raw, _ := json.Marshal(r) // plain values always encode
	_, err := tx.Exec(ctx, `INSERT INTO sandbox_idempotency (workspace_id, key, fingerprint, result, created_at)
        VALUES ($1, $2, $3, $4, $5)`, tx.WorkspaceID(), key, print, string(raw), tx.Now())
	if kernel.IsCode(err, kernel.CodeConflict) {
		return errRaced
	}
	if err != nil {
		return fmt.Errorf("idempotency key: store: %w", err)
	}
	return nil
}

// idempotent runs call under key in the transaction: a key seen before
// replays its first result; otherwise call runs and its result (also a
// declined charge, which commits what it used up) is stored with its
// effect. The returned error is the transaction's (rollback); the result's
// own error is for the caller.
func idempotent(ctx context.Context, tx store.Tx, key, print string, call func() (result, error)) (result, error) {
	if r, ok, err := replay(ctx, tx, key, print); err != nil || ok {
		return r, err
	}
	r, err := call()
	if err != nil {
		return result{}, err
	}
	return r, remember(ctx, tx, key, print, r)
}
