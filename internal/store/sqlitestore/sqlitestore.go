// Package sqlitestore is the embedded store: one SQLite file in WAL mode, a
// single writer connection that begins with BEGIN IMMEDIATE (so writers queue on
// the Go side instead of failing with SQLITE_BUSY) and a pool of read-only
// connections that read in parallel with it.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/uuid"
	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Options configures Open.
type Options struct {
	// Path is the database file; its directory is created if missing.
	Path   string
	Clock  kernel.Clock
	Logger *slog.Logger
	// Readers is the size of the read pool; 0 means max(4, GOMAXPROCS).
	Readers int
}

// DB is the SQLite implementation of store.SystemDB.
type DB struct {
	writer *sql.DB
	reader *sql.DB
	// readerStmts caches prepared statements of the read pool.
	readerStmts *stmtCache
	// writerStmts caches prepared statements of the one writer connection.
	// A write transaction holds that connection, so it cannot prepare into
	// the cache itself: it runs a statement the cache lacks unprepared, and
	// the cache prepares it after the transaction has let the connection go.
	writerStmts *stmtCache
	clock       kernel.Clock
	logger      *slog.Logger
	path        string
}

var _ store.SystemDB = (*DB)(nil)

// Open opens (creating if needed) the database file and checks it answers.
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Path == "" {
		return nil, kernel.Errorf(kernel.CodeInvalid, "sqlite: no database path")
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	writer, err := sql.Open("sqlite", dsn(opts.Path, "immediate", false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	readers := opts.Readers
	if readers <= 0 {
		readers = max(4, runtime.GOMAXPROCS(0))
	}
	reader, err := sql.Open("sqlite", dsn(opts.Path, "deferred", true))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open readers: %w", err)
	}
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	reader.SetConnMaxIdleTime(0)

	db := &DB{writer: writer, reader: reader, clock: opts.Clock, logger: opts.Logger, path: opts.Path,
		readerStmts: newStmtCache(reader), writerStmts: newStmtCache(writer)}
	if db.clock == nil {
		db.clock = kernel.SystemClock{}
	}
	if db.logger == nil {
		db.logger = slog.Default()
	}
	// The writer must open first: it switches the file to WAL, which read-only
	// connections cannot do.
	if err := pingWriter(ctx, db.writer); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", opts.Path, err)
	}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// pingWriter opens the writer connection. Two processes creating the same new
// file race to switch it to WAL, and SQLite answers the loser SQLITE_BUSY at
// once, without waiting for busy_timeout; so BUSY is retried for a while.
func pingWriter(ctx context.Context, writer *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := writer.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dsn builds a modernc.org/sqlite connection string. Times are written in
// SQLite's own format in UTC, which sorts as text in time order.
func dsn(path, txlock string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	q.Set("_txlock", txlock)
	q.Set("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode()
}

func (db *DB) Dialect() store.Dialect { return store.SQLite }

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Writer and Reader expose the two pools to this package's tests and to the
// benchmark baselines.
func (db *DB) Writer() *sql.DB { return db.writer }
func (db *DB) Reader() *sql.DB { return db.reader }

func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return mapErr(err)
	}
	return nil
}

func (db *DB) Close() error {
	db.readerStmts.close()
	db.writerStmts.close()
	rerr := db.reader.Close()
	werr := db.writer.Close()
	if werr != nil {
		return werr
	}
	return rerr
}

func (db *DB) Tx(ctx context.Context, fn func(store.Tx) error) error {
	return db.run(ctx, db.writer, tenantContext{}, fn)
}

func (db *DB) ReadTx(ctx context.Context, fn func(store.Tx) error) error {
	return db.run(ctx, db.reader, tenantContext{}, fn)
}

func (db *DB) InWorkspace(ctx context.Context, workspaceID uuid.UUID, fn func(store.Tx) error) error {
	if workspaceID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("sqlitestore: InWorkspace without a workspace"))
	}
	return db.run(ctx, db.writer, tenantContext{workspace: workspaceID}, fn)
}

func (db *DB) ReadWorkspace(ctx context.Context, workspaceID uuid.UUID, fn func(store.Tx) error) error {
	if workspaceID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("sqlitestore: ReadWorkspace without a workspace"))
	}
	return db.run(ctx, db.reader, tenantContext{workspace: workspaceID}, fn)
}

// ReadAsUser runs fn on the read pool. SQLite has no row-level security, so
// the person's scope rests on the statements' user_id filter, which the
// shared store suite checks. It returns an internal error for uuid.Nil.
func (db *DB) ReadAsUser(ctx context.Context, userID uuid.UUID, fn func(store.Tx) error) error {
	if userID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("sqlitestore: ReadAsUser without a user"))
	}
	return db.run(ctx, db.reader, tenantContext{}, fn)
}

func (db *DB) System(ctx context.Context, reason string, fn func(store.Tx) error) error {
	if err := store.EnterSystem(ctx, db.logger, reason); err != nil {
		return err
	}
	return db.run(ctx, db.writer, tenantContext{bypass: true}, fn)
}

