package identity

import (
	netmail "net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"atrium/internal/kernel"
)

// MaxEmailBytes is the longest address accepted: the limit of a forward path in
// SMTP (RFC 5321 §4.5.3.1.3) less its angle brackets.
const MaxEmailBytes = 254

// maxNameLength bounds a person's display name, in characters.
const maxNameLength = 100

// NormalizeEmail returns the form of an address that is stored and compared:
// surrounding space trimmed, Unicode NFC, lower case. It returns an invalid
// *kernel.Error on field "email" for an empty address, invalid UTF-8, a
// control character (CR and LF included), more than MaxEmailBytes bytes, or
// anything net/mail does not read as exactly one bare address (display names,
// angle brackets, comments, groups and quoted local parts are refused, since
// they would be stored in a form other than the one typed). The error never
// echoes the input.
//
// Lower-casing the local part is, strictly, more than RFC 5321 allows; in
// practice no provider tells "Ada@" from "ada@", and treating them as two
// accounts invites confusion and duplicates.
func NormalizeEmail(email string) (string, error) {
	const field = "email"
	email = strings.TrimSpace(email)
	switch {
	case email == "":
		return "", kernel.Invalid(field, "is required")
	case !utf8.ValidString(email):
		return "", kernel.Invalid(field, "must be valid UTF-8")
	case hasControl(email):
		return "", kernel.Invalid(field, "must not contain control characters")
	}
	email = strings.ToLower(norm.NFC.String(email))
	if len(email) > MaxEmailBytes {
		return "", kernel.Invalid(field, "must be at most 254 bytes")
	}
	addr, err := netmail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email || !strings.Contains(email, "@") {
		return "", kernel.Invalid(field, "is not a valid email address")
	}
	return email, nil
}

// validateName returns name trimmed, or an invalid *kernel.Error on field
// "name" when it is empty, not UTF-8, longer than maxNameLength characters or
// holds a control character.
func validateName(name string) (string, error) {
	const field = "name"
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", kernel.Invalid(field, "is required")
	case !utf8.ValidString(name):
		return "", kernel.Invalid(field, "must be valid UTF-8")
	case hasControl(name):
		return "", kernel.Invalid(field, "must not contain control characters")
	case utf8.RuneCountInString(name) > maxNameLength:
		return "", kernel.Invalid(field, "must be at most 100 characters")
	}
	return norm.NFC.String(name), nil
}

// hasControl reports whether s holds a control character or one of the
// Unicode line and paragraph separators, which some clients break lines on.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	})
}
