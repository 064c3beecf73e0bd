// Package mail defines how Atrium sends email: the Message and the Mailer
// interface every backend implements, the checks a message passes before any
// backend sees it, the templates messages are rendered from, and the MIME form
// a message takes on the wire.
//
// The backends live in their own packages: devmail (the default, which stores
// messages in the database for the dev mailbox) and smtpmail (SMTP, chosen when
// ATRIUM_SMTP_URL is set).
package mail

import (
	"context"
	netmail "net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"atrium/internal/kernel"
)

// Limits a message must respect.
const (
	MaxSubjectLength = 200 // characters, not bytes
	MaxRecipients    = 50
	MaxTagLength     = 64
	maxAddressLength = 320 // RFC 3696 erratum: 64 for the local part, @, 255 for the domain
)

// Message is one email. Every message has a plain-text and an HTML part;
// Templates.Message builds one from a template pair.
type Message struct {
	// To holds one or more addresses, bare ("ada@example.com") or with a display
	// name ("Ada Lovelace <ada@example.com>").
	To      []string
	Subject string
	Text    string
	HTML    string
	// Tag names the kind of message ("verify_email"), for filtering in the dev
	// mailbox and in logs. Lower-case letters, digits, '_', '-' and '.'; may be empty.
	Tag string
}

// Mailer sends messages. Send validates m first and returns an invalid
// *kernel.Error without sending anything when it breaks a rule (see Validate);
// other errors are the backend's, described by each implementation.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// Validate checks m before it is sent: at least one and at most MaxRecipients
// addresses, each a single valid address; a non-empty subject of at most
// MaxSubjectLength characters; no control characters (CR and LF included) in
// any header value, so nothing can inject a header; valid UTF-8 everywhere; a
// non-empty text and HTML part; a well-formed tag. It returns nil or an invalid
// *kernel.Error whose Fields name every offending field and whose Message
// describes the first problem found. It never echoes an address back.
func (m Message) Validate() error {
	v := &violations{}
	switch {
	case len(m.To) == 0:
		v.add("to", "at least one recipient is required")
	case len(m.To) > MaxRecipients:
		v.add("to", "at most "+strconv.Itoa(MaxRecipients)+" recipients are allowed")
	}
	for i, addr := range m.To {
		if _, err := ParseAddress(addr); err != nil {
			v.add("to", "recipient "+strconv.Itoa(i+1)+": "+err.Error())
			break
		}
	}
	switch {
	case strings.TrimSpace(m.Subject) == "":
		v.add("subject", "subject is required")
	case !utf8.ValidString(m.Subject):
		v.add("subject", "subject is not valid UTF-8")
	case hasControl(m.Subject):
		v.add("subject", "subject contains a control character")
	case utf8.RuneCountInString(m.Subject) > MaxSubjectLength:
		v.add("subject", "subject is longer than "+strconv.Itoa(MaxSubjectLength)+" characters")
	}
	for _, part := range []struct{ field, body string }{{"text", m.Text}, {"html", m.HTML}} {
		switch {
		case strings.TrimSpace(part.body) == "":
			v.add(part.field, "every message needs a plain-text and an HTML part")
		case !utf8.ValidString(part.body):
			v.add(part.field, part.field+" part is not valid UTF-8")
		}
	}
	if !validTag(m.Tag) {
		v.add("tag", "tag must be at most "+strconv.Itoa(MaxTagLength)+" of a-z, 0-9, '_', '-', '.'")
	}
	return v.err()
}

// ParseAddress parses one address, bare or with a display name, as a header
// value: it refuses control characters (CR and LF included) and invalid UTF-8
// before parsing, then anything net/mail does not accept as exactly one address.
// It returns an error fit to show the caller that does not echo the input.
func ParseAddress(s string) (*netmail.Address, error) {
	switch {
	case strings.TrimSpace(s) == "":
		return nil, errorString("address is empty")
	case len(s) > maxAddressLength+200: // room for a display name, no more
		return nil, errorString("address is too long")
	case !utf8.ValidString(s):
		return nil, errorString("address is not valid UTF-8")
	case hasControl(s):
		return nil, errorString("address contains a control character")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, errorString("not a valid email address")
	}
	if len(a.Address) > maxAddressLength {
		return nil, errorString("address is too long")
	}
	return a, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// hasControl reports whether s holds a character that must never reach a
// header: C0 and C1 controls (CR, LF and tab among them), DEL, and the Unicode
// line and paragraph separators that some clients treat as line breaks.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	})
}

func validTag(tag string) bool {
	if len(tag) > MaxTagLength {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// violations collects every offending field of a message.
type violations struct {
	first  string
	fields map[string]string
}

func (v *violations) add(field, message string) {
	if v.fields == nil {
		v.fields = map[string]string{}
		v.first = message
	}
	if _, ok := v.fields[field]; !ok {
		v.fields[field] = message
	}
}

func (v *violations) err() error {
	if v.fields == nil {
		return nil
	}
	return &kernel.Error{Code: kernel.CodeInvalid, Message: "mail: " + v.first, Fields: v.fields}
}
