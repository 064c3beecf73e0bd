package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

// tenantKeys reads, per tenant table, the tenant key of every row a transaction
// can see, with no WHERE clause: only row-level security filters them.
var tenantKeys = map[string]string{
	"workspace": "SELECT id::text FROM workspace",
	"outbox":    "SELECT workspace_id::text FROM outbox",
	"audit_log": "SELECT coalesce(workspace_id::text, 'platform') FROM audit_log",
}

func TestNoWorkspaceSeesNoTenantRows(t *testing.T) {
	testkit.PostgresURL(t)
	db := openStore(t, testkit.NewPostgresSchema(t).AppURL)
	a, b := seedTwoTenants(t, db)
	ctx := context.Background()

	for name, run := range map[string]func(context.Context, func(store.Tx) error) error{"Tx": db.Tx, "ReadTx": db.ReadTx} {
		got, err := visibleIn(ctx, run)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertVisible(t, name, got, map[string][]string{})
	}
	// The rows are there: the system path sees them all.
	got, err := visibleIn(ctx, func(ctx context.Context, fn func(store.Tx) error) error {
		return db.System(ctx, "rls test: count every row", fn)
	})
	if err != nil {
		t.Fatal(err)
	}
	assertVisible(t, "System", got, map[string][]string{
		"workspace": keys(a, b),
		"outbox":    keys(a, b),
		"audit_log": append(keys(a, b), "platform"),
	})
}

func TestWorkspaceSeesOnlyItsOwnRows(t *testing.T) {
	testkit.PostgresURL(t)
	db := openStore(t, testkit.NewPostgresSchema(t).AppURL)
	a, b := seedTwoTenants(t, db)
	ctx := context.Background()
	onlyA := map[string][]string{"workspace": keys(a), "outbox": keys(a), "audit_log": keys(a)}

	for name, run := range map[string]func(context.Context, uuid.UUID, func(store.Tx) error) error{
		"InWorkspace": db.InWorkspace, "ReadWorkspace": db.ReadWorkspace,
	} {
		got, err := visibleIn(ctx, func(ctx context.Context, fn func(store.Tx) error) error { return run(ctx, a, fn) })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertVisible(t, name, got, onlyA)
	}

	var n int
	var id uuid.UUID
	if err := db.WorkspaceRow(ctx, a, "SELECT count(*), min(id::text)::uuid FROM workspace").Scan(&n, &id); err != nil || n != 1 || id != a {
		t.Fatalf("WorkspaceRow(A) over all of workspace: %d rows, first %s, err %v; want exactly A %s", n, id, err, a)
	}
	var slug string
	err := db.WorkspaceRow(ctx, a, "SELECT slug FROM workspace WHERE id = $1", b).Scan(&slug)
	if !kernel.IsCode(err, kernel.CodeNotFound) {
		t.Fatalf("WorkspaceRow(A) asking for B: slug %q, err %v; want not_found", slug, err)
	}
	err = db.ReadWorkspace(ctx, a, func(tx store.Tx) error {
		return tx.QueryRow(ctx, "SELECT slug FROM workspace WHERE id = $1", b).Scan(&slug)
	})
	if !kernel.IsCode(err, kernel.CodeNotFound) {
		t.Fatalf("ReadWorkspace(A) asking for B: slug %q, err %v; want not_found", slug, err)
	}
}

