// Package pgstore is the PostgreSQL store: a pgx pool, migrations, and
// transactions that bind row-level security to one workspace.
//
// Every tenant table has ENABLE and FORCE ROW LEVEL SECURITY with a policy on
// the transaction-local setting app.workspace_id. A transaction sends nothing
// until its first statement; BEGIN, the set_config call and that statement then
// travel as one pipeline, so tenant binding costs no extra round trip.
package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Options configures Open.
type Options struct {
	// URL is the application's connection string. The role should not be a
	// superuser, have BYPASSRLS or own the tables (see Risks).
	URL    string
	Clock  kernel.Clock
	Logger *slog.Logger
}

// DB is the PostgreSQL implementation of store.SystemDB.
type DB struct {
	pool   *pgxpool.Pool
	clock  kernel.Clock
	logger *slog.Logger
	// listenerPID is the backend of ListenAuth's connection (0 for none).
	listenerPID atomic.Uint32
	// authHeartbeat replaces defaultAuthHeartbeat in tests (when not zero).
	authHeartbeat time.Duration
}

var _ store.SystemDB = (*DB)(nil)

// Open connects and checks the database answers. It returns an unavailable
// *kernel.Error when it does not, and an invalid one for a malformed URL.
func Open(ctx context.Context, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		// pgx's message may echo the password; say only what is wrong.
		return nil, kernel.Errorf(kernel.CodeInvalid, "database URL is not a valid PostgreSQL connection string")
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "atrium"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, kernel.Unavailable("database", err)
	}
	db := &DB{pool: pool, clock: opts.Clock, logger: opts.Logger}
	if db.clock == nil {
		db.clock = kernel.SystemClock{}
	}
	if db.logger == nil {
		db.logger = slog.Default()
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) Dialect() store.Dialect { return store.Postgres }

// Pool exposes the pool to this package's tests and the benchmark baselines.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

func (db *DB) Ping(ctx context.Context) error {
	return mapErr(db.pool.Ping(ctx))
}

func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// setConfigSQL sets every row-level-security setting, transaction-locally, in
// one statement: app.workspace_id to $1, app.bypass_rls to $2 and app.user_id
// to $3.
const setConfigSQL = "SELECT set_config('app.workspace_id', $1, true), set_config('app.bypass_rls', $2, true), set_config('app.user_id', $3, true)"

func (db *DB) Tx(ctx context.Context, fn func(store.Tx) error) error {
	return db.run(ctx, txSpec{begin: "BEGIN"}, fn)
}

func (db *DB) ReadTx(ctx context.Context, fn func(store.Tx) error) error {
	return db.run(ctx, txSpec{begin: "BEGIN READ ONLY"}, fn)
}

func (db *DB) InWorkspace(ctx context.Context, workspaceID uuid.UUID, fn func(store.Tx) error) error {
	if workspaceID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("pgstore: InWorkspace without a workspace"))
	}
	return db.run(ctx, txSpec{begin: "BEGIN", workspace: workspaceID}, fn)
}

func (db *DB) ReadWorkspace(ctx context.Context, workspaceID uuid.UUID, fn func(store.Tx) error) error {
	if workspaceID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("pgstore: ReadWorkspace without a workspace"))
	}
	return db.run(ctx, txSpec{begin: "BEGIN READ ONLY", workspace: workspaceID}, fn)
}

// ReadAsUser runs fn read-only with app.user_id set to userID, which the
// membership and workspace policies of migration 0004 let see that person's
// memberships and their workspaces. It returns an internal error for uuid.Nil.
func (db *DB) ReadAsUser(ctx context.Context, userID uuid.UUID, fn func(store.Tx) error) error {
	if userID == uuid.Nil {
		return kernel.Internal(fmt.Errorf("pgstore: ReadAsUser without a user"))
	}
	return db.run(ctx, txSpec{begin: "BEGIN READ ONLY", user: userID}, fn)
}

func (db *DB) System(ctx context.Context, reason string, fn func(store.Tx) error) error {
	if err := store.EnterSystem(ctx, db.logger, reason); err != nil {
		return err
	}
	return db.run(ctx, txSpec{begin: "BEGIN", bypass: true}, fn)
}

// WorkspaceRow sends BEGIN READ ONLY, set_config, the statement and COMMIT as
// one pipeline and scans the first row.
func (db *DB) WorkspaceRow(ctx context.Context, workspaceID uuid.UUID, sql string, args ...any) store.Row {
	if workspaceID == uuid.Nil {
		return errRow{kernel.Internal(fmt.Errorf("pgstore: WorkspaceRow without a workspace"))}
	}
	return &oneShotRow{db: db, ctx: ctx, spec: txSpec{begin: "BEGIN READ ONLY", workspace: workspaceID}, sql: sql, args: args}
}

// PlatformRow is WorkspaceRow bound to no workspace: every row-level-security
// setting is reset to the empty string in the same pipeline, so tenant tables
// show no rows whatever the connection ran before.
func (db *DB) PlatformRow(ctx context.Context, sql string, args ...any) store.Row {
	return &oneShotRow{db: db, ctx: ctx, spec: txSpec{begin: "BEGIN READ ONLY"}, sql: sql, args: args}
}

// oneShotRow is a read that runs when it is scanned: BEGIN, set_config, the
// statement and COMMIT go out as one batch, one round trip.
type oneShotRow struct {
	db   *DB
	ctx  context.Context
	spec txSpec
	sql  string
	args []any
}

func (r *oneShotRow) Scan(dest ...any) error {
	conn, err := r.db.pool.Acquire(r.ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Release()
	b := &pgx.Batch{}
	queueStart(b, r.spec)
	b.Queue(r.sql, pgArgs(r.args)...)
	b.Queue("COMMIT")
	br := conn.SendBatch(r.ctx, b)
	scanErr := scanOneShot(br, dest)
	closeErr := br.Close()
	if scanErr == nil {
		scanErr = closeErr
	}
	if scanErr != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		rollback(conn)
	}
	return mapErr(scanErr)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func scanOneShot(br pgx.BatchResults, dest []any) error {
	if _, err := br.Exec(); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	found := rows.Next()
	if found {
		err = rows.Scan(dest...)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	if !found {
		return pgx.ErrNoRows
	}
	return nil
}

// rollback ends a transaction left open by a failed statement, on a fresh
// context so that a cancelled request still returns a clean connection. If it
// fails, the pool sees the connection is not idle and discards it on release.
func rollback(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

type txSpec struct {
	begin     string
	workspace uuid.UUID
	bypass    bool
	user      uuid.UUID // only for ReadAsUser; never with workspace or bypass
}

func (db *DB) run(ctx context.Context, spec txSpec, fn func(store.Tx) error) (err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Release()
	t := &tx{conn: conn, spec: spec, now: db.clock.Now()}
	defer func() {
		if p := recover(); p != nil {
			t.rollback()
			panic(p)
		}
	}()
	if err := fn(t); err != nil {
		t.rollback()
		return err
	}
	return t.commit(ctx)
}
