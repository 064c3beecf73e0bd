package idempotency_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/idempotency"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// fixture is what each test works with: a store on a fresh database whose
// clock the test moves.
type fixture struct {
	store *idempotency.Store
	db    store.DB
	clock *testkit.Clock
	ctx   context.Context
}

func TestStore(t *testing.T) {
	for _, dialect := range testkit.Dialects {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			run(t, dialect)
		})
	}
}

func run(t *testing.T, dialect store.Dialect) {
	setupWith := func(t *testing.T, opts idempotency.Options) fixture {
		t.Helper()
		clock := testkit.NewClock()
		db := testkit.OpenStore(t, dialect, clock)
		return fixture{store: idempotency.New(db, opts), db: db, clock: clock, ctx: context.Background()}
	}
	setup := func(t *testing.T) fixture { return setupWith(t, idempotency.Options{}) }

	t.Run("FirstBeginOwns", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		start := f.clock.Now()
		f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		status, lockedUntil, expiresAt := f.readRow(t, "user:1", "key-1")
		if status != "running" || !lockedUntil.Equal(start.Add(idempotency.DefaultLease)) || !expiresAt.Equal(start.Add(idempotency.DefaultTTL)) {
			t.Fatalf("row after Begin: %s, locked until %v, expires %v; want running, %v, %v",
				status, lockedUntil, expiresAt, start.Add(idempotency.DefaultLease), start.Add(idempotency.DefaultTTL))
		}
		// Each claim carries its own token: 128 random bits in hex.
		f.mustOwn(t, "user:1", "key-2", fingerprint("a"))
		first, second := f.readClaim(t, "user:1", "key-1"), f.readClaim(t, "user:1", "key-2")
		if len(first) != 32 || len(second) != 32 || first == second {
			t.Fatalf("claim tokens %q and %q, want two different 32-digit hex strings", first, second)
		}
		if _, err := hex.DecodeString(first); err != nil {
			t.Fatalf("claim token %q is not hex", first)
		}
	})

	t.Run("CompleteThenBeginReplays", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		for _, want := range []idempotency.Response{
			{Status: 201, ContentType: "application/json", Body: []byte(`{"id":"ws_1"}`)},
			{Status: 500, ContentType: "application/json", Body: []byte(`{"error":{"code":"internal"}}`)},
			{Status: 204, ContentType: "", Body: nil},
			{Status: 200, ContentType: "application/octet-stream", Body: []byte{0, 1, 2, 0xff}},
		} {
			key := fmt.Sprintf("key-%d", want.Status)
			fp := fingerprint(key)
			c := f.mustOwn(t, "user:1", key, fp)
			if err := f.store.Complete(f.ctx, c, want); err != nil {
				t.Fatalf("Complete %d: %v", want.Status, err)
			}
			for range 2 { // a replay does not consume the stored response
				f.mustReplay(t, "user:1", key, fp, want)
			}
		}
	})

	t.Run("DifferentFingerprintIsUnprocessable", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.mustOwn(t, "user:1", "running", fingerprint("a"))
		done := f.mustOwn(t, "user:1", "done", fingerprint("a"))
		f.mustComplete(t, done, idempotency.Response{Status: 201, ContentType: "application/json", Body: []byte(`{}`)})
		for _, key := range []string{"running", "done"} {
			f.mustFail(t, "user:1", key, fingerprint("b"), kernel.CodeUnprocessable, "different request")
		}
		// The rejected request changed nothing: the original still replays.
		f.mustReplay(t, "user:1", "done", fingerprint("a"), idempotency.Response{Status: 201, ContentType: "application/json", Body: []byte(`{}`)})
	})

	t.Run("BeginWhileRunningIsConflict", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeConflict, "in progress")
		f.clock.Advance(idempotency.DefaultLease - time.Second)
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeConflict, "in progress")
	})

	t.Run("RetryTakesOverAfterLease", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		start := f.clock.Now()
		f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		f.clock.Advance(idempotency.DefaultLease)
		f.mustFail(t, "user:1", "key-1", fingerprint("b"), kernel.CodeUnprocessable, "different request")
		retry := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))

		// The retry holds a fresh lease, within the key's original day.
		status, lockedUntil, expiresAt := f.readRow(t, "user:1", "key-1")
		if status != "running" || !lockedUntil.Equal(f.clock.Now().Add(idempotency.DefaultLease)) || !expiresAt.Equal(start.Add(idempotency.DefaultTTL)) {
			t.Fatalf("row after takeover: %s, locked until %v, expires %v", status, lockedUntil, expiresAt)
		}
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeConflict, "in progress")

		want := idempotency.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"n":2}`)}
		f.mustComplete(t, retry, want)
		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), want)
	})

	t.Run("LeaseIsConfigurable", func(t *testing.T) {
		t.Parallel()
		f := setupWith(t, idempotency.Options{Lease: 5 * time.Second, TTL: time.Hour})
		f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		f.clock.Advance(4 * time.Second)
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeConflict, "in progress")
		f.clock.Advance(time.Second)
		retry := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		f.mustComplete(t, retry, idempotency.Response{Status: 200, Body: []byte("x")})
		f.clock.Advance(time.Hour)
		f.mustOwn(t, "user:1", "key-1", fingerprint("b"))
	})

	t.Run("ExpiredKeyIsNew", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		first := idempotency.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"n":1}`)}
		f.mustComplete(t, f.mustOwn(t, "user:1", "key-1", fingerprint("a")), first)

		f.clock.Advance(idempotency.DefaultTTL - time.Second)
		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), first)

		f.clock.Advance(time.Second)
		c := f.mustOwn(t, "user:1", "key-1", fingerprint("b")) // another request is fine now
		_, _, expiresAt := f.readRow(t, "user:1", "key-1")
		if !expiresAt.Equal(f.clock.Now().Add(idempotency.DefaultTTL)) {
			t.Fatalf("new key expires %v, want a day from now", expiresAt)
		}
		second := idempotency.Response{Status: 400, ContentType: "application/json", Body: []byte(`{"n":2}`)}
		f.mustComplete(t, c, second)
		f.mustReplay(t, "user:1", "key-1", fingerprint("b"), second)
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeUnprocessable, "different request")
	})

	t.Run("ExpiredRunningKeyIsNew", func(t *testing.T) {
		t.Parallel()
		f := setupWith(t, idempotency.Options{Lease: 2 * time.Hour, TTL: time.Hour})
		first := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		f.clock.Advance(time.Hour) // expired while its lease still runs
		f.mustOwn(t, "user:1", "key-1", fingerprint("b"))
		// The expired request's late response does not land on the new key.
		err := f.store.Complete(f.ctx, first, idempotency.Response{Status: 201})
		assertError(t, err, kernel.CodeNotFound, "claim on this idempotency key was lost")
		if status, _, _ := f.readRow(t, "user:1", "key-1"); status != "running" {
			t.Fatalf("new key is %s after the late Complete, want running", status)
		}
	})

	t.Run("AbandonLetsNextBeginOwn", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		first := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		if err := f.store.Abandon(f.ctx, first); err != nil {
			t.Fatal(err)
		}
		second := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))

		// Abandoning a completed key, a released claim, or the zero Claim
		// changes nothing.
		want := idempotency.Response{Status: 201, ContentType: "text/plain", Body: []byte("ok")}
		f.mustComplete(t, second, want)
		for _, c := range []idempotency.Claim{second, first, {}, {Scope: "user:1", Key: "key-1"}} {
			if err := f.store.Abandon(f.ctx, c); err != nil {
				t.Fatalf("Abandon %+v: %v", c, err)
			}
		}
		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), want)
	})

	t.Run("CompleteWithoutClaim", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		resp := idempotency.Response{Status: 200, Body: []byte("x")}
		for _, c := range []idempotency.Claim{{}, {Scope: "user:1", Key: "key-1"}} {
			err := f.store.Complete(f.ctx, c, resp)
			assertError(t, err, kernel.CodeInternal, "")
		}

		c := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		err := f.store.Complete(f.ctx, c, idempotency.Response{Status: 42})
		assertError(t, err, kernel.CodeInternal, "")
		f.mustComplete(t, c, resp)
		err = f.store.Complete(f.ctx, c, idempotency.Response{Status: 500})
		assertError(t, err, kernel.CodeNotFound, "claim on this idempotency key was lost")
		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), resp) // the first response stays

		// An abandoned claim cannot complete either.
		abandoned := f.mustOwn(t, "user:1", "key-2", fingerprint("a"))
		if err := f.store.Abandon(f.ctx, abandoned); err != nil {
			t.Fatal(err)
		}
		err = f.store.Complete(f.ctx, abandoned, resp)
		assertError(t, err, kernel.CodeNotFound, "claim on this idempotency key was lost")
		if keys := f.keys(t); len(keys) != 1 || keys[0] != "user:1/key-1" {
			t.Fatalf("keys: %v, want only user:1/key-1", keys)
		}
	})

	t.Run("LateOwnerCannotDisturbTakeover", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		a := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		f.clock.Advance(idempotency.DefaultLease) // A runs past its lease
		b := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		if a == b {
			t.Fatalf("the takeover returned A's claim %+v", a)
		}
		held := f.readClaim(t, "user:1", "key-1")

		// A finishes late: its response is refused and B still holds the key.
		err := f.store.Complete(f.ctx, a, idempotency.Response{Status: 201, ContentType: "text/plain", Body: []byte("from A")})
		assertError(t, err, kernel.CodeNotFound, "claim on this idempotency key was lost")
		if status, _, _ := f.readRow(t, "user:1", "key-1"); status != "running" {
			t.Fatalf("B's row is %s after A's late Complete, want running", status)
		}
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeConflict, "in progress")

		// A's late Abandon does not release B's claim, so no third run starts.
		if err := f.store.Abandon(f.ctx, a); err != nil {
			t.Fatalf("A's late Abandon: %v", err)
		}
		if status, _, _ := f.readRow(t, "user:1", "key-1"); status != "running" || f.readClaim(t, "user:1", "key-1") != held {
			t.Fatalf("B's row is %s after A's late Abandon, want running under B's claim", status)
		}
		f.mustFail(t, "user:1", "key-1", fingerprint("a"), kernel.CodeConflict, "in progress")

		want := idempotency.Response{Status: 201, ContentType: "text/plain", Body: []byte("from B")}
		f.mustComplete(t, b, want)
		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), want)
	})

	t.Run("ConcurrentBeginsHaveOneOwner", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		const n = 20
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([]error, n)
			claims  = make([]idempotency.Claim, n)
			replays = make([]*idempotency.Response, n)
		)
		for i := range n {
			wg.Go(func() {
				<-start
				claims[i], replays[i], results[i] = f.store.Begin(f.ctx, "user:1", "fresh", fingerprint("a"))
			})
		}
		close(start)
		wg.Wait()
		owners, conflicts := 0, 0
		for i, err := range results {
			switch {
			case err == nil && claims[i].Held() && replays[i] == nil:
				owners++
			case kernel.IsCode(err, kernel.CodeConflict):
				conflicts++
			default:
				t.Errorf("Begin %d: %v, %+v; want ownership or conflict", i, err, replays[i])
			}
		}
		if owners != 1 || conflicts != n-1 {
			t.Fatalf("%d owners and %d conflicts, want 1 and %d", owners, conflicts, n-1)
		}
	})

	t.Run("ConcurrentTakeoversHaveOneOwner", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.mustOwn(t, "user:1", "crashed", fingerprint("a"))
		f.clock.Advance(idempotency.DefaultLease)
		const n = 20
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			mu     sync.Mutex
			owners int
		)
		for range n {
			wg.Go(func() {
				<-start
				c, replay, err := f.store.Begin(f.ctx, "user:1", "crashed", fingerprint("a"))
				switch {
				case err == nil && c.Held() && replay == nil:
					mu.Lock()
					owners++
					mu.Unlock()
				case !kernel.IsCode(err, kernel.CodeConflict):
					t.Errorf("Begin: %v, %+v; want ownership or conflict", err, replay)
				}
			})
		}
		close(start)
		wg.Wait()
		if owners != 1 {
			t.Fatalf("%d requests took the key over, want 1", owners)
		}
	})

	t.Run("ScopesAreIndependent", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		one := f.mustOwn(t, "user:1", "key-1", fingerprint("a"))
		two := f.mustOwn(t, "user:2", "key-1", fingerprint("b"))
		want := idempotency.Response{Status: 201, ContentType: "application/json", Body: []byte(`{"scope":1}`)}
		f.mustComplete(t, one, want)

		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), want)
		f.mustFail(t, "user:2", "key-1", fingerprint("b"), kernel.CodeConflict, "in progress")
		if err := f.store.Abandon(f.ctx, two); err != nil {
			t.Fatal(err)
		}
		f.mustReplay(t, "user:1", "key-1", fingerprint("a"), want)
		f.mustOwn(t, "user:2", "key-1", fingerprint("b"))
	})

	t.Run("DeleteExpiredRemovesOnlyExpired", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.mustComplete(t, f.mustOwn(t, "user:1", "old-done", fingerprint("a")), idempotency.Response{Status: 200})
		f.mustOwn(t, "user:1", "old-running", fingerprint("a"))
		f.mustOwn(t, "user:2", "old-other-scope", fingerprint("a"))
		f.clock.Advance(12 * time.Hour)
		young := idempotency.Response{Status: 201, ContentType: "text/plain", Body: []byte("young")}
		f.mustComplete(t, f.mustOwn(t, "user:1", "young", fingerprint("a")), young)
		f.clock.Advance(12 * time.Hour)

		n, err := f.store.DeleteExpired(f.ctx, 2)
		if err != nil || n != 2 {
			t.Fatalf("first DeleteExpired: %d, %v; want 2 (the limit)", n, err)
		}
		n, err = f.store.DeleteExpired(f.ctx, 2)
		if err != nil || n != 1 {
			t.Fatalf("second DeleteExpired: %d, %v; want 1", n, err)
		}
		n, err = f.store.DeleteExpired(f.ctx, 2)
		if err != nil || n != 0 {
			t.Fatalf("third DeleteExpired: %d, %v; want 0", n, err)
		}
		if keys := f.keys(t); len(keys) != 1 || keys[0] != "user:1/young" {
			t.Fatalf("keys left: %v, want only user:1/young", keys)
		}
		f.mustReplay(t, "user:1", "young", fingerprint("a"), young)

		_, err = f.store.DeleteExpired(f.ctx, 0)
		assertError(t, err, kernel.CodeInternal, "")
	})

	t.Run("BeginRejectsInvalidKey", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		f.mustFail(t, "user:1", "has space", fingerprint("a"), kernel.CodeInvalid, "")
		if keys := f.keys(t); len(keys) != 0 {
			t.Fatalf("keys stored: %v, want none", keys)
		}
	})
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		ok   bool
	}{
		{"uuid", "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{"one character", "a", true},
		{"every printable", "!\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~", true},
		{"255 characters", strings.Repeat("k", 255), true},
		{"empty", "", false},
		{"256 characters", strings.Repeat("k", 256), false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"newline", "a\nb", false},
		{"delete", "a\x7fb", false},
		{"nul", "a\x00b", false},
		{"non-ASCII", "clé", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := idempotency.ValidKey(tc.key)
			if tc.ok {
				if err != nil {
					t.Fatalf("ValidKey(%q) = %v, want nil", tc.key, err)
				}
				return
			}
			e := kernel.As(err)
			if err == nil || e.Code != kernel.CodeInvalid || e.Fields["header.Idempotency-Key"] == "" {
				t.Fatalf("ValidKey(%q) = %v, want invalid naming header.Idempotency-Key", tc.key, err)
			}
		})
	}
}

