package password

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"atrium/internal/kernel"
)

// Policy limits, after NIST SP 800-63B: a floor on length, a generous ceiling,
// no composition rules, and a block list of common and guessable passwords.
const (
	// MinLength is the fewest characters a password may have, counted as
	// Unicode code points of its NFC form, so "é" counts once however it was
	// typed.
	MinLength = 8
	// MaxBytes is the most bytes of UTF-8 a password may have. It bounds the
	// input to hashing, not what users can choose: it allows 1024 ASCII
	// characters and at least 256 of any script. Nothing is ever truncated.
	MaxBytes = 1024
	// minEmbeddedLength is the shortest part of an email address that a
	// password may not contain. Shorter local parts ("al", "jo") occur inside
	// too many unrelated passwords to be held against them.
	minEmbeddedLength = 4
)

// field is the input name Check reports in kernel.Error.Fields.
const field = "password"

// Check reports whether password is acceptable for the account with the given
// email address. It returns nil, or a *kernel.Error with code invalid and
// Fields{"password": reason} for the first rule broken:
//
//   - more than MaxBytes bytes;
//   - not valid UTF-8;
//   - a control character (Unicode category Cc: C0 controls including tab, CR
//     and LF, DEL, and C1 controls). These are never typed on purpose and
//     usually come from a paste; format characters such as the zero-width
//     joiner in emoji sequences are allowed;
//   - fewer than MinLength characters;
//   - one of the 10,000 most common passwords, compared case-insensitively;
//   - too close to the email address, compared case-insensitively: equal to,
//     contained in, or containing the whole address or its local part (also
//     without a "+tag", without separators such as dots, or reversed).
//     "Containing" applies only to parts of at least four characters.
//
// Spaces, punctuation, emoji and every script are allowed, and there are no
// rules on character classes.
func Check(password, email string) error {
	if len(password) > MaxBytes {
		return errTooLong()
	}
	if !utf8.ValidString(password) {
		return kernel.Invalid(field, "must be valid UTF-8")
	}
	if strings.IndexFunc(password, unicode.IsControl) >= 0 {
		return kernel.Invalid(field, "must not contain control characters")
	}
	normalized := norm.NFC.String(password)
	if utf8.RuneCountInString(normalized) < MinLength {
		return kernel.Invalid(field, "must be at least 8 characters")
	}
	folded := strings.ToLower(normalized)
	if isCommon(folded) {
		return kernel.Invalid(field, "is too common; choose a less predictable password")
	}
	if tooCloseToEmail(folded, email) {
		return kernel.Invalid(field, "is too similar to the email address")
	}
	return nil
}

func errTooLong() *kernel.Error {
	return kernel.Invalid(field, "must be at most 1024 bytes")
}

// tooCloseToEmail reports whether folded, a lower-cased NFC password, equals,
// is contained in, or contains a part of email derived from the address.
func tooCloseToEmail(folded, email string) bool {
	email = strings.ToLower(norm.NFC.String(strings.TrimSpace(email)))
	if email == "" {
		return false
	}
	local := email
	if at := strings.LastIndexByte(email, '@'); at >= 0 {
		local = email[:at]
	}
	untagged, _, _ := strings.Cut(local, "+")
	joined := stripSeparators(untagged)
	parts := []string{email, local, untagged, joined, reverse(local), reverse(untagged), reverse(joined)}
	for _, part := range parts {
		if part == "" {
			continue
		}
		if strings.Contains(part, folded) {
			return true
		}
		if utf8.RuneCountInString(part) >= minEmbeddedLength && strings.Contains(folded, part) {
			return true
		}
	}
	return false
}

// stripSeparators removes the punctuation people put between the words of a
// local part, so that "john.smith" also blocks "johnsmith1".
func stripSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) {
			return -1
		}
		return r
	}, s)
}

// reverse returns s with its code points in reverse order.
func reverse(s string) string {
	runes := []rune(s)
	for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
		runes[i], runes[j] = runes[j], runes[i]
	}
	return string(runes)
}
