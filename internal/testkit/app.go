package testkit

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/app"
	"atrium/internal/config"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
)

// TestKeyPrefix starts the bearer token TestAuth accepts: "test-key:<workspace
// UUID>" acts as an API key bound to that workspace. The cookie TestCookie with
// the same value acts the same way, through a cookie, for CSRF tests. Only
// tests wire TestAuth; the binary has no such door.
const (
	TestKeyPrefix = "test-key:"
	TestCookie    = "__Host-atrium_test"
)

// TestAuth is a cheap stand-in for a read-and-write API key. Boot tries it
// after real session cookies and real bearer secrets, so a test can use all.
type TestAuth struct{}

func (TestAuth) Authenticate(r *http.Request) (kernel.Actor, error) {
	via, raw := kernel.ViaBearer, ""
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return kernel.Actor{}, &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "invalid credentials"}
		}
		raw = token
	} else if c, err := r.Cookie(TestCookie); err == nil {
		via, raw = kernel.ViaCookie, c.Value
	} else {
		return kernel.Actor{}, nil
	}
	wsText, ok := strings.CutPrefix(raw, TestKeyPrefix)
	ws, err := uuid.Parse(wsText)
	if !ok || err != nil {
		return kernel.Actor{}, &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "invalid credentials"}
	}
	return kernel.Actor{Kind: kernel.ActorAPIKey, ID: uuid.NewSHA1(uuid.NameSpaceOID, ws[:]), Via: via, WorkspaceID: ws,
		Scopes: kernel.ScopeRead | kernel.ScopeWrite}, nil
}

// KeyFor returns the Authorization header value TestAuth maps to workspaceID.
func KeyFor(workspaceID uuid.UUID) string { return "Bearer " + TestKeyPrefix + workspaceID.String() }

// TestApp is the whole Atrium, booted in-process on a free port.
type TestApp struct {
	*app.App
	Clock *Clock
	logs  *SyncBuffer
}

// AppOptions tune Boot.
type AppOptions struct {
	Routes []func(api huma.API)
	// Env overrides configuration variables (ATRIUM_*).
	Env map[string]string
	// LoginLimits replaces the generous brute-force limits of LoginLimits();
	// brute-force tests pass identity.DefaultLoginLimits().
	LoginLimits *identity.LoginLimits
	// Scheduler runs the scheduler as production does. It is off by
	// default, so that a test moving the clock across days is not raced by
	// hard deletes and cleanups.
	Scheduler bool
}

// LoginLimits are the brute-force limits of booted test apps and test
// services: the defaults, except that one address may try to log in 10,000
// times a minute, since every test request comes from 127.0.0.1.
func LoginLimits() identity.LoginLimits {
	l := identity.DefaultLoginLimits()
	l.PerIP = ratelimit.Limit{Events: 10000, Window: time.Minute}
	return l
}

// Boot starts Atrium on the dialect's store with a temporary data directory,
// port 0, the fake clock, cheap password hashing and TestAuth (after real
// session cookies), and stops it when the test ends.
func Boot(t testing.TB, dialect store.Dialect, opts AppOptions) *TestApp {
	t.Helper()
	env := map[string]string{
		"ATRIUM_ADDR":      "127.0.0.1:0",
		"ATRIUM_DATA_DIR":  filepath.Join(t.TempDir(), "data"),
		"ATRIUM_LOG_LEVEL": "debug",
	}
	if dialect == store.Postgres {
		s := NewPostgresSchema(t)
		env["ATRIUM_DATABASE_URL"] = s.AppURL
		env["ATRIUM_AUTO_MIGRATE"] = "false" // NewPostgresSchema migrated it as the owner
	}
	for k, v := range opts.Env {
		env[k] = v
	}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	clock := NewClock()
	logs := &SyncBuffer{}
	params := FastPasswordParams()
	limits := LoginLimits()
	if opts.LoginLimits != nil {
		limits = *opts.LoginLimits
	}
	a, err := app.New(context.Background(), cfg, app.Options{LogOutput: logs, Clock: clock, Auth: TestAuth{},
		Routes: opts.Routes, PasswordParams: &params, LoginLimits: &limits, ManualScheduler: !opts.Scheduler})
	if err != nil {
		t.Fatalf("boot atrium on %s: %v", dialect, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("atrium run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("atrium did not shut down in 30s")
		}
		a.Close()
		if t.Failed() {
			t.Logf("atrium log:\n%s", logs.String())
		}
	})
	return &TestApp{App: a, Clock: clock, logs: logs}
}

// Logs returns everything the app has logged so far.
func (a *TestApp) Logs() string { return a.logs.String() }

// SyncBuffer is an io.Writer a program writes to while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*SyncBuffer)(nil)