func fingerprint(request string) string {
	sum := sha256.Sum256([]byte(request))
	return hex.EncodeToString(sum[:])
}

// mustOwn begins key in scope and fails the test unless the caller now owns it:
// a held Claim for that scope and key, no replay, and the claim in the row.
func (f fixture) mustOwn(t *testing.T, scope, key, fingerprint string) idempotency.Claim {
	t.Helper()
	c, replay, err := f.store.Begin(f.ctx, scope, key, fingerprint)
	if err != nil || replay != nil || !c.Held() || c.Scope != scope || c.Key != key {
		t.Fatalf("Begin %s/%s: %+v, %+v, %v; want ownership", scope, key, c, replay, err)
	}
	return c
}

// mustReplay begins key in scope and fails the test unless it replays want
// without handing out a claim.
func (f fixture) mustReplay(t *testing.T, scope, key, fingerprint string, want idempotency.Response) {
	t.Helper()
	c, got, err := f.store.Begin(f.ctx, scope, key, fingerprint)
	if err != nil {
		t.Fatalf("Begin %s/%s: %v; want a replay of %d", scope, key, err, want.Status)
	}
	if c != (idempotency.Claim{}) {
		t.Fatalf("Begin %s/%s replayed with claim %+v, want the zero Claim", scope, key, c)
	}
	assertResponse(t, got, want)
}

