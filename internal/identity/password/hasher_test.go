package password_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"atrium/internal/identity/password"
	"atrium/internal/kernel"
)

// testParams keep the suite fast; TestDefaultParams covers the real cost.
var testParams = password.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func newHasher() *password.Hasher { return password.New(testParams, 4) }

func mustHash(t *testing.T, h *password.Hasher, pw string) string {
	t.Helper()
	encoded, err := h.Hash(t.Context(), pw)
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return encoded
}

func assertVerify(t *testing.T, h *password.Hasher, pw, encoded string, wantOK, wantRehash bool) {
	t.Helper()
	ok, rehash, err := h.Verify(t.Context(), pw, encoded)
	if err != nil {
		t.Fatalf("Verify(%.30q): %v", pw, err)
	}
	if ok != wantOK || rehash != wantRehash {
		t.Errorf("Verify(%.30q) = ok %v, needsRehash %v; want %v, %v", pw, ok, rehash, wantOK, wantRehash)
	}
}

func TestHashVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	h := newHasher()
	const pw = "correct horse battery staple"
	encoded := mustHash(t, h, pw)

	format := regexp.MustCompile(`^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !format.MatchString(encoded) {
		t.Errorf("Hash = %q, not a PHC argon2id string with a 16-byte salt and 32-byte key", encoded)
	}
	assertVerify(t, h, pw, encoded, true, false)
	assertVerify(t, h, "correct horse battery stapl", encoded, false, false)
	assertVerify(t, h, "Correct horse battery staple", encoded, false, false)
	assertVerify(t, h, "", encoded, false, false)

	again := mustHash(t, h, pw)
	if again == encoded {
		t.Error("two hashes of the same password are equal; the salt is not random")
	}
	assertVerify(t, h, pw, again, true, false)
}

func TestLongPasswordIsNeverTruncated(t *testing.T) {
	t.Parallel()
	h := newHasher()
	long := strings.Repeat("0123456789", 20) // 200 characters
	encoded := mustHash(t, h, long)
	assertVerify(t, h, long, encoded, true, false)
	assertVerify(t, h, long[:199]+"X", encoded, false, false)
	assertVerify(t, h, long[:72], encoded, false, false) // where bcrypt would stop reading
	assertVerify(t, h, long+"0", encoded, false, false)
}

func TestMaxBytes(t *testing.T) {
	t.Parallel()
	h := newHasher()
	longest := strings.Repeat("a", password.MaxBytes)
	encoded := mustHash(t, h, longest)
	assertVerify(t, h, longest, encoded, true, false)

	_, err := h.Hash(t.Context(), longest+"a")
	if !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Errorf("Hash of %d bytes: err = %v, want code invalid", password.MaxBytes+1, err)
	}
	// Longer input never matches, even a hash of its own first MaxBytes bytes.
	assertVerify(t, h, longest+"a", encoded, false, false)
}

func TestCanonicallyEquivalentPasswordsMatch(t *testing.T) {
	t.Parallel()
	h := newHasher()
	precomposed := "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"
	decomposed := "cafe\u0301 cre\u0300me bru\u0302le\u0301e"
	encoded := mustHash(t, h, precomposed)
	assertVerify(t, h, decomposed, encoded, true, false)
	assertVerify(t, h, "cafe creme brulee", encoded, false, false)
}

// TestVerifyIndependentVectors checks hashes that Atrium did not compute.
func TestVerifyIndependentVectors(t *testing.T) {
	t.Parallel()
	h := newHasher()
	vectors := []struct{ name, password, encoded string }{
		// From x/crypto/argon2's tests, generated there with the reference CLI
		// (github.com/P-H-C/phc-winner-argon2); 8-byte salt, 24-byte key.
		{"cli t=2 m=64 p=1", "password", "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3"},
		{"cli t=3 m=256 p=2", "password", "$argon2id$v=19$m=256,t=3,p=2$c29tZXNhbHQ$RmjTCsQYfmh47t6s8P2DxaCjDbLMFu8L"},
		{"cli t=2 m=64 p=2", "password", "$argon2id$v=19$m=64,t=2,p=2$c29tZXNhbHQ$NQrDciL0Nsy1wJcvHr079rlYvyBxhBNi"},
		// Computed with the reference C library (libargon2 20171227,
		// argon2id_hash_encoded); the second password is UTF-8 in NFC.
		{"libargon2 t=1 m=1024 p=1", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$5e07rPL7aolTFiVTvyYj4EazxyXiAPpfIccbS8X0DAU"},
		// Computed by this package and accepted by libargon2's argon2id_verify.
		{"atrium t=1 m=1024 p=1", "correct horse battery staple", "$argon2id$v=19$m=1024,t=1,p=1$oAb05Npavxesh9YW4h8a/Q$7Ri1r3s3AOe9SMDgjSyEzXywcxQQUYWFKmNS5Gbu38s"},
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ok, _, err := h.Verify(t.Context(), v.password, v.encoded)
			if err != nil || !ok {
				t.Errorf("Verify = %v, %v; want a match", ok, err)
			}
			ok, _, err = h.Verify(t.Context(), v.password+"!", v.encoded)
			if err != nil || ok {
				t.Errorf("Verify(wrong password) = %v, %v; want no match", ok, err)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	weak := password.New(password.Params{Memory: 512, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 2)
	strong := password.New(password.Params{Memory: 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}, 2)
	const pw = "violet harbour lamp"
	weakHash, strongHash := mustHash(t, weak, pw), mustHash(t, strong, pw)

	assertVerify(t, strong, pw, weakHash, true, true)
	assertVerify(t, strong, "not it at all", weakHash, false, false) // only a caller who knows the password can rehash
	assertVerify(t, weak, pw, strongHash, true, false)               // stronger than needed is fine
	assertVerify(t, strong, pw, strongHash, true, false)

	// The reference vectors' 8-byte salt and 24-byte key are below testParams.
	assertVerify(t, newHasher(), "password", "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3", true, true)
}

func TestDefaultParams(t *testing.T) {
	t.Parallel()
	p := password.DefaultParams()
	want := password.Params{Memory: 19456, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}
	if p != want {
		t.Fatalf("DefaultParams() = %+v, want OWASP's minimum %+v", p, want)
	}
	h := password.New(p, 0)
	if h.Params() != p {
		t.Errorf("Params() = %+v, want %+v", h.Params(), p)
	}
	const pw = "correct horse battery staple"
	encoded := mustHash(t, h, pw)
	if !strings.HasPrefix(encoded, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("Hash = %q, want the default parameters in the PHC string", encoded)
	}
	assertVerify(t, h, pw, encoded, true, false)
	assertVerify(t, h, pw+".", encoded, false, false)
	// Computed with libargon2's argon2id_hash_encoded at the same parameters.
	assertVerify(t, h, pw, "$argon2id$v=19$m=19456,t=2,p=1$YXRyaXVtLXRlc3Qtc2FsdA$WlUN4/R2mnlWXvSn821aBAZBvl9F5HcLHLgMzE6muwc", true, false)
}

func TestDummyVerify(t *testing.T) {
	t.Parallel()
	for _, h := range []*password.Hasher{newHasher(), password.New(password.DefaultParams(), 1)} {
		ok, err := h.DummyVerify(t.Context())
		if ok || err != nil {
			t.Errorf("DummyVerify() = %v, %v; want false, nil", ok, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	h := newHasher()
	encoded := mustHash(t, h, "violet harbour lamp")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := h.Hash(ctx, "violet harbour lamp"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash: err = %v, want context.Canceled", err)
	}
	if ok, _, err := h.Verify(ctx, "violet harbour lamp", encoded); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify = %v, %v; want false, context.Canceled", ok, err)
	}
	if ok, err := h.DummyVerify(ctx); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("DummyVerify = %v, %v; want false, context.Canceled", ok, err)
	}
}

func TestNewRejectsInvalidParams(t *testing.T) {
	t.Parallel()
	valid := testParams
	cases := map[string]func(p *password.Params){
		"zero memory":          func(p *password.Params) { p.Memory = 0 },
		"memory below 8×lanes": func(p *password.Params) { p.Memory, p.Parallelism = 15, 2 },
		"memory over 1 GiB":    func(p *password.Params) { p.Memory = 1<<20 + 1 },
		"zero iterations":      func(p *password.Params) { p.Iterations = 0 },
		"11 iterations":        func(p *password.Params) { p.Iterations = 11 },
		"zero parallelism":     func(p *password.Params) { p.Parallelism = 0 },
		"17 lanes":             func(p *password.Params) { p.Parallelism = 17 },
		"7-byte salt":          func(p *password.Params) { p.SaltLength = 7 },
		"65-byte salt":         func(p *password.Params) { p.SaltLength = 65 },
		"15-byte key":          func(p *password.Params) { p.KeyLength = 15 },
		"65-byte key":          func(p *password.Params) { p.KeyLength = 65 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := valid
			mutate(&p)
			if p.Validate() == nil {
				t.Errorf("Validate(%+v) = nil, want an error", p)
			}
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", p)
				}
			}()
			password.New(p, 1)
		})
	}
}

func BenchmarkHash(b *testing.B) {
	h := password.New(password.DefaultParams(), 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(b.Context(), "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := password.New(password.DefaultParams(), 1)
	encoded, err := h.Hash(b.Context(), "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := h.Verify(b.Context(), "correct horse battery staple", encoded); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
