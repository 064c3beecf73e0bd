// Package password hashes and verifies account passwords with Argon2id and
// decides whether a new password is acceptable.
//
// Hashes are stored in the PHC string format used by the reference
// implementation and by libraries in other languages
// ($argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>), so a stored hash carries its
// own parameters and can be checked by other tools. Hashing is bounded by a
// semaphore: Argon2id is deliberately expensive in CPU and memory, and a flood
// of login attempts must queue for a slot rather than take every core and
// gigabytes of memory from the rest of the API.
//
// Passwords are normalised to Unicode NFC before hashing, as in the
// OpaqueString profile of RFC 8265: a password typed with a precomposed "é" and
// the same password typed as "e" plus a combining accent (as some keyboards and
// operating systems produce) hash the same. Compatibility forms such as
// full-width letters are left distinct, as that profile does.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"runtime"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Params are the Argon2id cost parameters. Memory is in KiB.
type Params struct {
	Memory      uint32 // KiB of memory per hash
	Iterations  uint32 // passes over the memory
	Parallelism uint8  // lanes; each lane is one goroutine while hashing
	SaltLength  uint32 // bytes of random salt
	KeyLength   uint32 // bytes of derived key
}

// DefaultParams returns OWASP's recommended minimum for Argon2id (m=19 MiB,
// t=2, p=1) with a 16-byte salt and a 32-byte key. One hash takes about 20 ms
// of one server core and 19 MiB of memory.
func DefaultParams() Params {
	return Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
}

// Validate reports whether the parameters are usable. It checks structure and
// the same upper bounds that apply to stored hashes, not strength: tests use
// deliberately cheap parameters. It returns an error naming the first
// parameter out of range.
func (p Params) Validate() error {
	switch {
	case p.Parallelism < 1 || p.Parallelism > maxParallelism:
		return fmt.Errorf("password: parallelism %d outside 1..%d", p.Parallelism, maxParallelism)
	case p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("password: memory %d KiB outside %d..%d", p.Memory, 8*uint32(p.Parallelism), maxMemoryKiB)
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("password: iterations %d outside 1..%d", p.Iterations, maxIterations)
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("password: salt length %d outside %d..%d", p.SaltLength, minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("password: key length %d outside %d..%d", p.KeyLength, minKeyLength, maxKeyLength)
	}
	return nil
}

// weakerThan reports whether hashes made with p should be replaced by hashes
// made with current. Parallelism is not compared: it changes the result but not
// the attacker's cost, which is memory × iterations.
func (p Params) weakerThan(current Params) bool {
	return p.Memory < current.Memory ||
		p.Iterations < current.Iterations ||
		p.SaltLength < current.SaltLength ||
		p.KeyLength < current.KeyLength
}

// Hasher hashes and verifies passwords with fixed parameters and a bounded
// number of hashes in flight. It is safe for concurrent use.
type Hasher struct {
	params Params
	slots  chan struct{}
	// dummy is a well-formed hash with the current parameters that no password
	// matches; DummyVerify checks against it.
	dummy string
	// held, when set by a test, runs while a slot is held.
	held func()
}

// DefaultMaxConcurrent is the number of hashes New lets run at once when
// asked for zero: max(1, GOMAXPROCS/2). With p=1 a hash occupies one core for
// its whole duration, so half the cores stay free to serve other requests
// during a login flood.
func DefaultMaxConcurrent() int {
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// New returns a Hasher that hashes with params and runs at most maxConcurrent
// hashes at once; zero or less selects DefaultMaxConcurrent. The memory spent
// on hashing stays below maxConcurrent × params.Memory as long as stored
// hashes use params (a stored hash is capped at 1 GiB whatever it says). New
// panics if params fail Validate, since that is a programming or configuration
// error to be caught at startup.
func New(params Params, maxConcurrent int) *Hasher {
	if err := params.Validate(); err != nil {
		panic(err)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = DefaultMaxConcurrent()
	}
	return &Hasher{
		params: params,
		slots:  make(chan struct{}, maxConcurrent),
		dummy:  encode(params, make([]byte, params.SaltLength), make([]byte, params.KeyLength)),
	}
}

// MaxConcurrent returns how many hashes may run at once.
func (h *Hasher) MaxConcurrent() int { return cap(h.slots) }

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the PHC-encoded Argon2id hash of password under a fresh random
// salt. It does not apply the password policy (see Check) but refuses a
// password longer than MaxBytes with an invalid kernel.Error. While waiting for
// a hashing slot it honours ctx and returns ctx.Err() if ctx ends first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > MaxBytes {
		return "", errTooLong()
	}
	salt := make([]byte, h.params.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	key, err := h.derive(ctx, normalize(password), salt, h.params)
	if err != nil {
		return "", err
	}
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches encoded, a hash made by Hash (or by
// any Argon2id implementation writing the PHC format with version 19). The key
// comparison takes constant time. needsRehash is true when the password
// matches and the stored parameters are weaker than the Hasher's, so the caller
// should store a fresh Hash of the password it now knows.
//
// A password longer than MaxBytes never matches, but is answered after the
// same amount of work as any other, so the time taken does not depend on it.
// Verify returns ErrUnsupportedHash for a hash of another algorithm or version,
// ErrMalformedHash for one that cannot be parsed or whose parameters are out of
// bounds (checked before any memory is allocated for hashing), and ctx.Err()
// if ctx ends while waiting for a hashing slot.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	stored, salt, want, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	tooLong := len(password) > MaxBytes
	input := normalize(password)
	if tooLong {
		input = nil
	}
	got, err := h.derive(ctx, input, salt, stored)
	if err != nil {
		return false, false, err
	}
	ok = subtle.ConstantTimeCompare(got, want) == 1 && !tooLong
	return ok, ok && stored.weakerThan(h.params), nil
}

// DummyVerify does the work of one Verify with the Hasher's parameters against
// a hash that no password matches, and always reports false. A login for an
// unknown email calls it in place of Verify, so that the time taken does not
// reveal whether an account exists. It returns ctx.Err() if ctx ends while
// waiting for a hashing slot.
func (h *Hasher) DummyVerify(ctx context.Context) (bool, error) {
	_, _, err := h.Verify(ctx, "dummy password for timing", h.dummy)
	return false, err
}

// derive runs Argon2id while holding a slot. It returns ctx.Err() if ctx ends
// before a slot is free; once started, a hash runs to completion.
func (h *Hasher) derive(ctx context.Context, password, salt []byte, p Params) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.slots }()
	if h.held != nil {
		h.held()
	}
	return argon2.IDKey(password, salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength), nil
}

// normalize returns the bytes that are hashed for password: its NFC form.
func normalize(password string) []byte {
	return []byte(norm.NFC.String(password))
}
