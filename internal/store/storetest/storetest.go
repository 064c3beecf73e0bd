// Package storetest is the conformance suite every store dialect runs: one
// behaviour, two engines. A change to store.DB starts by extending Run.
package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Opener returns a fresh, migrated store for one test and the clock it uses.
type Opener func(t testing.TB, clock kernel.Clock) store.SystemDB

type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time { return c.now }

// Run exercises the store contract on db.
func Run(t *testing.T, open Opener) {
	clock := fixedClock{now: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)}
	setup := func(t *testing.T) (store.SystemDB, context.Context) {
		t.Helper()
		return open(t, clock), context.Background()
	}

	t.Run("WorkspaceRoundTrip", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		id := CreateWorkspace(t, db, "acme")
		var slug string
		var created time.Time
		err := db.WorkspaceRow(ctx, id, "SELECT slug, created_at FROM workspace WHERE id = $1", id).Scan(&slug, &created)
		if err != nil {
			t.Fatal(err)
		}
		if slug != "acme" || !created.Equal(clock.now) {
			t.Fatalf("read back %q %v, want acme %v", slug, created, clock.now)
		}
		err = db.ReadWorkspace(ctx, id, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SELECT slug FROM workspace WHERE id = $1", id).Scan(&slug)
		})
		if err != nil || slug != "acme" {
			t.Fatalf("ReadWorkspace: %q %v", slug, err)
		}
	})

	t.Run("NoRowIsNotFound", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		id := CreateWorkspace(t, db, "acme")
		var slug string
		err := db.WorkspaceRow(ctx, id, "SELECT slug FROM workspace WHERE id = $1 AND slug = $2", id, "other").Scan(&slug)
		if !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("WorkspaceRow on no row: %v, want not_found", err)
		}
		err = db.ReadWorkspace(ctx, id, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SELECT slug FROM workspace WHERE slug = $1", "other").Scan(&slug)
		})
		if !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("QueryRow on no row: %v, want not_found", err)
		}
	})

	t.Run("UniqueViolationIsConflict", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		CreateWorkspace(t, db, "acme")
		id := kernel.NewID()
		err := db.InWorkspace(ctx, id, func(tx store.Tx) error {
			return insertWorkspace(ctx, tx, id, "acme")
		})
		if !kernel.IsCode(err, kernel.CodeConflict) {
			t.Fatalf("duplicate slug: %v, want conflict", err)
		}
	})

	t.Run("ErrorRollsBack", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		id := kernel.NewID()
		boom := errors.New("boom")
		err := db.InWorkspace(ctx, id, func(tx store.Tx) error {
			if err := insertWorkspace(ctx, tx, id, "gone"); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want fn's error", err)
		}
		assertNoWorkspace(t, db, id)
	})

	t.Run("PanicRollsBackAndRepanics", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		id := kernel.NewID()
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic was swallowed")
				}
			}()
			_ = db.InWorkspace(ctx, id, func(tx store.Tx) error {
				if err := insertWorkspace(ctx, tx, id, "gone"); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		assertNoWorkspace(t, db, id)
		// The store still works after the panic (the connection was cleaned up).
		CreateWorkspace(t, db, "after-panic")
	})

	t.Run("AuditLogIsAppendOnly", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		ws := CreateWorkspace(t, db, "acme")
		ctx = kernel.WithRequestID(context.Background(), "req-1")
		ctx = kernel.WithClient(ctx, kernel.Client{IP: "192.0.2.1", UserAgent: "test"})
		var entryID uuid.UUID
		err := db.InWorkspace(ctx, ws, func(tx store.Tx) error {
			var err error
			entryID, err = audit.Record(ctx, tx, audit.Entry{Action: "workspace.renamed", TargetType: "workspace", TargetID: "ws_x", Metadata: map[string]any{"from": "a"}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var action, ip, reqID string
		err = db.WorkspaceRow(context.Background(), ws, "SELECT action, ip, request_id FROM audit_log WHERE id = $1", entryID).Scan(&action, &ip, &reqID)
		if err != nil || action != "workspace.renamed" || ip != "192.0.2.1" || reqID != "req-1" {
			t.Fatalf("entry read back: %q %q %q %v", action, ip, reqID, err)
		}
		for _, stmt := range []string{
			"UPDATE audit_log SET action = 'forged' WHERE id = $1",
			"DELETE FROM audit_log WHERE id = $1",
		} {
			err := db.InWorkspace(ctx, ws, func(tx store.Tx) error {
				_, err := tx.Exec(ctx, stmt, entryID)
				return err
			})
			if !kernel.IsCode(err, kernel.CodeForbidden) {
				t.Errorf("%s: %v, want forbidden", stmt, err)
			}
			// Not even the system path may rewrite history.
			err = db.System(context.Background(), "storetest: append-only check", func(tx store.Tx) error {
				_, err := tx.Exec(ctx, stmt, entryID)
				return err
			})
			if !kernel.IsCode(err, kernel.CodeForbidden) {
				t.Errorf("system %s: %v, want forbidden", stmt, err)
			}
		}
		err = db.WorkspaceRow(context.Background(), ws, "SELECT action FROM audit_log WHERE id = $1", entryID).Scan(&action)
		if err != nil || action != "workspace.renamed" {
			t.Fatalf("entry after refused writes: %q %v", action, err)
		}
	})

	t.Run("OutboxCommitsWithTheChange", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		ws := CreateWorkspace(t, db, "acme")
		var kept uuid.UUID
		err := db.InWorkspace(ctx, ws, func(tx store.Tx) error {
			var err error
			kept, err = events.Append(ctx, tx, events.Event{Type: "workspace.updated", Payload: map[string]string{"name": "Acme"}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var dropped uuid.UUID
		_ = db.InWorkspace(ctx, ws, func(tx store.Tx) error {
			dropped, _ = events.Append(ctx, tx, events.Event{Type: "workspace.updated", Payload: nil})
			return errors.New("abort")
		})
		var n int
		err = db.WorkspaceRow(ctx, ws, "SELECT count(*) FROM outbox WHERE workspace_id = $1 AND id IN ($2, $3)", ws, kept, dropped).Scan(&n)
		if err != nil || n != 1 {
			t.Fatalf("outbox rows: %d %v, want only the committed one", n, err)
		}
		err = db.Tx(ctx, func(tx store.Tx) error {
			_, err := events.Append(ctx, tx, events.Event{Type: "workspace.updated"})
			return err
		})
		if err == nil {
			t.Fatal("an event outside a workspace transaction was accepted")
		}
	})

	t.Run("WorkspaceCannotWriteAnotherWorkspace", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		a, b := CreateWorkspace(t, db, "alpha"), CreateWorkspace(t, db, "beta")
		var evtB uuid.UUID
		if err := db.InWorkspace(ctx, b, func(tx store.Tx) error {
			var err error
			evtB, err = events.Append(ctx, tx, events.Event{Type: "test.kept"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		attempts := []string{
			"INSERT INTO outbox (id, workspace_id, event_type, payload, created_at) VALUES ('" + kernel.NewID().String() + "', $1, 'test.forged', '{}', '2026-01-01 00:00:00')",
			"UPDATE outbox SET event_type = 'test.forged' WHERE workspace_id = $1",
			"DELETE FROM outbox WHERE workspace_id = $1",
			"UPDATE workspace SET name = 'forged' WHERE id = $1",
			"DELETE FROM workspace WHERE id = $1",
		}
		for _, stmt := range attempts {
			// PostgreSQL's policies refuse inserts and hide the rows from updates
			// and deletes; SQLite's triggers refuse all three. Either way B's
			// data must come through untouched.
			_ = db.InWorkspace(ctx, a, func(tx store.Tx) error {
				_, err := tx.Exec(ctx, stmt, b)
				return err
			})
			_ = db.Tx(ctx, func(tx store.Tx) error {
				_, err := tx.Exec(ctx, stmt, b)
				return err
			})
		}
		err := db.InWorkspace(ctx, a, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, attempts[0], b)
			return err
		})
		if !kernel.IsCode(err, kernel.CodeForbidden) {
			t.Fatalf("insert into another workspace: %v, want forbidden", err)
		}
		var eventType, name string
		if err := db.WorkspaceRow(ctx, b, "SELECT event_type FROM outbox WHERE id = $1", evtB).Scan(&eventType); err != nil || eventType != "test.kept" {
			t.Fatalf("B's event after the attempts: %q %v", eventType, err)
		}
		if err := db.WorkspaceRow(ctx, b, "SELECT name FROM workspace WHERE id = $1", b).Scan(&name); err != nil || name != "Workspace beta" {
			t.Fatalf("B's workspace after the attempts: %q %v", name, err)
		}
		var n int
		if err := db.WorkspaceRow(ctx, b, "SELECT count(*) FROM outbox WHERE workspace_id = $1", b).Scan(&n); err != nil || n != 1 {
			t.Fatalf("B's outbox after the attempts: %d %v", n, err)
		}
	})

	runMembership(t, setup)
	runPlatformRow(t, setup)

	t.Run("SystemPathRefusesRequestContexts", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		ctx := kernel.WithRequestID(context.Background(), "req-1")
		called := false
		err := db.System(ctx, "storetest", func(tx store.Tx) error { called = true; return nil })
		if err == nil || called {
			t.Fatalf("system path from a request: err=%v called=%v", err, called)
		}
	})

	t.Run("ConcurrentWritersAllSucceed", func(t *testing.T) {
		t.Parallel()
		db, ctx := setup(t)
		ws := CreateWorkspace(t, db, "acme")
		const writers, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					errs <- db.InWorkspace(ctx, ws, func(tx store.Tx) error {
						_, err := events.Append(ctx, tx, events.Event{Type: "test.written", Payload: i})
						return err
					})
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var n int
		if err := db.WorkspaceRow(ctx, ws, "SELECT count(*) FROM outbox WHERE workspace_id = $1", ws).Scan(&n); err != nil || n != writers*each {
			t.Fatalf("outbox rows %d %v, want %d", n, err, writers*each)
		}
	})

	t.Run("CancelledContextLeavesStoreUsable", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		ws := CreateWorkspace(t, db, "acme")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := db.InWorkspace(ctx, ws, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE workspace SET name = 'x' WHERE id = $1", ws)
			return err
		})
		if err == nil {
			t.Fatal("a cancelled context ran a statement")
		}
		var name string
		if err := db.WorkspaceRow(context.Background(), ws, "SELECT name FROM workspace WHERE id = $1", ws).Scan(&name); err != nil || name == "x" {
			t.Fatalf("after cancel: %q %v", name, err)
		}
	})
}

// CreateWorkspace inserts a workspace with the given slug and returns its ID.
func CreateWorkspace(t testing.TB, db store.DB, slug string) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	id := kernel.NewID()
	if err := db.InWorkspace(ctx, id, func(tx store.Tx) error { return insertWorkspace(ctx, tx, id, slug) }); err != nil {
		t.Fatalf("create workspace %s: %v", slug, err)
	}
	return id
}

func insertWorkspace(ctx context.Context, tx store.Tx, id uuid.UUID, slug string) error {
	_, err := tx.Exec(ctx, "INSERT INTO workspace (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
		id, slug, "Workspace "+slug, tx.Now())
	return err
}

func assertNoWorkspace(t *testing.T, db store.SystemDB, id uuid.UUID) {
	t.Helper()
	var n int
	err := db.System(context.Background(), "storetest: check rollback", func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), "SELECT count(*) FROM workspace WHERE id = $1", id).Scan(&n)
	})
	if err != nil || n != 0 {
		t.Fatalf("workspace %s after rollback: count %d, err %v", id, n, err)
	}
}
