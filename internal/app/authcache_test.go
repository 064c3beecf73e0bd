package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// authNodes boots the nodes of one deployment: on SQLite the one process the
// local file allows, on PostgreSQL two apps sharing one schema, each with its
// own auth cache, both listening before the test starts. It also returns the
// application role's URL on PostgreSQL ("" on SQLite).
func authNodes(t *testing.T, dialect store.Dialect) ([]*testkit.TestApp, string) {
	t.Helper()
	if dialect == store.SQLite {
		return []*testkit.TestApp{testkit.Boot(t, store.SQLite, testkit.AppOptions{})}, ""
	}
	s := testkit.NewPostgresSchema(t)
	env := map[string]string{"ATRIUM_DATABASE_URL": s.AppURL, "ATRIUM_AUTO_MIGRATE": "false"}
	nodes := []*testkit.TestApp{
		testkit.Boot(t, store.SQLite, testkit.AppOptions{Env: env}),
		testkit.Boot(t, store.SQLite, testkit.AppOptions{Env: env}),
	}
	for _, n := range nodes {
		waitFor(t, "the auth listener", n.AuthCache.Live)
	}
	return nodes, s.AppURL
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// refused asserts that check fails on every node with unauthenticated or
// not_found. SQLite learns of the change in the same request (its epoch);
// PostgreSQL nodes learn it from a notification delivered at commit, which
// the test allows a moment to arrive.
func refused(t *testing.T, nodes []*testkit.TestApp, what string, check func(*testkit.TestApp) error) {
	t.Helper()
	for i, n := range nodes {
		var err error
		deadline := time.Now().Add(2 * time.Second)
		for {
			err = check(n)
			if err != nil || n.DB.Dialect() == store.SQLite || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if !kernel.IsCode(err, kernel.CodeUnauthenticated) && !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("node %d: %s still works (err %v)", i, what, err)
		}
	}
}

// accepted asserts that check succeeds on every node twice: the second from
// the cache.
func accepted(t *testing.T, nodes []*testkit.TestApp, what string, check func(*testkit.TestApp) error) {
	t.Helper()
	for i, n := range nodes {
		for range 2 {
			if err := check(n); err != nil {
				t.Fatalf("node %d: %s: %v", i, what, err)
			}
		}
		if n.AuthCache.Len() == 0 {
			t.Fatalf("node %d: %s cached nothing", i, what)
		}
	}
}

func session(token string) func(*testkit.TestApp) error {
	return func(n *testkit.TestApp) error {
		_, _, err := n.Services.Identity.Authenticate(context.Background(), token)
		return err
	}
}

func bearer(secret string) func(*testkit.TestApp) error {
	return func(n *testkit.TestApp) error {
		_, err := n.Services.Identity.AuthenticateBearer(context.Background(), secret)
		return err
	}
}

// actorCtx is the context of a request made with token on node n.
func actorCtx(t *testing.T, n *testkit.TestApp, token string) context.Context {
	t.Helper()
	actor, _, err := n.Services.Identity.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return kernel.WithActor(context.Background(), actor)
}

// TestAuthCacheDiesAtRevocation checks that cached sessions, keys, tokens and
// roles stop working at once on every node when the access they stand for
// ends, whichever code path ends it.
func TestAuthCacheDiesAtRevocation(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			nodes, _ := authNodes(t, d)
			a := nodes[0]
			ctx := context.Background()

			t.Run("logout", func(t *testing.T) {
				p := a.SignUp(t, "logout@example.com")
				accepted(t, nodes, "the session", session(p.Session))
				_, sess, _ := a.Services.Identity.Authenticate(ctx, p.Session)
				if err := a.Services.Identity.Logout(ctx, sess.ID); err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "a logged-out session", session(p.Session))
			})
			t.Run("revoke other sessions and password change", func(t *testing.T) {
				p := a.SignUp(t, "pw@example.com")
				other := a.LogIn(t, "pw@example.com")
				third := a.LogIn(t, "pw@example.com")
				accepted(t, nodes, "the other session", session(other.Session))
				accepted(t, nodes, "the third session", session(third.Session))
				_, keep, _ := a.Services.Identity.Authenticate(ctx, p.Session)
				if _, err := a.Services.Identity.RevokeOtherSessions(ctx, p.ID, keep.ID); err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "a revoked session", session(other.Session))
				fresh := a.LogIn(t, "pw@example.com")
				accepted(t, nodes, "a new session", session(fresh.Session))
				err := a.Services.Identity.ChangePassword(actorCtx(t, a, p.Session), identity.PasswordChange{
					UserID: p.ID, KeepSession: keep.ID, Current: testkit.TestPassword, New: "another long enough passphrase"})
				if err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "a session from before the password change", session(fresh.Session))
				accepted(t, nodes, "the session that changed the password", session(p.Session))
			})
			t.Run("re-authentication rotates the token", func(t *testing.T) {
				p := a.SignUp(t, "rotate@example.com")
				accepted(t, nodes, "the session", session(p.Session))
				_, token, err := a.Services.Identity.Reauthenticate(actorCtx(t, a, p.Session), testkit.TestPassword, "")
				if err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "the token before rotation", session(p.Session))
				accepted(t, nodes, "the rotated token", session(token))
			})
			t.Run("roles, keys and tokens", func(t *testing.T) {
				owner := a.SignUp(t, "owner@example.com")
				member := a.SignUp(t, "member@example.com")
				ws, err := a.Services.Workspaces.Create(ctx, "Acme", "acme")
				if err != nil {
					t.Fatal(err)
				}
				for who, role := range map[*testkit.Person]policy.Role{&owner: policy.Owner, &member: policy.Member} {
					if _, err := a.Services.Workspaces.AddMember(ctx, ws.ID, who.ID, role); err != nil {
						t.Fatal(err)
					}
				}
				roleIs := func(want policy.Role) func(*testkit.TestApp) error {
					return func(n *testkit.TestApp) error {
						role, err := n.Services.Workspaces.RoleOf(ctx, ws.ID, member.ID)
						if err == nil && role != want {
							return kernel.NotFound("role " + string(want))
						}
						return err
					}
				}
				accepted(t, nodes, "the member's role", roleIs(policy.Member))
				ownerCtx := actorCtx(t, a, owner.Session)
				res := policy.Resource{Workspace: ws.ID, Role: policy.Owner}
				if _, err := a.Services.Workspaces.ChangeRole(ownerCtx, res, member.ID, policy.Viewer); err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "the old role", roleIs(policy.Member))
				accepted(t, nodes, "the new role", roleIs(policy.Viewer))
				if err := a.Services.Workspaces.RemoveMember(ownerCtx, res, member.ID); err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "a removed membership", roleIs(policy.Viewer))

				key, secret, err := a.Services.Identity.CreateAPIKey(ownerCtx, res, identity.NewAPIKey{Name: "ci", Scopes: []string{"read"}})
				if err != nil {
					t.Fatal(err)
				}
				accepted(t, nodes, "the API key", bearer(secret))
				if err := a.Services.Identity.RevokeAPIKey(ownerCtx, res, key.ID); err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "a revoked API key", bearer(secret))

				pat, patSecret, err := a.Services.Identity.CreatePAT(ownerCtx, identity.NewPAT{Name: "cli"})
				if err != nil {
					t.Fatal(err)
				}
				accepted(t, nodes, "the personal access token", bearer(patSecret))
				if err := a.Services.Identity.RevokePAT(ctx, owner.ID, pat.ID); err != nil {
					t.Fatal(err)
				}
				refused(t, nodes, "a revoked personal access token", bearer(patSecret))
			})
		})
	}
}

