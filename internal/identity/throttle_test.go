package identity_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/identity"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
	"atrium/internal/ratelimit"
	"atrium/internal/ratelimit/storelimit"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// throttled is a bundle whose service has the real brute-force limits.
func throttled(t *testing.T, dialect store.Dialect, limiter func(store.DB) ratelimit.Limiter) bundle {
	t.Helper()
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, dialect, clock)
	tpl, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	box := devmail.New(db)
	svc, err := identity.NewService(identity.Config{DB: db, Hasher: password.New(testkit.FastPasswordParams(), 0), Mailer: box,
		Templates: tpl, Clock: clock, BaseURL: "https://app.example.com", Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Limiter: limiter(db), LoginLimits: identity.DefaultLoginLimits()})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{svc: svc, db: db, clock: clock, mailbox: box, logs: logs}
}

func forEachThrottled(t *testing.T, fn func(t *testing.T, b bundle)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, throttled(t, d, func(db store.DB) ratelimit.Limiter { return storelimit.New(db) }))
		})
	}
}

// from is a client at its own address, one per n.
func from(n int) kernel.Client {
	return kernel.Client{IP: "203.0.113." + strconv.Itoa(n), UserAgent: "test"}
}

// assertLimited checks err is a 429 with a Retry-After of about want.
func assertLimited(t *testing.T, err error, want time.Duration) {
	t.Helper()
	e := kernel.As(err)
	if e == nil || e.Code != kernel.CodeRateLimited {
		t.Fatalf("error %v, want rate_limited", err)
	}
	if e.RetryAfter < want-time.Second || e.RetryAfter > want+time.Second {
		t.Fatalf("RetryAfter %s, want about %s", e.RetryAfter, want)
	}
}

func mailsTagged(t *testing.T, b bundle, tag string) int {
	t.Helper()
	msgs, err := b.mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		if m.Tag == tag {
			n++
		}
	}
	return n
}

func TestLoginIsLimitedPerAddress(t *testing.T) {
	forEachThrottled(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		for i := range 5 {
			if _, err := b.svc.Login(ctx, "nobody@example.com", "wrong password", from(1)); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
		}
		// The sixth is refused before any hashing, also for a malformed address.
		_, err := b.svc.Login(ctx, "not an address", "x", from(1))
		assertLimited(t, err, 12*time.Second)
		if _, err := b.svc.Login(ctx, "nobody@example.com", "x", from(2)); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("another address was limited too: %v", err)
		}
		// An IPv6 client counts by its /64: rotating the low bits buys nothing.
		for i := range 5 {
			ip := kernel.Client{IP: "2001:db8:1:2::" + strconv.Itoa(i+1)}
			if _, err := b.svc.Login(ctx, "v6@example.com", "x", ip); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
				t.Fatalf("IPv6 attempt %d: %v", i+1, err)
			}
		}
		_, err = b.svc.Login(ctx, "v6@example.com", "x", kernel.Client{IP: "2001:db8:1:2::ffff"})
		assertLimited(t, err, 12*time.Second)
		b.clock.Advance(13 * time.Second) // the Retry-After header: 12s and a microsecond, rounded up
		if _, err := b.svc.Login(ctx, "nobody@example.com", "x", from(1)); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("after Retry-After: %v", err)
		}
	})
}

// failTen fails ten passwords for email from ten addresses, each answered
// like any failure.
func failTen(t *testing.T, b bundle, email string, first int) {
	t.Helper()
	for i := range 10 {
		if _, err := b.svc.Login(context.Background(), email, "wrong password", from(first+i)); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("failure %d of %s: %v", i+1, email, err)
		}
	}
}

func TestAccountLockoutGrowsAndEnds(t *testing.T) {
	forEachThrottled(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		verifiedUser(t, b, "ada@example.com")
		failTen(t, b, "ada@example.com", 10)
		// Locked: even the right password from a fresh address is refused.
		_, err := b.svc.Login(ctx, "Ada@Example.com", pw, from(50))
		assertLimited(t, err, 15*time.Minute)
		if n := mailsTagged(t, b, mail.TemplateAccountLocked); n != 1 {
			t.Fatalf("%d lockout emails, want 1", n)
		}
		m := lastMail(t, b)
		if m.To[0] != "ada@example.com" || !contains(m.Text, "15 minutes", "https://app.example.com/forgot-password", "09:45 UTC") {
			t.Fatalf("lockout email: %+v", m)
		}
		assertAudit(t, b, "user.locked_out", 1)

		// The lock ends; the bucket has refilled 2.5 failures, and spending
		// them locks for twice as long.
		b.clock.Advance(15 * time.Minute)
		failures := 0
		for {
			_, err := b.svc.Login(ctx, "ada@example.com", "wrong", from(60+failures))
			if kernel.IsCode(err, kernel.CodeRateLimited) {
				assertLimited(t, err, 30*time.Minute)
				break
			}
			if failures++; failures > 3 {
				t.Fatal("no second lockout")
			}
		}
		if failures != 2 {
			t.Fatalf("%d failures before the second lockout, want 2", failures)
		}
		if n := mailsTagged(t, b, mail.TemplateAccountLocked); n != 2 {
			t.Fatalf("%d lockout emails, want 2", n)
		}
		b.clock.Advance(30 * time.Minute)
		if _, err := b.svc.Login(ctx, "ada@example.com", pw, from(70)); err != nil {
			t.Fatalf("login after the lock: %v", err)
		}
	})
}

