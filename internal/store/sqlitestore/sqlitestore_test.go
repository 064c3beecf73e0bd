package sqlitestore_test

import (
	"context"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/store/storetest"
	"atrium/internal/testkit"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB, clock kernel.Clock) store.SystemDB { return testkit.OpenSQLite(t, clock) })
}

// TestEveryTenantTableIsGuarded is SQLite's counterpart of PostgreSQL's sealed
// check: a table with a workspace_id column (or workspace itself) must have
// triggers that refuse another workspace's rows on insert, update and delete.
func TestEveryTenantTableIsGuarded(t *testing.T) {
	db := testkit.OpenSQLite(t, nil)
	rows, err := db.Reader().QueryContext(context.Background(), `
		SELECT m.name,
		  (SELECT count(*) FROM sqlite_master t WHERE t.type = 'trigger' AND t.tbl_name = m.name
		     AND t.sql LIKE '%atrium_tenant_context%' AND (t.sql LIKE '%BEFORE INSERT%')),
		  (SELECT count(*) FROM sqlite_master t WHERE t.type = 'trigger' AND t.tbl_name = m.name
		     AND (t.sql LIKE '%atrium_tenant_context%' OR t.sql LIKE '%append-only%') AND t.sql LIKE '%BEFORE UPDATE%'),
		  (SELECT count(*) FROM sqlite_master t WHERE t.type = 'trigger' AND t.tbl_name = m.name
		     AND (t.sql LIKE '%atrium_tenant_context%' OR t.sql LIKE '%append-only%') AND t.sql LIKE '%BEFORE DELETE%')
		FROM sqlite_master m
		WHERE m.type = 'table' AND m.name <> 'atrium_tenant_context' AND (m.name = 'workspace' OR EXISTS (
		  SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'workspace_id'))`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var table string
		var ins, upd, del int
		if err := rows.Scan(&table, &ins, &upd, &del); err != nil {
			t.Fatal(err)
		}
		seen++
		if ins == 0 || upd == 0 || del == 0 {
			t.Errorf("tenant table %s lacks a guard trigger (insert %d, update %d, delete %d)", table, ins, upd, del)
		}
	}
	if err := rows.Err(); err != nil || seen < 3 {
		t.Fatalf("found %d tenant tables: %v", seen, err)
	}
}
