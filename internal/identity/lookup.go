package identity

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// MaxLookup is the most IDs one batch lookup takes: a page of a list.
const MaxLookup = 100

// Profile is what other domains may show of a person: a member list, the
// actors of an audit log. An anonymised account keeps its row, so its profile
// reads "Deleted user".
type Profile struct {
	ID            uuid.UUID
	Name          string
	Email         string
	EmailVerified bool
}

// Batch lookups by ID, one statement each. PostgreSQL takes the IDs as an
// array, SQLite as a JSON array; both are served by the primary key (and on
// api_key the workspace filter repeats what row-level security enforces).
var (
	selectProfilesSQL = map[store.Dialect]string{
		store.Postgres: `SELECT id, name, email, email_verified_at IS NOT NULL FROM app_user WHERE id = ANY($1::uuid[])`,
		store.SQLite:   `SELECT id, name, email, email_verified_at IS NOT NULL FROM app_user WHERE id IN (SELECT value FROM json_each($1))`,
	}
	selectAPIKeyNamesSQL = map[store.Dialect]string{
		store.Postgres: `SELECT id, name FROM api_key WHERE workspace_id = $1 AND id = ANY($2::uuid[])`,
		store.SQLite:   `SELECT id, name FROM api_key WHERE workspace_id = $1 AND id IN (SELECT value FROM json_each($2))`,
	}
)

// Profiles returns the profiles of the accounts among ids, in one statement,
// keyed by user ID; an ID with no account is absent from the map. It returns
// an internal error when ids holds more than MaxLookup distinct IDs (a caller
// asking for more than a page), or the store's error.
func (s *Service) Profiles(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Profile, error) {
	ids, err := distinctIDs(ids)
	if err != nil || len(ids) == 0 {
		return map[uuid.UUID]Profile{}, err
	}
	var list []Profile
	err = s.db.ReadTx(ctx, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, selectProfilesSQL[tx.Dialect()], store.IDList(tx.Dialect(), ids))
		if err != nil {
			return err
		}
		list, err = store.Collect(rows, func(row store.Row) (Profile, error) {
			var p Profile
			err := row.Scan(&p.ID, &p.Name, &p.Email, &p.EmailVerified)
			return p, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("identity: profiles: %w", err)
	}
	out := make(map[uuid.UUID]Profile, len(list))
	for _, p := range list {
		out[p.ID] = p
	}
	return out, nil
}

// APIKeyNames returns the names of the workspace's API keys among ids,
// revoked ones included, in one statement keyed by key ID; an ID that names
// no key of this workspace is absent from the map. It returns an internal
// error when ids holds more than MaxLookup distinct IDs, or the store's error.
func (s *Service) APIKeyNames(ctx context.Context, workspaceID uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	ids, err := distinctIDs(ids)
	if err != nil || len(ids) == 0 {
		return map[uuid.UUID]string{}, err
	}
	out := make(map[uuid.UUID]string, len(ids))
	err = s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		rows, err := tx.Query(ctx, selectAPIKeyNamesSQL[tx.Dialect()], workspaceID, store.IDList(tx.Dialect(), ids))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return err
			}
			out[id] = name
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("identity: API key names: %w", err)
	}
	return out, nil
}

// distinctIDs returns ids without repeats, in their first order. It returns
// an internal error when more than MaxLookup remain.
func distinctIDs(ids []uuid.UUID) ([]uuid.UUID, error) {
	seen := make(map[uuid.UUID]bool, len(ids))
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(out) > MaxLookup {
		return nil, kernel.Internal(fmt.Errorf("identity: lookup of %d IDs, at most %d", len(out), MaxLookup))
	}
	return out, nil
}
