package kernel

import (
	"strings"

	"github.com/google/uuid"
)

// ID prefixes shown in the API. The store keeps raw UUIDs; only the API adds them.
const (
	PrefixWorkspace = "ws"
	PrefixUser      = "usr"
	PrefixAPIKey    = "key"
	PrefixEvent     = "evt"
	PrefixAudit     = "aud"
	PrefixRequest   = "req"
	PrefixSession   = "ses"
	PrefixPAT       = "pat"
	PrefixInvite    = "inv"
	PrefixTeam      = "team"
	PrefixJob       = "job"
	// PrefixWebhookEndpoint and PrefixDelivery name a workspace's webhook
	// endpoints and the deliveries of events to them.
	PrefixWebhookEndpoint = "we"
	PrefixDelivery        = "dlv"
	// PrefixSchedulerRun names one run of a scheduled task.
	PrefixSchedulerRun = "run"
)

// NewID returns a fresh UUIDv7: time-ordered, so keys cluster in indexes and sort
// by creation. It panics only if the system's random source fails.
func NewID() uuid.UUID {
	return uuid.Must(uuid.NewV7())
}

// crockford is the lower-case Crockford base32 alphabet TypeID uses.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

var crockfordValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(crockford); i++ {
		t[crockford[i]] = byte(i)
	}
	return t
}()

// FormatID renders id as prefix_<26 base32 characters>, TypeID-style: the 128 bits
// are read as a 130-bit number with two leading zero bits, five bits a character.
func FormatID(prefix string, id uuid.UUID) string {
	var b strings.Builder
	b.Grow(len(prefix) + 27)
	b.WriteString(prefix)
	b.WriteByte('_')
	var buf [26]byte
	// Walk from the least significant five bits up.
	var acc uint32
	bits := 0
	pos := 25
	for i := 15; i >= 0; i-- {
		acc |= uint32(id[i]) << bits
		bits += 8
		for bits >= 5 {
			buf[pos] = crockford[acc&31]
			acc >>= 5
			bits -= 5
			pos--
		}
	}
	buf[0] = crockford[acc&31] // the top three bits (two of them padding)
	b.Write(buf[:])
	return b.String()
}

// ParseID reads an ID rendered by FormatID with the given prefix. Anything else
// (another prefix, a raw UUID, wrong length, letters outside the alphabet, an
// overflowing first character) is an error; callers decide the answer, usually
// not_found for path IDs and invalid for body fields.
func ParseID(prefix, s string) (uuid.UUID, error) {
	var id uuid.UUID
	bad := &Error{Code: CodeInvalid, Message: "malformed " + prefix + " ID"}
	if len(s) != len(prefix)+27 || !strings.HasPrefix(s, prefix) || s[len(prefix)] != '_' {
		return id, bad
	}
	enc := s[len(prefix)+1:]
	if crockfordValue[enc[0]] > 7 {
		return id, bad
	}
	var acc uint32
	bits := 0
	pos := 15
	for i := 25; i >= 0; i-- {
		v := crockfordValue[enc[i]]
		if v == 0xff {
			return id, bad
		}
		acc |= uint32(v) << bits
		bits += 5
		for bits >= 8 && pos >= 0 {
			id[pos] = byte(acc)
			acc >>= 8
			bits -= 8
			pos--
		}
	}
	return id, nil
}
