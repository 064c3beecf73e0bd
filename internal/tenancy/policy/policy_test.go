package policy_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

func TestRoleTable(t *testing.T) {
	ws := uuid.New()
	me := kernel.Actor{Kind: kernel.ActorUser, ID: uuid.New()}
	other := uuid.New()
	plain := []policy.Action{policy.WorkspaceRead, policy.WorkspaceUpdate, policy.WorkspaceDelete,
		policy.WorkspaceRestore, policy.WorkspaceTransfer, policy.MemberList, policy.AuditRead, policy.APIKeyManage,
		policy.InviteList, policy.TeamRead, policy.TeamManage}
	want := map[policy.Role][]policy.Action{
		policy.Owner: plain,
		policy.Admin: {policy.WorkspaceRead, policy.WorkspaceUpdate, policy.MemberList, policy.AuditRead, policy.APIKeyManage,
			policy.InviteList, policy.TeamRead, policy.TeamManage},
		policy.Member: {policy.WorkspaceRead, policy.MemberList, policy.TeamRead},
		policy.Viewer: {policy.WorkspaceRead, policy.MemberList, policy.TeamRead},
		"":            nil,
	}
	for role, allowed := range want {
		for _, action := range plain {
			got := policy.Can(me, action, policy.Resource{Workspace: ws, Role: role})
			if got != contains(allowed, action) {
				t.Errorf("%q %s: %v", role, action, got)
			}
		}
		// Everyone with a role may leave; nobody may "leave" on behalf of another.
		leave := policy.Can(me, policy.MemberLeave, policy.Resource{Workspace: ws, Role: role, Target: policy.Target{UserID: me.ID, Role: role}})
		if leave != (role != "") {
			t.Errorf("%q leave: %v", role, leave)
		}
		if policy.Can(me, policy.MemberLeave, policy.Resource{Workspace: ws, Role: role, Target: policy.Target{UserID: other, Role: policy.Viewer}}) {
			t.Errorf("%q left for someone else", role)
		}
	}
}

