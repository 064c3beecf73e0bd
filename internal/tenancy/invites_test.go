package tenancy_test

import (
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
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// bundle is the tenancy service on a fresh store, with the identity service
// it leans on and what tests read back.
type bundle struct {
	svc     *tenancy.Service
	ids     *identity.Service
	db      store.SystemDB
	clock   *testkit.Clock
	mailbox *devmail.Mailbox
	logs    *testkit.SyncBuffer
	ws      uuid.UUID // a workspace owned by owner
	owner   uuid.UUID
}

const pw = "correct horse battery staple"

var client = kernel.Client{IP: "192.0.2.7", UserAgent: "test-agent/1.0"}

func setup(t *testing.T, dialect store.Dialect) bundle {
	t.Helper()
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, dialect, clock)
	tpl, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	box := devmail.New(db)
	ids, err := identity.NewService(identity.Config{DB: db, Hasher: password.New(testkit.FastPasswordParams(), 0), Mailer: box,
		Templates: tpl, Clock: clock, BaseURL: "https://app.example.com", Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Limiter: storelimit.New(db), LoginLimits: testkit.LoginLimits()})
	if err != nil {
		t.Fatal(err)
	}
	b := bundle{svc: tenancy.NewService(db, ids), ids: ids, db: db, clock: clock, mailbox: box, logs: logs}
	b.owner = b.person(t, "owner@example.com", true)
	ws, err := b.svc.CreateOwned(context.Background(), b.owner, "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	b.ws = ws.ID
	return b
}

func forEachDialect(t *testing.T, fn func(t *testing.T, b bundle)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, d))
		})
	}
}

// person signs email up, verified when asked, and returns the account's ID.
func (b bundle) person(t *testing.T, email string, verified bool) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	if _, err := b.ids.Signup(ctx, email, pw, strings.Split(email, "@")[0]); err != nil {
		t.Fatal(err)
	}
	if verified {
		if _, err := b.ids.VerifyEmail(ctx, linkToken(t, b, email, mail.TemplateVerifyEmail, "/verify-email")); err != nil {
			t.Fatal(err)
		}
	}
	res, err := b.ids.Login(ctx, email, pw, client)
	if err != nil {
		t.Fatal(err)
	}
	return res.User.ID
}

// as returns ctx acting as userID through a session, and the resource of
// the bundle's workspace with role.
func (b bundle) as(userID uuid.UUID, role policy.Role) (context.Context, policy.Resource) {
	ctx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorUser, ID: userID, Via: kernel.ViaCookie,
		AuthenticatedAt: b.clock.Now()})
	return ctx, policy.Resource{Workspace: b.ws, Role: role}
}

// linkToken returns the token of the newest link to path in a message of
// template tpl sent to email.
func linkToken(t *testing.T, b bundle, email, tpl, path string) string {
	t.Helper()
	msgs, err := b.mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Tag != tpl || len(m.To) == 0 || m.To[0] != email {
			continue
		}
		for _, field := range strings.Fields(m.Text) {
			if u, err := url.Parse(field); err == nil && u.Path == path {
				return u.Query().Get("token")
			}
		}
	}
	t.Fatalf("no %s mail with a %s link to %s", tpl, path, email)
	return ""
}

// invite invites email as the owner and returns the invitation and its token.
func (b bundle) invite(t *testing.T, email string, role policy.Role) (tenancy.Invite, string) {
	t.Helper()
	ctx, res := b.as(b.owner, policy.Owner)
	inv, err := b.svc.CreateInvite(ctx, res, email, role)
	if err != nil {
		t.Fatal(err)
	}
	return inv, linkToken(t, b, inv.Email, mail.TemplateInvite, "/invite")
}

