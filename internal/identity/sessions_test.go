package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestLoginAndAuthenticate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		id := signUp(t, b, "ada@example.com")
		res, err := b.svc.Login(ctx, "ADA@example.com ", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		if res.User.ID != id || len(res.Token) != identity.TokenLength || res.Session.IP != client.IP ||
			res.Session.UserAgent != client.UserAgent || !res.Session.ExpiresAt.Equal(b.clock.Now().Add(identity.DefaultLifetime)) {
			t.Fatalf("Login = %+v", res)
		}
		actor, sess, err := b.svc.Authenticate(ctx, res.Token)
		want := kernel.Actor{Kind: kernel.ActorUser, ID: id, Via: kernel.ViaCookie, SessionID: res.Session.ID,
			AuthenticatedAt: b.clock.Now()} // a login is a recent authentication
		if err != nil || actor != want || sess.ID != res.Session.ID {
			t.Fatalf("Authenticate = %+v, %+v, %v", actor, sess, err)
		}
		var stored string
		err = b.db.ReadTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SELECT token_hash FROM user_session WHERE id = $1", res.Session.ID).Scan(&stored)
		})
		if err != nil || len(stored) != 64 || strings.Contains(stored, res.Token) {
			t.Fatalf("stored token hash %q: %v", stored, err)
		}
		for name, bad := range map[string]string{"empty": "", "truncated": res.Token[:42], "hash": stored, "forged": strings.Repeat("A", 43)} {
			if _, _, err := b.svc.Authenticate(ctx, bad); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
				t.Errorf("%s token: %v", name, err)
			}
		}
		assertAudit(t, b, "user.login_succeeded", 2)
	})
}

func TestLoginFailuresLookAlike(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		var answers []string
		for _, c := range []struct{ email, password string }{
			{"ada@example.com", "wrong password entirely"},
			{"nobody@example.com", pw},
			{"not an address", pw},
			{"ada@example.com", ""},
			{"ada@example.com", strings.Repeat("p", 5000)},
		} {
			_, err := b.svc.Login(ctx, c.email, c.password, client)
			e := kernel.As(err)
			if e == nil || e.Code != kernel.CodeUnauthenticated {
				t.Fatalf("Login(%q) = %v, want unauthenticated", c.email, err)
			}
			answers = append(answers, e.Message)
		}
		for _, a := range answers[1:] {
			if a != answers[0] {
				t.Fatalf("failures answer differently: %q", answers)
			}
		}
		assertAudit(t, b, "user.login_failed", 4) // the malformed address is not audited
	})
}

func TestSessionTimeouts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		idle, _ := b.svc.Login(ctx, "ada@example.com", pw, client)
		b.clock.Advance(identity.DefaultIdleTimeout - time.Second)
		if _, _, err := b.svc.Authenticate(ctx, idle.Token); err != nil {
			t.Fatalf("just inside the idle timeout: %v", err)
		}
		// That use pushed the idle expiry forward by a full timeout.
		b.clock.Advance(identity.DefaultIdleTimeout - time.Second)
		if _, _, err := b.svc.Authenticate(ctx, idle.Token); err != nil {
			t.Fatalf("idle expiry did not move: %v", err)
		}
		b.clock.Advance(identity.DefaultIdleTimeout)
		if _, _, err := b.svc.Authenticate(ctx, idle.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("idle session: %v", err)
		}

		// Used every day, a session still ends at its absolute lifetime.
		busy, _ := b.svc.Login(ctx, "ada@example.com", pw, client)
		for elapsed := time.Duration(0); elapsed < identity.DefaultLifetime-24*time.Hour; elapsed += 24 * time.Hour {
			b.clock.Advance(24 * time.Hour)
			if _, _, err := b.svc.Authenticate(ctx, busy.Token); err != nil {
				t.Fatalf("day %d: %v", elapsed/(24*time.Hour), err)
			}
		}
		b.clock.Advance(24 * time.Hour)
		if _, _, err := b.svc.Authenticate(ctx, busy.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("session past its lifetime: %v", err)
		}
	})
}

func TestAuthenticateWritesAtMostOnceAMinute(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		res, _ := b.svc.Login(ctx, "ada@example.com", pw, client)
		lastSeen := func() time.Time {
			var at time.Time
			err := b.db.ReadTx(ctx, func(tx store.Tx) error {
				return tx.QueryRow(ctx, "SELECT last_seen_at FROM user_session WHERE id = $1", res.Session.ID).Scan(&at)
			})
			if err != nil {
				t.Fatal(err)
			}
			return at.UTC()
		}
		start := b.clock.Now()
		b.clock.Advance(59 * time.Second)
		b.svc.Authenticate(ctx, res.Token)
		if got := lastSeen(); !got.Equal(start) {
			t.Fatalf("written within the minute: %s", got)
		}
		b.clock.Advance(time.Second)
		_, sess, _ := b.svc.Authenticate(ctx, res.Token)
		if got := lastSeen(); !got.Equal(b.clock.Now()) || !sess.IdleExpiresAt.Equal(b.clock.Now().Add(identity.DefaultIdleTimeout)) {
			t.Fatalf("not written after a minute: %s, %+v", got, sess)
		}
	})
}

