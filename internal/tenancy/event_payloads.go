package tenancy

import (
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// The event types tenancy emits. Each is documented, with its payload, in
// the event catalogue (internal/events/catalog); the outbox refuses a type
// that is not. Audit actions keep their own names: an invitation is audited
// as invite.created but announced as member.invited.
const (
	EventWorkspaceCreated              = "workspace.created"
	EventWorkspaceUpdated              = "workspace.updated"
	EventWorkspaceDeleted              = "workspace.deleted"
	EventWorkspaceRestored             = "workspace.restored"
	EventWorkspaceOwnershipTransferred = "workspace.ownership_transferred"
	EventMemberInvited                 = "member.invited"
	EventInviteResent                  = "invite.resent"
	EventInviteRevoked                 = "invite.revoked"
	EventInviteAccepted                = "invite.accepted"
	EventMemberJoined                  = "member.joined"
	EventMemberRoleChanged             = "member.role_changed"
	EventMemberRemoved                 = "member.removed"
	EventMemberLeft                    = "member.left"
	EventTeamCreated                   = "team.created"
	EventTeamUpdated                   = "team.updated"
	EventTeamDeleted                   = "team.deleted"
	EventTeamMemberAdded               = "team.member_added"
	EventTeamMemberRemoved             = "team.member_removed"
)

// WorkspaceEvent is the data of workspace.created, workspace.updated and
// workspace.restored: the workspace after the change.
type WorkspaceEvent struct {
	ID   string `json:"id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Slug string `json:"slug" example:"acme" doc:"The workspace's unique slug"`
	Name string `json:"name" example:"Acme" doc:"The workspace's display name"`
}

func workspaceEvent(ws Workspace) WorkspaceEvent {
	return WorkspaceEvent{ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: ws.Slug, Name: ws.Name}
}

// WorkspaceDeletedEvent is the data of workspace.deleted: the workspace, and
// until when its owners may restore it before it is erased.
type WorkspaceDeletedEvent struct {
	ID              string    `json:"id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Slug            string    `json:"slug" example:"acme" doc:"The workspace's unique slug"`
	Name            string    `json:"name" example:"Acme" doc:"The workspace's display name"`
	RestorableUntil time.Time `json:"restorable_until" doc:"Until when an owner may restore the workspace"`
}

func workspaceDeletedEvent(ws Workspace) WorkspaceDeletedEvent {
	return WorkspaceDeletedEvent{ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: ws.Slug, Name: ws.Name,
		RestorableUntil: ws.RestorableUntil()}
}

// OwnershipTransferredEvent is the data of workspace.ownership_transferred:
// From, the owner who handed the workspace over, is an admin now.
type OwnershipTransferredEvent struct {
	WorkspaceID string `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	From        string `json:"from" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The previous owner, now an admin"`
	To          string `json:"to" example:"usr_01h455vb4pex5vsknk084sn02r" doc:"The new owner"`
}

func ownershipTransferredEvent(workspaceID, from, to uuid.UUID) OwnershipTransferredEvent {
	return OwnershipTransferredEvent{WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, workspaceID),
		From: kernel.FormatID(kernel.PrefixUser, from), To: kernel.FormatID(kernel.PrefixUser, to)}
}

// InviteEvent is the data of member.invited, invite.resent, invite.revoked
// and invite.accepted: the invitation after the change. It never carries the
// invitation's token.
type InviteEvent struct {
	ID          string    `json:"id" example:"inv_01h455vb4pex5vsknk084sn02q" doc:"Invitation ID"`
	WorkspaceID string    `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Email       string    `json:"email" example:"ada@example.com" doc:"The address invited"`
	Role        string    `json:"role" enum:"owner,admin,member,viewer" doc:"The role the invitation grants"`
	Status      string    `json:"status" enum:"pending,accepted,revoked,expired" doc:"The invitation's state after the change"`
	ExpiresAt   time.Time `json:"expires_at" doc:"When the invitation stops working unless resent"`
}

func inviteEvent(inv Invite) InviteEvent {
	return InviteEvent{ID: kernel.FormatID(kernel.PrefixInvite, inv.ID), WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, inv.WorkspaceID),
		Email: inv.Email, Role: string(inv.Role), Status: inv.Status, ExpiresAt: inv.ExpiresAt}
}

// MemberEvent is the data of member.removed and member.left: the membership
// as it was.
type MemberEvent struct {
	WorkspaceID string `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	UserID      string `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The person"`
	Role        string `json:"role" enum:"owner,admin,member,viewer" doc:"The person's role in the workspace"`
}

func memberEvent(m Membership) MemberEvent {
	return MemberEvent{WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, m.WorkspaceID),
		UserID: kernel.FormatID(kernel.PrefixUser, m.UserID), Role: string(m.Role)}
}

// MemberJoinedEvent is the data of member.joined: a person became a member,
// through an invitation (InviteID) or added directly (provisioning).
type MemberJoinedEvent struct {
	WorkspaceID string `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	UserID      string `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The new member"`
	Role        string `json:"role" enum:"owner,admin,member,viewer" doc:"The new member's role"`
	InviteID    string `json:"invite_id,omitempty" example:"inv_01h455vb4pex5vsknk084sn02q" doc:"The invitation accepted, when the person joined through one"`
}

func memberJoinedEvent(m Membership, inviteID uuid.UUID) MemberJoinedEvent {
	e := MemberJoinedEvent{WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, m.WorkspaceID),
		UserID: kernel.FormatID(kernel.PrefixUser, m.UserID), Role: string(m.Role)}
	if inviteID != uuid.Nil {
		e.InviteID = kernel.FormatID(kernel.PrefixInvite, inviteID)
	}
	return e
}

// MemberRoleChangedEvent is the data of member.role_changed.
type MemberRoleChangedEvent struct {
	WorkspaceID  string `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	UserID       string `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The member"`
	Role         string `json:"role" enum:"owner,admin,member,viewer" doc:"The member's new role"`
	PreviousRole string `json:"previous_role" enum:"owner,admin,member,viewer" doc:"The member's role before the change"`
}

func memberRoleChangedEvent(m Membership, previous string) MemberRoleChangedEvent {
	return MemberRoleChangedEvent{WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, m.WorkspaceID),
		UserID: kernel.FormatID(kernel.PrefixUser, m.UserID), Role: string(m.Role), PreviousRole: previous}
}

// TeamEvent is the data of team.created, team.updated and team.deleted: the
// team after the change (as it was, for team.deleted).
type TeamEvent struct {
	ID          string `json:"id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
	WorkspaceID string `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	Name        string `json:"name" example:"Design" doc:"The team's name"`
}

func teamEvent(t Team) TeamEvent {
	return TeamEvent{ID: kernel.FormatID(kernel.PrefixTeam, t.ID), WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, t.WorkspaceID),
		Name: t.Name}
}

// TeamMemberEvent is the data of team.member_added and team.member_removed.
type TeamMemberEvent struct {
	TeamID      string `json:"team_id" example:"team_01h455vb4pex5vsknk084sn02q" doc:"Team ID"`
	WorkspaceID string `json:"workspace_id" example:"ws_01h455vb4pex5vsknk084sn02q" doc:"Workspace ID"`
	UserID      string `json:"user_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"The person added to or removed from the team"`
}

func teamMemberEvent(t Team, userID uuid.UUID) TeamMemberEvent {
	return TeamMemberEvent{TeamID: kernel.FormatID(kernel.PrefixTeam, t.ID),
		WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, t.WorkspaceID), UserID: kernel.FormatID(kernel.PrefixUser, userID)}
}
