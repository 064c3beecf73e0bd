package tenancy

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Team is a named group of a workspace's members.
type Team struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Name        string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// MemberCount is set by GetTeam only: lists do not count.
	MemberCount int
}

const (
	teamColumns   = "id, workspace_id, name, created_at, updated_at"
	insertTeamSQL = `INSERT INTO team (id, workspace_id, name, name_key, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $5)`
	// The workspace_id filters repeat what row-level security enforces on
	// PostgreSQL, for SQLite, which has none.
	selectTeamSQL = "SELECT " + teamColumns + " FROM team WHERE id = $1 AND workspace_id = $2"
	getTeamSQL    = "SELECT " + teamColumns + `,
          (SELECT count(*) FROM team_member tm WHERE tm.workspace_id = team.workspace_id AND tm.team_id = team.id)
        FROM team WHERE id = $1 AND workspace_id = $2`
	renameTeamSQL = "UPDATE team SET name = $3, name_key = $4, updated_at = $5 WHERE id = $1 AND workspace_id = $2"
	deleteTeamSQL = "DELETE FROM team WHERE id = $1 AND workspace_id = $2"
	// Teams by ID (so, creation order), served by team_workspace_id.
	listTeamsFirstSQL = "SELECT " + teamColumns + " FROM team WHERE workspace_id = $1 ORDER BY id LIMIT $2"
	listTeamsAfterSQL = "SELECT " + teamColumns + " FROM team WHERE workspace_id = $1 AND id > $3 ORDER BY id LIMIT $2"
)

// teamNameKey is the form two team names are compared in: Unicode case
// folding of the NFC name, so "Design" and "DESIGN" (and "Straße" and
// "STRASSE") are one name. Computed here, it is the same on both engines.
func teamNameKey(name string) string {
	return cases.Fold().String(norm.NFC.String(name))
}

// validTeamName returns the trimmed name and its key, or an invalid
// *kernel.Error naming name.
func validTeamName(name string) (string, string, error) {
	name, err := ValidateName("name", name)
	if err != nil {
		return "", "", err
	}
	name = norm.NFC.String(name)
	return name, teamNameKey(name), nil
}

// errTeamNameTaken is the answer when another team of the workspace has the
// name, ignoring case.
func errTeamNameTaken(err error) error {
	return &kernel.Error{Code: kernel.CodeConflict, Message: "another team of this workspace has that name",
		Fields: map[string]string{"name": "is taken"}, Err: err}
}

// CreateTeam makes a team, audited as team.created and emitted in the same
// transaction. It returns invalid for a bad name, forbidden unless the actor
// may (policy.TeamManage: owners and admins), conflict naming name when
// another team has it (ignoring case), workspace_inactive for a deleted
// workspace, or the store's error.
func (s *Service) CreateTeam(ctx context.Context, res policy.Resource, name string) (Team, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.TeamManage, res); err != nil {
		return Team{}, err
	}
	name, key, err := validTeamName(name)
	if err != nil {
		return Team{}, err
	}
	team := Team{ID: kernel.NewID(), WorkspaceID: res.Workspace, Name: name}
	err = s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if _, err := lockActive(ctx, tx, res.Workspace); err != nil {
			return notFoundAs("workspace", err)
		}
		team.CreatedAt, team.UpdatedAt = tx.Now(), tx.Now()
		if _, err := tx.Exec(ctx, insertTeamSQL, team.ID, team.WorkspaceID, team.Name, key, team.CreatedAt); err != nil {
			if kernel.IsCode(err, kernel.CodeConflict) {
				return errTeamNameTaken(err)
			}
			return err
		}
		return record(ctx, tx, "team.created", EventTeamCreated, teamTarget(team.ID), map[string]any{"name": team.Name}, teamEvent(team))
	})
	if err != nil {
		return Team{}, fmt.Errorf("tenancy: create team: %w", err)
	}
	return team, nil
}

// GetTeam returns a team with its member count. It returns forbidden unless
// the actor may (policy.TeamRead: every member), not_found for an unknown
// team, or the store's error.
func (s *Service) GetTeam(ctx context.Context, res policy.Resource, id uuid.UUID) (Team, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.TeamRead, res); err != nil {
		return Team{}, err
	}
	team, err := scanTeam(s.db.WorkspaceRow(ctx, res.Workspace, getTeamSQL, id, res.Workspace), true)
	if err != nil {
		return Team{}, notFoundAs("team", err)
	}
	return team, nil
}

