package tenancy

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity"
	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Membership is a person's place in a workspace.
type Membership struct {
	WorkspaceID uuid.UUID
	UserID      uuid.UUID
	Role        policy.Role
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Member is a membership as a member list shows it, with the person's name
// and email address.
type Member struct {
	Membership
	Email string
	Name  string
}

const (
	selectRoleSQL   = "SELECT role FROM membership WHERE workspace_id = $1 AND user_id = $2"
	selectMemberSQL = `SELECT m.workspace_id, m.user_id, m.role, m.created_at, m.updated_at, u.email, u.name
        FROM membership m JOIN app_user u ON u.id = m.user_id WHERE m.workspace_id = $1 AND m.user_id = $2`
	insertMembershipSQL = `INSERT INTO membership (workspace_id, user_id, role, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5)`
	updateRoleSQL   = "UPDATE membership SET role = $3, updated_at = $4 WHERE workspace_id = $1 AND user_id = $2"
	deleteMemberSQL = "DELETE FROM membership WHERE workspace_id = $1 AND user_id = $2"
	countOwnersSQL  = "SELECT count(*) FROM membership WHERE workspace_id = $1 AND role = 'owner'"
	// Members by user ID, served by the primary key. Names and addresses are
	// identity's: ListMembers asks it for the page's profiles in one batch.
	listMembersFirstSQL = `SELECT workspace_id, user_id, role, created_at, updated_at FROM membership
        WHERE workspace_id = $1 ORDER BY user_id LIMIT $2`
	listMembersAfterSQL = `SELECT workspace_id, user_id, role, created_at, updated_at FROM membership
        WHERE workspace_id = $1 AND user_id > $3 ORDER BY user_id LIMIT $2`
)

// RoleOf returns userID's role in workspaceID in one tenant-bound read, or
// none when the auth cache holds it: the tenant middleware's membership
// check. It returns not_found, worded as for a missing workspace, when the
// workspace does not exist or the person is not a member, or the store's
// error; neither is cached.
func (s *Service) RoleOf(ctx context.Context, workspaceID, userID uuid.UUID) (policy.Role, error) {
	key := "role/" + workspaceID.String() + "/" + userID.String()
	ticket, cached := s.cache.Begin(ctx)
	if cached {
		if v, ok := s.cache.Get(key); ok {
			return v.(policy.Role), nil
		}
	}
	var role string
	err := s.db.WorkspaceRow(ctx, workspaceID, selectRoleSQL, workspaceID, userID).Scan(&role)
	if err == nil && cached {
		s.cache.Put(ticket, key, policy.Role(role), time.Time{},
			authcache.MemberTag(workspaceID, userID), authcache.UserTag(userID))
	}
	return policy.Role(role), notFoundAs("workspace", err)
}

// AddMember makes userID a member of the workspace with role, audited as
// member.added. It decides no permission: its callers (invite acceptance,
// provisioning, tests) have. It returns workspace_inactive for a deleted
// workspace, conflict when the person is already a member or has no account,
// and not_found for an unknown workspace.
func (s *Service) AddMember(ctx context.Context, workspaceID, userID uuid.UUID, role policy.Role) (Membership, error) {
	if _, err := policy.ParseRole("role", string(role)); err != nil {
		return Membership{}, err
	}
	m := Membership{WorkspaceID: workspaceID, UserID: userID, Role: role}
	err := s.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		if _, err := lockActive(ctx, tx, workspaceID); err != nil {
			return err
		}
		m.CreatedAt, m.UpdatedAt = tx.Now(), tx.Now()
		if err := insertMembership(ctx, tx, m); err != nil {
			return err
		}
		return record(ctx, tx, "member.added", EventMemberJoined, memberTarget(userID), map[string]any{"role": role}, memberJoinedEvent(m, uuid.Nil))
	})
	return m, notFoundAs("workspace", err)
}

// ListMembers returns up to limit members of the workspace after the user ID
// after (uuid.Nil for the first page), if the actor may list them
// (policy.MemberList on res), with their names and addresses from identity.
// It returns forbidden when the actor may not, or the store's error.
func (s *Service) ListMembers(ctx context.Context, res policy.Resource, after uuid.UUID, limit int) ([]Member, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.MemberList, res); err != nil {
		return nil, err
	}
	var memberships []Membership
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == uuid.Nil {
			rows, err = tx.Query(ctx, listMembersFirstSQL, res.Workspace, limit)
		} else {
			rows, err = tx.Query(ctx, listMembersAfterSQL, res.Workspace, limit, after)
		}
		if err != nil {
			return err
		}
		memberships, err = store.Collect(rows, func(row store.Row) (Membership, error) { return scanMembership(row) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: list members: %w", err)
	}
	return s.withProfiles(ctx, memberships)
}