func TestUnknownAddressIsLockedAlikeWithoutMail(t *testing.T) {
	forEachThrottled(t, func(t *testing.T, b bundle) {
		verifiedUser(t, b, "ada@example.com")
		before := mailCount(t, b)
		failTen(t, b, "ghost@example.com", 10)
		_, err := b.svc.Login(context.Background(), "ghost@example.com", pw, from(50))
		assertLimited(t, err, 15*time.Minute)
		if n := mailCount(t, b); n != before {
			t.Fatalf("%d emails sent for an address without an account", n-before)
		}
		assertAudit(t, b, "user.locked_out", 1)
		// Another address is not affected.
		if _, err := b.svc.Login(context.Background(), "ada@example.com", pw, from(51)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSuccessForgetsFailures(t *testing.T) {
	forEachThrottled(t, func(t *testing.T, b bundle) {
		verifiedUser(t, b, "ada@example.com")
		for round := range 3 {
			for i := range 9 {
				if _, err := b.svc.Login(context.Background(), "ada@example.com", "wrong", from(round*10+i)); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
					t.Fatal(err)
				}
			}
			if _, err := b.svc.Login(context.Background(), "ada@example.com", pw, from(round*10+9)); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	})
}

func TestResetAndMagicLinkEndALockout(t *testing.T) {
	forEachThrottled(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		verifiedUser(t, b, "ada@example.com")
		failTen(t, b, "ada@example.com", 10)
		// Asking for links still works while locked.
		if err := b.svc.RequestPasswordReset(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.svc.ResetPassword(ctx, mailedToken(t, b, mail.TemplatePasswordReset, "/reset-password"), "a brand new passphrase"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", "a brand new passphrase", from(50)); err != nil {
			t.Fatalf("login after a reset: %v", err)
		}

		failTen(t, b, "ada@example.com", 60)
		if err := b.svc.RequestMagicLink(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.svc.LoginWithMagicLink(ctx, mailedToken(t, b, mail.TemplateMagicLink, "/magic-link"), from(80)); err != nil {
			t.Fatalf("magic link while locked: %v", err)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", "a brand new passphrase", from(81)); err != nil {
			t.Fatalf("login after a magic link: %v", err)
		}
	})
}

func TestConcurrentFailuresSendOneLockoutMail(t *testing.T) {
	forEachThrottled(t, func(t *testing.T, b bundle) {
		verifiedUser(t, b, "ada@example.com")
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := b.svc.Login(context.Background(), "ada@example.com", "wrong", from(100+i))
				if !kernel.IsCode(err, kernel.CodeUnauthenticated) && !kernel.IsCode(err, kernel.CodeRateLimited) {
					t.Errorf("concurrent failure: %v", err)
				}
			}()
		}
		wg.Wait()
		if n := mailsTagged(t, b, mail.TemplateAccountLocked); n != 1 {
			t.Fatalf("%d lockout emails for one lockout, want 1", n)
		}
		assertAudit(t, b, "user.locked_out", 1)
	})
}

// downLimiter is a limiter whose backend is unreachable.
type downLimiter struct{}

var errDown = errors.New("connection refused")

func (downLimiter) Hit(context.Context, string, ratelimit.Limit) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errDown
}
func (downLimiter) Peek(context.Context, string, ratelimit.Limit) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errDown
}
func (downLimiter) Reset(context.Context, string) error { return errDown }

func TestLoginFailsClosedWhenTheLimiterIsDown(t *testing.T) {
	b := throttled(t, store.SQLite, func(store.DB) ratelimit.Limiter { return downLimiter{} })
	_, err := b.svc.Login(context.Background(), "ada@example.com", pw, client)
	if !kernel.IsCode(err, kernel.CodeUnavailable) || contains(kernel.As(err).Message, "refused") {
		t.Fatalf("login with the limiter down: %v, want unavailable without detail", err)
	}
}

func TestNewServiceNeedsALimiter(t *testing.T) {
	clock := testkit.NewClock()
	db := testkit.OpenSQLite(t, clock)
	tpl, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatal(err)
	}
	_, err = identity.NewService(identity.Config{DB: db, Hasher: password.New(testkit.FastPasswordParams(), 0),
		Mailer: devmail.New(db), Templates: tpl, BaseURL: "https://app.example.com"})
	if err == nil {
		t.Fatal("NewService accepted a config without a limiter")
	}
}

// contains reports whether s contains every one of subs.
func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
