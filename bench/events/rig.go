package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"atrium/bench/benchkit"
	"atrium/internal/events"
	"atrium/internal/events/catalog"
	"atrium/internal/events/natsbus"
	"atrium/internal/store"
	"atrium/internal/store/pgstore"
	"atrium/internal/store/sqlitestore"
	"atrium/internal/tenancy"
)

// busRig is a store and a bus as cmd/atrium opens them on embedded defaults
// (SQLite in a data directory, or a fresh PostgreSQL schema as the
// non-superuser app role; the embedded NATS server with its file store), with
// no HTTP server and no runtime of its own: each measured run starts its own
// events.Runtime, so nothing else relays or consumes meanwhile.
type busRig struct {
	dialect    store.Dialect
	db         store.SystemDB
	bus        *natsbus.Bus
	dir        string
	workspaces []uuid.UUID
	logger     *slog.Logger
	closers    []func()
}

func (r *busRig) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// newBusRig opens the store and the bus and creates n workspaces through
// tenancy.Service.Create. It returns an error, having cleaned up, if
// anything fails.
func newBusRig(ctx context.Context, dialect store.Dialect, n int) (_ *busRig, err error) {
	r := &busRig{dialect: dialect, logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.dir, err = os.MkdirTemp("", "atrium-events-bench-"); err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() { os.RemoveAll(r.dir) })
	switch dialect {
	case store.SQLite:
		db, err := sqlitestore.Open(ctx, sqlitestore.Options{Path: filepath.Join(r.dir, "data", "atrium.db"), Logger: r.logger})
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { db.Close() })
		if _, err := db.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		r.db = db
	case store.Postgres:
		schema, err := benchkit.NewPostgresSchema(ctx)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, schema.Drop)
		db, err := pgstore.Open(ctx, pgstore.Options{URL: schema.AppURL, Logger: r.logger})
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { db.Close() })
		r.db = db
	default:
		return nil, fmt.Errorf("unknown dialect %q", dialect)
	}
	bus, err := natsbus.Open(natsbus.Options{Dir: filepath.Join(r.dir, "data", "nats"), Name: "atrium events bench", Logger: r.logger})
	if err != nil {
		return nil, err
	}
	r.closers = append(r.closers, func() { bus.Close() })
	r.bus = bus
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := bus.EnsureStreams(sctx); err != nil {
		return nil, err
	}
	// As the app does when it starts: Append checks every event against it.
	events.UseCatalogue(catalog.Atrium)
	svc := tenancy.NewService(r.db, nil)
	for i := range n {
		ws, err := svc.Create(ctx, fmt.Sprintf("Bench Workspace %04d", i), fmt.Sprintf("bench-%04d", i))
		if err != nil {
			return nil, fmt.Errorf("workspace %d: %w", i, err)
		}
		r.workspaces = append(r.workspaces, ws.ID)
	}
	// Publish the workspaces' own events now, so no run starts with a backlog.
	if _, err := r.drainOutbox(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// newRuntime is an events.Runtime over the rig's store and bus, configured
// as app.New configures Atrium's (default relay interval and batch).
func (r *busRig) newRuntime() *events.Runtime {
	return events.New(events.Config{DB: r.db, Bus: r.bus, Logger: r.logger})
}

// drainOutbox publishes every unsent outbox row with a runtime that is not
// running, one RelayOnce after another, and returns how many it published.
func (r *busRig) drainOutbox(ctx context.Context) (int, error) {
	rt := r.newRuntime()
	total := 0
	for {
		n, err := rt.RelayOnce(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// running runs rt until the returned stop is called; stop returns once Run
// has.
func running(rt *events.Runtime) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rt.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// waitConsumer waits until the durable consumer name exists on stream: a
// subscriber delivers only what is published after its consumer exists.
func (r *busRig) waitConsumer(ctx context.Context, stream, name string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := r.bus.JS.Consumer(ctx, stream, name); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("consumer %s on %s did not appear in 15s: %w", name, stream, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fresh publishes whatever a run cut short left in the outbox and empties
// the events stream, so that the next run counts only its own events.
func (r *busRig) fresh(ctx context.Context) error {
	if _, err := r.drainOutbox(ctx); err != nil {
		return err
	}
	return r.purge(ctx, natsbus.EventsStream)
}

// purge empties a stream between runs, so every run starts from the same
// state.
func (r *busRig) purge(ctx context.Context, stream string) error {
	s, err := r.bus.JS.Stream(ctx, stream)
	if err != nil {
		return err
	}
	return s.Purge(ctx)
}
