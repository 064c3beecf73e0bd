package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/testkit"
)

// columns maps each table to its column names.
type columns map[string][]string

// TestDialectsHaveSameTablesAndColumns keeps the two migrations in step: a query
// written once must find the same tables and columns on both engines.
func TestDialectsHaveSameTablesAndColumns(t *testing.T) {
	testkit.PostgresURL(t)
	sqliteCols := sqliteColumns(t, testkit.OpenSQLite(t, testkit.NewClock()))
	pgCols := postgresColumns(t, openPostgres(t, testkit.NewPostgresSchema(t).OwnerURL))
	if len(sqliteCols) == 0 || len(pgCols) == 0 {
		t.Fatalf("no tables found (SQLite %d, PostgreSQL %d): the query is wrong, not the migrations", len(sqliteCols), len(pgCols))
	}
	if diff := diffColumns(sqliteCols, pgCols); diff != "" {
		t.Fatalf("SQLite and PostgreSQL schemas differ:\n%s", diff)
	}
}

func TestMigrationFilesMatch(t *testing.T) {
	lite, err := sqlitestore.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	pg, err := pgstore.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(lite) == 0 {
		t.Fatal("no SQLite migrations embedded")
	}
	if l, p := migrationNames(lite), migrationNames(pg); !slices.Equal(l, p) {
		t.Fatalf("migration files differ:\n  sqlite:   %v\n  postgres: %v", l, p)
	}
}

func sqliteColumns(t *testing.T, db *sqlitestore.DB) columns {
	t.Helper()
	rows, err := db.Reader().QueryContext(context.Background(), `SELECT m.name, p.name
		FROM sqlite_master m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\_%' ESCAPE '\'
		  AND m.name <> 'atrium_tenant_context'`) // SQLite's stand-in for PostgreSQL's transaction settings
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := columns{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			t.Fatal(err)
		}
		out[table] = append(out[table], column)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func postgresColumns(t *testing.T, db *pgstore.DB) columns {
	t.Helper()
	rows, err := db.Pool().Query(context.Background(), `SELECT table_name, column_name
		FROM information_schema.columns WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := columns{}
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			t.Fatal(err)
		}
		out[table] = append(out[table], column)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func migrationNames(ms []store.Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = fmt.Sprintf("%04d_%s", m.Version, m.Name)
	}
	return out
}

// diffColumns lists, one line each, the tables and columns present on only one
// side; it returns "" when both sides match.
func diffColumns(sqlite, postgres columns) string {
	var lines []string
	tables := slices.Sorted(maps.Keys(sqlite))
	for table := range maps.Keys(postgres) {
		if _, ok := sqlite[table]; !ok {
			tables = append(tables, table)
		}
	}
	slices.Sort(tables)
	for _, table := range tables {
		l, lok := sqlite[table]
		p, pok := postgres[table]
		switch {
		case !pok:
			lines = append(lines, fmt.Sprintf("  table %s: only in SQLite", table))
		case !lok:
			lines = append(lines, fmt.Sprintf("  table %s: only in PostgreSQL", table))
		default:
			for _, c := range missing(l, p) {
				lines = append(lines, fmt.Sprintf("  column %s.%s: only in SQLite", table, c))
			}
			for _, c := range missing(p, l) {
				lines = append(lines, fmt.Sprintf("  column %s.%s: only in PostgreSQL", table, c))
			}
		}
	}
	return strings.Join(lines, "\n")
}

// missing returns the sorted names in have that want lacks.
func missing(have, want []string) []string {
	var out []string
	for _, name := range have {
		if !slices.Contains(want, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func openPostgres(t *testing.T, url string) *pgstore.DB {
	t.Helper()
	db, err := pgstore.Open(context.Background(), pgstore.Options{URL: url, Logger: testkit.DiscardLogger()})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
