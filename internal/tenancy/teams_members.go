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

// TeamMember is a member of a team, with their name, address and role in the
// workspace.
type TeamMember struct {
	TeamID  uuid.UUID
	UserID  uuid.UUID
	Email   string
	Name    string
	Role    policy.Role
	AddedAt time.Time
}

const (
	insertTeamMemberSQL = `INSERT INTO team_member (workspace_id, team_id, user_id, created_at) VALUES ($1, $2, $3, $4)`
	deleteTeamMemberSQL = "DELETE FROM team_member WHERE workspace_id = $1 AND team_id = $2 AND user_id = $3"
	teamMemberColumns   = "tm.team_id, tm.user_id, m.role, tm.created_at"
	// Team members by user ID, served by the primary key. Names and
	// addresses come from identity afterwards (withTeamProfiles).
	listTeamMembersFirstSQL = "SELECT " + teamMemberColumns + ` FROM team_member tm
        JOIN membership m ON m.workspace_id = tm.workspace_id AND m.user_id = tm.user_id
        WHERE tm.workspace_id = $1 AND tm.team_id = $2 ORDER BY tm.user_id LIMIT $3`
	listTeamMembersAfterSQL = "SELECT " + teamMemberColumns + ` FROM team_member tm
        JOIN membership m ON m.workspace_id = tm.workspace_id AND m.user_id = tm.user_id
        WHERE tm.workspace_id = $1 AND tm.team_id = $2 AND tm.user_id > $4 ORDER BY tm.user_id LIMIT $3`
	selectTeamMemberSQL = "SELECT " + teamMemberColumns + ` FROM team_member tm
        JOIN membership m ON m.workspace_id = tm.workspace_id AND m.user_id = tm.user_id
        WHERE tm.workspace_id = $1 AND tm.team_id = $2 AND tm.user_id = $3`
)

// AddTeamMember puts a member of the workspace in a team, audited as
// team.member_added and emitted in the same transaction. It returns
// forbidden unless the actor may (policy.TeamManage), not_found for an
// unknown team, invalid naming user_id when the person is not a member of the
// workspace, conflict when they are in the team already, workspace_inactive
// for a deleted workspace, or the store's error.
func (s *Service) AddTeamMember(ctx context.Context, res policy.Resource, teamID, userID uuid.UUID) (TeamMember, error) {
	var out TeamMember
	err := s.changeTeam(ctx, res, teamID, func(tx store.Tx, team Team) error {
		var role string
		if err := tx.QueryRow(ctx, selectRoleSQL, res.Workspace, userID).Scan(&role); err != nil {
			if kernel.IsCode(err, kernel.CodeNotFound) {
				return kernel.Invalid("user_id", "is not a member of the workspace")
			}
			return err
		}
		if _, err := tx.Exec(ctx, insertTeamMemberSQL, res.Workspace, team.ID, userID, tx.Now()); err != nil {
			if kernel.IsCode(err, kernel.CodeConflict) {
				return &kernel.Error{Code: kernel.CodeConflict, Message: "this person is already in the team", Err: err}
			}
			return err
		}
		var err error
		if out, err = scanTeamMember(tx.QueryRow(ctx, selectTeamMemberSQL, res.Workspace, team.ID, userID)); err != nil {
			return err
		}
		return record(ctx, tx, "team.member_added", EventTeamMemberAdded, teamTarget(team.ID),
			map[string]any{"user_id": kernel.FormatID(kernel.PrefixUser, userID)}, teamMemberEvent(team, userID))
	})
	if err == nil {
		added := []TeamMember{out}
		err = s.withTeamProfiles(ctx, added)
		out = added[0]
	}
	if err != nil {
		return TeamMember{}, fmt.Errorf("tenancy: add team member: %w", err)
	}
	return out, nil
}

// RemoveTeamMember takes a person out of a team (not out of the workspace),
// audited as team.member_removed. It returns forbidden unless the actor may
// (policy.TeamManage), not_found for an unknown team or a person not in it,
// workspace_inactive for a deleted workspace, or the store's error.
func (s *Service) RemoveTeamMember(ctx context.Context, res policy.Resource, teamID, userID uuid.UUID) error {
	err := s.changeTeam(ctx, res, teamID, func(tx store.Tx, team Team) error {
		n, err := tx.Exec(ctx, deleteTeamMemberSQL, res.Workspace, team.ID, userID)
		if err != nil {
			return err
		}
		if n == 0 {
			return kernel.NotFound("team member")
		}
		return record(ctx, tx, "team.member_removed", EventTeamMemberRemoved, teamTarget(team.ID),
			map[string]any{"user_id": kernel.FormatID(kernel.PrefixUser, userID)}, teamMemberEvent(team, userID))
	})
	if err != nil {
		return fmt.Errorf("tenancy: remove team member: %w", err)
	}
	return nil
}

// ListTeamMembers returns up to limit members of a team after the user ID
// after (uuid.Nil for the first page). It returns forbidden unless the actor
// may (policy.TeamRead), not_found for an unknown team, or the store's
// error.
func (s *Service) ListTeamMembers(ctx context.Context, res policy.Resource, teamID, after uuid.UUID, limit int) ([]TeamMember, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.TeamRead, res); err != nil {
		return nil, err
	}
	var out []TeamMember
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if _, err := scanTeam(tx.QueryRow(ctx, selectTeamSQL, teamID, res.Workspace), false); err != nil {
			return notFoundAs("team", err)
		}
		var rows store.Rows
		var err error
		if after == uuid.Nil {
			rows, err = tx.Query(ctx, listTeamMembersFirstSQL, res.Workspace, teamID, limit)
		} else {
			rows, err = tx.Query(ctx, listTeamMembersAfterSQL, res.Workspace, teamID, limit, after)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, scanTeamMember)
		return err
	})
	if err == nil {
		err = s.withTeamProfiles(ctx, out)
	}
	if err != nil {
		return nil, fmt.Errorf("tenancy: list team members: %w", err)
	}
	return out, nil
}

// withTeamProfiles fills in each team member's name and address from
// identity. It returns identity's error.
func (s *Service) withTeamProfiles(ctx context.Context, members []TeamMember) error {
	ids := make([]uuid.UUID, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	profiles, err := s.profilesOf(ctx, ids)
	if err != nil {
		return err
	}
	for i := range members {
		p := profiles[members[i].UserID]
		members[i].Email, members[i].Name = p.Email, p.Name
	}
	return nil
}

func scanTeamMember(row store.Row) (TeamMember, error) {
	var m TeamMember
	var role string
	if err := row.Scan(&m.TeamID, &m.UserID, &role, &m.AddedAt); err != nil {
		return TeamMember{}, err
	}
	m.Role, m.AddedAt = policy.Role(role), m.AddedAt.UTC()
	return m, nil
}
