// Package idempotency stores the outcome of POST requests sent with an
// Idempotency-Key header, so that a client may retry a request safely: the
// first request with a key runs, and every later one with the same key and the
// same request gets the first response back instead of running again.
//
// A key lives per scope (the caller: actor and workspace, chosen by the HTTP
// middleware) and is bound to a fingerprint of the request that first used it.
// While that request runs, the key holds a lease; a request that died without
// completing (a node crash) lets a retry take the key over once the lease has
// passed. Keys expire after a day, after which the same key is new again.
//
// Every decision is made in the database, so it holds across any number of
// nodes: a claim is an INSERT ... ON CONFLICT DO NOTHING, and a takeover is an
// UPDATE whose WHERE clause re-checks that the key is still free to take, so of
// two concurrent requests exactly one wins.
//
// The owner of a key holds a Claim whose random token is stored in the row.
// Complete and Abandon act only on a row that still carries that token, so a
// request that ran past its lease and lost the key to a retry can neither
// overwrite the retry's response nor release the retry's claim.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

const (
	// DefaultTTL is how long a key is remembered after its first request.
	DefaultTTL = 24 * time.Hour
	// DefaultLease is how long a running request holds its key before a retry
	// may assume it died and take the key over.
	DefaultLease = 60 * time.Second
)

// maxClaimAttempts bounds how often Begin re-reads a key that changed under it
// (deleted, or taken over by another request) before answering conflict.
const maxClaimAttempts = 3

// statusDone marks a row whose response is stored; the other status the
// migrations allow is 'running'.
const statusDone = "done"

// transactor is the part of store.DB this package needs. idempotency_key is a
// platform table, so its statements run in platform transactions.
type transactor interface {
	Tx(ctx context.Context, fn func(store.Tx) error) error
}

// Options tunes a Store; a zero field takes its default.
type Options struct {
	// TTL is how long a key is remembered; DefaultTTL when zero.
	TTL time.Duration
	// Lease is how long a running request holds its key; DefaultLease when zero.
	// It should comfortably exceed the longest a POST handler may run.
	Lease time.Duration
}

// Store keeps idempotency keys in the idempotency_key table. Its times come from
// the transaction (store.Tx.Now), so the database's clock drives expiry and
// leases, and tests move them with a fake clock. It is safe for concurrent use.
type Store struct {
	db    transactor
	ttl   time.Duration
	lease time.Duration
}

// New returns a Store on db with the options' TTL and lease.
func New(db transactor, opts Options) *Store {
	s := &Store{db: db, ttl: opts.TTL, lease: opts.Lease}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.lease <= 0 {
		s.lease = DefaultLease
	}
	return s
}

// Claim is a request's ownership of a key, given by Begin to the request that
// must run. Its token identifies this one ownership: once a retry takes the key
// over, the retry holds a different token, and Complete and Abandon with the old
// Claim no longer touch the row. The zero Claim holds nothing.
type Claim struct {
	Scope, Key string
	token      string
}

// Held reports whether c came from a Begin that made its caller the owner.
func (c Claim) Held() bool { return c.token != "" }

// newClaimToken returns 128 random bits, hex-encoded.
func newClaimToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error; it crashes the program instead
	return hex.EncodeToString(b[:])
}

