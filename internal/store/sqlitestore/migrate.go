package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"atrium/internal/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the embedded SQLite migrations.
func Migrations() ([]store.Migration, error) {
	return store.LoadMigrations(migrationFiles, "migrations")
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER   PRIMARY KEY,
    name       TEXT      NOT NULL,
    applied_at TIMESTAMP NOT NULL
)`

// Migrate applies pending migrations, each in its own BEGIN IMMEDIATE
// transaction; the write lock keeps two processes from applying one twice, and a
// run killed half-way leaves nothing behind for the next run to trip on. It
// returns the migrations it applied.
func (db *DB) Migrate(ctx context.Context) ([]store.Migration, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	if _, err := db.writer.ExecContext(ctx, createMigrationsTable); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", mapErr(err))
	}
	var applied []store.Migration
	for _, m := range all {
		done, err := db.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m)
		}
	}
	return applied, nil
}

func (db *DB) applyMigration(ctx context.Context, m store.Migration) (bool, error) {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, mapErr(err)
	}
	defer tx.Rollback()
	var exists int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM schema_migrations WHERE version = $1", m.Version).Scan(&exists)
	if err == nil {
		return false, nil
	}
	if err != sql.ErrNoRows {
		return false, mapErr(err)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, mapErr(err))
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
		m.Version, m.Name, time.Now().UTC()); err != nil {
		return false, fmt.Errorf("record migration %04d: %w", m.Version, mapErr(err))
	}
	return true, mapErr(tx.Commit())
}

// MigrationStates lists every migration and when it was applied.
func (db *DB) MigrationStates(ctx context.Context) ([]store.MigrationState, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	applied := map[int]time.Time{}
	rows, err := db.reader.QueryContext(ctx,
		"SELECT version, applied_at FROM schema_migrations WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations')")
	if err != nil {
		// Before the first migration the table does not exist at all.
		return store.States(all, applied), nil
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return nil, mapErr(err)
		}
		applied[v] = at
	}
	return store.States(all, applied), mapErr(rows.Err())
}
