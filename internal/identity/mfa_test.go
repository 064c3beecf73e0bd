package identity_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/ratelimit/storelimit"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

var mfaKey = bytes.Repeat([]byte{7}, 32)

// withMFAKey returns a service over b's store and clock that seals TOTP
// secrets with key.
func withMFAKey(t *testing.T, b bundle, key []byte) *identity.Service {
	t.Helper()
	svc, err := newMFAService(b, key)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func newMFAService(b bundle, key []byte) (*identity.Service, error) {
	tpl, err := mail.LoadTemplates("Atrium")
	if err != nil {
		return nil, err
	}
	return identity.NewService(identity.Config{DB: b.db, Hasher: password.New(testkit.FastPasswordParams(), 0),
		Mailer: b.mailbox, Templates: tpl, Clock: b.clock, BaseURL: "https://app.example.com",
		Logger: slog.New(slog.NewJSONHandler(b.logs, nil)), Limiter: storelimit.New(b.db),
		LoginLimits: testkit.LoginLimits(), MFAKey: key})
}

func forEachMFADialect(t *testing.T, fn func(t *testing.T, b bundle)) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		b.svc = withMFAKey(t, b, mfaKey)
		fn(t, b)
	})
}

// signedIn returns ctx acting as the session of token, as the auth
// middleware would build it.
func signedIn(t *testing.T, b bundle, token string) context.Context {
	t.Helper()
	actor, _, err := b.svc.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return kernel.WithActor(context.Background(), actor)
}

// enrol turns MFA on for the session of ctx and returns the secret.
func enrol(t *testing.T, b bundle, ctx context.Context) string {
	t.Helper()
	e, err := b.svc.StartTOTP(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.ConfirmTOTP(ctx, testkit.TOTPCode(t, e.Secret, b.clock.Now())); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(30 * time.Second) // the confirming code's step is used
	return e.Secret
}

func countRows(t *testing.T, b bundle, table string, userID uuid.UUID) int {
	t.Helper()
	var n int
	err := b.db.ReadTx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM "+table+" WHERE user_id = $1", userID).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTOTPSecretIsSealedAndBoundToTheKey(t *testing.T) {
	forEachMFADialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		res, err := b.svc.Login(ctx, "ada@example.com", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		ctx = signedIn(t, b, res.Token)
		e, err := b.svc.StartTOTP(ctx)
		if err != nil || !strings.Contains(e.URI, "issuer=app.example.com") {
			t.Fatalf("StartTOTP = %+v, %v", e, err)
		}
		var sealed string
		err = b.db.ReadTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SELECT secret FROM user_mfa WHERE user_id = $1", res.User.ID).Scan(&sealed)
		})
		if err != nil || sealed == "" || strings.Contains(sealed, e.Secret) {
			t.Fatalf("stored secret %q (%v) for %q", sealed, err, e.Secret)
		}
		code := testkit.TOTPCode(t, e.Secret, b.clock.Now())
		other := withMFAKey(t, b, bytes.Repeat([]byte{8}, 32))
		if _, err := other.ConfirmTOTP(ctx, code); !kernel.IsCode(err, kernel.CodeInternal) {
			t.Fatalf("a secret sealed under another key opened: %v", err)
		}
		if codes, err := b.svc.ConfirmTOTP(ctx, code); err != nil || len(codes) != 10 {
			t.Fatalf("ConfirmTOTP = %v, %v", codes, err)
		}
		if _, err := b.svc.StartTOTP(ctx); !kernel.IsCode(err, kernel.CodeConflict) {
			t.Fatalf("enrolling twice: %v", err)
		}
		if _, err := newMFAService(b, []byte("short")); err == nil {
			t.Fatal("a short MFA key was accepted")
		}
	})
}

