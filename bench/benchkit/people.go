package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"

	"github.com/google/uuid"

	"atrium/internal/app"
	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// Person is an account signed up, verified and logged in through the API.
type Person struct {
	ID      uuid.UUID
	Email   string
	Session string // the session token; Cookie sends it as a browser would
}

// Cookie is the Cookie header value that carries the person's session.
func (p Person) Cookie() string { return httpapi.SessionCookieName + "=" + p.Session }

// SignUp signs email up with pw, verifies the address with the link from the
// dev mailbox and logs in, all through the API. It returns an error naming
// the step that failed.
func SignUp(ctx context.Context, a *app.App, email, pw string) (Person, error) {
	body := map[string]string{"email": email, "password": pw, "name": "Bench"}
	if status, raw, _, err := Post(ctx, a.URL()+"/api/v1/auth/signup", body, nil); err != nil || status != http.StatusAccepted {
		return Person{}, fmt.Errorf("sign up %s: %d %v %.200s", email, status, err, raw)
	}
	token, err := verificationToken(ctx, a, email)
	if err != nil {
		return Person{}, err
	}
	if status, raw, _, err := Post(ctx, a.URL()+"/api/v1/auth/email/verify", map[string]string{"token": token}, nil); err != nil || status != http.StatusOK {
		return Person{}, fmt.Errorf("verify %s: %d %v %.200s", email, status, err, raw)
	}
	return LogIn(ctx, a.URL(), email, pw)
}

// LogIn logs email in through the API and returns the person with the new
// session, or an error for any answer but 200 with a session cookie.
func LogIn(ctx context.Context, base, email, pw string) (Person, error) {
	status, raw, resp, err := Post(ctx, base+"/api/v1/auth/login", map[string]string{"email": email, "password": pw}, nil)
	if err != nil || status != http.StatusOK {
		return Person{}, fmt.Errorf("log in %s: %d %v %.200s", email, status, err, raw)
	}
	var user struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &user); err != nil {
		return Person{}, fmt.Errorf("log in %s: %w in %.200s", email, err, raw)
	}
	id, err := kernel.ParseID(kernel.PrefixUser, user.ID)
	if err != nil {
		return Person{}, fmt.Errorf("log in %s: user ID %q", email, user.ID)
	}
	for _, c := range resp.Cookies() {
		if c.Name == httpapi.SessionCookieName {
			return Person{ID: id, Email: email, Session: c.Value}, nil
		}
	}
	return Person{}, fmt.Errorf("log in %s: no session cookie", email)
}

// CreateAPIKey creates a read-write API key in workspaceID through the API as
// p, and returns its secret.
func CreateAPIKey(ctx context.Context, base string, p Person, workspaceID uuid.UUID) (string, error) {
	path := base + "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + "/api-keys"
	body := map[string]any{"name": "bench", "scopes": []string{"read", "write"}}
	status, raw, _, err := Post(ctx, path, body, map[string]string{"Cookie": p.Cookie()})
	if err != nil || status != http.StatusCreated && status != http.StatusOK {
		return "", fmt.Errorf("create API key: %d %v %.200s", status, err, raw)
	}
	var key struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(raw, &key); err != nil || key.Secret == "" {
		return "", fmt.Errorf("create API key: no secret in the answer (%v)", err)
	}
	return key.Secret, nil
}

// Post sends body as JSON with headers and returns the status, the body and
// the response (its body already read and closed).
func Post(ctx context.Context, rawURL string, body any, headers map[string]string) (int, []byte, *http.Response, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(data))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp, err
}

var verifyLink = regexp.MustCompile(`\S+/verify-email\?token=\S+`)

// verificationToken reads the token of the newest verification link sent to
// email from the dev mailbox.
func verificationToken(ctx context.Context, a *app.App, email string) (string, error) {
	msgs, err := a.Services.Mailbox.List(ctx, 100)
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if m.Tag != mail.TemplateVerifyEmail || len(m.To) == 0 || m.To[0] != email {
			continue
		}
		u, err := url.Parse(verifyLink.FindString(m.Text))
		if err != nil {
			return "", fmt.Errorf("verification link: %w", err)
		}
		return u.Query().Get("token"), nil
	}
	return "", fmt.Errorf("no verification mail to %s", email)
}
