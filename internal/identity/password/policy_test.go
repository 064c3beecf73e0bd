package password_test

import (
	"errors"
	"strings"
	"testing"

	"atrium/internal/identity/password"
	"atrium/internal/kernel"
)

const (
	tooShort   = "must be at least 8 characters"
	tooLong    = "must be at most 1024 bytes"
	badUTF8    = "must be valid UTF-8"
	control    = "must not contain control characters"
	tooCommon  = "is too common; choose a less predictable password"
	likeEmail  = "is too similar to the email address"
	aliceEmail = "Alice.Smith+atrium@Example.com"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, password, email, want string
	}{
		// Length, in code points of the NFC form.
		{"empty", "", aliceEmail, tooShort},
		{"seven", "qz7#vk2", aliceEmail, tooShort},
		{"eight", "qz7#vk2m", aliceEmail, ""},
		{"seven precomposed", "caf\u00e9-pq", aliceEmail, tooShort},
		{"seven decomposed into eight code points", "cafe\u0301-pq", aliceEmail, tooShort},
		{"eight emoji", strings.Repeat("\U0001F98A", 8), aliceEmail, ""},
		{"200 characters", strings.Repeat("violet harbour lamp ", 10), aliceEmail, ""},
		{"1024 bytes", strings.Repeat("x", 1024), aliceEmail, ""},
		{"1025 bytes", strings.Repeat("x", 1025), aliceEmail, tooLong},
		{"1026 bytes of two-byte characters", strings.Repeat("\u00e9", 513), aliceEmail, tooLong},
		{"1024 bytes of two-byte characters", strings.Repeat("\u00e9", 512), aliceEmail, ""},

		// Encoding and control characters.
		{"invalid UTF-8", "qz7#vk2m\xff", aliceEmail, badUTF8},
		{"truncated UTF-8", "qz7#vk2m\xc3", aliceEmail, badUTF8},
		{"NUL", "qz7#\x00vk2m", aliceEmail, control},
		{"tab", "qz7#\tvk2m", aliceEmail, control},
		{"trailing newline", "qz7#vk2m\n", aliceEmail, control},
		{"CR LF", "qz7#vk2m\r\n", aliceEmail, control},
		{"DEL", "qz7#vk2m\x7f", aliceEmail, control},
		{"C1 next line", "qz7#vk2m\u0085", aliceEmail, control},
		{"spaces", "correct horse battery staple", aliceEmail, ""},
		{"leading and trailing spaces kept", "  qz7#vk2m  ", aliceEmail, ""},
		{"zero-width joiner in emoji", "\U0001F469\u200D\U0001F4BB\U0001F469\u200D\U0001F4BBxyz", aliceEmail, ""},
		{"other scripts", "пароль-для-входа", aliceEmail, ""},

		// The bundled list, case-insensitively.
		{"password123", "password123", aliceEmail, tooCommon},
		{"PASSWORD123", "PASSWORD123", aliceEmail, tooCommon},
		{"baseball", "baseball", aliceEmail, tooCommon},
		{"Password1 from the list", "Password1", aliceEmail, tooCommon},
		{"iloveyou", "iLoveYou", aliceEmail, tooCommon},
		{"qwertyuiop", "qwertyuiop", aliceEmail, tooCommon},
		{"short list entry padded", "letmein!x", aliceEmail, ""},

		// Closeness to the email address, case-insensitively.
		{"whole email", "alice.smith+atrium@example.com", aliceEmail, likeEmail},
		{"whole email inside", "my alice.smith+atrium@example.com pw", aliceEmail, likeEmail},
		{"local part", "ALICE.SMITH+ATRIUM", aliceEmail, likeEmail},
		{"local part without tag", "alice.smith", aliceEmail, likeEmail},
		{"contains local part", "alice.smith+atrium2024", aliceEmail, likeEmail},
		{"contains local part without tag", "i am alice.smith!", aliceEmail, likeEmail},
		{"contains local part without dots", "AliceSmith1990", aliceEmail, likeEmail},
		{"reversed local part", "htims.ecila", aliceEmail, likeEmail},
		{"contains reversed local part", "htimsecila99", aliceEmail, likeEmail},
		{"contained in email", "example.com", aliceEmail, likeEmail},
		{"contained in local part", "smith+atrium", aliceEmail, likeEmail},
		{"shares a word only", "smith family garden", aliceEmail, ""},
		{"short local part may appear", "always-alert-99", "al@example.com", ""},
		{"four-character local part may not", "bob1bob1bob1", "bob1@example.com", likeEmail},
		{"email with surrounding spaces", "alice.smith", "  alice.smith@example.com ", likeEmail},
		{"no email", "alice.smith", "", ""},
		{"unrelated", "violet harbour lamp", aliceEmail, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := password.Check(c.password, c.email)
			if c.want == "" {
				if err != nil {
					t.Errorf("Check(%.40q, %q) = %v, want nil", c.password, c.email, err)
				}
				return
			}
			var kerr *kernel.Error
			if !errors.As(err, &kerr) || kerr.Code != kernel.CodeInvalid {
				t.Fatalf("Check(%.40q, %q) = %v, want a kernel.Error with code invalid", c.password, c.email, err)
			}
			if got := kerr.Fields["password"]; got != c.want {
				t.Errorf("Check(%.40q, %q) reason = %q, want %q", c.password, c.email, got, c.want)
			}
			if len(kerr.Fields) != 1 {
				t.Errorf("Fields = %v, want only password", kerr.Fields)
			}
		})
	}
}

// TestCheckedPasswordsHashLosslessly ties the policy to the hasher: the
// longest password Check allows hashes without error and round-trips.
func TestCheckedPasswordsHashLosslessly(t *testing.T) {
	t.Parallel()
	h := newHasher()
	longest := strings.Repeat("\u20ac", password.MaxBytes/3) + "x" // 1024 bytes of three-byte characters
	if err := password.Check(longest, aliceEmail); err != nil {
		t.Fatalf("Check(longest) = %v", err)
	}
	encoded := mustHash(t, h, longest)
	assertVerify(t, h, longest, encoded, true, false)
	assertVerify(t, h, longest[:len(longest)-1]+"y", encoded, false, false)
}
