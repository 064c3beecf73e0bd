// Package policy makes every permission decision of Atrium in one place: who
// may do what in a workspace. Handlers and services ask Can (or Check) and
// never compare roles themselves.
//
// People act through their membership role. Workspace API keys have no role
// but scopes: "read" lets a key read its workspace, list its members and read
// its audit log, its invitations and its teams; "write" adds renaming the
// workspace (and implies read). No scope lets a key delete, restore or
// transfer the workspace, change memberships, invite people, manage teams or
// manage API keys, and a key never acts in any other workspace. Any other
// actor (anonymous, the system) is refused everything here: background work
// does not go through requests.
package policy

import (
	"context"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// Role is a person's role in a workspace.
type Role string

// The roles, from most to least powerful.
const (
	Owner  Role = "owner"  // everything, including deletion and ownership transfer
	Admin  Role = "admin"  // manages the workspace and its non-owner members
	Member Role = "member" // uses the workspace
	Viewer Role = "viewer" // reads the workspace
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{Owner, Admin, Member, Viewer} }

// ParseRole returns the role named s. It returns an invalid *kernel.Error
// naming field when s is not one of the roles.
func ParseRole(field, s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	return "", kernel.Invalid(field, "must be one of owner, admin, member, viewer")
}

// Action is something an actor asks to do.
type Action string

// The actions this package decides.
const (
	WorkspaceRead     Action = "workspace.read"
	WorkspaceUpdate   Action = "workspace.update"
	WorkspaceDelete   Action = "workspace.delete"
	WorkspaceRestore  Action = "workspace.restore"
	WorkspaceTransfer Action = "workspace.transfer_ownership"
	MemberList        Action = "member.list"
	MemberChangeRole  Action = "member.change_role"
	MemberRemove      Action = "member.remove"
	MemberLeave       Action = "member.leave"
	AuditRead         Action = "audit.read"
	APIKeyManage      Action = "api_key.manage" // list, create and revoke the workspace's API keys
	InviteList        Action = "invite.list"
	InviteManage      Action = "invite.manage" // create, resend and revoke an invitation; Resource.Grant is its role
	TeamRead          Action = "team.read"     // list and read teams and their members
	TeamManage        Action = "team.manage"   // create, rename and delete teams; add and remove their members
	JobRead           Action = "job.read"      // read a background job's record
	JobCancel         Action = "job.cancel"
	WebhookRead       Action = "webhook.read"   // list endpoints, their deliveries and attempts
	WebhookManage     Action = "webhook.manage" // create, change, delete and test endpoints, rotate secrets, replay deliveries
	EventStream       Action = "event.stream"   // receive the workspace's events as they happen
	UsageRead         Action = "usage.read"     // read the workspace's usage against its plan's limits
	BillingRead       Action = "billing.read"   // read the subscription and the invoices
	BillingManage     Action = "billing.manage" // start a trial, check out, change, cancel and resume the subscription
)

// The names of the API-key scopes, as the API and the store write them.
const (
	ScopeRead  = "read"
	ScopeWrite = "write"
)

// Resource is what an action is asked about: a workspace, seen through the
// actor's own membership of it, and for member actions the member acted on.
type Resource struct {
	Workspace uuid.UUID
	// Role is the actor's role in Workspace, as the tenant middleware resolved
	// it; "" when the actor is not a member (an API key, an outsider).
	Role Role
	// Target is the membership a member.* action acts on.
	Target Target
	// Grant is the role member.change_role would give Target, or the role
	// of the invitation invite.manage acts on.
	Grant Role
}

// Target is a membership acted upon.
type Target struct {
	UserID uuid.UUID
	Role   Role
}

// byRole lists the actions each role may take on its own workspace, before
// the rules on targets that Can applies to member actions.
var byRole = map[Role]map[Action]bool{
	Owner: set(WorkspaceRead, WorkspaceUpdate, WorkspaceDelete, WorkspaceRestore, WorkspaceTransfer,
		MemberList, MemberChangeRole, MemberRemove, MemberLeave, AuditRead, APIKeyManage,
		InviteList, InviteManage, TeamRead, TeamManage, JobRead, JobCancel, WebhookRead, WebhookManage, EventStream, UsageRead,
		BillingRead, BillingManage),
	Admin: set(WorkspaceRead, WorkspaceUpdate, MemberList, MemberChangeRole, MemberRemove, MemberLeave, AuditRead,
		APIKeyManage, InviteList, InviteManage, TeamRead, TeamManage, JobRead, JobCancel, WebhookRead, WebhookManage, EventStream, UsageRead,
		BillingRead, BillingManage),
	Member: set(WorkspaceRead, MemberList, MemberLeave, TeamRead, JobRead, EventStream, UsageRead),
	Viewer: set(WorkspaceRead, MemberList, MemberLeave, TeamRead, JobRead, EventStream, UsageRead),
}

// Actions granted by each API-key scope; write includes read.
var (
	readActions  = set(WorkspaceRead, MemberList, AuditRead, InviteList, TeamRead, JobRead, WebhookRead, EventStream, UsageRead, BillingRead)
	writeActions = set(WorkspaceRead, MemberList, AuditRead, InviteList, TeamRead, JobRead, WebhookRead, EventStream, UsageRead, BillingRead,
		WorkspaceUpdate, JobCancel, WebhookManage)
)

// ParseScopes returns the set named by names (each "read" or "write"). It
// returns an invalid *kernel.Error naming field when a name is unknown or
// there is none.
func ParseScopes(field string, names []string) (kernel.Scopes, error) {
	var set kernel.Scopes
	for _, n := range names {
		switch n {
		case ScopeRead:
			set |= kernel.ScopeRead
		case ScopeWrite:
			set |= kernel.ScopeWrite
		default:
			return 0, kernel.Invalid(field, "must be read or write")
		}
	}
	if set == 0 {
		return 0, kernel.Invalid(field, "must name at least one of read, write")
	}
	return set, nil
}

// ScopeNames returns the names of set, read first.
func ScopeNames(set kernel.Scopes) []string {
	names := []string{}
	if set.Has(kernel.ScopeRead) {
		names = append(names, ScopeRead)
	}
	if set.Has(kernel.ScopeWrite) {
		names = append(names, ScopeWrite)
	}
	return names
}

// keyCan reports whether an API-key actor's scopes grant action.
func keyCan(actor kernel.Actor, action Action) bool {
	return (actor.Scopes.Has(kernel.ScopeRead) && readActions[action]) ||
		(actor.Scopes.Has(kernel.ScopeWrite) && writeActions[action])
}

func set(actions ...Action) map[Action]bool {
	m := make(map[Action]bool, len(actions))
	for _, a := range actions {
		m[a] = true
	}
	return m
}

// Can reports whether actor may take action on res.
//
// Beyond the role table: an admin may neither act on an owner nor make
// anyone an owner, nor invite an owner or touch an owner's invitation;
// member.leave and member.remove are for a target that is, and is not, the
// actor themself. Whether the last owner may leave or be
// demoted is not a permission but a rule of the workspace's state, which
// tenancy enforces (conflict).
func Can(actor kernel.Actor, action Action, res Resource) bool {
	switch actor.Kind {
	case kernel.ActorAPIKey:
		return res.Workspace != uuid.Nil && actor.WorkspaceID == res.Workspace && keyCan(actor, action)
	case kernel.ActorUser:
	default:
		return false
	}
	if !byRole[res.Role][action] {
		return false
	}
	self := res.Target.UserID == actor.ID
	switch action {
	case MemberLeave:
		return self
	case MemberRemove:
		return !self && (res.Role == Owner || res.Target.Role != Owner)
	case MemberChangeRole:
		if res.Grant == "" || res.Target.UserID == uuid.Nil {
			return false
		}
		return res.Role == Owner || (res.Target.Role != Owner && res.Grant != Owner)
	case InviteManage:
		return res.Grant != "" && (res.Role == Owner || res.Grant != Owner)
	}
	return true
}

// Check is Can as an error: nil when allowed, otherwise a forbidden
// *kernel.Error that names the action. Callers reach it only after the tenant
// middleware admitted the actor to the workspace, so saying "forbidden" (not
// "not found") reveals nothing an insider does not know.
func Check(actor kernel.Actor, action Action, res Resource) error {
	if Can(actor, action, res) {
		return nil
	}
	if actor.Kind == kernel.ActorAPIKey {
		return &kernel.Error{Code: kernel.CodeForbidden, Message: "this key's scopes do not allow " + string(action)}
	}
	return &kernel.Error{Code: kernel.CodeForbidden, Message: "your role does not allow " + string(action)}
}

type roleKey struct{}

type resolved struct {
	workspace uuid.UUID
	role      Role
}

// WithRole returns ctx carrying the actor's role in workspaceID, as resolved
// by the tenant middleware ("" for an actor admitted without a role, such as
// an API key).
func WithRole(ctx context.Context, workspaceID uuid.UUID, role Role) context.Context {
	return context.WithValue(ctx, roleKey{}, resolved{workspace: workspaceID, role: role})
}

// In returns the Resource for workspaceID as the actor of ctx sees it: with
// the role WithRole recorded for that same workspace, or no role otherwise.
func In(ctx context.Context, workspaceID uuid.UUID) Resource {
	r, _ := ctx.Value(roleKey{}).(resolved)
	res := Resource{Workspace: workspaceID}
	if r.workspace == workspaceID {
		res.Role = r.role
	}
	return res
}