func TestOneCodeLogsInOnce(t *testing.T) {
	forEachMFADialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		res, err := b.svc.Login(ctx, "ada@example.com", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		secret := enrol(t, b, signedIn(t, b, res.Token))
		var challenges [4]string
		for i := range challenges {
			r, err := b.svc.Login(ctx, "ada@example.com", pw, client)
			if err != nil || r.MFAChallenge == "" || r.Token != "" || r.Session.ID != uuid.Nil {
				t.Fatalf("Login of an MFA account = %+v, %v", r, err)
			}
			challenges[i] = r.MFAChallenge
		}
		code := testkit.TOTPCode(t, secret, b.clock.Now())
		var wg sync.WaitGroup
		errs := make([]error, len(challenges))
		for i, c := range challenges {
			wg.Go(func() { _, errs[i] = b.svc.LoginMFA(ctx, c, code, client) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !kernel.IsCode(err, kernel.CodeUnauthenticated):
				t.Fatalf("LoginMFA: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("one code logged in %d times", ok)
		}
	})
}

func TestReauthenticateWithoutAPassword(t *testing.T) {
	forEachMFADialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com") // unverified: the magic link takes the password away
		if err := b.svc.RequestMagicLink(ctx, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		res, err := b.svc.LoginWithMagicLink(ctx, mailedToken(t, b, mail.TemplateMagicLink, "/magic-link"), client)
		if err != nil {
			t.Fatal(err)
		}
		sessCtx := signedIn(t, b, res.Token)
		if _, _, err := b.svc.Reauthenticate(sessCtx, "", ""); !kernel.IsCode(err, kernel.CodeForbidden) {
			t.Fatalf("re-authenticating without a password or MFA: %v", err)
		}
		secret := enrol(t, b, sessCtx)
		wrong := testkit.TOTPCode(t, secret, b.clock.Now().Add(time.Hour))
		if _, _, err := b.svc.Reauthenticate(sessCtx, "", wrong); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("a wrong code: %v", err)
		}
		b.clock.Advance(16 * time.Minute)
		sess, token, err := b.svc.Reauthenticate(sessCtx, "", testkit.TOTPCode(t, secret, b.clock.Now()))
		if err != nil || token == res.Token || sess.ID != res.Session.ID || !sess.ReauthenticatedAt.Equal(b.clock.Now()) {
			t.Fatalf("Reauthenticate = %+v, %v", sess, err)
		}
		if _, _, err := b.svc.Authenticate(ctx, res.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("the token before re-authentication still works: %v", err)
		}
		if actor, _, err := b.svc.Authenticate(ctx, token); err != nil || !actor.AuthenticatedAt.Equal(b.clock.Now()) {
			t.Fatalf("the new token: %+v, %v", actor, err)
		}
	})
}

func TestDisablingMFARemovesEverything(t *testing.T) {
	forEachMFADialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		res, err := b.svc.Login(ctx, "ada@example.com", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		sessCtx := signedIn(t, b, res.Token)
		enrol(t, b, sessCtx)
		if r, err := b.svc.Login(ctx, "ada@example.com", pw, client); err != nil || r.MFAChallenge == "" {
			t.Fatalf("Login = %+v, %v", r, err)
		}
		for table, want := range map[string]int{"user_mfa": 1, "mfa_backup_code": 10, "mfa_challenge": 1} {
			if n := countRows(t, b, table, res.User.ID); n != want {
				t.Fatalf("%d rows in %s, want %d", n, table, want)
			}
		}
		if err := b.svc.DisableTOTP(sessCtx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"user_mfa", "mfa_backup_code", "mfa_challenge"} {
			if n := countRows(t, b, table, res.User.ID); n != 0 {
				t.Fatalf("%d rows left in %s", n, table)
			}
		}
		if r, err := b.svc.Login(ctx, "ada@example.com", pw, client); err != nil || r.Token == "" {
			t.Fatalf("Login after disabling = %+v, %v", r, err)
		}
		assertAudit(t, b, "mfa.enabled", 1)
		assertAudit(t, b, "mfa.disabled", 1)
	})
}
