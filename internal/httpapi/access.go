package httpapi

import (
	"context"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// RoleReader reads a person's role in a workspace; tenancy.Service is one.
type RoleReader interface {
	RoleOf(ctx context.Context, workspaceID, userID uuid.UUID) (policy.Role, error)
}

// MemberAccess admits people to the workspaces they are members of, with
// their role, in one store read. It returns not_found, the same as for a
// workspace that does not exist, for a person who is not a member and for
// any actor that is not a person.
type MemberAccess struct {
	Members RoleReader
}

func (a MemberAccess) Authorize(ctx context.Context, actor kernel.Actor, workspaceID uuid.UUID) (policy.Role, error) {
	if actor.Kind != kernel.ActorUser {
		return "", kernel.NotFound("workspace")
	}
	role, err := a.Members.RoleOf(ctx, workspaceID, actor.ID)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return "", kernel.NotFound("workspace")
	}
	return role, err
}

// ActorAccess sends each kind of actor to its own WorkspaceAccess: Atrium
// wires people to MemberAccess and API keys to KeyBindingAccess. A kind with
// no entry reaches no workspace (not_found).
type ActorAccess map[kernel.ActorKind]WorkspaceAccess

func (a ActorAccess) Authorize(ctx context.Context, actor kernel.Actor, workspaceID uuid.UUID) (policy.Role, error) {
	access, ok := a[actor.Kind]
	if !ok {
		return "", kernel.NotFound("workspace")
	}
	return access.Authorize(ctx, actor, workspaceID)
}
