package password

import (
	_ "embed"
	"strings"
	"sync"
	"unicode/utf8"
)

// commonPasswordsFile is SecLists' list of the 10,000 most frequent passwords
// in Mark Burnett's "ten million passwords" release (xato.net, 2015), one a
// line, most frequent first: the file
// Passwords/Common-Credentials/10-million-password-list-top-10000.txt of
// https://github.com/danielmiessler/SecLists at commit
// 74d9d3259d82c441c1217104cb7debd5912178b6, kept byte for byte. SecLists is
// MIT-licensed, copyright Daniel Miessler; the licence is in
// common-passwords.LICENSE next to the list.
//
//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords is the set of lower-cased entries of at least MinLength
// characters, built on first use. Shorter entries are left out because Check
// refuses them by length before it consults the list.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{})
	for line := range strings.Lines(commonPasswordsFile) {
		entry := strings.ToLower(strings.TrimRight(line, "\r\n"))
		if utf8.RuneCountInString(entry) >= MinLength {
			set[entry] = struct{}{}
		}
	}
	return set
})

// isCommon reports whether folded, a lower-cased NFC password, is on the list.
func isCommon(folded string) bool {
	_, ok := commonPasswords()[folded]
	return ok
}