// Response is what a completed request answered, replayed verbatim to retries.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// The SQL is the same on both dialects: both accept $n placeholders, ON
// CONFLICT DO NOTHING and row values.
const (
	insertClaimSQL = `INSERT INTO idempotency_key
    (scope, key, fingerprint, status, claim, response_status, response_type, response_body, created_at, locked_until, expires_at)
    VALUES ($1, $2, $3, 'running', $4, 0, '', $5, $6, $7, $8)
    ON CONFLICT (scope, key) DO NOTHING`

	selectKeySQL = `SELECT fingerprint, status, response_status, response_type, response_body, locked_until, expires_at
    FROM idempotency_key WHERE scope = $1 AND key = $2`

	// takeoverSQL claims a key that expired (it becomes new: new fingerprint,
	// new 24 hours) or whose running request let its lease pass (the same
	// request runs again within the key's original lifetime). The WHERE clause
	// repeats the check Begin made on the row it read, so a request that lost a
	// race affects no row. The new claim token locks the previous owner out.
	takeoverSQL = `UPDATE idempotency_key SET
    fingerprint = $3, status = 'running', claim = $4, response_status = 0, response_type = '', response_body = $5,
    created_at = CASE WHEN expires_at <= $6 THEN $6 ELSE created_at END,
    locked_until = $7,
    expires_at = CASE WHEN expires_at <= $6 THEN $8 ELSE expires_at END
    WHERE scope = $1 AND key = $2
      AND (expires_at <= $6 OR (status = 'running' AND locked_until <= $6))`

	completeSQL = `UPDATE idempotency_key SET
    status = 'done', response_status = $4, response_type = $5, response_body = $6, locked_until = $7
    WHERE scope = $1 AND key = $2 AND claim = $3 AND status = 'running'`

	abandonSQL = `DELETE FROM idempotency_key WHERE scope = $1 AND key = $2 AND claim = $3 AND status = 'running'`

	// deleteExpiredSQL repeats expires_at on the outer statement so that a row a
	// concurrent Begin has just taken over (and given a new expiry) is spared.
	deleteExpiredSQL = `DELETE FROM idempotency_key
    WHERE expires_at <= $1 AND (scope, key) IN (
        SELECT scope, key FROM idempotency_key WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)`
)

// Begin claims key in scope for the request whose fingerprint is given (the
// caller's hex SHA-256 of method, path and body).
//
// When the caller now owns the key it returns a held Claim and a nil response:
// the caller must run the request and then pass the Claim to Complete with the
// response, or to Abandon if it could not produce one. When a request with the
// same key and fingerprint has completed it returns the zero Claim and the
// stored response: the caller must send that response and not run the request.
// A key that expired, or whose running request let its lease pass, is claimed
// again, under a new Claim.
//
// On failure it returns the zero Claim, a nil response and unprocessable if the
// key was used with a different fingerprint, conflict if a request with the key
// is still running, invalid if the key is not a valid Idempotency-Key, or the
// store's error.
func (s *Store) Begin(ctx context.Context, scope, key, fingerprint string) (Claim, *Response, error) {
	if err := ValidKey(key); err != nil {
		return Claim{}, nil, err
	}
	if scope == "" || fingerprint == "" {
		return Claim{}, nil, kernel.Internal(fmt.Errorf("idempotency: begin without a scope or fingerprint"))
	}
	token := newClaimToken()
	var replay *Response
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		replay, err = s.claim(ctx, tx, scope, key, fingerprint, token)
		return err
	})
	if err != nil {
		return Claim{}, nil, err
	}
	if replay != nil {
		return Claim{}, replay, nil
	}
	return Claim{Scope: scope, Key: key, token: token}, nil, nil
}

// claim is Begin inside its transaction. Each statement sees what committed
// before it started (PostgreSQL's read committed; SQLite runs one writer at a
// time), so when a row changes between the read and the takeover, the next
// attempt reads it again and decides afresh. It returns a nil response when it
// stored token as the key's claim.
func (s *Store) claim(ctx context.Context, tx store.Tx, scope, key, fingerprint, token string) (*Response, error) {
	now := tx.Now()
	for range maxClaimAttempts {
		inserted, err := tx.Exec(ctx, insertClaimSQL, scope, key, fingerprint, token, []byte{}, now, now.Add(s.lease), now.Add(s.ttl))
		if err != nil {
			return nil, fmt.Errorf("idempotency: claim: %w", err)
		}
		if inserted == 1 {
			return nil, nil
		}

		var r row
		err = tx.QueryRow(ctx, selectKeySQL, scope, key).Scan(
			&r.fingerprint, &r.status, &r.response.Status, &r.response.ContentType, &r.response.Body, &r.lockedUntil, &r.expiresAt)
		if kernel.IsCode(err, kernel.CodeNotFound) {
			continue // released or deleted since the insert: try to claim it again
		}
		if err != nil {
			return nil, fmt.Errorf("idempotency: read key: %w", err)
		}

		expired := !now.Before(r.expiresAt)
		if !expired && subtle.ConstantTimeCompare([]byte(r.fingerprint), []byte(fingerprint)) != 1 {
			return nil, errDifferentRequest()
		}
		if !expired && r.status == statusDone {
			return &r.response, nil
		}
		if !expired && now.Before(r.lockedUntil) {
			return nil, errInProgress()
		}

		taken, err := tx.Exec(ctx, takeoverSQL, scope, key, fingerprint, token, []byte{}, now, now.Add(s.lease), now.Add(s.ttl))
		if err != nil {
			return nil, fmt.Errorf("idempotency: take over: %w", err)
		}
		if taken == 1 {
			return nil, nil
		}
		// Another request took the key over first; the next read shows its claim.
	}
	return nil, errInProgress()
}

