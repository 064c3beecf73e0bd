package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"atrium/internal/testkit"
)

// TestMain removes the atrium binary the subprocess tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// result is what one in-process run of the program left behind.
type result struct {
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

// newEnv returns the environment of a fresh deployment: a data directory that
// does not exist yet, a free port and warnings-only logs.
func newEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"ATRIUM_DATA_DIR":  filepath.Join(t.TempDir(), "data"),
		"ATRIUM_ADDR":      freeAddr(t),
		"ATRIUM_LOG_LEVEL": "warn",
	}
}

// with returns a copy of env with the given variables, as pairs, overridden.
func with(env map[string]string, pairs ...string) map[string]string {
	out := make(map[string]string, len(env)+len(pairs)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		out[pairs[i]] = pairs[i+1]
	}
	return out
}

// newMain returns a Main whose whole environment is env.
func newMain(env map[string]string) (*Main, *testkit.SyncBuffer, *testkit.SyncBuffer) {
	stdout, stderr := &testkit.SyncBuffer{}, &testkit.SyncBuffer{}
	return &Main{Stdout: stdout, Stderr: stderr, Getenv: func(k string) string { return env[k] }}, stdout, stderr
}

// runMain runs the program in-process to completion, bounded by a minute. A
// panic fails the test that caused it, with exit code -1, instead of ending
// the whole run; runMain may be called from any goroutine.
func runMain(t *testing.T, env map[string]string, args ...string) (r result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, stdout, stderr := newMain(env)
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("atrium %s panicked: %v\n%s", strings.Join(args, " "), p, debug.Stack())
			r = result{code: -1, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
		}
	}()
	code := m.Run(ctx, args)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor polls cond every 50ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusOf returns the status of a GET, or 0 when the request fails.
func statusOf(url string) int {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealthy waits until the server at base answers /healthz with 200.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	waitFor(t, 10*time.Second, base+"/healthz to answer 200", func() bool { return statusOf(base+"/healthz") == http.StatusOK })
}

// binary is the atrium executable built once for the subprocess tests.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// atriumBinary builds the command into a temporary directory, once per run.
func atriumBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "atrium-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "atrium")
		cmd := exec.Command("go", "build", "-o", binary.path, ".")
		binary.out, binary.err = cmd.CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build ./cmd/atrium: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// process is a running atrium subprocess.
type process struct {
	cmd    *exec.Cmd
	stderr *testkit.SyncBuffer
	exited chan struct{}
}

// startAtrium runs the built binary with env as its whole environment and
// kills it when the test ends, if it is still running.
func startAtrium(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(atriumBinary(t), args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, stderr: &testkit.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("atrium output:\n%s", p.stderr.String())
		}
	})
	return p
}

// wait returns the process's exit code, failing the test if it runs past timeout.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("atrium still running after %s", timeout)
		return -1
	}
}

// mustContain fails unless s contains every one of want.
func mustContain(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// noDataDir fails if the data directory of env exists.
func noDataDir(t *testing.T, env map[string]string) {
	t.Helper()
	if _, err := os.Stat(env["ATRIUM_DATA_DIR"]); !os.IsNotExist(err) {
		t.Fatalf("data directory %s was created (stat: %v)", env["ATRIUM_DATA_DIR"], err)
	}
}