func TestMemberRules(t *testing.T) {
	ws := uuid.New()
	me := kernel.Actor{Kind: kernel.ActorUser, ID: uuid.New()}
	target := func(role policy.Role) policy.Target { return policy.Target{UserID: uuid.New(), Role: role} }
	cases := []struct {
		name   string
		action policy.Action
		res    policy.Resource
		want   bool
	}{
		{"owner promotes to owner", policy.MemberChangeRole, policy.Resource{Role: policy.Owner, Target: target(policy.Admin), Grant: policy.Owner}, true},
		{"owner demotes an owner", policy.MemberChangeRole, policy.Resource{Role: policy.Owner, Target: target(policy.Owner), Grant: policy.Viewer}, true},
		{"admin demotes a member", policy.MemberChangeRole, policy.Resource{Role: policy.Admin, Target: target(policy.Member), Grant: policy.Viewer}, true},
		{"admin makes an owner", policy.MemberChangeRole, policy.Resource{Role: policy.Admin, Target: target(policy.Member), Grant: policy.Owner}, false},
		{"admin demotes an owner", policy.MemberChangeRole, policy.Resource{Role: policy.Admin, Target: target(policy.Owner), Grant: policy.Admin}, false},
		{"admin promotes self to owner", policy.MemberChangeRole, policy.Resource{Role: policy.Admin, Target: policy.Target{UserID: me.ID, Role: policy.Admin}, Grant: policy.Owner}, false},
		{"member changes a role", policy.MemberChangeRole, policy.Resource{Role: policy.Member, Target: target(policy.Viewer), Grant: policy.Member}, false},
		{"change without a grant", policy.MemberChangeRole, policy.Resource{Role: policy.Owner, Target: target(policy.Viewer)}, false},
		{"owner removes an owner", policy.MemberRemove, policy.Resource{Role: policy.Owner, Target: target(policy.Owner)}, true},
		{"admin removes a viewer", policy.MemberRemove, policy.Resource{Role: policy.Admin, Target: target(policy.Viewer)}, true},
		{"admin removes an owner", policy.MemberRemove, policy.Resource{Role: policy.Admin, Target: target(policy.Owner)}, false},
		{"remove oneself", policy.MemberRemove, policy.Resource{Role: policy.Owner, Target: policy.Target{UserID: me.ID, Role: policy.Owner}}, false},
		{"viewer removes a viewer", policy.MemberRemove, policy.Resource{Role: policy.Viewer, Target: target(policy.Viewer)}, false},
		{"owner invites an owner", policy.InviteManage, policy.Resource{Role: policy.Owner, Grant: policy.Owner}, true},
		{"admin invites an admin", policy.InviteManage, policy.Resource{Role: policy.Admin, Grant: policy.Admin}, true},
		{"admin invites an owner", policy.InviteManage, policy.Resource{Role: policy.Admin, Grant: policy.Owner}, false},
		{"member invites a viewer", policy.InviteManage, policy.Resource{Role: policy.Member, Grant: policy.Viewer}, false},
		{"viewer invites a viewer", policy.InviteManage, policy.Resource{Role: policy.Viewer, Grant: policy.Viewer}, false},
		{"invite without a role", policy.InviteManage, policy.Resource{Role: policy.Owner}, false},
	}
	for _, c := range cases {
		c.res.Workspace = ws
		if got := policy.Can(me, c.action, c.res); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAPIKeysActByScopeInTheirWorkspaceOnly(t *testing.T) {
	ws := uuid.New()
	reader := kernel.Actor{Kind: kernel.ActorAPIKey, ID: uuid.New(), WorkspaceID: ws, Scopes: kernel.ScopeRead}
	for action, want := range map[policy.Action]bool{
		policy.WorkspaceRead: true, policy.MemberList: true, policy.AuditRead: true, policy.WorkspaceUpdate: false,
		policy.APIKeyManage: false, policy.InviteList: true, policy.TeamRead: true, policy.TeamManage: false,
	} {
		if got := policy.Can(reader, action, policy.Resource{Workspace: ws, Role: policy.Owner}); got != want {
			t.Errorf("read key %s: %v, want %v", action, got, want)
		}
	}
	if policy.Can(kernel.Actor{Kind: kernel.ActorAPIKey, WorkspaceID: ws}, policy.WorkspaceRead, policy.Resource{Workspace: ws}) {
		t.Error("a key without scopes may read")
	}
	key := kernel.Actor{Kind: kernel.ActorAPIKey, ID: uuid.New(), WorkspaceID: ws, Scopes: kernel.ScopeWrite}
	for action, want := range map[policy.Action]bool{
		policy.WorkspaceRead: true, policy.WorkspaceUpdate: true, policy.MemberList: true, policy.AuditRead: true,
		policy.WorkspaceDelete: false, policy.WorkspaceRestore: false, policy.WorkspaceTransfer: false,
		policy.MemberChangeRole: false, policy.MemberRemove: false, policy.MemberLeave: false, policy.APIKeyManage: false,
		policy.InviteList: true, policy.InviteManage: false, policy.TeamRead: true, policy.TeamManage: false,
	} {
		// A role smuggled into the resource changes nothing for a key.
		if got := policy.Can(key, action, policy.Resource{Workspace: ws, Role: policy.Owner}); got != want {
			t.Errorf("key %s: %v, want %v", action, got, want)
		}
		if policy.Can(key, action, policy.Resource{Workspace: uuid.New()}) {
			t.Errorf("key %s in another workspace allowed", action)
		}
	}
	for _, nobody := range []kernel.Actor{{}, kernel.SystemActor} {
		if policy.Can(nobody, policy.WorkspaceRead, policy.Resource{Workspace: ws, Role: policy.Owner}) {
			t.Errorf("%s may read", nobody)
		}
	}
	err := policy.Check(key, policy.WorkspaceDelete, policy.Resource{Workspace: ws})
	if !kernel.IsCode(err, kernel.CodeForbidden) {
		t.Fatalf("Check: %v, want forbidden", err)
	}
}

func TestRoleInContextIsBoundToItsWorkspace(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	ctx := policy.WithRole(context.Background(), a, policy.Admin)
	if got := policy.In(ctx, a); got.Role != policy.Admin || got.Workspace != a {
		t.Fatalf("In(a): %+v", got)
	}
	if got := policy.In(ctx, b); got.Role != "" || got.Workspace != b {
		t.Fatalf("In(b) carried a's role: %+v", got)
	}
	if got := policy.In(context.Background(), a); got.Role != "" {
		t.Fatalf("no role resolved, got %+v", got)
	}
	if _, err := policy.ParseRole("role", "superuser"); !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Fatalf("ParseRole(superuser): %v", err)
	}
}

func contains(list []policy.Action, a policy.Action) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}
