package billing

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// SyncPlans stores the catalogue as plan versions: a plan whose canonical
// definition differs from its latest stored version (or that has none) gets
// a new version. It returns each plan's current version ID. Nodes starting
// together may race: the loser of the unique (plan_key, version) index reads
// the winner's version on its second pass.
func SyncPlans(ctx context.Context, db store.DB, c *Catalog) (map[string]uuid.UUID, error) {
	var versions map[string]uuid.UUID
	var err error
	for range 3 {
		versions, err = syncPlansOnce(ctx, db, c)
		if !kernel.IsCode(err, kernel.CodeConflict) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store the plan catalogue: %w", err)
	}
	return versions, nil
}

func syncPlansOnce(ctx context.Context, db store.DB, c *Catalog) (map[string]uuid.UUID, error) {
	versions := make(map[string]uuid.UUID, len(c.Plans))
	err := db.Tx(ctx, func(tx store.Tx) error {
		for _, p := range c.Plans {
			def := p.canonical()
			var id uuid.UUID
			var version int
			var stored string
			err := tx.QueryRow(ctx, `SELECT id, version, definition FROM plan_version
                WHERE plan_key = $1 ORDER BY version DESC LIMIT 1`, p.Key).Scan(&id, &version, &stored)
			switch {
			case err == nil && bytes.Equal([]byte(stored), def):
				versions[p.Key] = id
				continue
			case err != nil && !kernel.IsCode(err, kernel.CodeNotFound):
				return err
			}
			id = kernel.NewID()
			if _, err := tx.Exec(ctx, `INSERT INTO plan_version (id, plan_key, version, definition, created_at)
                VALUES ($1, $2, $3, $4, $5)`, id, p.Key, version+1, string(def), tx.Now()); err != nil {
				return err
			}
			kernel.Logger(ctx).InfoContext(ctx, "plan version stored", "plan", p.Key, "version", version+1)
			versions[p.Key] = id
		}
		return nil
	})
	return versions, err
}

// PlanVersion reads a stored plan version: the plan as it was when a
// subscription bought it. It returns not_found for an unknown ID.
func PlanVersion(ctx context.Context, tx store.Tx, id uuid.UUID) (*Plan, error) {
	var def string
	if err := tx.QueryRow(ctx, `SELECT definition FROM plan_version WHERE id = $1`, id).Scan(&def); err != nil {
		return nil, fmt.Errorf("plan version %s: %w", id, err)
	}
	p, err := decodePlan([]byte(def))
	if err != nil {
		return nil, kernel.Internal(fmt.Errorf("plan version %s: %w", id, err))
	}
	return p, nil
}
