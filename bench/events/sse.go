package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"atrium/bench/benchkit"
	"atrium/internal/app"
	"atrium/internal/events/realtime"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// sseClientEnv, when set (to the server's host:port), makes this program
// the SSE client: it reads "path<TAB>Authorization" lines from standard
// input up to an empty line, opens one stream for each, prints "ready N"
// and holds them, reading what comes, until standard input closes. It runs
// as a child process, so that the node's memory holds the server's side of
// the connections only.
const sseClientEnv = "ATRIUM_BENCH_SSE_CLIENT"

// sseOptions shape the SSE scenario.
type sseOptions struct {
	connections int
	// memprofile, when set, receives a heap profile taken while Atrium holds
	// the connections.
	memprofile string
}

// memSnapshot is the process's memory at one moment, after a GC that
// returned what it could to the OS.
type memSnapshot struct {
	rss        int64 // resident set, bytes
	heap       uint64
	stack      uint64
	goroutines int
}

func takeMem() memSnapshot {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{rss: residentBytes(), heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// residentBytes reads VmRSS from /proc/self/status; 0 where there is none.
func residentBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// raiseFileLimit lifts the soft limit on open files to the hard one and
// returns the new soft limit.
func raiseFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// sseTarget is one stream to open.
type sseTarget struct{ path, auth string }

// sseRun is what holding the connections on one server observed.
type sseRun struct {
	idle, loaded memSnapshot
	open         time.Duration // time to open every connection
}

// perConn divides what the connections added by their number: resident
// memory, Go heap in use and goroutine stacks, in bytes.
func (r sseRun) perConn(n int) (rss, heap, stack float64) {
	rss = float64(r.loaded.rss-r.idle.rss) / float64(n)
	heap = (float64(r.loaded.heap) - float64(r.idle.heap)) / float64(n)
	stack = (float64(r.loaded.stack) - float64(r.idle.stack)) / float64(n)
	return rss, heap, stack
}

// sseResult holds Atrium's run and the bare server's.
type sseResult struct {
	n, workspaces int
	limit         uint64
	atrium, bare  sseRun
}

// measureSSE boots Atrium on SQLite, opens n idle event streams to it from a
// child process (spread over workspaces, at most the per-workspace limit in
// each) and reads this process's memory before and after; then does the
// same against a bare net/http SSE server in this process.
func measureSSE(ctx context.Context, o sseOptions) (sseResult, error) {
	res := sseResult{n: o.connections, limit: raiseFileLimit()}
	if res.limit < uint64(o.connections)+1000 {
		return res, fmt.Errorf("open files limited to %d: %d connections need more (raise the hard limit: ulimit -Hn)", res.limit, o.connections)
	}
	in, err := benchkit.Boot(ctx, store.SQLite, app.Options{Auth: testkit.TestAuth{}})
	if err != nil {
		return res, err
	}
	defer in.Close()
	per := in.App.Config.SSEMaxPerWorkspace
	if per <= 0 {
		per = realtime.DefaultMaxPerWorkspace
	}
	res.workspaces = (o.connections + per - 1) / per
	ids := make([]uuid.UUID, res.workspaces)
	for i := range ids {
		ws, err := in.App.Services.Workspaces.Create(ctx, fmt.Sprintf("SSE Workspace %04d", i), fmt.Sprintf("sse-%04d", i))
		if err != nil {
			return res, fmt.Errorf("seed workspace %d: %w", i, err)
		}
		ids[i] = ws.ID
	}
	targets := make([]sseTarget, o.connections)
	for i := range targets {
		id := ids[i%len(ids)]
		targets[i] = sseTarget{path: "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, id) + "/events/stream",
			auth: testkit.KeyFor(id)}
	}
	if res.atrium, err = holdStreams(ctx, strings.TrimPrefix(in.App.URL(), "http://"), targets, o.memprofile); err != nil {
		return res, fmt.Errorf("atrium: %w", err)
	}
	addr, stop, err := serveBareSSE()
	if err != nil {
		return res, err
	}
	defer stop()
	for i := range targets {
		targets[i].path = "/stream"
	}
	if res.bare, err = holdStreams(ctx, addr, targets, ""); err != nil {
		return res, fmt.Errorf("bare: %w", err)
	}
	return res, nil
}

// holdStreams measures this process's memory, has a child process open the
// streams to addr and hold them, measures again and lets the child go.
func holdStreams(ctx context.Context, addr string, targets []sseTarget, memprofile string) (sseRun, error) {
	var run sseRun
	self, err := os.Executable()
	if err != nil {
		return run, err
	}
	run.idle = takeMem()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, self)
	cmd.Env = append(os.Environ(), sseClientEnv+"="+addr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return run, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return run, err
	}
	if err := cmd.Start(); err != nil {
		return run, err
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	start := time.Now()
	go func() {
		w := bufio.NewWriter(stdin)
		for _, t := range targets {
			fmt.Fprintf(w, "%s\t%s\n", t.path, t.auth)
		}
		fmt.Fprintln(w)
		_ = w.Flush()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return run, fmt.Errorf("SSE client: %w", err)
	}
	if want := fmt.Sprintf("ready %d\n", len(targets)); line != want {
		return run, fmt.Errorf("SSE client: %s", strings.TrimSpace(line))
	}
	run.open = time.Since(start)
	time.Sleep(time.Second) // let the last handlers settle into their wait
	run.loaded = takeMem()
	if memprofile != "" {
		f, err := os.Create(memprofile)
		if err != nil {
			return run, err
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			return run, err
		}
	}
	return run, nil
}

// serveBareSSE is the baseline: a net/http server with Atrium's server
// timeouts whose handler does what any correct SSE endpoint must and no
// more: it lifts the read deadline, sends the headers and the preamble, and
// writes a heartbeat comment every realtime.DefaultHeartbeat until the
// client goes.
func serveBareSSE() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		send := func(p string) error {
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(w, p); err != nil {
				return err
			}
			return rc.Flush()
		}
		if send(realtime.Preamble) != nil {
			return
		}
		t := time.NewTicker(realtime.DefaultHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
				if send(": ping\n\n") != nil {
					return
				}
			}
		}
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// runSSEClient is the child process's whole work (see sseClientEnv).
func runSSEClient(addr string) error {
	raiseFileLimit()
	var targets []sseTarget
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read targets: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		path, auth, _ := strings.Cut(line, "\t")
		targets = append(targets, sseTarget{path: path, auth: auth})
	}
	var opened atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	slots := make(chan struct{}, 32) // well under the listen backlog
	for _, t := range targets {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := openStream(addr, t); err != nil {
				once.Do(func() { firstErr = err })
				return
			}
			opened.Add(1)
		})
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Printf("error after %d streams: %v\n", opened.Load(), firstErr)
		return nil
	}
	fmt.Printf("ready %d\n", opened.Load())
	_, _ = io.Copy(io.Discard, in) // hold until the parent closes standard input
	return nil
}