// withProfiles adds each member's name and address from identity (see
// profilesOf). A member whose account is gone keeps empty fields. It returns
// identity's error.
func (s *Service) withProfiles(ctx context.Context, memberships []Membership) ([]Member, error) {
	ids := make([]uuid.UUID, len(memberships))
	for i, m := range memberships {
		ids[i] = m.UserID
	}
	profiles, err := s.profilesOf(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("tenancy: list members: %w", err)
	}
	out := make([]Member, len(memberships))
	for i, m := range memberships {
		p := profiles[m.UserID]
		out[i] = Member{Membership: m, Email: p.Email, Name: p.Name}
	}
	return out, nil
}

// profilesOf asks identity for the profiles of ids in batches of
// identity.MaxLookup: one for a page, two when the caller fetched one extra
// row to learn whether another page follows. Tenancy never reads identity's
// tables itself. It returns identity's error.
func (s *Service) profilesOf(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]identity.Profile, error) {
	if s.users == nil {
		return nil, kernel.Internal(fmt.Errorf("tenancy: member lists need a UserReader"))
	}
	out := make(map[uuid.UUID]identity.Profile, len(ids))
	for start := 0; start < len(ids); start += identity.MaxLookup {
		profiles, err := s.users.Profiles(ctx, ids[start:min(start+identity.MaxLookup, len(ids))])
		if err != nil {
			return nil, err
		}
		maps.Copy(out, profiles)
	}
	return out, nil
}

// memberChange is one change to a membership, run by changeMember.
type memberChange func(tx store.Tx, target Member) error

// changeMember runs change in a workspace transaction after the checks every
// membership change shares, in this order: the workspace exists (not_found)
// and is locked; the target is a member (not_found "member"); the actor may
// take action on that target with grant (forbidden); the workspace is not
// deleted (workspace_inactive).
func (s *Service) changeMember(ctx context.Context, res policy.Resource, action policy.Action, userID uuid.UUID, grant policy.Role, change memberChange) error {
	err := s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		ws, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], res.Workspace))
		if err != nil {
			return notFoundAs("workspace", err)
		}
		var target Member
		target.Membership, err = scanMembership(tx.QueryRow(ctx, selectMemberSQL, res.Workspace, userID), &target.Email, &target.Name)
		if err != nil {
			return notFoundAs("member", err)
		}
		res.Target, res.Grant = policy.Target{UserID: target.UserID, Role: target.Role}, grant
		if err := policy.Check(kernel.ActorFrom(ctx), action, res); err != nil {
			return err
		}
		if !ws.Active() {
			return errInactive()
		}
		return change(tx, target)
	})
	return err
}

// ChangeRole gives userID the role in the workspace. It returns forbidden
// unless the actor may (policy.MemberChangeRole: an admin may not touch an
// owner or make one), conflict when it would leave the workspace without an
// owner, workspace_inactive for a deleted workspace, and not_found for a
// person who is not a member.
func (s *Service) ChangeRole(ctx context.Context, res policy.Resource, userID uuid.UUID, role policy.Role) (Member, error) {
	defer s.forgetUser(userID)
	if _, err := policy.ParseRole("role", string(role)); err != nil {
		return Member{}, err
	}
	var m Member
	err := s.changeMember(ctx, res, policy.MemberChangeRole, userID, role, func(tx store.Tx, target Member) error {
		m = target
		if target.Role == role {
			return nil
		}
		if target.Role == policy.Owner {
			if err := keepAnOwner(ctx, tx, res.Workspace, "demote"); err != nil {
				return err
			}
		}
		m.Role, m.UpdatedAt = role, tx.Now()
		if err := setRole(ctx, tx, m.Membership); err != nil {
			return err
		}
		return record(ctx, tx, "member.role_changed", EventMemberRoleChanged, memberTarget(userID),
			map[string]any{"from": target.Role, "to": role}, memberRoleChangedEvent(m.Membership, string(target.Role)))
	})
	return m, err
}