// WorkspaceRow runs one statement on the read pool. A single statement is
// atomic in SQLite, so no explicit transaction is needed.
func (db *DB) WorkspaceRow(ctx context.Context, workspaceID uuid.UUID, query string, args ...any) store.Row {
	if workspaceID == uuid.Nil {
		return errRow{kernel.Internal(fmt.Errorf("sqlitestore: WorkspaceRow without a workspace"))}
	}
	if stmt := db.readerStmts.get(ctx, query); stmt != nil {
		return row{stmt.QueryRowContext(ctx, args...)}
	}
	return row{db.reader.QueryRowContext(ctx, query, args...)}
}

// PlatformRow runs one statement on the read pool, like WorkspaceRow. SQLite
// has no row-level security: a platform statement reads platform tables only
// because it names no others.
func (db *DB) PlatformRow(ctx context.Context, query string, args ...any) store.Row {
	if stmt := db.readerStmts.get(ctx, query); stmt != nil {
		return row{stmt.QueryRowContext(ctx, args...)}
	}
	return row{db.reader.QueryRowContext(ctx, query, args...)}
}

// tenantContext is what a transaction may write: one workspace's rows, none
// (platform tables only), or everything (the system path).
type tenantContext struct {
	workspace uuid.UUID
	bypass    bool
}

// setTenantContextSQL records the writing transaction's tenant context for the
// tenant triggers. Only the one writer connection runs it, inside BEGIN
// IMMEDIATE, so no other transaction can see or change it meanwhile.
const setTenantContextSQL = "UPDATE atrium_tenant_context SET workspace_id = $1, bypass = $2 WHERE singleton = 1"

func (db *DB) run(ctx context.Context, pool *sql.DB, tc tenantContext, fn func(store.Tx) error) (err error) {
	sqlTx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	t := &tx{tx: sqlTx, now: db.clock.Now(), workspace: tc.workspace, stmts: db.readerStmts}
	if pool == db.writer {
		t.stmts, t.missed = db.writerStmts, []string{}
		defer func() { db.prepareMissed(ctx, t.missed) }()
		var workspace any // NULL outside a workspace
		if tc.workspace != uuid.Nil {
			workspace = tc.workspace
		}
		if _, err := t.Exec(ctx, setTenantContextSQL, workspace, tc.bypass); err != nil {
			_ = sqlTx.Rollback()
			return err
		}
	}
	defer func() {
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
	}()
	if err := fn(t); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	return mapErr(sqlTx.Commit())
}

// prepareMissed prepares, on the writer connection a transaction has just
// released, the statements it ran unprepared, so the next transaction finds
// them in the cache. Preparing is best effort: a statement that fails to
// prepare keeps running unprepared.
func (db *DB) prepareMissed(ctx context.Context, queries []string) {
	for _, q := range queries {
		db.writerStmts.get(context.WithoutCancel(ctx), q)
	}
}

type tx struct {
	tx        *sql.Tx
	now       time.Time
	workspace uuid.UUID
	stmts     *stmtCache
	// missed collects, in a write transaction, the statements the writer's
	// cache lacked; nil in a read transaction.
	missed []string
}

// stmt returns query prepared on the transaction's connection when its
// pool's cache already holds it, or nil to run it unprepared. A transaction
// never prepares into the cache itself: preparing takes a connection from the
// pool, and one that holds the only writer connection (or, under load, every
// reader) would wait for itself. A write transaction notes what it missed,
// for prepareMissed.
func (t *tx) stmt(ctx context.Context, query string) *sql.Stmt {
	s := t.stmts.lookup(query)
	if s == nil {
		if t.missed != nil && len(t.missed) < 16 {
			t.missed = append(t.missed, query)
		}
		return nil
	}
	return t.tx.StmtContext(ctx, s)
}

func (t *tx) Dialect() store.Dialect { return store.SQLite }
func (t *tx) Now() time.Time         { return t.now }
func (t *tx) WorkspaceID() uuid.UUID { return t.workspace }

func (t *tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if s := t.stmt(ctx, query); s != nil {
		res, err = s.ExecContext(ctx, args...)
	} else {
		res, err = t.tx.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, mapErr(err)
	}
	n, err := res.RowsAffected()
	return n, mapErr(err)
}

func (t *tx) Query(ctx context.Context, query string, args ...any) (store.Rows, error) {
	var r *sql.Rows
	var err error
	if s := t.stmt(ctx, query); s != nil {
		r, err = s.QueryContext(ctx, args...)
	} else {
		r, err = t.tx.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return rows{r}, nil
}

func (t *tx) QueryRow(ctx context.Context, query string, args ...any) store.Row {
	if s := t.stmt(ctx, query); s != nil {
		return row{s.QueryRowContext(ctx, args...)}
	}
	return row{t.tx.QueryRowContext(ctx, query, args...)}
}

type rows struct{ r *sql.Rows }

func (r rows) Next() bool             { return r.r.Next() }
func (r rows) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }
func (r rows) Err() error             { return mapErr(r.r.Err()) }
func (r rows) Close() error           { return mapErr(r.r.Close()) }

type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// AuthEpoch reads the counter migration 0012's triggers bump whenever a
// session, key, token, membership or account changes in a way that could end
// or narrow access (see package authcache). It costs one read on the reader
// pool and returns the store's error.
func (db *DB) AuthEpoch(ctx context.Context) (int64, error) {
	var epoch int64
	err := db.PlatformRow(ctx, "SELECT epoch FROM auth_epoch WHERE id = 1").Scan(&epoch)
	return epoch, err
}
