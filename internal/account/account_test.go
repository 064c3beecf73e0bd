package account_test

import (
	"context"
	"testing"

	"atrium/internal/account"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// TestInterruptedDeletionCanBeRetried runs the deletion's steps as a crash
// would leave them: memberships partly or wholly gone, the account not yet
// anonymised. Running Delete again finishes the job, and running it once
// more changes nothing.
func TestInterruptedDeletionCanBeRetried(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			a := testkit.Boot(t, d, testkit.AppOptions{})
			ada, eve := a.SignUp(t, "ada@example.com"), a.SignUp(t, "eve@example.com")
			ws := a.Services.Workspaces
			bg := context.Background()
			shared, err := ws.CreateOwned(bg, ada.ID, "Shared", "shared")
			if err != nil {
				t.Fatal(err)
			}
			solo, err := ws.CreateOwned(bg, ada.ID, "Solo", "solo")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ws.AddMember(bg, shared.ID, eve.ID, policy.Member); err != nil {
				t.Fatal(err)
			}
			ctx := kernel.WithActor(bg, kernel.Actor{Kind: kernel.ActorUser, ID: ada.ID, Via: kernel.ViaCookie,
				AuthenticatedAt: a.Clock.Now()})

			// Becoming the sole owner after the check is caught inside the
			// workspace's transaction: LeaveAll refuses that workspace.
			if _, err := ws.LeaveAll(ctx, ada.ID); !kernel.IsCode(err, kernel.CodeConflict) {
				t.Fatalf("LeaveAll as the sole owner of a shared workspace: %v", err)
			}
			if err := a.Services.Account.Delete(ctx, ""); !kernel.IsCode(err, kernel.CodeConflict) {
				t.Fatalf("Delete as the sole owner of a shared workspace: %v", err)
			}
			if _, err := ws.ChangeRole(kernel.WithActor(bg, kernel.Actor{Kind: kernel.ActorUser, ID: ada.ID}),
				policy.Resource{Workspace: shared.ID, Role: policy.Owner}, eve.ID, policy.Owner); err != nil {
				t.Fatal(err)
			}
			// A crash after the memberships went: the account is still there.
			// (The refused LeaveAll stopped at the shared workspace, the
			// older one, before leaving the other.)
			if n, err := ws.LeaveAll(ctx, ada.ID); err != nil || n != 2 {
				t.Fatalf("LeaveAll: %d, %v", n, err)
			}
			if _, err := a.Services.Identity.User(bg, ada.ID); err != nil {
				t.Fatalf("the account went with its memberships: %v", err)
			}
			for i := 0; i < 2; i++ {
				if err := a.Services.Account.Delete(ctx, ""); err != nil {
					t.Fatalf("Delete, run %d: %v", i+1, err)
				}
			}
			u, err := a.Services.Identity.User(bg, ada.ID)
			if err != nil || u.Name != "Deleted user" || u.Email == ada.Email || u.EmailVerified() {
				t.Fatalf("after deletion: %+v, %v", u, err)
			}
			joined, err := ws.Memberships(bg, ada.ID)
			if err != nil || len(joined) != 0 {
				t.Fatalf("memberships left: %v, %v", joined, err)
			}
			var deleted int
			err = a.DB.System(bg, "test: read workspace", func(tx store.Tx) error {
				return tx.QueryRow(bg, "SELECT count(*) FROM workspace WHERE id = $1 AND deleted_at IS NOT NULL", solo.ID).Scan(&deleted)
			})
			if err != nil || deleted != 1 {
				t.Fatalf("the workspace ada was alone in is not soft-deleted: %d, %v", deleted, err)
			}
		})
	}
}

// TestPrivilegedAccountActionsNeedARecentSession checks that neither a
// stale session nor a token can delete an account or change its address.
func TestPrivilegedAccountActionsNeedARecentSession(t *testing.T) {
	a := testkit.Boot(t, store.SQLite, testkit.AppOptions{})
	ada := a.SignUp(t, "ada@example.com")
	bg := context.Background()
	newEmail := "ada@new.example"
	for name, actor := range map[string]kernel.Actor{
		"stale session": {Kind: kernel.ActorUser, ID: ada.ID, Via: kernel.ViaCookie, AuthenticatedAt: a.Clock.Now().Add(-policy.RecentAuthWindow)},
		"token":         {Kind: kernel.ActorUser, ID: ada.ID, Via: kernel.ViaBearer, AuthenticatedAt: a.Clock.Now()},
	} {
		ctx := kernel.WithActor(bg, actor)
		if err := a.Services.Account.Delete(ctx, ""); !kernel.IsCode(err, kernel.CodeReauthRequired) {
			t.Errorf("%s: Delete: %v", name, err)
		}
		if _, err := a.Services.Account.UpdateProfile(ctx, account.Profile{Email: &newEmail}); !kernel.IsCode(err, kernel.CodeReauthRequired) {
			t.Errorf("%s: change address: %v", name, err)
		}
	}
	if u, err := a.Services.Identity.User(bg, ada.ID); err != nil || u.Email != "ada@example.com" {
		t.Fatalf("the account changed: %+v, %v", u, err)
	}
}
