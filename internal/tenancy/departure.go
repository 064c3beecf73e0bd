package tenancy

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Joined is one of a person's memberships with its workspace, as their data
// export and their departure see it.
type Joined struct {
	Workspace Workspace
	Role      policy.Role
	JoinedAt  time.Time
}

const (
	// A person's memberships, deleted workspaces included, read through the
	// user-bound transaction and served by the membership_user index. A
	// person belongs to few workspaces; the limit only bounds the read.
	listJoinedSQL = `SELECT w.id, w.slug, w.name, w.created_at, w.updated_at, w.deleted_at, m.role, m.created_at
        FROM membership m JOIN workspace w ON w.id = m.workspace_id
        WHERE m.user_id = $1 ORDER BY m.workspace_id LIMIT 10000`
	countMembersSQL = "SELECT count(*) FROM membership WHERE workspace_id = $1"
)

// departureReason is recorded on what an account's deletion does to
// workspaces, so that their logs tell it from an ordinary removal.
const departureReason = "account_deleted"

// Memberships returns every workspace userID belongs to, with their role and
// when they joined, by workspace ID. It reads through the store's user-bound
// transaction, never the system path. It returns the store's error.
func (s *Service) Memberships(ctx context.Context, userID uuid.UUID) ([]Joined, error) {
	var out []Joined
	err := s.db.ReadAsUser(ctx, userID, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, listJoinedSQL, userID)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (Joined, error) {
			var j Joined
			var role string
			var err error
			j.Workspace, err = scanWorkspace(row, &role, &j.JoinedAt)
			j.Role, j.JoinedAt = policy.Role(role), j.JoinedAt.UTC()
			return j, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: memberships: %w", err)
	}
	return out, nil
}

// SoleOwnerConflicts returns the active workspaces userID would leave
// without an owner: those where they are the only owner and other people
// are members. Such a workspace must be handed over (ownership transfer) or
// deleted before its owner's account can go. A deleted workspace is never a
// conflict: it takes no transfer and the scheduler removes it anyway. It
// returns the store's error.
func (s *Service) SoleOwnerConflicts(ctx context.Context, userID uuid.UUID) ([]Workspace, error) {
	joined, err := s.Memberships(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []Workspace
	for _, j := range joined {
		if j.Role != policy.Owner || !j.Workspace.Active() {
			continue
		}
		var owners, members int
		err := s.db.ReadWorkspace(ctx, j.Workspace.ID, func(tx store.Tx) error {
			return headcount(ctx, tx, j.Workspace.ID, &owners, &members)
		})
		if err != nil {
			return nil, fmt.Errorf("tenancy: sole owner check: %w", err)
		}
		if owners == 1 && members > 1 {
			out = append(out, j.Workspace)
		}
	}
	return out, nil
}

// LeaveAll ends every membership of userID, whose account is being deleted,
// one workspace transaction at a time, and returns how many it ended. A
// workspace where they are the only member is soft-deleted first
// (workspace.deleted, with reason account_deleted): with its last member
// gone nobody can restore it, so it waits out RestoreWindow for the
// scheduler's hard delete, restorable only by an operator through the system
// path. Each removal is audited in its workspace as member.removed with
// reason account_deleted.
//
// A membership already gone is skipped, so an interrupted LeaveAll can be
// run again. It returns conflict, having left the workspaces before it, if
// the person became the sole owner of an active workspace with other members
// since SoleOwnerConflicts was asked; or the store's error.
func (s *Service) LeaveAll(ctx context.Context, userID uuid.UUID) (int, error) {
	defer s.forgetUser(userID)
	joined, err := s.Memberships(ctx, userID)
	if err != nil {
		return 0, err
	}
	left := 0
	for _, j := range joined {
		err := s.db.InWorkspace(ctx, j.Workspace.ID, func(tx store.Tx) error {
			return leave(ctx, tx, j.Workspace.ID, userID)
		})
		if kernel.IsCode(err, kernel.CodeNotFound) {
			continue // the workspace or the membership went meanwhile
		}
		if err != nil {
			return left, fmt.Errorf("tenancy: leave %s: %w", kernel.FormatID(kernel.PrefixWorkspace, j.Workspace.ID), err)
		}
		left++
	}
	return left, nil
}

// leave ends userID's membership of workspaceID inside tx, soft-deleting the
// workspace when they are its only member. It returns not_found when the
// workspace or the membership is gone, conflict when they are the only owner
// of an active workspace with other members, or the store's error.
func leave(ctx context.Context, tx store.Tx, workspaceID, userID uuid.UUID) error {
	ws, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], workspaceID))
	if err != nil {
		return err
	}
	var target Member
	target.Membership, err = scanMembership(tx.QueryRow(ctx, selectMemberSQL, workspaceID, userID), &target.Email, &target.Name)
	if err != nil {
		return err
	}
	var owners, members int
	if err := headcount(ctx, tx, workspaceID, &owners, &members); err != nil {
		return err
	}
	switch {
	case members == 1 && ws.Active():
		now := tx.Now()
		ws.DeletedAt, ws.UpdatedAt = &now, now
		if err := setDeletedAt(ctx, tx, ws); err != nil {
			return err
		}
		err := record(ctx, tx, "workspace.deleted", EventWorkspaceDeleted, workspaceTarget(ws.ID),
			map[string]any{"restorable_until": ws.RestorableUntil(), "reason": departureReason}, workspaceDeletedEvent(ws))
		if err != nil {
			return err
		}
	case target.Role == policy.Owner && owners == 1 && members > 1 && ws.Active():
		return kernel.Errorf(kernel.CodeConflict, "you are the only owner of %q (%s): transfer ownership or delete it first",
			ws.Name, kernel.FormatID(kernel.PrefixWorkspace, ws.ID))
	}
	if _, err := tx.Exec(ctx, deleteMemberSQL, workspaceID, userID); err != nil {
		return err
	}
	return record(ctx, tx, "member.removed", EventMemberRemoved, memberTarget(userID),
		map[string]any{"role": target.Role, "reason": departureReason}, memberEvent(target.Membership))
}

// headcount reads the workspace's number of owners and of members.
func headcount(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, owners, members *int) error {
	if err := tx.QueryRow(ctx, countOwnersSQL, workspaceID).Scan(owners); err != nil {
		return err
	}
	return tx.QueryRow(ctx, countMembersSQL, workspaceID).Scan(members)
}
