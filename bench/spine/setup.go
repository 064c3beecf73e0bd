package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"atrium/internal/app"
	"atrium/internal/config"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
)

// rig is one dialect ready to measure: Atrium running on loopback, the two
// bare baseline servers on the same store pool, and the three targets.
type rig struct {
	dialect store.Dialect
	targets []target // B0, B1, FULL: the order each round runs them in
	notes   []string
	closers []func()
}

func (r *rig) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// newRig boots Atrium on dialect, seeds n workspaces through
// tenancy.Service.Create, starts the two baselines on the app's own store pool
// and checks that all three answer the same body.
func newRig(ctx context.Context, dialect store.Dialect, n int) (r *rig, err error) {
	r = &rig{dialect: dialect}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	a, schema, err := r.boot(ctx, dialect)
	if err != nil {
		return nil, err
	}
	ids, err := seed(ctx, a.Services.Workspaces, n)
	if err != nil {
		return nil, err
	}
	plain, tenant, err := r.reads(ctx, a, schema, n)
	if err != nil {
		return nil, err
	}
	bare := func(id string) string { return "/workspaces/" + id }
	for _, b := range []struct {
		name string
		read readFunc
	}{{"B0", plain}, {"B1", tenant}} {
		base, stop, err := serveBare(bareHandler(b.read))
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, stop)
		t, err := newTarget(b.name, base, bare, ids)
		if err != nil {
			return nil, err
		}
		r.targets = append(r.targets, t)
	}
	full, err := newTarget("FULL", a.URL(), func(id string) string { return "/api/v1/workspaces/" + id }, ids)
	if err != nil {
		return nil, err
	}
	r.targets = append(r.targets, full)
	note, err := compareResponses(r.targets)
	if err != nil {
		return nil, err
	}
	r.notes = append(r.notes, note)
	return r, nil
}

// boot starts Atrium exactly as cmd/atrium would (config.Load, app.New,
// app.Run) on a temporary data directory, or on a fresh PostgreSQL schema,
// with TestAuth and the JSON log at level info written to io.Discard, so every
// access line is still built and formatted.
func (r *rig) boot(ctx context.Context, dialect store.Dialect) (*app.App, pgSchema, error) {
	var schema pgSchema
	dir, err := os.MkdirTemp("", "atrium-spine-")
	if err != nil {
		return nil, schema, err
	}
	r.closers = append(r.closers, func() { os.RemoveAll(dir) })
	env := map[string]string{
		"ATRIUM_ADDR":      "127.0.0.1:0",
		"ATRIUM_DATA_DIR":  filepath.Join(dir, "data"),
		"ATRIUM_LOG_LEVEL": "info",
	}
	if dialect == store.Postgres {
		if schema, err = newPostgresSchema(ctx); err != nil {
			return nil, schema, err
		}
		r.closers = append(r.closers, schema.drop)
		env["ATRIUM_DATABASE_URL"] = schema.appURL
		env["ATRIUM_AUTO_MIGRATE"] = "false" // migrated as the owner, like testkit
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		return nil, schema, err
	}
	a, err := app.New(ctx, cfg, app.Options{LogOutput: io.Discard, Auth: testkit.TestAuth{}})
	if err != nil {
		return nil, schema, fmt.Errorf("boot atrium: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	r.closers = append(r.closers, func() { cancel(); <-done; a.Close() })
	return a, schema, nil
}

// reads returns B0's and B1's reads on the app's own store pool.
func (r *rig) reads(ctx context.Context, a *app.App, schema pgSchema, n int) (plain, tenant readFunc, err error) {
	switch db := a.DB.(type) {
	case *sqlitestore.DB:
		r.notes = append(r.notes, fmt.Sprintf("store pool: SQLite reader pool, %d connections, shared by all three", db.Reader().Stats().MaxOpenConnections))
		return sqlitePlainRead(db.Reader()), sqliteTxRead(db.Reader()), nil
	case *pgstore.DB:
		if err := copyPlainTable(ctx, schema, n); err != nil {
			return nil, nil, err
		}
		r.notes = append(r.notes,
			fmt.Sprintf("store pool: the app's pgxpool (MaxConns %d, role %s), shared by all three", db.Pool().Config().MaxConns, schema.appRole),
			"B0 reads "+plainTable+", an identical copy of workspace (same rows, columns, primary key) without RLS:",
			"   the RLS table shows the app role nothing without app.workspace_id, and FORCE RLS binds the owner too")
		return pgPlainRead(db.Pool()), pgTenantRead(db.Pool()), nil
	}
	return nil, nil, fmt.Errorf("unexpected store %T", a.DB)
}

// compareResponses fetches the first workspace from every target and checks
// that the bodies are byte for byte the same, so the scenarios differ only in
// the work behind them. It returns a line describing the responses.
func compareResponses(targets []target) (string, error) {
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var first []byte
	var headers []string
	for _, t := range targets {
		resp, err := client.Do(t.requests[0])
		if err != nil {
			return "", fmt.Errorf("%s: %w", t.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: status %d, %v: %.200s", t.name, resp.StatusCode, err, body)
		}
		if first == nil {
			first = body
		} else if !bytes.Equal(body, first) {
			return "", fmt.Errorf("%s answers %q, %s answers %q", t.name, body, targets[0].name, first)
		}
		var h bytes.Buffer
		_ = resp.Header.Write(&h)
		headers = append(headers, fmt.Sprintf("%s %d", t.name, h.Len()))
	}
	return fmt.Sprintf("responses: identical %d-byte bodies; header bytes %s", len(first), strings.Join(headers, ", ")), nil
}

// seed creates n workspaces through the service, so the rows (and their audit
// and outbox rows) are what Atrium itself writes.
func seed(ctx context.Context, svc *tenancy.Service, n int) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, n)
	for i := range n {
		ws, err := svc.Create(ctx, fmt.Sprintf("Bench Workspace %04d", i), fmt.Sprintf("bench-%04d", i))
		if err != nil {
			return nil, fmt.Errorf("seed workspace %d: %w", i, err)
		}
		ids = append(ids, ws.ID)
	}
	return ids, nil
}
