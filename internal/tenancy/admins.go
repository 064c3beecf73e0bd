package tenancy

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/store"
)

// listAdminsSQL lists who runs a workspace, served by the membership
// primary key; owners and admins are a handful at most, so one page does.
const listAdminsSQL = `SELECT workspace_id, user_id, role, created_at, updated_at FROM membership
    WHERE workspace_id = $1 AND role IN ('owner', 'admin') ORDER BY user_id LIMIT 500`

// Admins returns the workspace and its owners and admins with their names
// and addresses from identity, for notices that background work sends (a
// webhook endpoint disabled, say). It checks no permission: it is for
// Atrium's own jobs, never for a request's caller. It returns not_found for
// an unknown workspace, identity's error, or the store's.
func (s *Service) Admins(ctx context.Context, workspaceID uuid.UUID) (Workspace, []Member, error) {
	var ws Workspace
	var memberships []Membership
	err := s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		var err error
		if ws, err = scanWorkspace(tx.QueryRow(ctx, selectWorkspace, workspaceID)); err != nil {
			return notFoundAs("workspace", err)
		}
		rows, err := tx.Query(ctx, listAdminsSQL, workspaceID)
		if err != nil {
			return err
		}
		memberships, err = store.Collect(rows, func(row store.Row) (Membership, error) { return scanMembership(row) })
		return err
	})
	if err != nil {
		return Workspace{}, nil, fmt.Errorf("tenancy: admins of %s: %w", workspaceID, err)
	}
	members, err := s.withProfiles(ctx, memberships)
	if err != nil {
		return Workspace{}, nil, err
	}
	return ws, members, nil
}
