package tenancy_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
)

// tenantTables are the tables a purge must empty of a workspace's rows, and
// how to count them.
var tenantTables = map[string]string{
	"workspace":  "SELECT count(*) FROM workspace WHERE id = $1",
	"membership": "SELECT count(*) FROM membership WHERE workspace_id = $1",
	"team":       "SELECT count(*) FROM team WHERE workspace_id = $1",
	"invite":     "SELECT count(*) FROM invite WHERE workspace_id = $1",
	"outbox":     "SELECT count(*) FROM outbox WHERE workspace_id = $1",
	"job":        "SELECT count(*) FROM job WHERE workspace_id = $1",
	"audit_log":  "SELECT count(*) FROM audit_log WHERE workspace_id = $1",
}

// systemCount runs a count through the system path.
func systemCount(t *testing.T, b bundle, query string, args ...any) int {
	t.Helper()
	var n int
	err := b.db.System(context.Background(), "test: count rows", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), query, args...).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// populated creates a workspace owned by the bundle's owner with a row in
// every table of tenantTables, and returns it.
func populated(t *testing.T, b bundle, slug string) uuid.UUID {
	t.Helper()
	ws, err := b.svc.CreateOwned(context.Background(), b.owner, "Workspace "+slug, slug)
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := b.as(b.owner, policy.Owner)
	res := policy.Resource{Workspace: ws.ID, Role: policy.Owner}
	if _, err := b.svc.CreateTeam(ctx, res, "Design"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.CreateInvite(ctx, res, "guest-"+slug+"@example.com", policy.Member); err != nil {
		t.Fatal(err)
	}
	err = b.db.InWorkspace(context.Background(), ws.ID, func(tx store.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO job (id, workspace_id, kind, status, payload, created_at, updated_at)
            VALUES ($1, $2, 'test.work', 'queued', '{}', $3, $3)`, kernel.NewID(), ws.ID, tx.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for table, query := range tenantTables {
		if systemCount(t, b, query, ws.ID) == 0 {
			t.Fatalf("workspace %s has no %s row to purge", slug, table)
		}
	}
	return ws.ID
}

func TestPurgeDeletedWorkspaces(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		day := 24 * time.Hour
		old, recent := populated(t, b, "old"), populated(t, b, "recent")
		remove := func(ws uuid.UUID) {
			ctx, _ := b.as(b.owner, policy.Owner) // a recent authentication at the clock's time
			if _, err := b.svc.Delete(ctx, policy.Resource{Workspace: ws, Role: policy.Owner}); err != nil {
				t.Fatal(err)
			}
		}
		remove(old)
		b.clock.Advance(2 * day)
		remove(recent)
		b.clock.Advance(29*day + time.Minute) // old: deleted 31 days ago; recent: 29 days ago

		ctx := kernel.WithActor(context.Background(), kernel.SystemActor)
		if n, err := tenancy.PurgeDeletedWorkspaces(ctx, b.db); err != nil || n != 1 {
			t.Fatalf("purge: %d %v; want the one workspace past its window", n, err)
		}
		for table, query := range tenantTables {
			if n := systemCount(t, b, query, old); n != 0 {
				t.Errorf("%d %s rows of the purged workspace are left", n, table)
			}
			if systemCount(t, b, query, recent) == 0 {
				t.Errorf("the %s rows of a workspace inside its window were purged", table)
			}
			if table != "invite" && table != "team" && table != "job" && systemCount(t, b, query, b.ws) == 0 {
				t.Errorf("the %s rows of an active workspace were purged", table)
			}
		}
		if n := systemCount(t, b, `SELECT count(*) FROM audit_log WHERE workspace_id IS NULL AND action = 'workspace.purged'
            AND target_id = $1 AND actor_type = 'system'`, kernel.FormatID(kernel.PrefixWorkspace, old)); n != 1 {
			t.Fatalf("%d platform audit entries for the purge, want 1", n)
		}
		if n, err := tenancy.PurgeDeletedWorkspaces(ctx, b.db); err != nil || n != 0 {
			t.Fatalf("second purge: %d %v; want nothing left to purge", n, err)
		}
		b.clock.Advance(2 * day)
		if n, err := tenancy.PurgeDeletedWorkspaces(ctx, b.db); err != nil || n != 1 || systemCount(t, b, tenantTables["workspace"], recent) != 0 {
			t.Fatalf("purge two days later: %d %v; want the second workspace gone", n, err)
		}
	})
}

func TestDeleteExpiredInvites(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx, res := b.as(b.owner, policy.Owner)
		expired, _ := b.invite(t, "expired@example.com", policy.Member)
		revoked, _ := b.invite(t, "revoked@example.com", policy.Member)
		if err := b.svc.RevokeInvite(ctx, res, revoked.ID); err != nil {
			t.Fatal(err)
		}
		accepted, token := b.invite(t, "accepted@example.com", policy.Member)
		guest := b.person(t, "accepted@example.com", true)
		guestCtx, _ := b.as(guest, "")
		if _, err := b.svc.AcceptInvite(guestCtx, token); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(tenancy.InviteTTL + tenancy.ExpiredInviteRetention - time.Minute)
		fresh, _ := b.invite(t, "fresh@example.com", policy.Member)
		sys := kernel.WithActor(context.Background(), kernel.SystemActor)
		if n, err := tenancy.DeleteExpiredInvites(sys, b.db); err != nil || n != 0 {
			t.Fatalf("a minute before the retention ends: deleted %d (%v), want none", n, err)
		}
		b.clock.Advance(2 * time.Minute)
		if n, err := tenancy.DeleteExpiredInvites(sys, b.db); err != nil || n != 2 {
			t.Fatalf("after the retention: deleted %d (%v), want the expired and the revoked invitation", n, err)
		}
		for id, want := range map[uuid.UUID]int{expired.ID: 0, revoked.ID: 0, accepted.ID: 1, fresh.ID: 1} {
			if n := systemCount(t, b, "SELECT count(*) FROM invite WHERE id = $1", id); n != want {
				t.Errorf("invite %s: %d rows, want %d", id, n, want)
			}
		}
	})
}