// openStream opens one stream, checks for a 200 with the preamble, and
// leaves a goroutine reading (and discarding) heartbeats until it closes.
func openStream(addr string, t sseTarget) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nAccept: text/event-stream\r\n\r\n", t.path, addr, t.auth); err != nil {
		c.Close()
		return err
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		c.Close()
		return fmt.Errorf("%s: status %d: %s", t.path, resp.StatusCode, body)
	}
	first := make([]byte, len(realtime.Preamble))
	if _, err := io.ReadFull(resp.Body, first); err != nil || !bytes.Equal(first, []byte(realtime.Preamble)) {
		c.Close()
		return fmt.Errorf("%s: no preamble (%v): %q", t.path, err, first)
	}
	_ = c.SetDeadline(time.Time{})
	go func() {
		_, _ = io.Copy(io.Discard, resp.Body)
		c.Close()
	}()
	return nil
}

// report prints the memory each server held for the connections.
func (res sseResult) report(w io.Writer) {
	fmt.Fprintf(w, "idle event streams: %d connections from a child process over %d workspaces (open-file limit %d);\n",
		res.n, res.workspaces, res.limit)
	fmt.Fprintf(w, "   memory of this process (the node) before and with them, after a GC; BARE a net/http SSE handler (preamble, heartbeat)\n")
	fmt.Fprintf(w, "  %-7s %10s %10s %11s %11s %12s %11s %9s\n", "", "RSS idle", "RSS held", "RSS/conn", "heap/conn", "stacks/conn", "goroutines", "open in")
	for _, row := range []struct {
		name string
		run  sseRun
	}{{"ATRIUM", res.atrium}, {"BARE", res.bare}} {
		rss, heap, stack := row.run.perConn(res.n)
		fmt.Fprintf(w, "  %-7s %9.1fM %9.1fM %8.1fKiB %8.1fKiB %9.1fKiB %11d %9s\n", row.name, mib(row.run.idle.rss), mib(row.run.loaded.rss),
			rss/1024, heap/1024, stack/1024, row.run.loaded.goroutines-row.run.idle.goroutines, row.run.open.Round(10*time.Millisecond))
	}
	arss, aheap, astack := res.atrium.perConn(res.n)
	brss, bheap, bstack := res.bare.perConn(res.n)
	fmt.Fprintf(w, "  ratio ATRIUM/BARE per connection: RSS %.2f×, heap+stacks %.2f×\n", arss/brss, (aheap+astack)/(bheap+bstack))
	fmt.Fprintf(w, "targets:\n")
	fmt.Fprintf(w, "  one node holds %d idle SSE connections: MET (RSS with them %.0f MiB)\n", res.n, mib(res.atrium.loaded.rss))
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