func wantCode(t *testing.T, err error, code kernel.Code) {
	t.Helper()
	if !kernel.IsCode(err, code) {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func wantBadToken(t *testing.T, err error) {
	t.Helper()
	wantCode(t, err, kernel.CodeInvalid)
	if _, ok := kernel.As(err).Fields["token"]; !ok {
		t.Fatalf("error does not name token: %v", err)
	}
}

func TestInviteExistingUser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ada := b.person(t, "ada@example.com", true)
		inv, token := b.invite(t, " Ada@Example.com ", policy.Admin)
		if inv.Email != "ada@example.com" || inv.Status != tenancy.InvitePending || !inv.ExpiresAt.Equal(b.clock.Now().Add(7*24*time.Hour)) {
			t.Fatalf("invite: %+v", inv)
		}
		if len(token) != tenancy.InviteTokenLength {
			t.Fatalf("token of %d characters", len(token))
		}
		preview, err := b.svc.LookupInvite(context.Background(), token)
		if err != nil || preview.WorkspaceName != "Acme" || preview.InviterName != "owner" || !preview.AccountExists ||
			preview.Role != policy.Admin || preview.Email != "ada@example.com" {
			t.Fatalf("lookup: %+v %v", preview, err)
		}
		ctx, _ := b.as(ada, "")
		m, err := b.svc.AcceptInvite(ctx, token)
		if err != nil || m.Role != policy.Admin || m.UserID != ada {
			t.Fatalf("accept: %+v %v", m, err)
		}
		if role, err := b.svc.RoleOf(context.Background(), b.ws, ada); err != nil || role != policy.Admin {
			t.Fatalf("role after accepting: %q %v", role, err)
		}
		_, err = b.svc.AcceptInvite(ctx, token)
		wantBadToken(t, err)
		_, err = b.svc.LookupInvite(context.Background(), token)
		wantBadToken(t, err)
		assertAudited(t, b, "invite.created", "invite.accepted", "member.added")
		assertNowhere(t, b, token)
		assertAuditMasks(t, b, "ada@example.com", "a***@example.com")
	})
}

func TestInviteNewUserSignsUpAndJoins(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		_, token := b.invite(t, "new@example.com", policy.Member)
		preview, err := b.svc.LookupInvite(context.Background(), token)
		if err != nil || preview.AccountExists {
			t.Fatalf("lookup: %+v %v", preview, err)
		}
		_, _, err = b.svc.AcceptInviteAsNewUser(context.Background(), token, "New", "short", client)
		wantCode(t, err, kernel.CodeInvalid)
		res, m, err := b.svc.AcceptInviteAsNewUser(context.Background(), token, "New Person", pw, client)
		if err != nil {
			t.Fatal(err)
		}
		if !res.User.EmailVerified() || res.User.Email != "new@example.com" || res.Token == "" || m.Role != policy.Member {
			t.Fatalf("accepted: %+v %+v", res.User, m)
		}
		actor, _, err := b.ids.Authenticate(context.Background(), res.Token)
		if err != nil || actor.ID != res.User.ID {
			t.Fatalf("the new session does not authenticate: %v", err)
		}
		if _, err := b.ids.Login(context.Background(), "new@example.com", pw, client); err != nil {
			t.Fatalf("log in with the chosen password: %v", err)
		}
		_, _, err = b.svc.AcceptInviteAsNewUser(context.Background(), token, "Again", pw, client)
		wantBadToken(t, err)
		assertNowhere(t, b, token)
	})
}

func TestInviteNewUserWhoseAddressHasAnAccount(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		b.person(t, "taken@example.com", false)
		_, token := b.invite(t, "taken@example.com", policy.Member)
		_, _, err := b.svc.AcceptInviteAsNewUser(context.Background(), token, "Someone", pw, client)
		wantCode(t, err, kernel.CodeConflict)
		// Nothing was used up: the account's owner can still log in and accept.
		if _, err := b.svc.LookupInvite(context.Background(), token); err != nil {
			t.Fatalf("lookup after the refused sign-up: %v", err)
		}
	})
}

