package tenancy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// RestoreWindow is how long a deleted workspace can be restored. After it the
// scheduler's workspace.hard_delete task (PurgeDeleted) deletes the workspace for good.
const RestoreWindow = 30 * 24 * time.Hour

// MyWorkspace is a workspace in a person's list, with their role there.
type MyWorkspace struct {
	Workspace
	Role policy.Role
}

// CreateOwned makes a workspace whose first member, and owner, is ownerID,
// all in one transaction with its audit entry and event. It returns
// email_unverified when the person has not verified their email address,
// invalid for a bad name or slug, and conflict naming slug when it is taken.
func (s *Service) CreateOwned(ctx context.Context, ownerID uuid.UUID, name, slug string) (Workspace, error) {
	if s.users == nil {
		return Workspace{}, kernel.Internal(errors.New("tenancy: CreateOwned needs a UserReader"))
	}
	u, err := s.users.User(ctx, ownerID)
	if err != nil {
		return Workspace{}, fmt.Errorf("tenancy: create: owner: %w", err)
	}
	if !u.EmailVerified() {
		return Workspace{}, &kernel.Error{Code: kernel.CodeEmailUnverified, Message: "verify your email address before creating a workspace"}
	}
	return s.create(ctx, name, slug, func(tx store.Tx, ws Workspace) error {
		return insertMembership(ctx, tx, Membership{WorkspaceID: ws.ID, UserID: ownerID, Role: policy.Owner,
			CreatedAt: tx.Now(), UpdatedAt: tx.Now()})
	})
}

// Delete soft-deletes the workspace: it keeps answering reads, refuses
// writes with workspace_inactive, and can be restored for RestoreWindow. It
// returns forbidden unless the actor may (policy.WorkspaceDelete: owners),
// reauthentication_required unless the actor is a session that
// authenticated recently (policy.RequireRecentAuth), workspace_inactive when
// it is already deleted and not_found for an unknown workspace.
func (s *Service) Delete(ctx context.Context, res policy.Resource) (Workspace, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WorkspaceDelete, res); err != nil {
		return Workspace{}, err
	}
	var ws Workspace
	err := s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if err := policy.RequireRecentAuth(kernel.ActorFrom(ctx), tx.Now()); err != nil {
			return err
		}
		var err error
		if ws, err = lockActive(ctx, tx, res.Workspace); err != nil {
			return err
		}
		now := tx.Now()
		ws.DeletedAt, ws.UpdatedAt = &now, now
		if err := setDeletedAt(ctx, tx, ws); err != nil {
			return err
		}
		return record(ctx, tx, "workspace.deleted", EventWorkspaceDeleted, workspaceTarget(ws.ID),
			map[string]any{"restorable_until": ws.RestorableUntil()}, workspaceDeletedEvent(ws))
	})
	return ws, notFoundAs("workspace", err)
}

// Restore undoes Delete within RestoreWindow. It returns forbidden unless the
// actor may (policy.WorkspaceRestore: owners), conflict when the workspace is
// not deleted or its window has passed, and not_found for an unknown one.
func (s *Service) Restore(ctx context.Context, res policy.Resource) (Workspace, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WorkspaceRestore, res); err != nil {
		return Workspace{}, err
	}
	var ws Workspace
	err := s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var err error
		if ws, err = scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], res.Workspace)); err != nil {
			return err
		}
		switch {
		case ws.Active():
			return kernel.Errorf(kernel.CodeConflict, "the workspace is not deleted")
		case !tx.Now().Before(ws.RestorableUntil()):
			return kernel.Errorf(kernel.CodeConflict, "the workspace can no longer be restored: its %d-day window has passed", int(RestoreWindow.Hours()/24))
		}
		ws.DeletedAt, ws.UpdatedAt = nil, tx.Now()
		if err := setDeletedAt(ctx, tx, ws); err != nil {
			return err
		}
		return record(ctx, tx, "workspace.restored", EventWorkspaceRestored, workspaceTarget(ws.ID), nil, workspaceEvent(ws))
	})
	return ws, notFoundAs("workspace", err)
}

func setDeletedAt(ctx context.Context, tx store.Tx, ws Workspace) error {
	_, err := tx.Exec(ctx, "UPDATE workspace SET deleted_at = $2, updated_at = $3 WHERE id = $1", ws.ID, ws.DeletedAt, ws.UpdatedAt)
	return err
}

// "My workspaces", by workspace ID (so, creation order), served by the
// membership_user index. The statement filters on user_id; on PostgreSQL the
// ReadAsUser transaction's policies show no other rows even without it.
const (
	listMineFirstSQL = `SELECT w.id, w.slug, w.name, w.created_at, w.updated_at, w.deleted_at, m.role
        FROM membership m JOIN workspace w ON w.id = m.workspace_id
        WHERE m.user_id = $1 ORDER BY m.workspace_id LIMIT $2`
	listMineAfterSQL = `SELECT w.id, w.slug, w.name, w.created_at, w.updated_at, w.deleted_at, m.role
        FROM membership m JOIN workspace w ON w.id = m.workspace_id
        WHERE m.user_id = $1 AND m.workspace_id > $3 ORDER BY m.workspace_id LIMIT $2`
	// A token confined to one workspace lists that one alone.
	listMineInSQL = `SELECT w.id, w.slug, w.name, w.created_at, w.updated_at, w.deleted_at, m.role
        FROM membership m JOIN workspace w ON w.id = m.workspace_id
        WHERE m.user_id = $1 AND m.workspace_id = $2 AND m.workspace_id > $3`
)

// ListMine returns up to limit of userID's workspaces (deleted ones too, so
// that an owner can find and restore them), after the workspace ID after
// (uuid.Nil for the first page). It reads through the store's user-bound
// transaction, never the system path. It returns the store's error on failure.
func (s *Service) ListMine(ctx context.Context, userID, after uuid.UUID, limit int) ([]MyWorkspace, error) {
	if after == uuid.Nil {
		return s.listMine(ctx, userID, listMineFirstSQL, userID, limit)
	}
	return s.listMine(ctx, userID, listMineAfterSQL, userID, limit, after)
}

// ListMineIn is ListMine for a person acting through a token confined to
// workspaceID: the list holds that workspace alone, if they are a member of
// it and it comes after the workspace ID after (uuid.Nil for the first page).
// It returns the store's error on failure.
func (s *Service) ListMineIn(ctx context.Context, userID, workspaceID, after uuid.UUID) ([]MyWorkspace, error) {
	return s.listMine(ctx, userID, listMineInSQL, userID, workspaceID, after)
}

// listMine runs a "my workspaces" statement in userID's read transaction.
func (s *Service) listMine(ctx context.Context, userID uuid.UUID, query string, args ...any) ([]MyWorkspace, error) {
	var out []MyWorkspace
	err := s.db.ReadAsUser(ctx, userID, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (MyWorkspace, error) {
			var role string
			ws, err := scanWorkspace(row, &role)
			return MyWorkspace{Workspace: ws, Role: policy.Role(role)}, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: list workspaces: %w", err)
	}
	return out, nil
}
