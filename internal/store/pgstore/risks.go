package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Role describes the role the application connects as, and what it could do
// that row-level security does not stop.
type Role struct {
	Name      string
	Superuser bool
	BypassRLS bool
	// OwnedTables are tables the role owns, or whose owner it is a member of: FORCE ROW LEVEL SECURITY still binds
	// an owner, but an owner can switch it off.
	OwnedTables []string
	// UnsealedTables have a workspace_id column (or are workspace itself) but
	// lack ENABLE or FORCE ROW LEVEL SECURITY or a policy.
	UnsealedTables []string
}

// Risks lists what would let this role see across tenants, in words an
// operator can act on. An empty list means none was found.
func (r Role) Risks() []string {
	var out []string
	if r.Superuser {
		out = append(out, fmt.Sprintf("database role %q is (or can become) a superuser: row-level security does not apply to it", r.Name))
	}
	if r.BypassRLS {
		out = append(out, fmt.Sprintf("database role %q has (or can take on) BYPASSRLS: row-level security does not apply to it", r.Name))
	}
	if len(r.OwnedTables) > 0 {
		out = append(out, fmt.Sprintf("database role %q owns %d tables and could disable their row-level security; run migrations as an owner role (ATRIUM_MIGRATE_DATABASE_URL) and serve as a role that owns nothing", r.Name, len(r.OwnedTables)))
	}
	for _, t := range r.UnsealedTables {
		out = append(out, fmt.Sprintf("tenant table %q is not sealed by row-level security (ENABLE, FORCE and a policy)", t))
	}
	return out
}

// InspectRole reads the connected role's attributes and the sealing of every
// tenant table in the current schema.
func (db *DB) InspectRole(ctx context.Context) (Role, error) {
	var r Role
	// A role that can SET ROLE to a superuser, a BYPASSRLS role or the table
	// owner has those powers too, so membership counts.
	err := db.pool.QueryRow(ctx, `SELECT current_user,
            coalesce(bool_or(rolsuper), false), coalesce(bool_or(rolbypassrls), false)
        FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER')`,
	).Scan(&r.Name, &r.Superuser, &r.BypassRLS)
	if err != nil {
		return r, mapErr(err)
	}
	if r.OwnedTables, err = db.names(ctx, ownedTablesSQL); err != nil {
		return r, err
	}
	if r.UnsealedTables, err = db.names(ctx, unsealedTablesSQL); err != nil {
		return r, err
	}
	return r, nil
}

// names runs a query that returns one text column.
func (db *DB) names(ctx context.Context, sql string) ([]string, error) {
	rows, err := db.pool.Query(ctx, sql)
	if err != nil {
		return nil, mapErr(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, mapErr(err)
}

// ownedTablesSQL lists tables in the current schema whose owner the role is,
// or can become.
const ownedTablesSQL = `SELECT tablename FROM pg_tables
WHERE schemaname = current_schema() AND pg_has_role(current_user, tableowner, 'MEMBER')
ORDER BY tablename`

// unsealedTablesSQL finds tenant tables (a workspace_id column, or workspace
// itself) in the current schema that lack ENABLE, FORCE or a policy.
const unsealedTablesSQL = `
SELECT c.relname
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relkind = 'r'
  AND (c.relname = 'workspace' OR EXISTS (
        SELECT 1 FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attname = 'workspace_id' AND NOT a.attisdropped))
  AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
       OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))
ORDER BY c.relname`
