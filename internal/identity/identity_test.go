package identity_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
	"atrium/internal/ratelimit/storelimit"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// bundle is one service on a fresh store, with what tests read back.
type bundle struct {
	svc     *identity.Service
	db      store.SystemDB
	clock   *testkit.Clock
	mailbox *devmail.Mailbox
	logs    *lockedBuffer
}

func setup(t *testing.T, dialect store.Dialect) bundle {
	t.Helper()
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, dialect, clock)
	return newBundle(t, db, clock, password.New(testkit.FastPasswordParams(), 0))
}

func newBundle(t *testing.T, db store.SystemDB, clock *testkit.Clock, hasher *password.Hasher) bundle {
	t.Helper()
	tpl, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	box := devmail.New(db)
	svc, err := identity.NewService(identity.Config{DB: db, Hasher: hasher, Mailer: box, Templates: tpl, Clock: clock,
		BaseURL: "https://app.example.com", Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Limiter: storelimit.New(db), LoginLimits: testkit.LoginLimits()})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{svc: svc, db: db, clock: clock, mailbox: box, logs: logs}
}

func forEachDialect(t *testing.T, fn func(t *testing.T, b bundle)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, d))
		})
	}
}

const pw = "correct horse battery staple"

var client = kernel.Client{IP: "192.0.2.7", UserAgent: "test-agent/1.0"}

// lastMail returns the newest message in the mailbox.
func lastMail(t *testing.T, b bundle) devmail.Stored {
	t.Helper()
	msgs, err := b.mailbox.List(context.Background(), 1)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("no mail: %v", err)
	}
	return msgs[0]
}

// verificationToken returns the token of the newest verification link.
func verificationToken(t *testing.T, b bundle) string {
	t.Helper()
	m := lastMail(t, b)
	if m.Tag != mail.TemplateVerifyEmail {
		t.Fatalf("newest mail is %q, not a verification", m.Tag)
	}
	for _, field := range strings.Fields(m.Text) {
		if u, err := url.Parse(field); err == nil && u.Path == "/verify-email" {
			return u.Query().Get("token")
		}
	}
	t.Fatalf("no verification link in %q", m.Text)
	return ""
}

// signUp creates a verified-or-not account and returns its ID.
func signUp(t *testing.T, b bundle, email string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	if _, err := b.svc.Signup(ctx, email, pw, "Ada"); err != nil {
		t.Fatal(err)
	}
	res, err := b.svc.Login(ctx, email, pw, client)
	if err != nil {
		t.Fatal(err)
	}
	return res.User.ID
}

func TestNormalizeEmail(t *testing.T) {
	good := map[string]string{
		"  Ada@Example.COM ":     "ada@example.com",
		"ada+tag@example.com":    "ada+tag@example.com",
		"o'brien@example.ie":     "o'brien@example.ie",
		"ADA@EXAMPLE.COM":        "ada@example.com",
		"user@sub.example.co.uk": "user@sub.example.co.uk",
	}
	for in, want := range good {
		if got, err := identity.NormalizeEmail(in); err != nil || got != want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "   ", "ada", "ada@", "@example.com", "ada@@example.com",
		"Ada <ada@example.com>", "<ada@example.com>", "ada@example.com (Ada)",
		"ada@example.com\r\nBcc: eve@example.com", "ada\n@example.com", "ada@exa\x00mple.com",
		"ada@example.com, eve@example.com", "\"ada lovelace\"@example.com",
		"a\xffda@example.com", "ada\u2028@example.com",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", // 255 bytes
	} {
		_, err := identity.NormalizeEmail(in)
		if e := kernel.As(err); e == nil || e.Code != kernel.CodeInvalid || e.Fields["email"] == "" {
			t.Errorf("NormalizeEmail(%q) = %v, want invalid on email", in, err)
		} else if in != "" && strings.Contains(e.Message, in) {
			t.Errorf("error echoes the input: %v", e)
		}
	}
}

func TestSignupValidatesEveryField(t *testing.T) {
	b := setup(t, store.SQLite)
	ctx := context.Background()
	cases := []struct{ email, password, name, field string }{
		{"not an email", pw, "Ada", "email"},
		{"ada@example.com", "short", "Ada", "password"},
		{"ada@example.com", "password", "Ada", "password"},
		{"ada@example.com", "ada@example.com", "Ada", "password"},
		{"ada@example.com", strings.Repeat("x", 1025), "Ada", "password"},
		{"ada@example.com", pw, "", "name"},
		{"ada@example.com", pw, "Ada\x1b[31m", "name"},
		{"ada@example.com", pw, strings.Repeat("n", 101), "name"},
	}
	for _, c := range cases {
		_, err := b.svc.Signup(ctx, c.email, c.password, c.name)
		if e := kernel.As(err); e == nil || e.Code != kernel.CodeInvalid || e.Fields[c.field] == "" {
			t.Errorf("Signup(%q, %.20q, %q) = %v, want invalid on %s", c.email, c.password, c.name, err, c.field)
		}
	}
	if msgs, _ := b.mailbox.List(ctx, 10); len(msgs) != 0 {
		t.Fatalf("refused sign-ups sent %d emails", len(msgs))
	}
}