// ListTeams returns up to limit of the workspace's teams in creation order,
// after the team ID after (uuid.Nil for the first page). It returns
// forbidden unless the actor may (policy.TeamRead), or the store's error.
func (s *Service) ListTeams(ctx context.Context, res policy.Resource, after uuid.UUID, limit int) ([]Team, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.TeamRead, res); err != nil {
		return nil, err
	}
	var out []Team
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == uuid.Nil {
			rows, err = tx.Query(ctx, listTeamsFirstSQL, res.Workspace, limit)
		} else {
			rows, err = tx.Query(ctx, listTeamsAfterSQL, res.Workspace, limit, after)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (Team, error) { return scanTeam(row, false) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: list teams: %w", err)
	}
	return out, nil
}

// teamChange is one change to a team, run by changeTeam.
type teamChange func(tx store.Tx, team Team) error

// changeTeam runs change in a workspace transaction after the checks every
// team change shares: the actor may manage teams (forbidden), the workspace
// exists (not_found) and is active (workspace_inactive), locked; the team
// exists (not_found "team").
func (s *Service) changeTeam(ctx context.Context, res policy.Resource, id uuid.UUID, change teamChange) error {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.TeamManage, res); err != nil {
		return err
	}
	return s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if _, err := lockActive(ctx, tx, res.Workspace); err != nil {
			return notFoundAs("workspace", err)
		}
		team, err := scanTeam(tx.QueryRow(ctx, selectTeamSQL, id, res.Workspace), false)
		if err != nil {
			return notFoundAs("team", err)
		}
		return change(tx, team)
	})
}

// RenameTeam renames a team, audited as team.renamed and emitted as
// team.updated. It returns invalid for a bad name, forbidden unless the
// actor may (policy.TeamManage), not_found for an unknown team, conflict
// naming name when another team has it, workspace_inactive for a deleted
// workspace, or the store's error.
func (s *Service) RenameTeam(ctx context.Context, res policy.Resource, id uuid.UUID, name string) (Team, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.TeamManage, res); err != nil {
		return Team{}, err
	}
	name, key, err := validTeamName(name)
	if err != nil {
		return Team{}, err
	}
	var out Team
	err = s.changeTeam(ctx, res, id, func(tx store.Tx, team Team) error {
		out = team
		if team.Name == name {
			return nil
		}
		out.Name, out.UpdatedAt = name, tx.Now()
		if _, err := tx.Exec(ctx, renameTeamSQL, team.ID, team.WorkspaceID, out.Name, key, out.UpdatedAt); err != nil {
			if kernel.IsCode(err, kernel.CodeConflict) {
				return errTeamNameTaken(err)
			}
			return err
		}
		return record(ctx, tx, "team.renamed", EventTeamUpdated, teamTarget(team.ID),
			map[string]any{"from": team.Name, "to": out.Name}, teamEvent(out))
	})
	if err != nil {
		return Team{}, fmt.Errorf("tenancy: rename team: %w", err)
	}
	return out, nil
}

// DeleteTeam deletes a team and its memberships (not the people's
// memberships of the workspace), audited as team.deleted. It returns
// forbidden unless the actor may (policy.TeamManage), not_found for an
// unknown team, workspace_inactive for a deleted workspace, or the store's
// error.
func (s *Service) DeleteTeam(ctx context.Context, res policy.Resource, id uuid.UUID) error {
	err := s.changeTeam(ctx, res, id, func(tx store.Tx, team Team) error {
		if _, err := tx.Exec(ctx, deleteTeamSQL, team.ID, team.WorkspaceID); err != nil {
			return err
		}
		return record(ctx, tx, "team.deleted", EventTeamDeleted, teamTarget(team.ID), map[string]any{"name": team.Name}, teamEvent(team))
	})
	if err != nil {
		return fmt.Errorf("tenancy: delete team: %w", err)
	}
	return nil
}

// scanTeam reads teamColumns in UTC, then the member count when withCount.
func scanTeam(row store.Row, withCount bool) (Team, error) {
	var t Team
	dest := []any{&t.ID, &t.WorkspaceID, &t.Name, &t.CreatedAt, &t.UpdatedAt}
	if withCount {
		dest = append(dest, &t.MemberCount)
	}
	if err := row.Scan(dest...); err != nil {
		return Team{}, err
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

func teamTarget(id uuid.UUID) audit.Entry {
	return audit.Entry{TargetType: "team", TargetID: kernel.FormatID(kernel.PrefixTeam, id)}
}