func TestWorkspaceCannotWriteAnotherTenantsRows(t *testing.T) {
	testkit.PostgresURL(t)
	db := openStore(t, testkit.NewPostgresSchema(t).AppURL)
	a, b := seedTwoTenants(t, db)
	ctx := context.Background()
	before := snapshot(t, db)

	for _, w := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO outbox (id, workspace_id, event_type, payload, created_at) VALUES ($1, $2, 'test.forged', '{}', now())", []any{kernel.NewID(), b}},
		{"INSERT INTO workspace (id, slug, name, created_at, updated_at) VALUES ($1, 'forged', 'Forged', now(), now())", []any{kernel.NewID()}},
		{"UPDATE outbox SET workspace_id = $1", []any{b}},
		{"UPDATE workspace SET id = $1 WHERE id = $2", []any{kernel.NewID(), a}},
	} {
		err := db.InWorkspace(ctx, a, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, w.sql, w.args...)
			return err
		})
		if !kernel.IsCode(err, kernel.CodeForbidden) {
			t.Errorf("as A: %s: %v, want forbidden", w.sql, err)
		}
	}
	for _, sql := range []string{
		"UPDATE workspace SET name = 'Hijacked' WHERE id = $1",
		"DELETE FROM workspace WHERE id = $1",
		"UPDATE outbox SET event_type = 'test.hijacked' WHERE workspace_id = $1",
		"DELETE FROM outbox WHERE workspace_id = $1",
	} {
		var affected int64
		err := db.InWorkspace(ctx, a, func(tx store.Tx) error {
			var err error
			affected, err = tx.Exec(ctx, sql, b)
			return err
		})
		if err != nil || affected != 0 {
			t.Errorf("as A: %s on B: %d rows, %v; want 0 rows", sql, affected, err)
		}
	}
	if after := snapshot(t, db); after != before {
		t.Fatalf("refused writes changed the data:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestPooledConnectionsNeverCarryATenantOver drives two pooled connections
// through every way a transaction can end and checks, after each, that a read
// for one tenant shows nothing of another and the platform path nothing at all.
func TestPooledConnectionsNeverCarryATenantOver(t *testing.T) {
	testkit.PostgresURL(t)
	db := openStore(t, withQuery(t, testkit.NewPostgresSchema(t).AppURL, "pool_max_conns", "2"))
	if size := db.Pool().Config().MaxConns; size != 2 {
		t.Fatalf("pool size %d, want 2", size)
	}
	tenants := []uuid.UUID{
		storetest.CreateWorkspace(t, db, "alpha"),
		storetest.CreateWorkspace(t, db, "bravo"),
		storetest.CreateWorkspace(t, db, "charlie"),
	}
	committed := make([]atomic.Int64, len(tenants))
	const goroutines, iterations = 4, 50
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iterations {
				k := (g + i) % len(tenants)
				p := poolStep{db: db, tenant: tenants[k], tenants: len(tenants), committed: &committed[k]}
				if err := p.run(i % poolActions); err != nil {
					t.Errorf("goroutine %d, step %d, action %d, tenant %d: %v", g, i, i%poolActions, k, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	// Exactly the committed events survive, each in its own tenant.
	got := map[string]int64{}
	err := db.System(context.Background(), "rls test: count outbox", func(tx store.Tx) error {
		rows, err := column(context.Background(), tx, "SELECT workspace_id::text FROM outbox")
		for _, r := range rows {
			got[r]++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, id := range tenants {
		if want := committed[k].Load(); got[id.String()] != want {
			t.Errorf("tenant %d has %d outbox rows, want the %d committed ones", k, got[id.String()], want)
		}
	}
}

func TestSystemPathCrossesTenantsOnlyOutsideRequests(t *testing.T) {
	testkit.PostgresURL(t)
	db := openStore(t, testkit.NewPostgresSchema(t).AppURL)
	a, b := seedTwoTenants(t, db)

	var slugs []string
	err := db.System(context.Background(), "rls test: list workspaces", func(tx store.Tx) error {
		var err error
		slugs, err = column(context.Background(), tx, "SELECT slug FROM workspace")
		return err
	})
	if err != nil || !slices.Equal(slugs, []string{"alpha", "bravo"}) {
		t.Fatalf("system path saw workspaces %v (err %v), want alpha and bravo (%s, %s)", slugs, err, a, b)
	}

	ctx := kernel.WithRequestID(context.Background(), "req-rls")
	called := false
	err = db.System(ctx, "rls test: from a request", func(tx store.Tx) error {
		called = true
		return nil
	})
	if !errors.Is(err, store.ErrSystemFromRequest) || called {
		t.Fatalf("system path from a request: err %v, fn called %v; want ErrSystemFromRequest and no call", err, called)
	}
}

func TestInspectRoleFindsNoRiskInTheAppRole(t *testing.T) {
	testkit.PostgresURL(t)
	schema := testkit.NewPostgresSchema(t)
	role, err := openStore(t, schema.AppURL).InspectRole(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if role.Name != schema.AppRole || role.Superuser || role.BypassRLS || len(role.OwnedTables) > 0 || len(role.UnsealedTables) > 0 {
		t.Errorf("app role: %+v, want %s with no attribute, owned or unsealed table", role, schema.AppRole)
	}
	if risks := role.Risks(); len(risks) > 0 {
		t.Errorf("app role risks: %q, want none", risks)
	}
}

func TestInspectRoleReportsOwnerAndUnsealedTable(t *testing.T) {
	testkit.PostgresURL(t)
	schema := testkit.NewPostgresSchema(t)
	app := openStore(t, schema.AppURL)
	owner := openStore(t, schema.OwnerURL)
	seedTwoTenants(t, app)
	ctx := context.Background()

	role, err := owner.InspectRole(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(role.OwnedTables, "outbox") || len(role.Risks()) == 0 {
		t.Fatalf("owner role: owned %v, risks %q; want outbox owned and a risk", role.OwnedTables, role.Risks())
	}
	if n := countOutbox(t, owner); n != 0 {
		t.Fatalf("owner outside a workspace sees %d outbox rows while FORCE is on, want 0", n)
	}

	if _, err := owner.Pool().Exec(ctx, "ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY"); err != nil {
		t.Fatal(err)
	}
	role, err = app.InspectRole(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(role.UnsealedTables, []string{"outbox"}) {
		t.Fatalf("unsealed tables after NO FORCE: %v, want [outbox]", role.UnsealedTables)
	}
	if risks := role.Risks(); len(risks) != 1 || !strings.Contains(risks[0], `"outbox"`) {
		t.Errorf("risks after NO FORCE: %q, want one naming outbox", risks)
	}
	// The reported risk is real: the owner now reads every tenant's events.
	if n := countOutbox(t, owner); n != 2 {
		t.Errorf("owner outside a workspace sees %d outbox rows after NO FORCE, want both tenants' 2", n)
	}
}

func TestMigrateTwiceAppliesNothing(t *testing.T) {
	testkit.PostgresURL(t)
	schema := testkit.NewPostgresSchema(t)
	ctx := context.Background()
	applied, err := pgstore.Migrate(ctx, schema.OwnerURL, schema.AppRole)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate applied %d migrations, err %v; want none", len(applied), err)
	}
	app := openStore(t, schema.AppURL)
	assertAllApplied(t, app)
	// The app role still works after the grants ran again.
	storetest.CreateWorkspace(t, app, "after-remigrate")
}

// TestMigrateRecoversFromAnInterruptedMigration kills the backend that is
// applying the first migration before it commits, as a node dying mid-deploy
// would, and checks the next Migrate builds the whole schema.
func TestMigrateRecoversFromAnInterruptedMigration(t *testing.T) {
	ownerURL := testkit.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	schemaURL := emptySchema(t, ownerURL)
	all, err := pgstore.Migrations()
	if err != nil {
		t.Fatal(err)
	}

	victim := connect(t, schemaURL)
	tx, err := victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, all[0].SQL); err != nil {
		t.Fatalf("first migration inside the doomed transaction: %v", err)
	}
	killer := connect(t, schemaURL)
	terminate(t, killer, victim.PgConn().PID())
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("commit succeeded on a terminated backend")
	}
	if tables := existingTables(t, killer); len(tables) != 0 {
		t.Fatalf("tables left by the interrupted migration: %v", tables)
	}

	applied, err := pgstore.Migrate(ctx, schemaURL, "")
	if err != nil || len(applied) != len(all) {
		t.Fatalf("Migrate after the interruption: applied %d of %d, err %v", len(applied), len(all), err)
	}
	tables := existingTables(t, killer)
	for _, want := range []string{"audit_log", "idempotency_key", "outbox", "schema_migrations", "workspace"} {
		if !slices.Contains(tables, want) {
			t.Fatalf("tables after Migrate: %v, missing %s", tables, want)
		}
	}
	db := openStore(t, schemaURL)
	assertAllApplied(t, db)
	if role, err := db.InspectRole(ctx); err != nil || len(role.UnsealedTables) > 0 {
		t.Fatalf("tenant tables not sealed after recovery: %v %v", role.UnsealedTables, err)
	}
}

const poolActions = 7

// poolStep is one iteration of the pool test: an action on tenant, then the
// isolation checks.
type poolStep struct {
	db        *pgstore.DB
	tenant    uuid.UUID
	tenants   int
	committed *atomic.Int64
}

func (p poolStep) run(action int) error {
	ctx := context.Background()
	var err error
	switch action {
	case 0:
		err = p.commitEvent(ctx)
	case 1:
		err = p.expectFailure(ctx, "division by zero", "SELECT 1/0")
	case 2:
		err = p.cancelMidFlight()
	case 3:
		err = p.panicInside(ctx)
	case 4:
		err = p.systemRead(ctx)
	case 5:
		err = checkIdleConnection(ctx, p.db)
	case 6:
		err = p.failingWorkspaceRow(ctx)
	}
	if err != nil {
		return err
	}
	return checkIsolation(ctx, p.db, p.tenant)
}

func (p poolStep) commitEvent(ctx context.Context) error {
	err := p.db.InWorkspace(ctx, p.tenant, func(tx store.Tx) error { return appendEvent(ctx, tx) })
	if err != nil {
		return fmt.Errorf("committed write: %w", err)
	}
	p.committed.Add(1)
	return nil
}

// expectFailure appends an event, then runs a failing statement: the
// transaction must report the error and keep nothing.
func (p poolStep) expectFailure(ctx context.Context, what, failing string) error {
	err := p.db.InWorkspace(ctx, p.tenant, func(tx store.Tx) error {
		if err := appendEvent(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, failing)
		return err
	})
	if err == nil {
		return fmt.Errorf("%s: transaction committed", what)
	}
	return nil
}

func (p poolStep) cancelMidFlight() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	// Short sleep: a client-side cancel leaves the server backend sleeping it out.
	return p.expectFailure(ctx, "cancelled", "SELECT pg_sleep(0.2)")
}

func (p poolStep) panicInside(ctx context.Context) (err error) {
	defer func() {
		if recover() == nil {
			err = errors.New("panic inside fn was swallowed")
		}
	}()
	_ = p.db.InWorkspace(ctx, p.tenant, func(tx store.Tx) error {
		if err := appendEvent(ctx, tx); err != nil {
			return err
		}
		panic("boom")
	})
	return nil
}

// failingWorkspaceRow breaks the one-round-trip read both ways: a bad cast the
// server rejects after BEGIN and set_config, and a cancel while it runs.
func (p poolStep) failingWorkspaceRow(ctx context.Context) error {
	var id uuid.UUID
	err := p.db.WorkspaceRow(ctx, p.tenant, "SELECT 'not-a-uuid'::uuid").Scan(&id)
	if !kernel.IsCode(err, kernel.CodeInvalid) {
		return fmt.Errorf("WorkspaceRow with a bad cast: %v, want invalid", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	if err := p.db.WorkspaceRow(ctx, p.tenant, "SELECT id FROM workspace, pg_sleep(0.2)").Scan(&id); err == nil {
		return errors.New("WorkspaceRow outlived its context")
	}
	return nil
}

func (p poolStep) systemRead(ctx context.Context) error {
	var n int
	err := p.db.System(ctx, "rls test: pool", func(tx store.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM workspace").Scan(&n)
	})
	if err != nil || n != p.tenants {
		return fmt.Errorf("system path saw %d workspaces (err %v), want %d", n, err, p.tenants)
	}
	return nil
}

// checkIdleConnection takes a connection straight from the pool: between
// transactions it must carry no tenant and no bypass, and see no tenant row.
func checkIdleConnection(ctx context.Context, db *pgstore.DB) error {
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var workspace, bypass, user string
	var n int
	err = conn.QueryRow(ctx, `SELECT coalesce(current_setting('app.workspace_id', true), ''),
		coalesce(current_setting('app.bypass_rls', true), ''), coalesce(current_setting('app.user_id', true), ''),
		(SELECT count(*) FROM workspace)`).Scan(&workspace, &bypass, &user, &n)
	if err != nil {
		return err
	}
	if workspace != "" || bypass != "" || user != "" || n != 0 {
		return fmt.Errorf("idle connection carries app.workspace_id=%q app.bypass_rls=%q app.user_id=%q and sees %d workspaces", workspace, bypass, user, n)
	}
	return nil
}

// checkIsolation reads as tenant through both read paths and as the platform.
func checkIsolation(ctx context.Context, db *pgstore.DB, tenant uuid.UUID) error {
	got, err := visibleIn(ctx, func(ctx context.Context, fn func(store.Tx) error) error {
		return db.ReadWorkspace(ctx, tenant, fn)
	})
	if err != nil {
		return fmt.Errorf("read as tenant: %w", err)
	}
	if !slices.Equal(got["workspace"], keys(tenant)) {
		return fmt.Errorf("tenant %s sees workspaces %v", tenant, got["workspace"])
	}
	for _, k := range got["outbox"] {
		if k != tenant.String() {
			return fmt.Errorf("tenant %s sees an outbox row of %s", tenant, k)
		}
	}
	var foreign int
	err = db.WorkspaceRow(ctx, tenant, `SELECT (SELECT count(*) FROM workspace WHERE id <> $1)
		+ (SELECT count(*) FROM outbox WHERE workspace_id <> $1)`, tenant).Scan(&foreign)
	if err != nil || foreign != 0 {
		return fmt.Errorf("WorkspaceRow for %s sees %d rows of other tenants (err %v)", tenant, foreign, err)
	}
	got, err = visibleIn(ctx, db.Tx)
	if err != nil {
		return fmt.Errorf("read as platform: %w", err)
	}
	if len(got["workspace"])+len(got["outbox"]) != 0 {
		return fmt.Errorf("platform transaction sees tenant rows: %v", got)
	}
	return nil
}

func openStore(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(context.Background(), pgstore.Options{URL: url, Clock: testkit.NewClock(), Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// seedTwoTenants creates workspaces alpha (A) and bravo (B), each with an outbox
// event and an audit entry, plus one platform audit entry.
func seedTwoTenants(t *testing.T, db *pgstore.DB) (a, b uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	a = storetest.CreateWorkspace(t, db, "alpha")
	b = storetest.CreateWorkspace(t, db, "bravo")
	record := func(tx store.Tx) error {
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "test.seeded", TargetType: "workspace"})
		return err
	}
	for _, ws := range []uuid.UUID{a, b} {
		err := db.InWorkspace(ctx, ws, func(tx store.Tx) error {
			if err := appendEvent(ctx, tx); err != nil {
				return err
			}
			return record(tx)
		})
		if err != nil {
			t.Fatalf("seed %s: %v", ws, err)
		}
	}
	if err := db.Tx(ctx, record); err != nil {
		t.Fatalf("seed platform audit entry: %v", err)
	}
	return a, b
}

func appendEvent(ctx context.Context, tx store.Tx) error {
	_, err := events.Append(ctx, tx, events.Event{Type: "test.happened", Payload: map[string]string{"by": "rls test"}})
	return err
}

// visibleIn runs tenantKeys in one transaction of run and returns the sorted
// keys per table, leaving out tables with no visible row.
func visibleIn(ctx context.Context, run func(context.Context, func(store.Tx) error) error) (map[string][]string, error) {
	got := map[string][]string{}
	err := run(ctx, func(tx store.Tx) error {
		for table, sql := range tenantKeys {
			keys, err := column(ctx, tx, sql)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			if len(keys) > 0 {
				got[table] = keys
			}
		}
		return nil
	})
	return got, err
}

func assertVisible(t *testing.T, name string, got, want map[string][]string) {
	t.Helper()
	for table := range tenantKeys {
		if !slices.Equal(got[table], want[table]) {
			t.Errorf("%s sees %s rows of %v, want %v", name, table, got[table], want[table])
		}
	}
}

// column returns the first column of every row, sorted.
func column(ctx context.Context, tx store.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

func keys(ids ...uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	slices.Sort(out)
	return out
}

// snapshot renders every workspace and outbox row, read through the system path.
func snapshot(t *testing.T, db *pgstore.DB) string {
	t.Helper()
	ctx := context.Background()
	var lines []string
	err := db.System(ctx, "rls test: snapshot", func(tx store.Tx) error {
		var err error
		lines, err = column(ctx, tx, `SELECT concat_ws(' ', 'workspace', id, slug, name) FROM workspace
			UNION ALL SELECT concat_ws(' ', 'outbox', id, workspace_id, event_type) FROM outbox`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func countOutbox(t *testing.T, db *pgstore.DB) int {
	t.Helper()
	var n int
	err := db.Tx(context.Background(), func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM outbox").Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func assertAllApplied(t *testing.T, db *pgstore.DB) {
	t.Helper()
	states, err := db.MigrationStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	all, _ := pgstore.Migrations()
	if len(states) != len(all) {
		t.Fatalf("%d migration states, want %d", len(states), len(all))
	}
	for _, s := range states {
		if s.AppliedAt.IsZero() {
			t.Errorf("migration %04d_%s is pending", s.Version, s.Name)
		}
	}
}

func withQuery(t *testing.T, rawURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// emptySchema creates a schema with nothing in it, dropped when the test ends,
// and returns ownerURL with its search_path set to it.
func emptySchema(t *testing.T, ownerURL string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	owner := connect(t, ownerURL)
	if _, err := owner.Exec(context.Background(), "CREATE SCHEMA "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), ownerURL)
		if err != nil {
			t.Logf("drop schema %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return withQuery(t, ownerURL, "search_path", name)
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// terminate ends backend pid and waits until it is gone.
func terminate(t *testing.T, conn *pgx.Conn, pid uint32) {
	t.Helper()
	ctx := context.Background()
	var signalled bool
	if err := conn.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&signalled); err != nil || !signalled {
		t.Fatalf("terminate backend %d: %v %v", pid, signalled, err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var alive bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", int32(pid)).Scan(&alive); err != nil {
			t.Fatal(err)
		}
		if !alive {
			return
		}
	}
	t.Fatalf("backend %d still alive 10s after pg_terminate_backend", pid)
}

// existingTables lists the tables in conn's current schema.
func existingTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return tables
}
