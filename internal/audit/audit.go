// Package audit records who did what to which thing, in the same transaction as
// the change itself. The table refuses UPDATE and DELETE on both dialects.
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Entry is one audited action. Actor, client and request ID come from ctx unless
// set here; the workspace comes from the transaction (none for platform actions).
type Entry struct {
	Action     string // verb-shaped, dotted: "workspace.renamed", "member.removed"
	TargetType string // "workspace", "member", "api_key"
	TargetID   string // the API form of the target's ID
	Metadata   map[string]any
	// Actor overrides the actor in ctx (a job acting for a user, say).
	Actor *kernel.Actor
}

// Record appends e inside tx and returns the new entry's ID. It returns an
// invalid *kernel.Error when Action or TargetType is empty.
func Record(ctx context.Context, tx store.Tx, e Entry) (uuid.UUID, error) {
	if e.Action == "" || e.TargetType == "" {
		return uuid.Nil, kernel.Internal(fmt.Errorf("audit: entry needs an action and a target type"))
	}
	actor := kernel.ActorFrom(ctx)
	if e.Actor != nil {
		actor = *e.Actor
	}
	meta := e.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return uuid.Nil, kernel.Internal(fmt.Errorf("audit: metadata: %w", err))
	}
	var workspaceID *uuid.UUID
	if ws := tx.WorkspaceID(); ws != uuid.Nil {
		workspaceID = &ws
	}
	client := kernel.ClientFrom(ctx)
	id := kernel.NewID()
	_, err = tx.Exec(ctx, `INSERT INTO audit_log
        (id, workspace_id, actor_type, actor_id, action, target_type, target_id, metadata, ip, user_agent, request_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		id, workspaceID, actorType(actor), actorID(actor), e.Action, e.TargetType, e.TargetID,
		string(metaJSON), client.IP, client.UserAgent, kernel.RequestID(ctx), tx.Now())
	if err != nil {
		return uuid.Nil, fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return id, nil
}

func actorType(a kernel.Actor) string {
	if a.Kind == kernel.ActorAnonymous {
		return "anonymous"
	}
	return string(a.Kind)
}

func actorID(a kernel.Actor) string {
	switch a.Kind {
	case kernel.ActorUser:
		return kernel.FormatID(kernel.PrefixUser, a.ID)
	case kernel.ActorAPIKey:
		return kernel.FormatID(kernel.PrefixAPIKey, a.ID)
	}
	return ""
}