func TestSessionsAreListedAndRevokedByTheirOwnerOnly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		ada := signUp(t, b, "ada@example.com") // one session from signUp
		b.clock.Advance(time.Second)
		second, _ := b.svc.Login(ctx, "ada@example.com", pw, client)
		b.clock.Advance(time.Second)
		third, _ := b.svc.Login(ctx, "ada@example.com", pw, client)
		eve := signUp(t, b, "eve@example.com")

		page, err := b.svc.ListSessions(ctx, ada, nil, 2)
		if err != nil || len(page) != 2 || page[0].ID != third.Session.ID || page[1].ID != second.Session.ID {
			t.Fatalf("first page: %+v, %v", page, err)
		}
		rest, err := b.svc.ListSessions(ctx, ada, &identity.SessionPosition{CreatedAt: page[1].CreatedAt, ID: page[1].ID}, 2)
		if err != nil || len(rest) != 1 {
			t.Fatalf("second page: %+v, %v", rest, err)
		}

		if err := b.svc.RevokeSession(ctx, eve, second.Session.ID); !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("revoking another user's session: %v", err)
		}
		if _, _, err := b.svc.Authenticate(ctx, second.Token); err != nil {
			t.Fatalf("another user ended the session: %v", err)
		}
		if err := b.svc.RevokeSession(ctx, ada, second.Session.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.svc.RevokeSession(ctx, ada, second.Session.ID); !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("revoking twice: %v", err)
		}
		if _, _, err := b.svc.Authenticate(ctx, second.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("revoked session: %v", err)
		}
		if err := b.svc.RevokeSession(ctx, ada, uuid.New()); !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("unknown session: %v", err)
		}

		n, err := b.svc.RevokeOtherSessions(ctx, ada, third.Session.ID)
		if err != nil || n != 1 {
			t.Fatalf("RevokeOtherSessions = %d, %v", n, err)
		}
		if left, _ := b.svc.ListSessions(ctx, ada, nil, 10); len(left) != 1 || left[0].ID != third.Session.ID {
			t.Fatalf("after revoking the others: %+v", left)
		}
		if mine, _ := b.svc.ListSessions(ctx, eve, nil, 10); len(mine) != 1 {
			t.Fatalf("eve's sessions were touched: %+v", mine)
		}
	})
}

func TestLoginAgainEndsTheSessionItCameWith(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		old, _ := b.svc.Login(ctx, "ada@example.com", pw, client)
		actor, _, _ := b.svc.Authenticate(ctx, old.Token)
		fresh, err := b.svc.Login(kernel.WithActor(ctx, actor), "ada@example.com", pw, client)
		if err != nil || fresh.Token == old.Token {
			t.Fatalf("login again: %+v, %v", fresh, err)
		}
		if _, _, err := b.svc.Authenticate(ctx, old.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("the replaced session still works: %v", err)
		}
		if err := b.svc.Logout(ctx, fresh.Session.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.svc.Logout(ctx, fresh.Session.ID); err != nil {
			t.Fatalf("logging out twice: %v", err)
		}
		if _, _, err := b.svc.Authenticate(ctx, fresh.Token); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("session after logout: %v", err)
		}
		assertAudit(t, b, "user.logged_out", 1)
	})
}

func TestDuplicateSignupChangesNothingAndTellsTheOwner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		first, err := b.svc.Signup(ctx, "ada@example.com", pw, "Ada")
		if err != nil {
			t.Fatal(err)
		}
		again, err := b.svc.Signup(ctx, "ADA@example.com", "another fine password", "Mallory")
		if err != nil || again != first {
			t.Fatalf("second sign-up = %+v, %v; want %+v", again, err, first)
		}
		m := lastMail(t, b)
		if m.Tag != mail.TemplateAccountExists || m.To[0] != "ada@example.com" || !strings.Contains(m.Text, "https://app.example.com/login") ||
			!strings.Contains(m.Text, "Hi Ada,") {
			t.Fatalf("notice: %+v", m)
		}
		if _, err := b.svc.Login(ctx, "ada@example.com", "another fine password", client); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
			t.Fatalf("the second password works: %v", err)
		}
		if res, err := b.svc.Login(ctx, "ada@example.com", pw, client); err != nil || res.User.Name != "Ada" {
			t.Fatalf("the first password: %+v, %v", res, err)
		}
		assertAudit(t, b, "user.signed_up", 1)
		assertAudit(t, b, "user.signup_repeated", 1)
	})
}

func TestWeakHashIsReplacedAtLogin(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		signUp(t, b, "ada@example.com")
		stronger := testkit.FastPasswordParams()
		stronger.Memory *= 2
		b2 := newBundle(t, b.db, b.clock, password.New(stronger, 0))
		if _, err := b2.svc.Login(ctx, "ada@example.com", pw, client); err != nil {
			t.Fatal(err)
		}
		var hash string
		err := b.db.ReadTx(ctx, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SELECT password_hash FROM app_user WHERE email = 'ada@example.com'").Scan(&hash)
		})
		if err != nil || !strings.Contains(hash, "m=128,") {
			t.Fatalf("hash after login with stronger parameters: %q, %v", hash, err)
		}
		if _, err := b2.svc.Login(ctx, "ada@example.com", pw, client); err != nil {
			t.Fatalf("login with the new hash: %v", err)
		}
	})
}
