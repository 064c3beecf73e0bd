// Package benchkit is what the benchmark commands share: Atrium booted as
// cmd/atrium boots it, on either store dialect, and people and API keys made
// through the API as a user would make them.
package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"atrium/internal/app"
	"atrium/internal/billing"
	"atrium/internal/config"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// Instance is Atrium running on loopback for a benchmark.
type Instance struct {
	App *app.App
	// Schema is the PostgreSQL schema behind App; zero on SQLite.
	Schema  PGSchema
	closers []func()
}

// Close stops Atrium and removes its data.
func (in *Instance) Close() {
	for i := len(in.closers) - 1; i >= 0; i-- {
		in.closers[i]()
	}
}

// Boot starts Atrium exactly as cmd/atrium would (config.Load, app.New,
// app.Run) on a temporary data directory, or on a fresh PostgreSQL schema,
// with the JSON log at level info written to io.Discard, so every access line
// is still built and formatted. opts.Auth is usually testkit.TestAuth{}; the
// other options are passed through. It returns an error, having cleaned up,
// if anything fails to start.
func Boot(ctx context.Context, dialect store.Dialect, opts app.Options) (_ *Instance, err error) {
	in := &Instance{}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	dir, err := os.MkdirTemp("", "atrium-bench-")
	if err != nil {
		return nil, err
	}
	in.closers = append(in.closers, func() { os.RemoveAll(dir) })
	plans, err := writeBenchPlans(dir)
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"ATRIUM_ADDR":       "127.0.0.1:0",
		"ATRIUM_DATA_DIR":   filepath.Join(dir, "data"),
		"ATRIUM_LOG_LEVEL":  "info",
		"ATRIUM_PLANS_FILE": plans,
	}
	if dialect == store.Postgres {
		if os.Getenv(testkit.EnvPostgresURL) == "" {
			return nil, fmt.Errorf("postgres: set %s, e.g. eval \"$(bash .ci/setup-services)\"", testkit.EnvPostgresURL)
		}
		if in.Schema, err = NewPostgresSchema(ctx); err != nil {
			return nil, err
		}
		in.closers = append(in.closers, in.Schema.Drop)
		env["ATRIUM_DATABASE_URL"] = in.Schema.AppURL
		env["ATRIUM_AUTO_MIGRATE"] = "false" // migrated as the owner, like testkit
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		return nil, err
	}
	if opts.LogOutput == nil {
		opts.LogOutput = io.Discard
	}
	a, err := app.New(ctx, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("boot atrium: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	in.closers = append(in.closers, func() { cancel(); <-done; a.Close() })
	in.App = a
	return in, nil
}

// writeBenchPlans writes the embedded plan catalogue with the free plan's
// API limits raised as far as they go (still finite, so the rate limiter and
// the meter do their full work on every call): a benchmark sends millions of
// calls to a few workspaces, which the real free plan would refuse within
// seconds.
func writeBenchPlans(dir string) (string, error) {
	raw := string(billing.DefaultPlansJSON())
	raised := strings.Replace(raw, `"api_calls_per_month": 10000,`, `"api_calls_per_month": 1000000000000,`, 1)
	raised = strings.Replace(raised, `"api_calls_per_hour": 1000`, `"api_calls_per_hour": 3600000`, 1)
	if raised == raw {
		return "", errors.New("benchkit: the free plan's API limits in internal/billing/plans.json changed; update writeBenchPlans")
	}
	path := filepath.Join(dir, "plans.json")
	return path, os.WriteFile(path, []byte(raised), 0o600)
}