func TestAcceptRules(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		other := b.person(t, "other@example.com", true)
		unverified := b.person(t, "unverified@example.com", false)
		_, token := b.invite(t, "unverified@example.com", policy.Viewer)
		ctx, _ := b.as(other, "")
		_, err := b.svc.AcceptInvite(ctx, token)
		wantCode(t, err, kernel.CodeForbidden)
		ctx, _ = b.as(unverified, "")
		_, err = b.svc.AcceptInvite(ctx, token)
		wantCode(t, err, kernel.CodeEmailUnverified)

		for name, bad := range map[string]string{
			"truncated":          token[:len(token)-1],
			"padded":             token + "=",
			"empty":              "",
			"another workspace":  tenancy.ForgeInviteToken(kernel.NewID(), token),
			"unknown":            tenancy.ForgeInviteToken(b.ws, strings.Repeat("A", 43)),
			"hostile":            "' OR 1=1 --" + strings.Repeat("x", 59),
			"ws part of garbage": strings.Repeat("z", 26) + token[26:],
		} {
			_, err := b.svc.LookupInvite(context.Background(), bad)
			if !kernel.IsCode(err, kernel.CodeInvalid) {
				t.Errorf("%s: %v", name, err)
			}
			_, err = b.svc.AcceptInvite(ctx, bad)
			if !kernel.IsCode(err, kernel.CodeInvalid) {
				t.Errorf("%s: accept: %v", name, err)
			}
		}
	})
}

func TestInviteExpiresRevokesAndResends(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ada := b.person(t, "ada@example.com", true)
		adaCtx, _ := b.as(ada, "")
		ownerCtx, res := b.as(b.owner, policy.Owner)

		_, expired := b.invite(t, "late@example.com", policy.Member)
		b.clock.Advance(7*24*time.Hour + time.Second)
		_, err := b.svc.LookupInvite(context.Background(), expired)
		wantBadToken(t, err)
		_, _, err = b.svc.AcceptInviteAsNewUser(context.Background(), expired, "Late", pw, client)
		wantBadToken(t, err)

		inv, token := b.invite(t, "ada@example.com", policy.Member)
		if err := b.svc.RevokeInvite(ownerCtx, res, inv.ID); err != nil {
			t.Fatal(err)
		}
		_, err = b.svc.AcceptInvite(adaCtx, token)
		wantBadToken(t, err)
		wantCode(t, b.svc.RevokeInvite(ownerCtx, res, inv.ID), kernel.CodeConflict)
		_, err = b.svc.ResendInvite(ownerCtx, res, inv.ID)
		wantCode(t, err, kernel.CodeConflict)

		inv, old := b.invite(t, "ada@example.com", policy.Member)
		b.clock.Advance(6 * 24 * time.Hour)
		resent, err := b.svc.ResendInvite(ownerCtx, res, inv.ID)
		if err != nil || !resent.ExpiresAt.Equal(b.clock.Now().Add(tenancy.InviteTTL)) {
			t.Fatalf("resend: %+v %v", resent, err)
		}
		_, err = b.svc.ResendInvite(ownerCtx, res, inv.ID)
		wantCode(t, err, kernel.CodeRateLimited)
		if e := kernel.As(err); e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
			t.Fatalf("retry after %s", e.RetryAfter)
		}
		fresh := linkToken(t, b, "ada@example.com", mail.TemplateInvite, "/invite")
		if fresh == old {
			t.Fatal("resend sent the old token")
		}
		_, err = b.svc.AcceptInvite(adaCtx, old)
		wantBadToken(t, err)
		b.clock.Advance(2 * 24 * time.Hour) // past the first expiry, within the new one
		if _, err := b.svc.AcceptInvite(adaCtx, fresh); err != nil {
			t.Fatalf("accept the resent link: %v", err)
		}
		assertAudited(t, b, "invite.revoked", "invite.resent", "invite.accepted")
	})
}

