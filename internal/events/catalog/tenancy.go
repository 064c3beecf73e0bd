package catalog

import "atrium/internal/tenancy"

var workspaceTypes = []Type{
	{Name: tenancy.EventWorkspaceCreated, Payload: tenancy.WorkspaceEvent{},
		Description: "A workspace was created. Its creator is its first owner."},
	{Name: tenancy.EventWorkspaceUpdated, Payload: tenancy.WorkspaceEvent{},
		Description: "A workspace was renamed."},
	{Name: tenancy.EventWorkspaceDeleted, Payload: tenancy.WorkspaceDeletedEvent{},
		Description: "A workspace was deleted, by an owner or because its last member left. " +
			"It can be restored until `restorable_until`, then it is erased."},
	{Name: tenancy.EventWorkspaceRestored, Payload: tenancy.WorkspaceEvent{},
		Description: "A deleted workspace was restored by an owner."},
	{Name: tenancy.EventWorkspaceOwnershipTransferred, Payload: tenancy.OwnershipTransferredEvent{},
		Description: "An owner made another member an owner and became an admin."},
}

var memberTypes = []Type{
	{Name: tenancy.EventMemberInvited, Payload: tenancy.InviteEvent{},
		Description: "Someone was invited to join the workspace by email."},
	{Name: tenancy.EventInviteResent, Payload: tenancy.InviteEvent{},
		Description: "A pending invitation was sent again, with a new link and a new expiry."},
	{Name: tenancy.EventInviteRevoked, Payload: tenancy.InviteEvent{},
		Description: "A pending invitation was withdrawn; its link no longer works."},
	{Name: tenancy.EventInviteAccepted, Payload: tenancy.InviteEvent{},
		Description: "An invitation was accepted. A member.joined event follows in the same transaction."},
	{Name: tenancy.EventMemberJoined, Payload: tenancy.MemberJoinedEvent{},
		Description: "A person became a member of the workspace, through an invitation or added directly."},
	{Name: tenancy.EventMemberRoleChanged, Payload: tenancy.MemberRoleChangedEvent{},
		Description: "A member's role changed."},
	{Name: tenancy.EventMemberRemoved, Payload: tenancy.MemberEvent{},
		Description: "A member was removed by an owner or admin, or left with their account's deletion."},
	{Name: tenancy.EventMemberLeft, Payload: tenancy.MemberEvent{},
		Description: "A member left the workspace."},
}

var teamTypes = []Type{
	{Name: tenancy.EventTeamCreated, Payload: tenancy.TeamEvent{},
		Description: "A team was created."},
	{Name: tenancy.EventTeamUpdated, Payload: tenancy.TeamEvent{},
		Description: "A team was renamed."},
	{Name: tenancy.EventTeamDeleted, Payload: tenancy.TeamEvent{},
		Description: "A team was deleted. Its people stay members of the workspace."},
	{Name: tenancy.EventTeamMemberAdded, Payload: tenancy.TeamMemberEvent{},
		Description: "A member of the workspace was added to a team."},
	{Name: tenancy.EventTeamMemberRemoved, Payload: tenancy.TeamMemberEvent{},
		Description: "A person was taken out of a team (not out of the workspace)."},
}
