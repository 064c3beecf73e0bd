package pgstore

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// tx is a transaction that begins lazily: its first statement carries BEGIN and
// the row-level-security settings in the same pipeline.
type tx struct {
	conn    *pgxpool.Conn
	spec    txSpec
	now     time.Time
	started bool
}

func (t *tx) Dialect() store.Dialect { return store.Postgres }
func (t *tx) Now() time.Time         { return t.now }
func (t *tx) WorkspaceID() uuid.UUID { return t.spec.workspace }
func (t *tx) pgconn() *pgx.Conn      { return t.conn.Conn() }

// queueStart queues BEGIN and one statement that sets every row-level-security
// setting, to the transaction's values or explicitly to the empty string, so
// that nothing a connection carried from an earlier use can leak into this
// transaction.
func queueStart(b *pgx.Batch, spec txSpec) {
	b.Queue(spec.begin)
	workspace, bypass, user := "", "", ""
	if spec.workspace != uuid.Nil {
		workspace = spec.workspace.String()
	}
	if spec.bypass {
		bypass = "on"
	}
	if spec.user != uuid.Nil {
		user = spec.user.String()
	}
	b.Queue(setConfigSQL, workspace, bypass, user)
}

// startWith sends the transaction's prologue and sql as one batch and consumes
// the prologue's results, leaving the statement's result next in line.
func (t *tx) startWith(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	queueStart(b, t.spec)
	b.Queue(sql, pgArgs(args)...)
	t.started = true
	br := t.pgconn().SendBatch(ctx, b)
	for i := 0; i < b.Len()-1; i++ {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

func (t *tx) Exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if t.started {
		tag, err := t.pgconn().Exec(ctx, sql, pgArgs(args)...)
		return tag.RowsAffected(), mapErr(err)
	}
	br, err := t.startWith(ctx, sql, args)
	if err != nil {
		return 0, mapErr(err)
	}
	tag, err := br.Exec()
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	return tag.RowsAffected(), mapErr(err)
}

func (t *tx) Query(ctx context.Context, sql string, args ...any) (store.Rows, error) {
	if t.started {
		r, err := t.pgconn().Query(ctx, sql, pgArgs(args)...)
		if err != nil {
			return nil, mapErr(err)
		}
		return &rows{r: r}, nil
	}
	br, err := t.startWith(ctx, sql, args)
	if err != nil {
		return nil, mapErr(err)
	}
	r, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, mapErr(err)
	}
	return &rows{r: r, batch: br}, nil
}

func (t *tx) QueryRow(ctx context.Context, sql string, args ...any) store.Row {
	r, err := t.Query(ctx, sql, args...)
	return &row{rows: r, err: err}
}

func (t *tx) commit(ctx context.Context) error {
	if !t.started {
		return nil // nothing was sent, so there is nothing to commit
	}
	tag, err := t.pgconn().Exec(ctx, "COMMIT")
	if err != nil {
		return mapErr(err)
	}
	if tag.String() == "ROLLBACK" {
		// A statement failed and fn ignored it: the server rolled back.
		return kernel.Internal(pgx.ErrTxCommitRollback)
	}
	return nil
}

func (t *tx) rollback() {
	if t.started {
		rollback(t.conn)
	}
}

// rows adapts pgx.Rows; when the rows came from a start batch, closing them
// closes the batch too.
type rows struct {
	r     pgx.Rows
	batch pgx.BatchResults
	err   error
}

func (r *rows) Next() bool { return r.r.Next() }

func (r *rows) Scan(dest ...any) error { return mapErr(r.r.Scan(dest...)) }

func (r *rows) Err() error {
	if r.err != nil {
		return r.err
	}
	return mapErr(r.r.Err())
}

func (r *rows) Close() error {
	r.r.Close()
	if r.batch != nil {
		if err := r.batch.Close(); err != nil && r.err == nil {
			r.err = mapErr(err)
		}
		r.batch = nil
	}
	return r.Err()
}

type row struct {
	rows store.Rows
	err  error
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Close(); err != nil {
			return err
		}
		return mapErr(pgx.ErrNoRows)
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}