func TestInviteConflictsAndPermissions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		admin := b.person(t, "admin@example.com", true)
		unverifiedAdmin := b.person(t, "lazy@example.com", false)
		for _, id := range []uuid.UUID{admin, unverifiedAdmin} {
			if _, err := b.svc.AddMember(context.Background(), b.ws, id, policy.Admin); err != nil {
				t.Fatal(err)
			}
		}
		ownerCtx, res := b.as(b.owner, policy.Owner)
		_, err := b.svc.CreateInvite(ownerCtx, res, "admin@example.com", policy.Member)
		wantCode(t, err, kernel.CodeConflict)
		inv, _ := b.invite(t, "someone@example.com", policy.Owner)
		_, err = b.svc.CreateInvite(ownerCtx, res, "SOMEONE@example.com", policy.Viewer)
		wantCode(t, err, kernel.CodeConflict)
		_, err = b.svc.CreateInvite(ownerCtx, res, "not an address", policy.Viewer)
		wantCode(t, err, kernel.CodeInvalid)
		_, err = b.svc.CreateInvite(ownerCtx, res, "x@example.com", "superuser")
		wantCode(t, err, kernel.CodeInvalid)

		adminCtx, adminRes := b.as(admin, policy.Admin)
		_, err = b.svc.CreateInvite(adminCtx, adminRes, "boss@example.com", policy.Owner)
		wantCode(t, err, kernel.CodeForbidden)
		wantCode(t, b.svc.RevokeInvite(adminCtx, adminRes, inv.ID), kernel.CodeForbidden) // an owner's invitation
		if _, err := b.svc.CreateInvite(adminCtx, adminRes, "helper@example.com", policy.Admin); err != nil {
			t.Fatalf("admin invites an admin: %v", err)
		}
		lazyCtx, lazyRes := b.as(unverifiedAdmin, policy.Admin)
		_, err = b.svc.CreateInvite(lazyCtx, lazyRes, "x@example.com", policy.Member)
		wantCode(t, err, kernel.CodeEmailUnverified)
		memberCtx, memberRes := b.as(admin, policy.Member)
		_, err = b.svc.CreateInvite(memberCtx, memberRes, "x@example.com", policy.Member)
		wantCode(t, err, kernel.CodeForbidden)
		_, err = b.svc.ListInvites(memberCtx, memberRes, nil, 10)
		wantCode(t, err, kernel.CodeForbidden)

		// An expired invitation no longer blocks a new one.
		b.clock.Advance(tenancy.InviteTTL)
		if _, err := b.svc.CreateInvite(ownerCtx, res, "someone@example.com", policy.Viewer); err != nil {
			t.Fatalf("invite again after expiry: %v", err)
		}
		list, err := b.svc.ListInvites(ownerCtx, res, nil, 10)
		if err != nil || len(list) != 3 || list[0].Status != tenancy.InvitePending || list[2].Status != tenancy.InviteExpired {
			t.Fatalf("list: %+v %v", list, err)
		}
		page, err := b.svc.ListInvites(ownerCtx, res, &tenancy.InvitePosition{CreatedAt: list[0].CreatedAt, ID: list[0].ID}, 10)
		if err != nil || len(page) != 2 || page[0].ID != list[1].ID {
			t.Fatalf("second page: %+v %v", page, err)
		}
	})
}

func TestInviteOfADeletedWorkspaceIsDead(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ada := b.person(t, "ada@example.com", true)
		_, token := b.invite(t, "ada@example.com", policy.Member)
		_, newToken := b.invite(t, "new@example.com", policy.Member)
		ownerCtx, res := b.as(b.owner, policy.Owner)
		if _, err := b.svc.Delete(ownerCtx, res); err != nil {
			t.Fatal(err)
		}
		adaCtx, _ := b.as(ada, "")
		_, err := b.svc.AcceptInvite(adaCtx, token)
		wantBadToken(t, err)
		_, err = b.svc.LookupInvite(context.Background(), newToken)
		wantBadToken(t, err)
		_, _, err = b.svc.AcceptInviteAsNewUser(context.Background(), newToken, "New", pw, client)
		wantBadToken(t, err)
		_, err = b.svc.CreateInvite(ownerCtx, res, "x@example.com", policy.Member)
		wantCode(t, err, kernel.CodeWorkspaceInactive)
	})
}

