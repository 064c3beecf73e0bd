package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"atrium/bench/benchkit"
	"atrium/internal/app"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// rig is one dialect ready to measure: Atrium running on loopback, the two
// bare baseline servers on the same store pool, and the targets.
type rig struct {
	dialect store.Dialect
	targets []target // B0, B1, FULL, FULL-session, FULL-key: the order each round runs them in
	notes   []string
	closers []func()
}

func (r *rig) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// benchPassword is the bench person's password; it passes the policy.
const benchPassword = "spine bench correct horse battery"

// newRig boots Atrium on dialect, seeds n workspaces through
// tenancy.Service.Create, makes one person (signed up, verified and logged
// in through the API) owner of each, creates one API key per workspace
// through the API, starts the two baselines on the app's own store pool and
// checks that every target answers the same body.
func newRig(ctx context.Context, dialect store.Dialect, n int) (_ *rig, err error) {
	r := &rig{dialect: dialect}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	in, err := benchkit.Boot(ctx, dialect, app.Options{Auth: testkit.TestAuth{}})
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, in.Close)
	a := in.App
	ids, err := seed(ctx, a.Services.Workspaces, n)
	if err != nil {
		return nil, err
	}
	person, keys, err := credentials(ctx, a, ids)
	if err != nil {
		return nil, err
	}
	plain, tenant, err := r.reads(ctx, a, in.Schema, n)
	if err != nil {
		return nil, err
	}
	bare := func(id string) string { return "/workspaces/" + id }
	testKey := func(i int) (string, string) { return "Authorization", testkit.KeyFor(ids[i]) }
	for _, b := range []struct {
		name string
		read readFunc
	}{{"B0", plain}, {"B1", tenant}} {
		base, stop, err := serveBare(bareHandler(b.read))
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, stop)
		t, err := newTarget(b.name, base, bare, ids, testKey)
		if err != nil {
			return nil, err
		}
		r.targets = append(r.targets, t)
	}
	api := func(id string) string { return "/api/v1/workspaces/" + id }
	for _, f := range []struct {
		name string
		auth func(i int) (string, string)
	}{
		{"FULL", testKey},
		{"FULL-session", func(int) (string, string) { return "Cookie", person.Cookie() }},
		{"FULL-key", func(i int) (string, string) { return "Authorization", "Bearer " + keys[i] }},
	} {
		t, err := newTarget(f.name, a.URL(), api, ids, f.auth)
		if err != nil {
			return nil, err
		}
		r.targets = append(r.targets, t)
	}
	note, err := compareResponses(r.targets)
	if err != nil {
		return nil, err
	}
	r.notes = append(r.notes, note,
		"FULL: TestAuth (no store read); FULL-session: one person's real session cookie, owner of every workspace;",
		"   FULL-key: a real API key per workspace, created through the API")
	return r, nil
}

// credentials signs one person up through the API, makes them owner of every
// workspace (tenancy.Service.AddMember, audited as Atrium writes it) and
// creates a read-write API key in each through the API as them. It returns
// the person and the keys' secrets, in the order of ids.
func credentials(ctx context.Context, a *app.App, ids []uuid.UUID) (benchkit.Person, []string, error) {
	person, err := benchkit.SignUp(ctx, a, "spine-bench@example.com", benchPassword)
	if err != nil {
		return benchkit.Person{}, nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		if _, err := a.Services.Workspaces.AddMember(ctx, id, person.ID, policy.Owner); err != nil {
			return benchkit.Person{}, nil, fmt.Errorf("membership %d: %w", i, err)
		}
		if keys[i], err = benchkit.CreateAPIKey(ctx, a.URL(), person, id); err != nil {
			return benchkit.Person{}, nil, fmt.Errorf("key %d: %w", i, err)
		}
	}
	return person, keys, nil
}

// reads returns B0's and B1's reads on the app's own store pool.
func (r *rig) reads(ctx context.Context, a *app.App, schema benchkit.PGSchema, n int) (plain, tenant readFunc, err error) {
	switch db := a.DB.(type) {
	case *sqlitestore.DB:
		r.notes = append(r.notes, fmt.Sprintf("store pool: SQLite reader pool, %d connections, shared by every scenario", db.Reader().Stats().MaxOpenConnections))
		return sqlitePlainRead(db.Reader()), sqliteTxRead(db.Reader()), nil
	case *pgstore.DB:
		if err := copyPlainTable(ctx, schema, n); err != nil {
			return nil, nil, err
		}
		r.notes = append(r.notes,
			fmt.Sprintf("store pool: the app's pgxpool (MaxConns %d, role %s), shared by every scenario", db.Pool().Config().MaxConns, schema.AppRole),
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
		} else if !bytes.Equal(body, first) && !bytes.Equal(body, withRole(first)) {
			return "", fmt.Errorf("%s answers %q, %s answers %q", t.name, body, targets[0].name, first)
		}
		var h bytes.Buffer
		_ = resp.Header.Write(&h)
		headers = append(headers, fmt.Sprintf("%s %d", t.name, h.Len()))
	}
	return fmt.Sprintf("responses: identical %d-byte bodies (FULL-session adds the caller's role); header bytes %s", len(first), strings.Join(headers, ", ")), nil
}

// withRole is body as the API renders it for a member: the caller's role is
// the one field a person's answer adds.
func withRole(body []byte) []byte {
	trimmed := bytes.TrimSuffix(body, []byte("}\n"))
	return append(append([]byte{}, trimmed...), `,"role":"owner"}`+"\n"...)
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
