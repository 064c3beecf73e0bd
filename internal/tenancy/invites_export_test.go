package tenancy

import "github.com/google/uuid"

// ForgeInviteToken returns a well-formed token naming workspaceID whose
// secret is the last 43 characters of secretFrom, for tests of forged and
// moved tokens.
func ForgeInviteToken(workspaceID uuid.UUID, secretFrom string) string {
	token, _ := newInviteToken(workspaceID)
	return token[:inviteWorkspacePart+1] + secretFrom[len(secretFrom)-inviteSecretLength:]
}