func TestConcurrentAcceptsOneWins(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		_, token := b.invite(t, "race@example.com", policy.Member)
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = b.svc.AcceptInviteAsNewUser(context.Background(), token, "Racer", pw, client)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !kernel.IsCode(err, kernel.CodeInvalid) && !kernel.IsCode(err, kernel.CodeConflict):
				t.Errorf("a losing accept: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d accepts won: %v", won, errs)
		}

		ada := b.person(t, "ada@example.com", true)
		_, token = b.invite(t, "ada@example.com", policy.Member)
		ctx, _ := b.as(ada, "")
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = b.svc.AcceptInvite(ctx, token)
			}()
		}
		wg.Wait()
		won = 0
		for _, err := range errs {
			if err == nil {
				won++
			}
		}
		if won != 1 {
			t.Fatalf("%d signed-in accepts won: %v", won, errs)
		}
	})
}

// assertAudited fails unless the workspace's audit log holds each action.
func assertAudited(t *testing.T, b bundle, actions ...string) {
	t.Helper()
	got := map[string]bool{}
	err := b.db.System(context.Background(), "test: read the audit log", func(tx store.Tx) error {
		rows, err := tx.Query(context.Background(), "SELECT action FROM audit_log WHERE workspace_id = $1", b.ws)
		if err != nil {
			return err
		}
		names, err := store.Collect(rows, func(r store.Row) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
		for _, n := range names {
			got[n] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		if !got[a] {
			t.Errorf("no %s audit entry in %v", a, got)
		}
	}
}

// assertAuditMasks fails unless the workspace's audit log names email only
// as masked.
func assertAuditMasks(t *testing.T, b bundle, email, masked string) {
	t.Helper()
	var plain, hidden int
	err := b.db.System(context.Background(), "test: search the audit log", func(tx store.Tx) error {
		q := "SELECT count(*) FROM audit_log WHERE workspace_id = $1 AND metadata LIKE $2"
		if tx.Dialect() == store.Postgres {
			q = strings.Replace(q, "metadata LIKE", "metadata::text LIKE", 1)
		}
		if err := tx.QueryRow(context.Background(), q, b.ws, "%"+email+"%").Scan(&plain); err != nil {
			return err
		}
		return tx.QueryRow(context.Background(), q, b.ws, "%"+masked+"%").Scan(&hidden)
	})
	if err != nil {
		t.Fatal(err)
	}
	if plain != 0 || hidden == 0 {
		t.Fatalf("audit entries with %s: %d, with %s: %d", email, plain, masked, hidden)
	}
}

// assertNowhere fails if token appears in the audit log, the outbox or the logs.
func assertNowhere(t *testing.T, b bundle, token string) {
	t.Helper()
	err := b.db.System(context.Background(), "test: search for a token", func(tx store.Tx) error {
		for _, q := range []string{"SELECT count(*) FROM audit_log WHERE metadata LIKE $1", "SELECT count(*) FROM outbox WHERE payload LIKE $1"} {
			if tx.Dialect() == store.Postgres {
				q = strings.Replace(q, "metadata LIKE", "metadata::text LIKE", 1)
				q = strings.Replace(q, "payload LIKE", "payload::text LIKE", 1)
			}
			var n int
			if err := tx.QueryRow(context.Background(), q, "%"+token[27:]+"%").Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				t.Errorf("the token is stored: %s", q)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.logs.String(), token[27:]) {
		t.Error("the token was logged")
	}
}
