package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// tokenBytes is the entropy of every secret this package issues: 256 bits.
const tokenBytes = 32

// TokenLength is the length of an issued token as text: 32 bytes in unpadded
// base64url.
const TokenLength = 43

var tokenEncoding = base64.RawURLEncoding.Strict()

// newToken returns a fresh secret and the hash to store for it. crypto/rand
// does not fail on supported platforms (it panics rather than return short
// reads), so neither does newToken.
func newToken() (token, hash string) {
	var raw [tokenBytes]byte
	_, _ = rand.Read(raw[:])
	token = tokenEncoding.EncodeToString(raw[:])
	return token, hashToken(token)
}

// hashToken returns the stored form of a token: the hex SHA-256 of its text. A
// fast hash is right here, unlike for passwords: the token has 256 bits of
// entropy, so nothing can be guessed from its hash.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// wellFormed reports whether s could be a token this package issued: exactly
// TokenLength characters of strict base64url. Anything else (truncated, padded,
// padded with spaces, another alphabet) is refused before the store is asked.
func wellFormed(s string) bool {
	if len(s) != TokenLength {
		return false
	}
	_, err := tokenEncoding.DecodeString(s)
	return err == nil
}
