package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Errors returned by Verify for a stored hash it cannot use. Both describe a
// fault in stored data, not in the caller's input: callers treat them as
// internal errors.
var (
	// ErrMalformedHash means the stored hash is not a well-formed Argon2id
	// PHC string, or its parameters are outside the accepted bounds.
	ErrMalformedHash = errors.New("password: malformed hash")
	// ErrUnsupportedHash means the stored hash is of another algorithm (such
	// as bcrypt or argon2i) or another Argon2 version than 19 (0x13).
	ErrUnsupportedHash = errors.New("password: unsupported hash")
)

// Bounds on parameters, for new Hashers and for stored hashes alike. They keep
// a hostile or corrupted stored hash from making Verify allocate gigabytes or
// spin for minutes: the worst accepted hash costs 1 GiB and 10 passes.
const (
	maxMemoryKiB   = 1 << 20 // 1 GiB
	maxIterations  = 10
	maxParallelism = 16
	minSaltLength  = 8 // RFC 9106 minimum
	maxSaltLength  = 64
	minKeyLength   = 16
	maxKeyLength   = 64

	// maxEncodedLength bounds the whole PHC string before it is split, well
	// above the longest string the bounds above allow (208 bytes).
	maxEncodedLength = 256
)

// phcEncoding is the PHC format's "B64": the standard alphabet without
// padding. Strict rejects non-canonical trailing bits.
var phcEncoding = base64.RawStdEncoding.Strict()

// encode returns the PHC string for an Argon2id key.
func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism,
		phcEncoding.EncodeToString(salt), phcEncoding.EncodeToString(key))
}

// decode parses a PHC string written by encode or by another Argon2id
// implementation. The returned Params carry the salt and key lengths found.
// It returns ErrUnsupportedHash for another algorithm or version and
// ErrMalformedHash for anything else it cannot accept; every bound is checked
// before anything proportional to a parameter is allocated.
func decode(s string) (p Params, salt, key []byte, err error) {
	if len(s) > maxEncodedLength {
		return Params{}, nil, nil, malformed("longer than %d bytes", maxEncodedLength)
	}
	for i := 0; i < len(s); i++ {
		// Printable ASCII only: base64 decoding would otherwise skip CR and LF.
		if s[i] <= ' ' || s[i] > '~' {
			return Params{}, nil, nil, malformed("byte %d is not printable ASCII", i)
		}
	}
	fields := strings.Split(s, "$")
	if len(fields) < 2 || fields[0] != "" || fields[1] == "" {
		return Params{}, nil, nil, malformed("does not start with an algorithm identifier")
	}
	if fields[1] != "argon2id" {
		return Params{}, nil, nil, fmt.Errorf("%w: algorithm %.20q", ErrUnsupportedHash, fields[1])
	}
	if len(fields) != 6 {
		return Params{}, nil, nil, malformed("%d fields, want 6", len(fields))
	}
	if fields[2] != "v=19" {
		if strings.HasPrefix(fields[2], "v=") {
			return Params{}, nil, nil, fmt.Errorf("%w: argon2 version %.12q", ErrUnsupportedHash, fields[2][2:])
		}
		return Params{}, nil, nil, malformed("version field %.12q", fields[2])
	}
	if p, err = parseParams(fields[3]); err != nil {
		return Params{}, nil, nil, err
	}
	if salt, err = decodeB64("salt", fields[4], minSaltLength, maxSaltLength); err != nil {
		return Params{}, nil, nil, err
	}
	if key, err = decodeB64("key", fields[5], minKeyLength, maxKeyLength); err != nil {
		return Params{}, nil, nil, err
	}
	p.SaltLength, p.KeyLength = uint32(len(salt)), uint32(len(key))
	if err := p.Validate(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %v", ErrMalformedHash, err)
	}
	return p, salt, key, nil
}

// parseParams parses "m=<KiB>,t=<passes>,p=<lanes>", in that order, with no
// optional parameters (keyid, data), which Argon2id as used here never writes.
func parseParams(s string) (Params, error) {
	names := [3]string{"m", "t", "p"}
	limits := [3]uint64{maxMemoryKiB, maxIterations, maxParallelism}
	var values [3]uint64
	rest := s
	for i, name := range names {
		var field string
		field, rest, _ = strings.Cut(rest, ",")
		value, ok := strings.CutPrefix(field, name+"=")
		if !ok {
			return Params{}, malformed("parameters %.40q: want m=,t=,p=", s)
		}
		n, ok := parseDecimal(value, limits[i])
		if !ok {
			return Params{}, malformed("parameter %s: %.12q is not a number in 1..%d", name, value, limits[i])
		}
		values[i] = n
	}
	if rest != "" {
		return Params{}, malformed("parameters %.40q: unexpected trailing parameters", s)
	}
	return Params{Memory: uint32(values[0]), Iterations: uint32(values[1]), Parallelism: uint8(values[2])}, nil
}

// parseDecimal parses a PHC decimal: digits only, no sign, no leading zero, at
// least 1 and at most limit.
func parseDecimal(s string, limit uint64) (uint64, bool) {
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > limit {
		return 0, false
	}
	return n, true
}

// decodeB64 decodes one base64 field after checking that its decoded length
// lies in [minLen, maxLen].
func decodeB64(name, s string, minLen, maxLen int) ([]byte, error) {
	if n := phcEncoding.DecodedLen(len(s)); n < minLen || n > maxLen {
		return nil, malformed("%s of %d bytes, want %d..%d", name, n, minLen, maxLen)
	}
	b, err := phcEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed("%s: %v", name, err)
	}
	return b, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedHash, fmt.Sprintf(format, args...))
}
