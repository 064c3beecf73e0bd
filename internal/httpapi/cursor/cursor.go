// Package cursor makes the opaque, tamper-evident cursors that every list
// endpoint hands out as next_cursor, and parses the limit parameter. Lists are
// keyset-paginated: a cursor carries the sort key of the last item served, never
// an offset, and no list counts its rows.
package cursor

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"atrium/internal/kernel"
)

// MaxLen is the longest cursor Decode accepts, in characters. It keeps a
// hostile query string from costing more than a few microseconds to refuse.
const MaxLen = 1024

// MinKeyLen is the shortest key NewSigner accepts, in bytes.
const MinKeyLen = 32

// macLen is how much of the HMAC-SHA256 tag a cursor carries. 128 bits is far
// beyond what an online forger could guess through the API.
const macLen = 16

// encoding is strict so that each byte string has exactly one accepted
// spelling; otherwise the spare low bits of the last character could be
// flipped without the MAC noticing, and cursors would not be canonical.
var encoding = base64.RawURLEncoding.Strict()

// errInvalid is the one answer for every cursor Decode refuses. The reasons are
// deliberately not told apart: a client can only ever have obtained a valid
// cursor from us, so the detail would help nobody but a forger.
func errInvalid(cause error) *kernel.Error {
	e := kernel.Invalid("query.cursor", "cursor is invalid or belongs to another list")
	e.Err = cause
	return e
}

// Signer encodes and decodes cursors under one secret key. It is safe for
// concurrent use.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer using key, which the caller derives from the
// application secret for this purpose only. It panics if key is shorter than
// MinKeyLen bytes, since a weak key is a configuration bug that must not reach
// production. The key is copied.
func NewSigner(key []byte) *Signer {
	if len(key) < MinKeyLen {
		panic(fmt.Sprintf("cursor: key is %d bytes, need at least %d", len(key), MinKeyLen))
	}
	return &Signer{key: bytes.Clone(key)}
}

// Encode returns a cursor holding the JSON encoding of v, the sort key of the
// last item served (for example struct{ CreatedAt time.Time; ID string }).
// scope binds the cursor to one list of one tenant, such as
// "audit_log:ws_0123…"; Decode refuses the cursor under any other scope.
//
// Encode panics if v cannot be encoded as JSON or if the cursor would be longer
// than MaxLen, because either means the sort key type is wrong, not that the
// request is: a sort key that embeds user text must bound that text.
func (s *Signer) Encode(scope string, v any) string {
	payload, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cursor: encode sort key for %q: %v", scope, err))
	}
	raw := append(payload, s.mac(scope, payload)...)
	if encoding.EncodedLen(len(raw)) > MaxLen {
		panic(fmt.Sprintf("cursor: sort key for %q is %d bytes, too long for a cursor", scope, len(payload)))
	}
	return encoding.EncodeToString(raw)
}

// Decode checks that cursor was made by Encode with this key and scope, and
// decodes its sort key into v, which must be a pointer. It returns a
// *kernel.Error with code invalid on field "query.cursor" if the cursor is
// empty, longer than MaxLen, not base64url, truncated, altered, made under
// another key or scope, or holds fields that v does not have.
func (s *Signer) Decode(scope, cursor string, v any) error {
	if cursor == "" {
		return errInvalid(errors.New("cursor: empty"))
	}
	if len(cursor) > MaxLen {
		return errInvalid(fmt.Errorf("cursor: %d characters, over %d", len(cursor), MaxLen))
	}
	// The base64 decoder skips \r and \n; refusing every byte outside the
	// alphabet first keeps a cursor's spelling unique.
	for i := 0; i < len(cursor); i++ {
		if !isAlphabet(cursor[i]) {
			return errInvalid(fmt.Errorf("cursor: byte %d is not base64url", i))
		}
	}
	raw, err := encoding.DecodeString(cursor)
	if err != nil {
		return errInvalid(fmt.Errorf("cursor: %w", err))
	}
	if len(raw) <= macLen {
		return errInvalid(errors.New("cursor: too short"))
	}
	payload, tag := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !hmac.Equal(tag, s.mac(scope, payload)) {
		return errInvalid(errors.New("cursor: signature mismatch"))
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errInvalid(fmt.Errorf("cursor: sort key: %w", err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errInvalid(errors.New("cursor: data after the sort key"))
	}
	return nil
}

// mac returns the truncated tag over scope, a zero byte and payload. The
// encoding is unambiguous even if scope holds zero bytes, because JSON never
// does: the payload is whatever follows the last zero byte.
func (s *Signer) mac(scope string, payload []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)[:macLen]
}

func isAlphabet(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// Page asks for one page of a list: at most Limit items following the item
// whose sort key Cursor holds, or the first page when Cursor is empty.
type Page struct {
	Limit  int
	Cursor string
}

// Limits for the limit query parameter.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// ParseLimit returns the page size asked for by the raw limit query parameter:
// DefaultLimit when raw is empty, and the number itself when it is between 1
// and MaxLimit. A larger number is capped at MaxLimit rather than refused, so
// that clients asking for "everything" still get a page and a cursor. It
// returns a *kernel.Error with code invalid on field "query.limit" if raw is
// not a decimal integer or is below 1.
func ParseLimit(raw string) (int, error) {
	if raw == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(raw)
	switch {
	case errors.Is(err, strconv.ErrRange) && n > 0:
		return MaxLimit, nil
	case err != nil || n < 1:
		return 0, kernel.Invalid("query.limit", fmt.Sprintf("limit must be an integer from 1 to %d", MaxLimit))
	case n > MaxLimit:
		return MaxLimit, nil
	}
	return n, nil
}

// Trim cuts a page out of items, which the caller fetched with a limit of
// limit+1 so that the extra row tells whether another page follows. It returns
// the first limit items and whether there were more; the page's capacity is
// capped so that appending to it cannot overwrite the extra item. A limit
// below zero is treated as zero.
func Trim[T any](items []T, limit int) (page []T, hasMore bool) {
	limit = max(limit, 0)
	if len(items) <= limit {
		return items, false
	}
	return items[:limit:limit], true
}