func TestSignupAndVerify(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		res, err := b.svc.Signup(ctx, " Ada@Example.com ", pw, " Ada Lovelace ")
		if err != nil || res.Email != "ada@example.com" {
			t.Fatalf("Signup = %+v, %v", res, err)
		}
		m := lastMail(t, b)
		if len(m.To) != 1 || m.To[0] != "ada@example.com" || !strings.Contains(m.Text, "https://app.example.com/verify-email?token=") {
			t.Fatalf("verification mail: %+v", m)
		}
		token := verificationToken(t, b)
		if len(token) != identity.TokenLength {
			t.Fatalf("token %q has %d characters", token, len(token))
		}
		b.clock.Advance(23 * time.Hour)
		u, err := b.svc.VerifyEmail(ctx, token)
		if err != nil || !u.EmailVerified() || !u.EmailVerifiedAt.Equal(b.clock.Now()) || u.Name != "Ada Lovelace" {
			t.Fatalf("VerifyEmail = %+v, %v", u, err)
		}
		if _, err := b.svc.VerifyEmail(ctx, token); !isInvalidToken(err) {
			t.Fatalf("second use: %v", err)
		}
		if err := b.svc.ResendVerification(ctx, u.ID); !kernel.IsCode(err, kernel.CodeConflict) {
			t.Fatalf("resend after verification: %v", err)
		}
		if strings.Contains(b.logs.String(), token) {
			t.Fatal("the token was logged")
		}
	})
}

func TestVerificationTokensAreRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		if _, err := b.svc.Signup(ctx, "ada@example.com", pw, "Ada"); err != nil {
			t.Fatal(err)
		}
		token := verificationToken(t, b)
		forged := "A" + token[1:]
		if forged == token {
			forged = "B" + token[1:]
		}
		for name, bad := range map[string]string{
			"empty": "", "truncated": token[:len(token)-1], "extended": token + "A", "forged": forged,
			"padded": token + "=", "spaces": " " + token[1:], "standard alphabet": strings.Repeat("+", identity.TokenLength),
			"hash instead of token": strings.Repeat("ab", 32), "sql": "' OR '1'='1",
		} {
			if _, err := b.svc.VerifyEmail(ctx, bad); !isInvalidToken(err) {
				t.Errorf("%s token: %v", name, err)
			}
		}
		b.clock.Advance(24 * time.Hour)
		if _, err := b.svc.VerifyEmail(ctx, token); !isInvalidToken(err) {
			t.Fatalf("expired token: %v", err)
		}
	})
}

func isInvalidToken(err error) bool {
	e := kernel.As(err)
	return e != nil && e.Code == kernel.CodeInvalid && e.Fields["token"] != ""
}

func TestResendVoidsOldLinksAndIsLimited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		id := signUp(t, b, "ada@example.com")
		first := verificationToken(t, b)
		err := b.svc.ResendVerification(ctx, id)
		if e := kernel.As(err); e == nil || e.Code != kernel.CodeRateLimited || e.RetryAfter != time.Minute {
			t.Fatalf("resend at once: %v", err)
		}
		var links []string
		for i := 0; i < 4; i++ {
			b.clock.Advance(time.Minute)
			if err := b.svc.ResendVerification(ctx, id); err != nil {
				t.Fatalf("resend %d: %v", i, err)
			}
			links = append(links, verificationToken(t, b))
		}
		b.clock.Advance(time.Minute) // five links in the last hour: the sign-up's and four more
		err = b.svc.ResendVerification(ctx, id)
		if e := kernel.As(err); e == nil || e.Code != kernel.CodeRateLimited || e.RetryAfter != 55*time.Minute {
			t.Fatalf("sixth link within the hour: %v", err)
		}
		for _, old := range append([]string{first}, links[:3]...) {
			if _, err := b.svc.VerifyEmail(ctx, old); !isInvalidToken(err) {
				t.Fatalf("replaced link still works: %v", err)
			}
		}
		if _, err := b.svc.VerifyEmail(ctx, links[3]); err != nil {
			t.Fatalf("newest link: %v", err)
		}
	})
}

func TestLinkForAnOldAddressIsRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		id := signUp(t, b, "ada@example.com")
		token := verificationToken(t, b)
		// The address changes (email change arrives later in issue 3).
		err := b.db.Tx(ctx, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE app_user SET email = 'ada@new.example.com' WHERE id = $1", id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.svc.VerifyEmail(ctx, token); !isInvalidToken(err) {
			t.Fatalf("link for the old address: %v", err)
		}
		if u, err := b.svc.User(ctx, id); err != nil || u.EmailVerified() {
			t.Fatalf("user after refused link: %+v, %v", u, err)
		}
	})
}

func TestConcurrentVerificationsUseTheTokenOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		token := verificationToken(t, b)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.svc.VerifyEmail(ctx, token)
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !isInvalidToken(err) && !kernel.IsCode(err, kernel.CodeConflict) {
					t.Errorf("racing verification: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d verifications succeeded with one token", wins)
		}
		assertAudit(t, b, "user.email_verified", 1)
	})
}

func assertAudit(t *testing.T, b bundle, action string, want int) {
	t.Helper()
	var n int
	err := b.db.System(context.Background(), "test: count audit entries", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM audit_log WHERE action = $1 AND workspace_id IS NULL", action).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("%d %s audit entries, want %d", n, action, want)
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
