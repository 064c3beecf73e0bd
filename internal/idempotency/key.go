package idempotency

import "atrium/internal/kernel"

// headerField names the header in a kernel.Error's Fields.
const headerField = "header.Idempotency-Key"

// MaxKeyLength is the longest Idempotency-Key accepted, in bytes.
const MaxKeyLength = 255

// ValidKey checks an Idempotency-Key header value: 1 to MaxKeyLength printable
// ASCII characters (0x21 to 0x7e, so no spaces or control characters). It
// returns nil for a valid key, or an invalid *kernel.Error naming
// header.Idempotency-Key.
func ValidKey(key string) error {
	switch {
	case key == "":
		return kernel.Invalid(headerField, "Idempotency-Key must not be empty")
	case len(key) > MaxKeyLength:
		return kernel.Invalid(headerField, "Idempotency-Key must be at most 255 characters")
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return kernel.Invalid(headerField, "Idempotency-Key must be printable ASCII without spaces")
		}
	}
	return nil
}
