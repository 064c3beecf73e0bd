package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/tenancy"
)

// The baselines answer GET /workspaces/{workspace_id} with the same body the
// API renders (httpapi.WorkspaceBody, encoded as huma encodes it), from a bare
// net/http server configured like Atrium's own. They run on the app's own
// store pool, so pool size and driver settings are identical by construction.
// What they leave out is exactly what FULL adds: the middleware spine
// (recovery, request ID, access log, tracing, CORS, body check, auth, tenant,
// CSRF, idempotency), huma's routing, parameter binding and response
// transformation, and the service and store layers.

// selectWorkspace is the statement tenancy.Service.Get runs.
const selectWorkspace = "SELECT id, slug, name, created_at, updated_at FROM workspace WHERE id = $1"

// plainTable is B0's copy of workspace on PostgreSQL, with no row-level
// security (see copyPlainTable).
const plainTable = "bench_plain"

// readFunc reads one workspace; it returns sql.ErrNoRows or pgx.ErrNoRows when
// there is none.
type readFunc func(ctx context.Context, id uuid.UUID) (tenancy.Workspace, error)

func scanInto(ws *tenancy.Workspace) []any {
	return []any{&ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt, &ws.UpdatedAt}
}

// sqlitePlainRead is B0 on SQLite: one QueryRow on the reader pool. It is also
// exactly what sqlitestore.WorkspaceRow does, since SQLite has no row-level
// security to bind.
func sqlitePlainRead(reader *sql.DB) readFunc {
	return func(ctx context.Context, id uuid.UUID) (ws tenancy.Workspace, err error) {
		err = reader.QueryRowContext(ctx, selectWorkspace, id).Scan(scanInto(&ws)...)
		return ws, err
	}
}

// sqliteTxRead is B1 on SQLite: the read inside an explicit read transaction
// (BEGIN DEFERRED on the read-only pool, SELECT, COMMIT), the shape of
// sqlitestore.ReadWorkspace.
func sqliteTxRead(reader *sql.DB) readFunc {
	return func(ctx context.Context, id uuid.UUID) (ws tenancy.Workspace, err error) {
		tx, err := reader.BeginTx(ctx, nil)
		if err != nil {
			return ws, err
		}
		if err := tx.QueryRowContext(ctx, selectWorkspace, id).Scan(scanInto(&ws)...); err != nil {
			_ = tx.Rollback()
			return ws, err
		}
		return ws, tx.Commit()
	}
}

// pgPlainRead is B0 on PostgreSQL: one QueryRow (a cached prepared statement,
// one round trip) against bench_plain, a copy of workspace without row-level
// security. The RLS table itself cannot be read this way: as the app role an
// unset app.workspace_id matches no rows, and FORCE ROW LEVEL SECURITY binds
// the owner too. So B0 is "the same row, same columns, same index, no RLS".
func pgPlainRead(pool *pgxpool.Pool) readFunc {
	query := "SELECT id, slug, name, created_at, updated_at FROM " + plainTable + " WHERE id = $1"
	return func(ctx context.Context, id uuid.UUID) (ws tenancy.Workspace, err error) {
		err = pool.QueryRow(ctx, query, id).Scan(scanInto(&ws)...)
		return ws, err
	}
}

// pgTenantRead is B1 on PostgreSQL: the cheapest correct tenant-scoped read.
// BEGIN READ ONLY, set_config('app.workspace_id', $1, true), the SELECT and
// COMMIT go out as one pgx batch (one pipeline, one round trip) as the app
// role, against the RLS-protected workspace table. If anything fails, the
// pool discards a connection left inside a transaction.
func pgTenantRead(pool *pgxpool.Pool) readFunc {
	return func(ctx context.Context, id uuid.UUID) (ws tenancy.Workspace, err error) {
		b := &pgx.Batch{}
		b.Queue("BEGIN READ ONLY")
		b.Queue("SELECT set_config('app.workspace_id', $1, true)", id.String())
		b.Queue(selectWorkspace, id)
		b.Queue("COMMIT")
		br := pool.SendBatch(ctx, b)
		err = scanBatch(br, &ws)
		if closeErr := br.Close(); err == nil {
			err = closeErr
		}
		return ws, err
	}
}

func scanBatch(br pgx.BatchResults, ws *tenancy.Workspace) error {
	if _, err := br.Exec(); err != nil {
		return err
	}
	if _, err := br.Exec(); err != nil {
		return err
	}
	if err := br.QueryRow().Scan(scanInto(ws)...); err != nil {
		return err
	}
	_, err := br.Exec()
	return err
}

// bareHandler serves GET /workspaces/{workspace_id} from read with nothing
// around it but net/http's own mux.
func bareHandler(read readFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /workspaces/{workspace_id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := kernel.ParseID(kernel.PrefixWorkspace, r.PathValue("workspace_id"))
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		ws, err := read(r.Context(), id)
		if errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w) // as huma.DefaultJSONFormat
		enc.SetEscapeHTML(false)
		_ = enc.Encode(httpapi.WorkspaceBody{
			ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: ws.Slug, Name: ws.Name,
			CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt,
		})
	})
	return mux
}

// serveBare starts h on a loopback port with the timeouts app.New gives
// Atrium's server, and returns its base URL and a function that stops it.
func serveBare(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	go func() { _ = srv.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String(), stop, nil
}