// RemoveMember ends userID's membership: the actor leaving when userID is
// their own ID (policy.MemberLeave), or removing someone else
// (policy.MemberRemove). It returns forbidden unless the actor may, conflict
// when the last owner would go, workspace_inactive for a deleted workspace,
// and not_found for a person who is not a member.
func (s *Service) RemoveMember(ctx context.Context, res policy.Resource, userID uuid.UUID) error {
	defer s.forgetUser(userID)
	action, verb, event := policy.MemberRemove, "member.removed", EventMemberRemoved
	if actor := kernel.ActorFrom(ctx); actor.Kind == kernel.ActorUser && actor.ID == userID {
		action, verb, event = policy.MemberLeave, "member.left", EventMemberLeft
	}
	return s.changeMember(ctx, res, action, userID, "", func(tx store.Tx, target Member) error {
		if target.Role == policy.Owner {
			if err := keepAnOwner(ctx, tx, res.Workspace, "remove"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, deleteMemberSQL, res.Workspace, userID); err != nil {
			return err
		}
		return record(ctx, tx, verb, event, memberTarget(userID), map[string]any{"role": target.Role}, memberEvent(target.Membership))
	})
}

// TransferOwnership makes userID an owner and the acting owner an admin. It
// returns forbidden unless the actor may (policy.WorkspaceTransfer: owners),
// invalid naming user_id when userID is the actor, workspace_inactive for a
// deleted workspace, and not_found for a person who is not a member.
func (s *Service) TransferOwnership(ctx context.Context, res policy.Resource, userID uuid.UUID) error {
	defer s.forgetUser(userID)
	defer s.forgetUser(kernel.ActorFrom(ctx).ID)
	actor := kernel.ActorFrom(ctx)
	if actor.ID == userID {
		return kernel.Invalid("user_id", "is you: name the member who becomes the owner")
	}
	return s.changeMember(ctx, res, policy.WorkspaceTransfer, userID, policy.Owner, func(tx store.Tx, _ Member) error {
		now := tx.Now()
		if err := setRole(ctx, tx, Membership{WorkspaceID: res.Workspace, UserID: userID, Role: policy.Owner, UpdatedAt: now}); err != nil {
			return err
		}
		if err := setRole(ctx, tx, Membership{WorkspaceID: res.Workspace, UserID: actor.ID, Role: policy.Admin, UpdatedAt: now}); err != nil {
			return err
		}
		return record(ctx, tx, "workspace.ownership_transferred", EventWorkspaceOwnershipTransferred, workspaceTarget(res.Workspace),
			map[string]any{"from": kernel.FormatID(kernel.PrefixUser, actor.ID), "to": kernel.FormatID(kernel.PrefixUser, userID)},
			ownershipTransferredEvent(res.Workspace, actor.ID, userID))
	})
}

// keepAnOwner returns conflict when the workspace has one owner left, whom
// the caller is about to demote or remove.
func keepAnOwner(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, verb string) error {
	var owners int
	if err := tx.QueryRow(ctx, countOwnersSQL, workspaceID).Scan(&owners); err != nil {
		return err
	}
	if owners <= 1 {
		return kernel.Errorf(kernel.CodeConflict, "cannot %s the last owner: make another member an owner first, or delete the workspace", verb)
	}
	return nil
}

// insertMembership is the one statement every new membership passes through:
// a workspace's creator (CreateOwned), AddMember and accepted invitations
// (acceptIn), always inside a transaction holding the workspace's lock.
//
// Seat limit (issue 5): enforce the plan's seat limit here, counting the
// workspace's memberships under that same lock, so that no path, and no two
// racing accepts, can exceed it.
func insertMembership(ctx context.Context, tx store.Tx, m Membership) error {
	_, err := tx.Exec(ctx, insertMembershipSQL, m.WorkspaceID, m.UserID, string(m.Role), m.CreatedAt, m.UpdatedAt)
	if kernel.IsCode(err, kernel.CodeConflict) {
		return &kernel.Error{Code: kernel.CodeConflict, Message: "already a member, or no such account", Err: err}
	}
	return err
}

func setRole(ctx context.Context, tx store.Tx, m Membership) error {
	_, err := tx.Exec(ctx, updateRoleSQL, m.WorkspaceID, m.UserID, string(m.Role), m.UpdatedAt)
	return err
}

// scanMembership reads a membership's columns, then extra, in UTC.
func scanMembership(row store.Row, extra ...any) (Membership, error) {
	var m Membership
	var role string
	err := row.Scan(append([]any{&m.WorkspaceID, &m.UserID, &role, &m.CreatedAt, &m.UpdatedAt}, extra...)...)
	m.Role, m.CreatedAt, m.UpdatedAt = policy.Role(role), m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m, err
}

func memberTarget(userID uuid.UUID) audit.Entry {
	return audit.Entry{TargetType: "member", TargetID: kernel.FormatID(kernel.PrefixUser, userID)}
}
