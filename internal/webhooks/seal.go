package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// KeySize is the length of the key that seals endpoint secrets at rest.
const KeySize = 32

// sealer encrypts endpoint secrets with AES-256-GCM, bound to their endpoint:
// the endpoint ID is the additional data, so a sealed secret copied to
// another endpoint's row does not open.
type sealer struct{ aead cipher.AEAD }

// newSealer returns a sealer under key. It returns an error unless key is
// KeySize bytes.
func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("webhooks: the secret key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("webhooks: secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("webhooks: secret key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns base64 of a fresh nonce and the ciphertext of secret.
func (s *sealer) seal(endpointID uuid.UUID, secret string) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(secret)+s.aead.Overhead())
	_, _ = rand.Read(nonce) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), endpointID[:]))
}

// open reverses seal. It returns an internal *kernel.Error when the value
// does not open: a changed app secret or a tampered row.
func (s *sealer) open(endpointID uuid.UUID, sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", kernel.Internal(fmt.Errorf("webhooks: the secret of %s is malformed", endpointAPIID(endpointID)))
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], endpointID[:])
	if err != nil {
		return "", kernel.Internal(fmt.Errorf("webhooks: the secret of %s does not open (was the app secret changed?)",
			endpointAPIID(endpointID)))
	}
	return string(plain), nil
}
