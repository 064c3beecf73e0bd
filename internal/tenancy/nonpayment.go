package tenancy

import (
	"context"

	"atrium/internal/store"
)

// NonPaymentHold is how billing's dunning takes a workspace out of use and
// gives it back (billing.WorkspaceHold): the same soft delete and restore as
// an owner's, audited and announced the same way, with the reason in the
// audit entry. It runs inside billing's workspace transaction.
type NonPaymentHold struct{}

// DeleteForNonPayment soft-deletes the workspace of tx: it keeps answering
// reads, refuses writes, and is deleted for good after RestoreWindow unless
// restored. A workspace deleted already is left as it is.
func (NonPaymentHold) DeleteForNonPayment(ctx context.Context, tx store.Tx) error {
	ws, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], tx.WorkspaceID()))
	if err != nil || !ws.Active() {
		return err
	}
	now := tx.Now()
	ws.DeletedAt, ws.UpdatedAt = &now, now
	if err := setDeletedAt(ctx, tx, ws); err != nil {
		return err
	}
	return record(ctx, tx, "workspace.deleted", EventWorkspaceDeleted, workspaceTarget(ws.ID),
		map[string]any{"restorable_until": ws.RestorableUntil(), "reason": "non_payment"}, workspaceDeletedEvent(ws))
}

// RestoreAfterPayment restores the workspace of tx if it is deleted and
// still restorable; otherwise it does nothing.
func (NonPaymentHold) RestoreAfterPayment(ctx context.Context, tx store.Tx) error {
	ws, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], tx.WorkspaceID()))
	if err != nil || ws.Active() || !tx.Now().Before(ws.RestorableUntil()) {
		return err
	}
	ws.DeletedAt, ws.UpdatedAt = nil, tx.Now()
	if err := setDeletedAt(ctx, tx, ws); err != nil {
		return err
	}
	return record(ctx, tx, "workspace.restored", EventWorkspaceRestored, workspaceTarget(ws.ID),
		map[string]any{"reason": "payment"}, workspaceEvent(ws))
}
