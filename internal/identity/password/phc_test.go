package password_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"atrium/internal/identity/password"
)

const (
	salt16 = "MDEyMzQ1Njc4OWFiY2RlZg"                      // 16 bytes
	key32  = "5e07rPL7aolTFiVTvyYj4EazxyXiAPpfIccbS8X0DAU" // 32 bytes
)

// phc builds an argon2id string around the given parameter field.
func phc(params string) string {
	return "$argon2id$v=19$" + params + "$" + salt16 + "$" + key32
}

func TestVerifyRejectsForeignAndMalformedHashes(t *testing.T) {
	t.Parallel()
	h := newHasher()
	malformed, unsupported := password.ErrMalformedHash, password.ErrUnsupportedHash
	cases := []struct {
		name, encoded string
		want          error
	}{
		{"empty", "", malformed},
		{"dollar only", "$", malformed},
		{"no leading dollar", strings.TrimPrefix(phc("m=1024,t=1,p=1"), "$"), malformed},
		{"leading space", " " + phc("m=1024,t=1,p=1"), malformed},
		{"plain text", "hunter2", malformed},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", unsupported},
		{"argon2i", "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", unsupported},
		{"argon2d", "$argon2d$v=19$m=1024,t=1,p=1$" + salt16 + "$" + key32, unsupported},
		{"scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E", unsupported},
		{"upper-case algorithm", strings.Replace(phc("m=1024,t=1,p=1"), "argon2id", "ARGON2ID", 1), unsupported},
		{"version 16", strings.Replace(phc("m=1024,t=1,p=1"), "v=19", "v=16", 1), unsupported},
		{"no version", "$argon2id$m=1024,t=1,p=1$" + salt16 + "$" + key32, malformed},
		{"extra field", phc("m=1024,t=1,p=1") + "$", malformed},
		{"memory 4 GiB", phc("m=4194304,t=1,p=1"), malformed},
		{"memory just over 1 GiB", phc("m=1048577,t=1,p=1"), malformed},
		{"memory max uint32", phc("m=4294967295,t=1,p=1"), malformed},
		{"memory 11 digits", phc("m=99999999999,t=1,p=1"), malformed},
		{"memory below 8×lanes", phc("m=8,t=1,p=2"), malformed},
		{"memory negative", phc("m=-1,t=1,p=1"), malformed},
		{"memory with sign", phc("m=+1024,t=1,p=1"), malformed},
		{"memory leading zero", phc("m=01024,t=1,p=1"), malformed},
		{"memory hex", phc("m=0x400,t=1,p=1"), malformed},
		{"iterations 11", phc("m=1024,t=11,p=1"), malformed},
		{"iterations max uint32", phc("m=1024,t=4294967295,p=1"), malformed},
		{"iterations zero", phc("m=1024,t=0,p=1"), malformed},
		{"lanes 17", phc("m=1024,t=1,p=17"), malformed},
		{"lanes 256", phc("m=1024,t=1,p=256"), malformed},
		{"lanes zero", phc("m=1024,t=1,p=0"), malformed},
		{"parameters reordered", phc("t=1,m=1024,p=1"), malformed},
		{"parameter missing", phc("m=1024,t=1"), malformed},
		{"parameter empty", phc("m=,t=1,p=1"), malformed},
		{"optional keyid", phc("m=1024,t=1,p=1,keyid=abc"), malformed},
		{"salt bad base64", "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4OWFi!2RlZg$" + key32, malformed},
		{"salt padded", "$argon2id$v=19$m=1024,t=1,p=1$" + salt16 + "==$" + key32, malformed},
		{"salt non-canonical bits", "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHR$" + key32, malformed},
		{"salt 4 bytes", "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$" + key32, malformed},
		{"salt empty", "$argon2id$v=19$m=1024,t=1,p=1$$" + key32, malformed},
		{"salt with newline", "$argon2id$v=19$m=1024,t=1,p=1$MDEyMzQ1Njc4\nOWFiY2RlZg$" + key32, malformed},
		{"key 8 bytes", "$argon2id$v=19$m=1024,t=1,p=1$" + salt16 + "$c29tZXNhbHQ", malformed},
		{"key 72 bytes", "$argon2id$v=19$m=1024,t=1,p=1$" + salt16 + "$" + strings.Repeat("A", 96), malformed},
		{"key empty", "$argon2id$v=19$m=1024,t=1,p=1$" + salt16 + "$", malformed},
		{"one mebibyte", phc("m=1024,t=1,p=1") + strings.Repeat("A", 1<<20), malformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ok, rehash, err := h.Verify(t.Context(), "password", c.encoded)
			if !errors.Is(err, c.want) {
				t.Errorf("Verify(%.60q) err = %v, want %v", c.encoded, err, c.want)
			}
			if ok || rehash {
				t.Errorf("Verify(%.60q) = ok %v, needsRehash %v; want false, false", c.encoded, ok, rehash)
			}
		})
	}
}

// TestHostileParametersAllocateNothingLarge checks that out-of-bounds
// parameters are refused before Argon2 allocates its memory. It is not
// parallel because it reads the process-wide allocation counter.
func TestHostileParametersAllocateNothingLarge(t *testing.T) {
	h := newHasher()
	hostile := []string{
		phc("m=4294967295,t=4294967295,p=255"),
		phc("m=4194304,t=1,p=1"),
		phc("m=1048577,t=1,p=1"),
		phc("m=1024,t=1000000,p=1"),
		phc("m=1024,t=1,p=64"),
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, encoded := range hostile {
		if _, _, err := h.Verify(t.Context(), "password", encoded); !errors.Is(err, password.ErrMalformedHash) {
			t.Errorf("Verify(%.60q) err = %v, want ErrMalformedHash", encoded, err)
		}
	}
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64<<10 {
		t.Errorf("rejecting %d hostile hashes allocated %d bytes, want under 64 KiB", len(hostile), allocated)
	}
}

// TestMaximumAcceptedHash pins the widest string decode accepts, so that the
// bound on the encoded length stays above it.
func TestMaximumAcceptedHash(t *testing.T) {
	t.Parallel()
	h := newHasher()
	salt64 := strings.Repeat("A", 85) + "Q" // 64 bytes, canonical
	key64 := strings.Repeat("B", 85) + "A"  // 64 bytes, canonical
	// Valid at the bounds, but with the smallest memory so the test stays fast.
	encoded := "$argon2id$v=19$m=128,t=1,p=16$" + salt64 + "$" + key64
	ok, _, err := h.Verify(t.Context(), "password", encoded)
	if err != nil || ok {
		t.Errorf("Verify(widest hash) = %v, %v; want false, nil", ok, err)
	}
}
