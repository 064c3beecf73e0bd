package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"atrium/internal/kernel"
)

// TOTP parameters: RFC 6238's defaults, which every authenticator app
// understands (30-second steps, six digits, HMAC-SHA1), with a 160-bit
// secret as RFC 4226 recommends.
const (
	totpPeriod     = 30
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20
	// totpSkew accepts a code of the step before or after the current one,
	// for clocks that drift and people who type slowly.
	totpSkew = 1
)

// Backup codes: backupCodeCount codes of backupCodeLength characters from
// Crockford's base32 alphabet (5 bits each, so 50 bits a code), shown as
// xxxx-xxxx-xx. The alphabet has no I, L, O or U, and reading one back maps
// the look-alikes (o to 0, i and l to 1), so a code copied by hand still
// works.
const (
	backupCodeCount    = 10
	backupCodeLength   = 10
	backupCodeAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
)

// mfaKeySize is the AES-256 key that seals TOTP secrets.
const mfaKeySize = 32

// newTOTPKey returns a fresh TOTP secret for the account, as base32 and as
// the otpauth:// URI an authenticator app scans. The issuer is the host of
// the public URL, so two deployments show up apart in the app.
func (s *Service) newTOTPKey(email string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: s.baseURL.Hostname(), AccountName: email,
		Period: totpPeriod, SecretSize: totpSecretSize, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
}

// totpStep is the 30-second time step t falls in.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// matchTOTP returns the time step code is valid for at now, within totpSkew
// steps either side, if that step is later than lastStep: a code for a step
// already used, or an earlier one, is refused, so no code works twice. It
// returns false for anything else, including a code that is not six digits.
func matchTOTP(secret, code string, now time.Time, lastStep int64) (int64, bool) {
	if !isTOTPCode(code) {
		return 0, false
	}
	current := totpStep(now)
	for step := current - totpSkew; step <= current+totpSkew; step++ {
		if step <= lastStep {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0),
			totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err == nil && subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// isTOTPCode reports whether code has the shape of a TOTP code: six digits.
func isTOTPCode(code string) bool {
	if len(code) != int(totpDigits) {
		return false
	}
	for _, c := range []byte(code) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// normalizeCode trims what people paste around a code (spaces, dashes) and
// lower-cases it, so "123 456" and "ABCD-EFGH-JK" are read as meant.
func normalizeCode(code string) string {
	if len(code) > 64 {
		return ""
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t':
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, code)
}

// newBackupCodes returns backupCodeCount fresh codes as shown to the person
// and the hashes to store for them.
func newBackupCodes() (codes, hashes []string) {
	for range backupCodeCount {
		var raw [backupCodeLength]byte
		_, _ = rand.Read(raw[:])
		var b strings.Builder
		for i, x := range raw {
			if i == 4 || i == 8 {
				b.WriteByte('-')
			}
			b.WriteByte(backupCodeAlphabet[x&31]) // 256 is a multiple of 32: no bias
		}
		codes = append(codes, b.String())
		hashes = append(hashes, hashToken(canonicalBackupCode(b.String())))
	}
	return codes, hashes
}

// canonicalBackupCode returns the form of a backup code that is hashed: no
// separators, lower case, look-alike letters mapped to the digits they stand
// for. It returns "" for anything that cannot be a backup code.
func canonicalBackupCode(code string) string {
	code = normalizeCode(code)
	if len(code) != backupCodeLength {
		return ""
	}
	out := []byte(code)
	for i, c := range out {
		switch c {
		case 'o':
			out[i] = '0'
		case 'i', 'l':
			out[i] = '1'
		}
		if strings.IndexByte(backupCodeAlphabet, out[i]) < 0 {
			return ""
		}
	}
	return string(out)
}

// errMFANotConfigured answers MFA enrolment on a deployment built without an
// MFA key; Atrium always has one, so only a misassembled Service hits it.
var errMFANotConfigured = errors.New("identity: no MFA key configured")

// sealSecret encrypts a TOTP secret with AES-256-GCM under the MFA key, bound
// to the account (the user ID is the additional data, so a sealed secret
// copied to another account's row does not open). It returns base64 of nonce
// and ciphertext.
func (s *Service) sealSecret(userID uuid.UUID, secret string) (string, error) {
	aead, err := s.mfaAEAD()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, []byte(secret), userID[:])
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// openSecret reverses sealSecret. It returns an internal *kernel.Error when
// the value does not open: a changed app secret or a tampered row.
func (s *Service) openSecret(userID uuid.UUID, sealed string) (string, error) {
	aead, err := s.mfaAEAD()
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", kernel.Internal(fmt.Errorf("identity: MFA secret of %s is malformed", apiUserID(userID)))
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], userID[:])
	if err != nil {
		return "", kernel.Internal(fmt.Errorf("identity: MFA secret of %s does not open (was the app secret changed?)", apiUserID(userID)))
	}
	return string(plain), nil
}

func (s *Service) mfaAEAD() (cipher.AEAD, error) {
	if len(s.mfaKey) != mfaKeySize {
		return nil, kernel.Internal(errMFANotConfigured)
	}
	block, err := aes.NewCipher(s.mfaKey)
	if err != nil {
		return nil, kernel.Internal(err)
	}
	return cipher.NewGCM(block)
}