// mustFail begins key in scope and fails the test unless Begin fails with code
// and a message containing messagePart, and returns neither claim nor replay.
func (f fixture) mustFail(t *testing.T, scope, key, fingerprint string, code kernel.Code, messagePart string) {
	t.Helper()
	c, replay, err := f.store.Begin(f.ctx, scope, key, fingerprint)
	if c != (idempotency.Claim{}) || replay != nil {
		t.Fatalf("Begin %s/%s: %+v, %+v, %v; want only an error", scope, key, c, replay, err)
	}
	assertError(t, err, code, messagePart)
}

func (f fixture) mustComplete(t *testing.T, c idempotency.Claim, r idempotency.Response) {
	t.Helper()
	if err := f.store.Complete(f.ctx, c, r); err != nil {
		t.Fatalf("Complete %s/%s: %v", c.Scope, c.Key, err)
	}
}

// readClaim reads the claim token stored in the row.
func (f fixture) readClaim(t *testing.T, scope, key string) string {
	t.Helper()
	var claim string
	err := f.db.Tx(f.ctx, func(tx store.Tx) error {
		return tx.QueryRow(f.ctx, "SELECT claim FROM idempotency_key WHERE scope = $1 AND key = $2", scope, key).Scan(&claim)
	})
	if err != nil {
		t.Fatalf("read claim of %s/%s: %v", scope, key, err)
	}
	return claim
}

