package testkit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// TOTPCode returns the TOTP code of secret at t, as an authenticator app
// would show it. It fails the test on error.
func TOTPCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatalf("TOTP code: %v", err)
	}
	return code
}

// EnrolTOTP turns TOTP MFA on for p through the API, as a user would: it
// starts an enrolment, confirms it with the code of the test clock's time,
// and returns the secret and the ten backup codes. The code's time step is
// then used: advance the clock 30 seconds before the next code. p's session
// must be recent (a fresh login is). It fails the test on any error.
func (a *TestApp) EnrolTOTP(t testing.TB, p Person) (secret string, backupCodes []string) {
	t.Helper()
	var enrol struct {
		Secret string `json:"secret"`
	}
	if status, raw := a.send(t, http.MethodPost, "/api/v1/me/mfa/totp", "", p.Headers()); status != http.StatusCreated ||
		json.Unmarshal([]byte(raw), &enrol) != nil || enrol.Secret == "" {
		t.Fatalf("start TOTP for %s: %d %s", p.Email, status, raw)
	}
	var confirmed struct {
		BackupCodes []string `json:"backup_codes"`
	}
	body := `{"code": "` + TOTPCode(t, enrol.Secret, a.Clock.Now()) + `"}`
	if status, raw := a.send(t, http.MethodPost, "/api/v1/me/mfa/totp/confirm", body, p.Headers()); status != http.StatusOK ||
		json.Unmarshal([]byte(raw), &confirmed) != nil || len(confirmed.BackupCodes) != 10 {
		t.Fatalf("confirm TOTP for %s: %d %s", p.Email, status, raw)
	}
	return enrol.Secret, confirmed.BackupCodes
}

// send sends a request with an optional JSON body and headers and returns
// the status and body.
func (a *TestApp) send(t testing.TB, method, path, body string, headers map[string]string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, a.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}
