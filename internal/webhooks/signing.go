package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The headers of a signed request, as the Standard Webhooks specification
// names them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// secretBytes is how much randomness a new secret carries.
const secretBytes = 32

// VerifyTolerance is how far a request's timestamp may be from the
// receiver's clock before Verify refuses it, against replayed requests.
const VerifyTolerance = 5 * time.Minute

// NewSecret returns a fresh endpoint secret: whsec_ and the base64 of 32
// random bytes.
func NewSecret() string {
	key := make([]byte, secretBytes)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// secretKey is the HMAC key a secret stands for. It returns an error when
// the secret is not whsec_ and base64.
func secretKey(secret string) ([]byte, error) {
	encoded, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook secret does not start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook secret is not base64")
	}
	return key, nil
}

// Sign returns the v1 signature of one request: "v1," and the base64 of
// HMAC-SHA256 under secret's key over "id.timestamp.body". It returns an
// error when secret is malformed.
func Sign(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// signHeaders sets the three Standard Webhooks headers on h, with one
// signature per secret (two while a rotation is in its grace period),
// separated by spaces. It returns Sign's error.
func signHeaders(h http.Header, secrets []string, id string, at time.Time, body []byte) error {
	ts := at.Unix()
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, id, ts, body)
		if err != nil {
			return err
		}
		sigs = append(sigs, sig)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return nil
}

// ErrBadSignature is what Verify returns for a request it cannot trust.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Verify checks a received request as a receiver would: the timestamp is
// within VerifyTolerance of now and one of the v1 signatures is secret's.
// It is here for tests and for a fork's own receivers. It returns an error
// wrapping ErrBadSignature when the request must not be trusted, or one
// saying the secret is malformed.
func Verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, rawTS := h.Get(HeaderID), h.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(rawTS, 10, 64)
	if id == "" || err != nil {
		return fmt.Errorf("%w: missing id or timestamp", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > VerifyTolerance || d < -VerifyTolerance {
		return fmt.Errorf("%w: timestamp is %s from now", ErrBadSignature, d.Round(time.Second))
	}
	want, err := Sign(secret, id, ts, body)
	if err != nil {
		return err
	}
	for _, sig := range strings.Fields(h.Get(HeaderSignature)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("%w: no signature matches", ErrBadSignature)
}
