package webhooks

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The test vector of the Standard Webhooks specification.
func TestSignStandardWebhooksVector(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
		[]byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	if _, err := Sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg", 1, nil); err == nil {
		t.Error("a secret without whsec_ signed")
	}
	if _, err := Sign("whsec_!!!", "msg", 1, nil); err == nil {
		t.Error("a secret that is not base64 signed")
	}
}

func TestNewSecret(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	if a == b || !strings.HasPrefix(a, SecretPrefix) {
		t.Fatalf("secrets %q and %q", a, b)
	}
	key, err := secretKey(a)
	if err != nil || len(key) != secretBytes {
		t.Fatalf("key of %q: %d bytes, %v", a, len(key), err)
	}
}

func TestVerify(t *testing.T) {
	oldSecret, newSecret := NewSecret(), NewSecret()
	at := time.Unix(1700000000, 0)
	body := []byte(`{"id":"evt_1"}`)
	h := http.Header{}
	if err := signHeaders(h, []string{newSecret, oldSecret}, "evt_1", at, body); err != nil {
		t.Fatal(err)
	}
	if sigs := strings.Fields(h.Get(HeaderSignature)); len(sigs) != 2 || h.Get(HeaderTimestamp) != "1700000000" || h.Get(HeaderID) != "evt_1" {
		t.Fatalf("headers %v", h)
	}
	for _, secret := range []string{newSecret, oldSecret} {
		if err := Verify(secret, h, body, at.Add(time.Minute)); err != nil {
			t.Errorf("verify with either secret during a rotation: %v", err)
		}
	}
	for name, check := range map[string]error{
		"another secret": Verify(NewSecret(), h, body, at),
		"a changed body": Verify(newSecret, h, []byte(`{"id":"evt_2"}`), at),
		"an old request": Verify(newSecret, h, body, at.Add(VerifyTolerance+time.Second)),
		"no id":          Verify(newSecret, http.Header{HeaderTimestamp: h[HeaderTimestamp], HeaderSignature: h[HeaderSignature]}, body, at),
	} {
		if !errors.Is(check, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, check)
		}
	}
}
