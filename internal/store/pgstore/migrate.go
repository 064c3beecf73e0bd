package pgstore

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"atrium/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded PostgreSQL migrations.
func Migrations() ([]store.Migration, error) {
	return store.LoadMigrations(migrationFiles, "migrations")
}

// migrateLockID keys the advisory lock that keeps two nodes from migrating at once.
const migrateLockID = 0x61747269756d // "atrium"

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL
)`

// Migrate applies pending migrations through url, each in its own transaction,
// under an advisory lock so that N nodes starting together migrate once. A run
// killed half-way leaves its transaction rolled back, and the next run applies
// that migration again from the start. If appRole is not empty and differs from
// the migrating role, the application role is granted what it needs and no more.
// It returns the migrations it applied.
func Migrate(ctx context.Context, url, appRole string) ([]store.Migration, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, mapErr(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLockID)); err != nil {
		return nil, mapErr(err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(migrateLockID))
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", mapErr(err))
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, err
	}
	pending := store.Pending(all, applied)
	for _, m := range pending {
		if err := applyMigration(ctx, conn, m); err != nil {
			return nil, err
		}
	}
	if appRole != "" {
		if err := grantApp(ctx, conn, appRole); err != nil {
			return nil, err
		}
	}
	return pending, nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m store.Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No arguments: pgx sends the simple protocol, which runs every statement.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, mapErr(err))
		}
		_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
			m.Version, m.Name, time.Now().UTC())
		if err != nil {
			return fmt.Errorf("record migration %04d: %w", m.Version, mapErr(err))
		}
		return nil
	})
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]time.Time, error) {
	rows, err := conn.Query(ctx, "SELECT version, applied_at FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", mapErr(err))
	}
	applied := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return nil, mapErr(err)
		}
		applied[v] = at
	}
	return applied, mapErr(rows.Err())
}

// grantApp gives the application role data access to the current schema and
// nothing else: no DDL, and no UPDATE, DELETE or TRUNCATE on audit_log.
func grantApp(ctx context.Context, conn *pgx.Conn, appRole string) error {
	var current string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&current); err != nil {
		return mapErr(err)
	}
	if current == appRole {
		return nil
	}
	role := pgx.Identifier{appRole}.Sanitize()
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return mapErr(err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	for _, stmt := range []string{
		"GRANT USAGE ON SCHEMA " + s + " TO " + role,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + s + " TO " + role,
		"REVOKE UPDATE, DELETE, TRUNCATE ON " + s + ".audit_log FROM " + role,
		"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON " + s + ".schema_migrations FROM " + role,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + s + " TO " + role,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("grant to %s: %w", appRole, mapErr(err))
		}
	}
	return nil
}

// MigrationStates lists every migration and when it was applied.
func (db *DB) MigrationStates(ctx context.Context) ([]store.MigrationState, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, mapErr(err)
	}
	applied := map[int]time.Time{}
	if exists {
		if applied, err = appliedVersions(ctx, conn.Conn()); err != nil {
			return nil, err
		}
	}
	return store.States(all, applied), nil
}
