package identity_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/mail"
)

const newPassword = "a brand new passphrase"

// mailedToken returns the token of the link in the newest mail, which must
// have the tag and carry a link to path.
func mailedToken(t *testing.T, b bundle, tag, path string) string {
	t.Helper()
	m := lastMail(t, b)
	if m.Tag != tag {
		t.Fatalf("newest mail is %q, not %q", m.Tag, tag)
	}
	for _, field := range strings.Fields(m.Text) {
		if u, err := url.Parse(field); err == nil && u.Path == path && u.Host == "app.example.com" {
			return u.Query().Get("token")
		}
	}
	t.Fatalf("no %s link in %q", path, m.Text)
	return ""
}

// verifiedUser signs up, verifies and returns the account's ID.
func verifiedUser(t *testing.T, b bundle, email string) uuid.UUID {
	t.Helper()
	id := signUp(t, b, email)
	if _, err := b.svc.VerifyEmail(context.Background(), verificationToken(t, b)); err != nil {
		t.Fatal(err)
	}
	return id
}

func mailCount(t *testing.T, b bundle) int {
	t.Helper()
	msgs, err := b.mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

func TestPasswordReset(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		id := verifiedUser(t, b, "ada@example.com")
		other, err := b.svc.Login(ctx, "ada@example.com", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.svc.RequestPasswordReset(ctx, " ADA@example.com"); err != nil {
			t.Fatalf("RequestPasswordReset: %v", err)
		}
		token := mailedToken(t, b, mail.TemplatePasswordReset, "/reset-password")
		if len(token) != identity.TokenLength || lastMail(t, b).To[0] != "ada@example.com" {
			t.Fatalf("reset mail: %+v", lastMail(t, b))
		}
		if _, err := b.svc.ResetPassword(ctx, token, "ada@example.com"); !isInvalidField(err, "password") {
			t.Fatalf("a password equal to the email: %v", err)
		}
		b.clock.Advance(59 * time.Minute)
		u, err := b.svc.ResetPassword(ctx, token, newPassword) // the refused attempt did not use the token
		if err != nil || u.ID != id {
			t.Fatalf("ResetPassword = %+v, %v", u, err)
		}
		if _, _, err := b.svc.Authenticate(ctx, other.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("a session survived the reset: %v", err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", pw, client); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("the old password still works: %v", err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", newPassword, client); err != nil {
			t.Fatalf("the new password: %v", err)
		}
		if _, err := b.svc.ResetPassword(ctx, token, "yet another passphrase"); !isInvalidToken(err) {
			t.Fatalf("second use: %v", err)
		}
		if m := lastMail(t, b); m.Tag != mail.TemplatePasswordChanged || m.To[0] != "ada@example.com" {
			t.Fatalf("no password-changed notice: %+v", m)
		}
		assertAudit(t, b, "user.password_reset", 1)
		if logs := b.logs.String(); strings.Contains(logs, token) || strings.Contains(logs, newPassword) {
			t.Fatal("the token or the password was logged")
		}
	})
}

func isInvalidField(err error, field string) bool {
	e := kernel.As(err)
	return e != nil && e.Code == kernel.CodeInvalid && e.Fields[field] != ""
}

func TestLinkRequestsRevealNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		verifiedUser(t, b, "ada@example.com")
		signUp(t, b, "eve@example.com") // never verified
		before := mailCount(t, b)
		for _, email := range []string{"eve@example.com", "nobody@example.com"} {
			if err := b.svc.RequestPasswordReset(ctx, email); err != nil {
				t.Fatalf("RequestPasswordReset(%s): %v", email, err)
			}
		}
		if n := mailCount(t, b); n != before {
			t.Fatalf("%d reset mails to unverified or unknown addresses", n-before)
		}
		if err := b.svc.RequestMagicLink(ctx, "nobody@example.com"); err != nil {
			t.Fatalf("RequestMagicLink(unknown): %v", err)
		}
		if n := mailCount(t, b); n != before {
			t.Fatal("a magic link went to an unknown address")
		}
		for _, request := range []func(context.Context, string) error{b.svc.RequestPasswordReset, b.svc.RequestMagicLink} {
			if err := request(ctx, "not an address"); !isInvalidField(err, "email") {
				t.Fatalf("a malformed address: %v", err)
			}
		}
	})
}

func TestEmailedTokensAreRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		verifyToken := verificationToken(t, b)
		if err := b.svc.RequestMagicLink(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		magic := mailedToken(t, b, mail.TemplateMagicLink, "/magic-link")
		if _, err := b.svc.VerifyEmail(ctx, verifyToken); err != nil {
			t.Fatal(err)
		}
		if err := b.svc.RequestPasswordReset(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		reset := mailedToken(t, b, mail.TemplatePasswordReset, "/reset-password")
		reset2 := func() string {
			if err := b.svc.RequestPasswordReset(ctx, "ada@example.com"); err != nil {
				t.Fatal(err)
			}
			return mailedToken(t, b, mail.TemplatePasswordReset, "/reset-password")
		}()

		for name, bad := range map[string]string{
			"magic link": magic, "verification": verifyToken, "truncated": reset2[:len(reset2)-1],
			"forged": strings.Repeat("A", identity.TokenLength), "replaced by a newer link": reset,
		} {
			if _, err := b.svc.ResetPassword(ctx, bad, newPassword); !isInvalidToken(err) {
				t.Errorf("reset with a %s token: %v", name, err)
			}
		}
		for name, bad := range map[string]string{"reset": reset2, "verification": verifyToken, "truncated": magic[:40]} {
			if _, err := b.svc.LoginWithMagicLink(ctx, bad, client); !isInvalidToken(err) {
				t.Errorf("magic-link login with a %s token: %v", name, err)
			}
		}
		b.clock.Advance(15 * time.Minute)
		if _, err := b.svc.LoginWithMagicLink(ctx, magic, client); !isInvalidToken(err) {
			t.Fatalf("a magic link after 15 minutes: %v", err)
		}
		b.clock.Advance(45 * time.Minute)
		if _, err := b.svc.ResetPassword(ctx, reset2, newPassword); !isInvalidToken(err) {
			t.Fatalf("a reset link after an hour: %v", err)
		}
		assertAudit(t, b, "user.password_reset", 0)
	})
}

