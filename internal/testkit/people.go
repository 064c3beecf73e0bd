package testkit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// TestPassword is the password SignUp gives every account.
const TestPassword = "correct horse battery staple"

// Person is an account created and logged in through the API, as a user would.
type Person struct {
	ID    uuid.UUID
	Email string
	// Session is the session token; Headers sends it as the browser would.
	Session string
}

// Headers returns the request headers that carry the person's session cookie.
func (p Person) Headers() map[string]string {
	return map[string]string{"Cookie": httpapi.SessionCookieName + "=" + p.Session}
}

// UserID is the person's ID as the API shows it.
func (p Person) UserID() string { return kernel.FormatID(kernel.PrefixUser, p.ID) }

// SignUp signs email up, verifies the address with the link from the dev
// mailbox and logs in, all through the API. It fails the test on any error.
func (a *TestApp) SignUp(t testing.TB, email string) Person {
	t.Helper()
	p := a.SignUpUnverified(t, email)
	token := a.verificationToken(t, email)
	status, body := a.post(t, "/api/v1/auth/email/verify", `{"token": "`+token+`"}`, nil)
	if status != http.StatusOK {
		t.Fatalf("verify %s: %d %s", email, status, body)
	}
	return p
}

// SignUpUnverified signs email up and logs in without verifying the address.
func (a *TestApp) SignUpUnverified(t testing.TB, email string) Person {
	t.Helper()
	body := `{"email": "` + email + `", "password": "` + TestPassword + `", "name": "` + strings.Split(email, "@")[0] + `"}`
	if status, raw := a.post(t, "/api/v1/auth/signup", body, nil); status != http.StatusAccepted {
		t.Fatalf("sign up %s: %d %s", email, status, raw)
	}
	return a.LogIn(t, email)
}

// LogIn logs email in with TestPassword and returns the person with a new session.
func (a *TestApp) LogIn(t testing.TB, email string) Person {
	t.Helper()
	var cookies []string
	status, raw := a.post(t, "/api/v1/auth/login", `{"email": "`+email+`", "password": "`+TestPassword+`"}`, &cookies)
	if status != http.StatusOK {
		t.Fatalf("log in %s: %d %s", email, status, raw)
	}
	var user struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(raw), &user); err != nil {
		t.Fatalf("log in %s: %v in %s", email, err, raw)
	}
	id, err := kernel.ParseID(kernel.PrefixUser, user.ID)
	if err != nil {
		t.Fatalf("log in %s: user ID %q", email, user.ID)
	}
	for _, line := range cookies {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == httpapi.SessionCookieName {
			return Person{ID: id, Email: email, Session: c.Value}
		}
	}
	t.Fatalf("log in %s: no session cookie in %v", email, cookies)
	return Person{}
}

var verifyLink = regexp.MustCompile(`\S+/verify-email\?token=\S+`)

// verificationToken reads the token of the newest verification link sent to email.
func (a *TestApp) verificationToken(t testing.TB, email string) string {
	t.Helper()
	msgs, err := a.Services.Mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Tag != mail.TemplateVerifyEmail || len(m.To) == 0 || m.To[0] != email {
			continue
		}
		u, err := url.Parse(verifyLink.FindString(m.Text))
		if err != nil {
			t.Fatalf("verification link in %q: %v", m.Text, err)
		}
		return u.Query().Get("token")
	}
	t.Fatalf("no verification mail to %s", email)
	return ""
}

// post sends a JSON body and returns the status and body; cookies, when not
// nil, receives the Set-Cookie lines.
func (a *TestApp) post(t testing.TB, path, body string, cookies *[]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, a.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if cookies != nil {
		*cookies = resp.Header.Values("Set-Cookie")
	}
	return resp.StatusCode, string(raw)
}
