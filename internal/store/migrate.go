package store

import (
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Migration is one embedded SQL file, NNNN_name.sql. Both dialects ship the same
// numbers and names; each file is applied in its own transaction.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// MigrationState is a migration and when it was applied (zero when pending).
type MigrationState struct {
	Migration
	AppliedAt time.Time
}

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// LoadMigrations reads the migrations in dir of fsys, ordered by version. It
// returns an error for a file that does not follow the naming rule or for two
// files with one version, so a mistake is caught at build time by the tests.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	fsys, err := fs.Sub(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	seen := map[int]string{}
	var out []Migration
	for _, e := range entries {
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: want NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Pending returns the migrations whose versions are not in applied.
func Pending(all []Migration, applied map[int]time.Time) []Migration {
	var out []Migration
	for _, m := range all {
		if _, ok := applied[m.Version]; !ok {
			out = append(out, m)
		}
	}
	return out
}

// States pairs every migration with its applied time.
func States(all []Migration, applied map[int]time.Time) []MigrationState {
	out := make([]MigrationState, len(all))
	for i, m := range all {
		out[i] = MigrationState{Migration: m, AppliedAt: applied[m.Version]}
	}
	return out
}