func TestLinksAreLimitedPerAccount(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		verifiedUser(t, b, "ada@example.com")
		for kind, request := range map[string]func(context.Context, string) error{
			"reset": b.svc.RequestPasswordReset, "magic link": b.svc.RequestMagicLink,
		} {
			before := mailCount(t, b)
			for i := 0; i < 5; i++ {
				b.clock.Advance(time.Minute)
				if err := request(ctx, "ada@example.com"); err != nil {
					t.Fatalf("%s request %d: %v", kind, i, err)
				}
			}
			if n := mailCount(t, b) - before; n != 3 {
				t.Fatalf("%d %s mails in five minutes, want 3", n, kind)
			}
			b.clock.Advance(time.Hour)
			if err := request(ctx, "ada@example.com"); err != nil || mailCount(t, b)-before != 4 {
				t.Fatalf("%s an hour later: %v", kind, err)
			}
		}
	})
}

func TestMagicLinkLogin(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		id := verifiedUser(t, b, "ada@example.com")
		password, err := b.svc.Login(ctx, "ada@example.com", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.svc.RequestMagicLink(ctx, "Ada@Example.com"); err != nil {
			t.Fatal(err)
		}
		token := mailedToken(t, b, mail.TemplateMagicLink, "/magic-link")
		b.clock.Advance(14 * time.Minute)
		res, err := b.svc.LoginWithMagicLink(ctx, token, client)
		if err != nil || res.User.ID != id || len(res.Token) != identity.TokenLength || res.Session.IP != client.IP {
			t.Fatalf("LoginWithMagicLink = %+v, %v", res, err)
		}
		if actor, _, err := b.svc.Authenticate(ctx, res.Token); err != nil || actor.ID != id {
			t.Fatalf("the new session: %+v, %v", actor, err)
		}
		if _, _, err := b.svc.Authenticate(ctx, password.Token); err != nil {
			t.Fatalf("a magic link ended another session of a verified account: %v", err)
		}
		if _, err := b.svc.LoginWithMagicLink(ctx, token, client); !isInvalidToken(err) {
			t.Fatalf("second use: %v", err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", pw, client); err != nil {
			t.Fatalf("the password of a verified account stopped working: %v", err)
		}
		assertAudit(t, b, "user.login_succeeded", 4) // sign-up helper, password, magic link, password
		if strings.Contains(b.logs.String(), token) {
			t.Fatal("the token was logged")
		}
	})
}

func TestMagicLinkAdoptsAnUnverifiedAccount(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		// Someone signs up with Ada's address and keeps a session open.
		id := signUp(t, b, "ada@example.com")
		squatter, err := b.svc.Login(ctx, "ada@example.com", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.svc.RequestMagicLink(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		res, err := b.svc.LoginWithMagicLink(ctx, mailedToken(t, b, mail.TemplateMagicLink, "/magic-link"), client)
		if err != nil || res.User.ID != id || !res.User.EmailVerified() {
			t.Fatalf("LoginWithMagicLink = %+v, %v", res.User, err)
		}
		if _, _, err := b.svc.Authenticate(ctx, squatter.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("the squatter's session survived: %v", err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", pw, client); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("the squatter's password still works: %v", err)
		}
		if _, _, err := b.svc.Authenticate(ctx, res.Token); err != nil {
			t.Fatalf("the magic-link session: %v", err)
		}
		// Verified now, the owner can set a password.
		if err := b.svc.RequestPasswordReset(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.svc.ResetPassword(ctx, mailedToken(t, b, mail.TemplatePasswordReset, "/reset-password"), newPassword); err != nil {
			t.Fatal(err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", newPassword, client); err != nil {
			t.Fatalf("the owner's new password: %v", err)
		}
		assertAudit(t, b, "user.email_verified", 1)
	})
}

func TestConcurrentResetsUseTheTokenOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		verifiedUser(t, b, "ada@example.com")
		if err := b.svc.RequestPasswordReset(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		token := mailedToken(t, b, mail.TemplatePasswordReset, "/reset-password")
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []string
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				candidate := newPassword + " " + strings.Repeat("x", i+1)
				_, err := b.svc.ResetPassword(ctx, token, candidate)
				switch {
				case err == nil:
					mu.Lock()
					won = append(won, candidate)
					mu.Unlock()
				case !isInvalidToken(err):
					t.Errorf("racing reset: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%d resets succeeded with one token", len(won))
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", won[0], client); err != nil {
			t.Fatalf("the winning password: %v", err)
		}
		assertAudit(t, b, "user.password_reset", 1)
	})
}