// readRow reads the stored row, as the middleware's operator would see it.
func (f fixture) readRow(t *testing.T, scope, key string) (status string, lockedUntil, expiresAt time.Time) {
	t.Helper()
	err := f.db.Tx(f.ctx, func(tx store.Tx) error {
		return tx.QueryRow(f.ctx, "SELECT status, locked_until, expires_at FROM idempotency_key WHERE scope = $1 AND key = $2",
			scope, key).Scan(&status, &lockedUntil, &expiresAt)
	})
	if err != nil {
		t.Fatalf("read %s/%s: %v", scope, key, err)
	}
	return status, lockedUntil, expiresAt
}

// keys lists every stored key as scope/key, in order.
func (f fixture) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	err := f.db.Tx(f.ctx, func(tx store.Tx) error {
		rows, err := tx.Query(f.ctx, "SELECT scope, key FROM idempotency_key ORDER BY scope, key")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var scope, key string
			if err := rows.Scan(&scope, &key); err != nil {
				return err
			}
			keys = append(keys, scope+"/"+key)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	return keys
}

func assertResponse(t *testing.T, got *idempotency.Response, want idempotency.Response) {
	t.Helper()
	if got == nil {
		t.Fatalf("Begin owned the key, want a replay of %d", want.Status)
	}
	if got.Status != want.Status || got.ContentType != want.ContentType || !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("replayed %d %q %q, want %d %q %q", got.Status, got.ContentType, got.Body, want.Status, want.ContentType, want.Body)
	}
}

func assertError(t *testing.T, err error, code kernel.Code, messagePart string) {
	t.Helper()
	if !kernel.IsCode(err, code) {
		t.Fatalf("got %v, want %s", err, code)
	}
	if msg := kernel.As(err).Message; !strings.Contains(msg, messagePart) {
		t.Fatalf("message %q does not mention %q", msg, messagePart)
	}
}