// TestAuthCacheExpiresWithTheSession checks that a cached session still ends
// at its idle expiry, and that using it keeps moving that expiry.
func TestAuthCacheExpiresWithTheSession(t *testing.T) {
	a := testkit.Boot(t, store.SQLite, testkit.AppOptions{})
	p := a.SignUp(t, "idle@example.com")
	ctx := context.Background()
	_, sess, err := a.Services.Identity.Authenticate(ctx, p.Session)
	if err != nil {
		t.Fatal(err)
	}
	a.Clock.Advance(2 * time.Minute)
	if _, _, err := a.Services.Identity.Authenticate(ctx, p.Session); err != nil {
		t.Fatal(err)
	}
	_, touched, err := a.Services.Identity.Authenticate(ctx, p.Session)
	if err != nil || !touched.IdleExpiresAt.After(sess.IdleExpiresAt) {
		t.Fatalf("idle expiry %v after use, was %v (err %v)", touched.IdleExpiresAt, sess.IdleExpiresAt, err)
	}
	a.Clock.Set(touched.IdleExpiresAt)
	if _, _, err := a.Services.Identity.Authenticate(ctx, p.Session); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
		t.Fatalf("a session past its idle expiry: %v", err)
	}
}

// TestLostAuthListenerFlushesTheCache cuts a node's listener connection and
// revokes a session while it is down: the notification is lost, so the node
// must have dropped its entries and must refuse the session.
func TestLostAuthListenerFlushesTheCache(t *testing.T) {
	testkit.PostgresURL(t)
	nodes, appURL := authNodes(t, store.Postgres)
	a, b := nodes[0], nodes[1]
	p := b.SignUp(t, "cut@example.com")
	accepted(t, nodes, "the session", session(p.Session))

	db := a.DB.(*pgstore.DB)
	pid := db.AuthListenerPID()
	// A role may terminate its own backends: the app role needs no privilege.
	conn, err := pgx.Connect(context.Background(), appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to notice", func() bool { return !a.AuthCache.Live() || db.AuthListenerPID() != pid })
	_, sess, _ := b.Services.Identity.Authenticate(context.Background(), p.Session)
	if err := b.Services.Identity.Logout(context.Background(), sess.ID); err != nil {
		t.Fatal(err)
	}
	if err := session(p.Session)(a); !kernel.IsCode(err, kernel.CodeUnauthenticated) {
		t.Fatalf("the revoked session during the outage: %v", err)
	}
	waitFor(t, "the listener to come back", func() bool { return a.AuthCache.Live() && db.AuthListenerPID() != pid })
	refused(t, nodes, "the revoked session after the outage", session(p.Session))
	q := b.SignUp(t, "after@example.com")
	accepted(t, []*testkit.TestApp{a}, "a session after the outage", session(q.Session))
}
