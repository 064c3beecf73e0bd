package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"atrium/internal/app"
	"atrium/internal/config"
)

// startupResult is the "zero to running" promise in numbers, on embedded
// defaults (SQLite, fresh data directory each time).
type startupResult struct {
	inProcess []time.Duration // app.New → first 200 from /readyz
	exec      []time.Duration // exec of the built binary → first 200 from /healthz
	rssKiB    []int           // VmRSS of that process after about 1s idle
	hwmKiB    []int           // VmHWM (peak RSS) at the same moment
}

// measureStartup runs both startup measurements runs times each.
func measureStartup(ctx context.Context, runs int) (startupResult, error) {
	var res startupResult
	for range runs {
		d, err := readyInProcess(ctx)
		if err != nil {
			return res, fmt.Errorf("in-process start: %w", err)
		}
		res.inProcess = append(res.inProcess, d)
	}
	dir, err := os.MkdirTemp("", "atrium-spine-bin-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "atrium")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "atrium/cmd/atrium")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return res, fmt.Errorf("go build ./cmd/atrium: %w", err)
	}
	for i := range runs {
		d, rss, hwm, err := readyProcess(ctx, bin, filepath.Join(dir, fmt.Sprintf("data%d", i)))
		if err != nil {
			return res, fmt.Errorf("atrium process: %w", err)
		}
		res.exec = append(res.exec, d)
		res.rssKiB = append(res.rssKiB, rss)
		res.hwmKiB = append(res.hwmKiB, hwm)
	}
	return res, nil
}

// readyInProcess times app.New (open and migrate a new SQLite file, write the
// secret, build the handler, bind :0) plus app.Run until /readyz answers 200.
func readyInProcess(ctx context.Context) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "atrium-spine-ready-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	env := map[string]string{"ATRIUM_ADDR": "127.0.0.1:0", "ATRIUM_DATA_DIR": filepath.Join(dir, "data")}
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		return 0, err
	}
	start := time.Now()
	a, err := app.New(ctx, cfg, app.Options{LogOutput: io.Discard})
	if err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	err = waitFor200(ctx, a.URL()+"/readyz", 10*time.Second)
	took := time.Since(start)
	cancel()
	<-done
	a.Close()
	return took, err
}

// readyProcess starts the binary on a fresh data directory and a free port
// found first (ATRIUM_ADDR=…:0 would not say which port it got), times it to
// the first 200 from /healthz, waits a second and reads its memory.
func readyProcess(ctx context.Context, bin, dataDir string) (time.Duration, int, int, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "ATRIUM_DATA_DIR="+dataDir, "ATRIUM_ADDR="+addr)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	}()
	if err := waitFor200(ctx, "http://"+addr+"/healthz", 20*time.Second); err != nil {
		return 0, 0, 0, err
	}
	took := time.Since(start)
	time.Sleep(time.Second)
	rss, hwm, err := processMemory(cmd.Process.Pid)
	return took, rss, hwm, err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitFor200 polls url every millisecond until it answers 200.
func waitFor200(ctx context.Context, url string, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s not 200 within %s: %v", url, limit, last)
}

// processMemory reads VmRSS and VmHWM, in KiB, from /proc/<pid>/status.
func processMemory(pid int) (rss, hwm int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
		switch key {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return rss, hwm, sc.Err()
}

func medianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(xs []int) int {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func printStartup(w io.Writer, res startupResult) {
	fmt.Fprintf(w, "\n== start to ready, embedded defaults (SQLite, fresh data dir), median of %d ==\n", len(res.inProcess))
	fmt.Fprintf(w, "  in process  app.New → first 200 /readyz:       %8s   (runs: %s)\n",
		round(medianDuration(res.inProcess)), durations(res.inProcess))
	fmt.Fprintf(w, "  process     exec ./atrium → first 200 /healthz: %8s   (runs: %s)\n",
		round(medianDuration(res.exec)), durations(res.exec))
	fmt.Fprintf(w, "  process     VmRSS after 1s idle:              %6.1f MiB   (peak VmHWM %.1f MiB)\n",
		float64(medianInt(res.rssKiB))/1024, float64(medianInt(res.hwmKiB))/1024)
}

func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = round(d).String()
	}
	return strings.Join(parts, " ")
}
