// Package store defines how Atrium talks to its database, whichever dialect is
// behind it: the transaction shapes (platform, workspace, system), the row
// interfaces, migrations and the errors a store method may return.
//
// The two implementations live in sqlitestore (the embedded default) and pgstore
// (PostgreSQL with row-level security). SQL is written once with $1-style
// placeholders, which both dialects accept; where they differ, a store method
// writes two statements side by side and picks one with Tx.Dialect.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Dialect names a SQL dialect.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Row is one result row; Scan returns a not_found *kernel.Error when there is none.
type Row interface {
	Scan(dest ...any) error
}

// Rows iterates a result set. Close must be called; Err reports what ended it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Querier runs statements. Errors are already mapped to *kernel.Error codes:
// not_found for no row, conflict for a unique or foreign-key violation, invalid
// for a check violation, forbidden for a row-level-security or append-only
// violation, unavailable when the database cannot be reached.
type Querier interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) Row
}

// Tx is a transaction handed to a function by one of the DB methods. It must not
// be kept after the function returns.
type Tx interface {
	Querier
	Dialect() Dialect
	// Now is the clock's reading when the transaction began: every timestamp a
	// transaction writes should use it, so one write has one time.
	Now() time.Time
	// WorkspaceID is the workspace the transaction is bound to, uuid.Nil outside one.
	WorkspaceID() uuid.UUID
}

// DB is the handle services receive. It has no way to read across tenants: that
// is SystemDB, which request handlers are never given.
//
// Every method runs fn in a transaction that commits when fn returns nil and
// rolls back otherwise (also on panic, which is re-raised). The error returned is
// fn's, or the mapped error of begin or commit.
type DB interface {
	Dialect() Dialect
	// Tx runs fn in a read-write transaction bound to no workspace: platform tables
	// (users, sessions, idempotency keys) are visible, tenant tables show no rows.
	Tx(ctx context.Context, fn func(Tx) error) error
	// ReadTx is Tx for reading only; on SQLite it uses the reader pool.
	ReadTx(ctx context.Context, fn func(Tx) error) error
	// InWorkspace runs fn in a read-write transaction bound to workspaceID: tenant
	// tables show only that workspace's rows and refuse rows of any other.
	InWorkspace(ctx context.Context, workspaceID uuid.UUID, fn func(Tx) error) error
	// ReadWorkspace is InWorkspace for reading only.
	ReadWorkspace(ctx context.Context, workspaceID uuid.UUID, fn func(Tx) error) error
	// ReadAsUser runs fn in a read-only transaction bound to no workspace but to
	// one person: besides platform tables, it shows that person's own
	// membership rows and the workspaces they are a member of, and no other
	// tenant row. It is how "my workspaces" is listed without the system path.
	// On PostgreSQL row-level security enforces this (app.user_id); on SQLite,
	// as for every read there, the statement's user_id filter does.
	ReadAsUser(ctx context.Context, userID uuid.UUID, fn func(Tx) error) error
	// WorkspaceRow runs one read statement bound to workspaceID and returns its
	// row. It is the cheapest tenant-safe read: on PostgreSQL the transaction, the
	// workspace setting, the statement and the commit travel in one round trip.
	WorkspaceRow(ctx context.Context, workspaceID uuid.UUID, sql string, args ...any) Row
	// PlatformRow runs one read statement bound to no workspace and returns its
	// row: what ReadTx with a single QueryRow sees (platform tables; tenant
	// tables show no rows on PostgreSQL), in one round trip. It is how a
	// request is authenticated without a transaction's second round trip.
	PlatformRow(ctx context.Context, sql string, args ...any) Row
	// Ping checks the database answers, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}

// SystemDB adds the one path that crosses tenants: billing sweeps, the outbox
// relay, the scheduler, the admin console. It refuses a context that belongs to
// an HTTP request, and logs every use with its reason.
type SystemDB interface {
	DB
	System(ctx context.Context, reason string, fn func(Tx) error) error
}

// Collect reads every row with scan and closes rows. It returns the scanned
// values, or the first error of a scan or of the iteration.
func Collect[T any](rows Rows, scan func(Row) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// IDList is ids as a statement of the dialect takes a list: a text array that
// PostgreSQL casts with $n::uuid[] (id = ANY($n::uuid[])), or a JSON array for
// SQLite's json_each (id IN (SELECT value FROM json_each($n))), whose values
// compare equal to the stored UUID text.
func IDList(dialect Dialect, ids []uuid.UUID) any {
	text := make([]string, len(ids))
	for i, id := range ids {
		text[i] = id.String()
	}
	if dialect == Postgres {
		return text
	}
	raw, _ := json.Marshal(text) // strings always encode
	return string(raw)
}