// row is an idempotency_key row as Begin reads it.
type row struct {
	fingerprint string
	status      string
	response    Response
	lockedUntil time.Time
	expiresAt   time.Time
}

func errDifferentRequest() error {
	return &kernel.Error{
		Code:    kernel.CodeUnprocessable,
		Message: "this Idempotency-Key was already used with a different request",
		Fields:  map[string]string{headerField: "already used with a different request"},
	}
}

func errInProgress() error {
	return &kernel.Error{
		Code:    kernel.CodeConflict,
		Message: "a request with this Idempotency-Key is in progress; retry once it has completed",
		Fields:  map[string]string{headerField: "a request with this key is in progress"},
	}
}

// Complete stores r as the response of the request holding c, so that later
// requests with the key replay it. Any status is stored, a 5xx too. A request
// that ran past its lease may still complete, as long as no retry took the key
// over.
//
// It returns not_found, and changes nothing, if c no longer holds the key: a
// retry took it over after the lease passed, it expired and was deleted, or c
// was already completed or abandoned. It returns internal if c is the zero
// Claim or r.Status is not an HTTP status, or the store's error.
func (s *Store) Complete(ctx context.Context, c Claim, r Response) error {
	if !c.Held() {
		return kernel.Internal(fmt.Errorf("idempotency: complete without a claim"))
	}
	if r.Status < 100 || r.Status > 599 {
		return kernel.Internal(fmt.Errorf("idempotency: complete with status %d", r.Status))
	}
	body := r.Body
	if body == nil {
		body = []byte{} // the column is NOT NULL, and nil binds as NULL
	}
	return s.db.Tx(ctx, func(tx store.Tx) error {
		n, err := tx.Exec(ctx, completeSQL, c.Scope, c.Key, c.token, r.Status, r.ContentType, body, tx.Now())
		if err != nil {
			return fmt.Errorf("idempotency: complete: %w", err)
		}
		if n == 0 {
			return errClaimLost()
		}
		return nil
	})
}

func errClaimLost() error {
	return &kernel.Error{
		Code:    kernel.CodeNotFound,
		Message: "the claim on this idempotency key was lost",
	}
}

// Abandon releases the key held by c without a response (the handler
// panicked, or the client went away), so that a retry runs the request at once
// instead of waiting for the lease to pass. It does nothing if c is the zero
// Claim or no longer holds the key (a retry took it over, or it was completed
// or abandoned already), so a late Abandon never releases another request's
// claim. It returns only the store's error.
func (s *Store) Abandon(ctx context.Context, c Claim) error {
	if !c.Held() {
		return nil
	}
	return s.db.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.Exec(ctx, abandonSQL, c.Scope, c.Key, c.token); err != nil {
			return fmt.Errorf("idempotency: abandon: %w", err)
		}
		return nil
	})
}

// DeleteExpired deletes at most limit expired keys, oldest first, and returns
// how many it deleted; the scheduler calls it until it returns less than limit.
// Expired keys already behave as new, so this only reclaims space. It returns
// internal if limit is not positive, or the store's error.
func (s *Store) DeleteExpired(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		return 0, kernel.Internal(fmt.Errorf("idempotency: delete expired with limit %d", limit))
	}
	var deleted int64
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		deleted, err = tx.Exec(ctx, deleteExpiredSQL, tx.Now(), limit)
		if err != nil {
			return fmt.Errorf("idempotency: delete expired: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return deleted, nil
}
