package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"atrium/internal/testkit"
)

func TestVersionPrintsTheVersion(t *testing.T) {
	r := runMain(t, newEnv(t), "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "atrium ") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and \"atrium ...\"", r.code, r.stdout, r.stderr)
	}
}

func TestUnknownCommandExits2WithUsage(t *testing.T) {
	r := runMain(t, newEnv(t), "frobnicate")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2", r.code)
	}
	mustContain(t, "stderr", r.stderr, `unknown command "frobnicate"`, "Usage: atrium", "migrate up")
}

// TestHelpListsEveryVariable reads the variables from the config package's
// source, so a setting added there without reaching the help fails here.
func TestHelpListsEveryVariable(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "internal", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`"(ATRIUM_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(vars) < 10 {
		t.Fatalf("found only %d ATRIUM_ variables in config.go; the pattern is stale", len(vars))
	}
	r := runMain(t, newEnv(t), "help")
	if r.code != 0 {
		t.Fatalf("help exit %d: %s", r.code, r.stderr)
	}
	for _, v := range vars {
		if !regexp.MustCompile(`(?m)^\s+` + v[1] + `\s+--`).MatchString(r.stdout) {
			t.Errorf("help does not list %s:\n%s", v[1], r.stdout)
		}
	}
}

func TestInvalidConfigurationCreatesNothing(t *testing.T) {
	bad := []struct{ variable, value string }{
		{"ATRIUM_ADDR", "nonsense"},
		{"ATRIUM_ENV", "staging"},
		{"ATRIUM_DATABASE_URL", "mysql://x"},
	}
	commands := [][]string{{"serve"}, {"migrate", "up"}, {"doctor"}}
	for _, b := range bad {
		for _, args := range commands {
			t.Run(b.variable+"/"+strings.Join(args, "_"), func(t *testing.T) {
				env := with(newEnv(t), b.variable, b.value)
				r := runMain(t, env, args...)
				if r.code == 0 {
					t.Fatalf("exit 0 with %s=%s", b.variable, b.value)
				}
				mustContain(t, "output", r.stdout+r.stderr, b.variable, "invalid configuration")
				noDataDir(t, env)
			})
		}
	}
}

func TestServeAnswersUntilCancelled(t *testing.T) {
	env := newEnv(t)
	base := "http://" + env["ATRIUM_ADDR"]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, _, stderr := newMain(env)
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"serve"}) }()
	waitHealthy(t, base)
	if s := statusOf(base + "/readyz"); s != http.StatusOK {
		t.Fatalf("/readyz %d, want 200", s)
	}
	if _, err := os.Stat(filepath.Join(env["ATRIUM_DATA_DIR"], "atrium.db")); err != nil {
		t.Fatalf("serve did not create the embedded database: %v", err)
	}
	cancel() // what SIGTERM does to main's context
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d after cancel, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return within 30s of cancel")
	}
	if s := statusOf(base + "/healthz"); s != 0 {
		t.Fatalf("/healthz answered %d after shutdown", s)
	}
}

// TestSIGTERMLetsAnInFlightRequestFinish holds a PATCH open half-way through its
// body, sends SIGTERM, checks the server stops taking connections, and only
// then sends the rest: the answer must still arrive, and the process exit 0.
func TestSIGTERMLetsAnInFlightRequestFinish(t *testing.T) {
	env := with(newEnv(t), "ATRIUM_LOG_LEVEL", "info")
	addr := env["ATRIUM_ADDR"]
	p := startAtrium(t, env, "serve")
	waitHealthy(t, "http://"+addr)

	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := `{"name":"renamed while stopping"}`
	fmt.Fprintf(conn, "PATCH /api/v1/workspaces/ws_x HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", addr, len(body), body[:8])
	time.Sleep(300 * time.Millisecond) // the server reads the header and waits in the body

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if _, err := io.WriteString(conn, body[8:]); err != nil {
		t.Fatalf("finish the body after SIGTERM: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request got no answer after SIGTERM: %v", err)
	}
	defer resp.Body.Close()
	var answer struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusUnauthorized || answer.Error.Code != "unauthenticated" {
		t.Fatalf("status %d, code %q (decode: %v); want 401 unauthenticated", resp.StatusCode, answer.Error.Code, err)
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}

func TestServeFailsFastWhenTheDatabaseIsUnreachable(t *testing.T) {
	env := with(newEnv(t), "ATRIUM_DATABASE_URL", "postgres://nobody@127.0.0.1:1/x?sslmode=disable")
	r := runMain(t, env, "serve")
	if r.code == 0 {
		t.Fatal("serve exit 0 with an unreachable database")
	}
	if r.elapsed > 15*time.Second {
		t.Fatalf("serve took %s to give up; want under 15s", r.elapsed)
	}
	mustContain(t, "stderr", r.stderr, "ATRIUM_DATABASE_URL")
}

// appliedOnce matches the status line of the first migration, applied.
var appliedOnce = regexp.MustCompile(`(?m)^0001_init\tapplied \d{4}-\d\d-\d\dT`)

func TestMigrateOnSQLite(t *testing.T) {
	env := newEnv(t)
	r := runMain(t, env, "migrate", "status")
	if r.code == 0 {
		t.Fatalf("migrate status exit 0 before any database:\n%s", r.stdout)
	}
	mustContain(t, "stderr", r.stderr, "no database", "migrate up")
	noDataDir(t, env)

	for _, sub := range []string{"up", "status"} {
		r = runMain(t, env, "migrate", sub)
		if r.code != 0 || !appliedOnce.MatchString(r.stdout) {
			t.Fatalf("migrate %s: exit %d, stdout %q, stderr %q; want 0001_init applied", sub, r.code, r.stdout, r.stderr)
		}
	}
}

func TestMigrateOnPostgres(t *testing.T) {
	s := testkit.NewPostgresSchema(t)
	env := with(newEnv(t), "ATRIUM_DATABASE_URL", s.OwnerURL)
	for _, sub := range []string{"up", "status"} {
		r := runMain(t, env, "migrate", sub)
		if r.code != 0 || !appliedOnce.MatchString(r.stdout) {
			t.Fatalf("migrate %s: exit %d, stdout %q, stderr %q; want 0001_init applied", sub, r.code, r.stdout, r.stderr)
		}
	}
}

// TestConcurrentMigrateUpAppliesOnce starts two migrations on one fresh data
// directory at once, as two nodes booting together would. The race depends on
// timing, so it runs on several fresh directories.
func TestConcurrentMigrateUpAppliesOnce(t *testing.T) {
	for round := range 8 {
		env := newEnv(t)
		for i, r := range migrateAtOnce(t, env, 2) {
			if r.code != 0 {
				t.Fatalf("round %d, migrate up #%d: exit %d, stderr %q", round, i, r.code, r.stderr)
			}
		}
		r := runMain(t, env, "migrate", "status")
		if r.code != 0 || len(appliedOnce.FindAllString(r.stdout, -1)) != 1 || strings.Contains(r.stdout, "pending") {
			t.Fatalf("round %d, status after concurrent migrations: exit %d, stdout %q; want 0001_init applied once", round, r.code, r.stdout)
		}
	}
}

// migrateAtOnce runs n migrate up on env concurrently.
func migrateAtOnce(t *testing.T, env map[string]string, n int) []result {
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = runMain(t, env, "migrate", "up") })
	}
	wg.Wait()
	return results
}

func TestDoctorOnSQLite(t *testing.T) {
	env := newEnv(t)
	if r := runMain(t, env, "migrate", "up"); r.code != 0 {
		t.Fatalf("migrate up: exit %d, stderr %q", r.code, r.stderr)
	}
	r := runMain(t, env, "doctor")
	if r.code != 0 {
		t.Fatalf("doctor exit %d:\n%s", r.code, r.stdout)
	}
	mustLine(t, r.stdout, `ok\s+store\s+embedded SQLite at `+regexp.QuoteMeta(filepath.Join(env["ATRIUM_DATA_DIR"], "atrium.db")))
	mustLine(t, r.stdout, `ok\s+migrations\s+all \d+ applied`)
}

// production is what a production deployment must set besides its database.
var production = []string{"ATRIUM_ENV", "production", "ATRIUM_SECRET_KEY", strings.Repeat("k", 40), "ATRIUM_BASE_URL", "https://x.example"}

func TestDoctorOnPostgres(t *testing.T) {
	s := testkit.NewPostgresSchema(t)
	t.Run("app role", func(t *testing.T) {
		r := runMain(t, with(newEnv(t), "ATRIUM_DATABASE_URL", s.AppURL), "doctor")
		if r.code != 0 {
			t.Fatalf("doctor exit %d:\n%s", r.code, r.stdout)
		}
		mustLine(t, r.stdout, `ok\s+database role\s+"`+regexp.QuoteMeta(s.AppRole)+`": not superuser`)
		if strings.Contains(r.stdout, "isolation") {
			t.Fatalf("doctor reports an isolation risk for the app role:\n%s", r.stdout)
		}
	})
	t.Run("owner in development", func(t *testing.T) {
		r := runMain(t, with(newEnv(t), "ATRIUM_DATABASE_URL", s.OwnerURL), "doctor")
		if r.code != 0 {
			t.Fatalf("doctor exit %d:\n%s", r.code, r.stdout)
		}
		mustLine(t, r.stdout, `warn\s+isolation\s+database role .* owns \d+ tables`)
	})
	t.Run("owner in production", func(t *testing.T) {
		env := with(newEnv(t), append([]string{"ATRIUM_DATABASE_URL", s.OwnerURL}, production...)...)
		r := runMain(t, env, "doctor")
		if r.code != 1 {
			t.Fatalf("doctor exit %d, want 1:\n%s", r.code, r.stdout)
		}
		mustLine(t, r.stdout, `FAIL\s+isolation\s+database role .* owns \d+ tables`)
	})
}

func TestServeRefusesAnOwnerRoleInProduction(t *testing.T) {
	s := testkit.NewPostgresSchema(t)
	env := with(newEnv(t), append([]string{"ATRIUM_DATABASE_URL", s.OwnerURL}, production...)...)
	r := runMain(t, env, "serve")
	if r.code == 0 {
		t.Fatal("serve exit 0 as the table owner in production")
	}
	mustContain(t, "stderr", r.stderr, "refusing to start in production")
	if s := statusOf("http://" + env["ATRIUM_ADDR"] + "/healthz"); s != 0 {
		t.Fatalf("something answers %d on the address serve refused", s)
	}
}

// mustLine fails unless some line of out matches pattern from its start.
func mustLine(t *testing.T, out, pattern string) {
	t.Helper()
	if !regexp.MustCompile(`(?m)^` + pattern).MatchString(out) {
		t.Fatalf("no line matches %q in:\n%s", pattern, out)
	}
}
