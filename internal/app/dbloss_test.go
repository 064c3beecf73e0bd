package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestLosingPostgresAnswers503AndRecovers runs Atrium on PostgreSQL through a
// TCP proxy, cuts the proxy while the app serves, and expects readiness and
// workspace reads to answer 503 unavailable, then to recover on their own once
// the database is reachable again.
func TestLosingPostgresAnswers503AndRecovers(t *testing.T) {
	s := testkit.NewPostgresSchema(t)
	proxy := startProxy(t, postgresHostPort(t, s.AppURL))
	a := testkit.Boot(t, store.SQLite, testkit.AppOptions{Env: map[string]string{
		"ATRIUM_DATABASE_URL": withHost(t, s.AppURL, proxy.addr),
		"ATRIUM_AUTO_MIGRATE": "false", // NewPostgresSchema migrated it as the owner
	}})
	if a.DB.Dialect() != store.Postgres {
		t.Fatalf("booted on %s; the ATRIUM_DATABASE_URL override did not apply", a.DB.Dialect())
	}
	ws, err := a.Services.Workspaces.Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	readyz := probe{url: a.URL() + "/readyz"}
	workspace := probe{url: a.URL() + "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, ws.ID),
		header: http.Header{"Authorization": {testkit.KeyFor(ws.ID)}}}
	for _, p := range []probe{readyz, workspace} {
		if r := p.get(); r.status != http.StatusOK {
			t.Fatalf("GET %s before the loss: %d %s", p.url, r.status, r.raw)
		}
	}

	proxy.lose()
	r := workspace.until(t, 10*time.Second, http.StatusServiceUnavailable)
	assertUnavailable(t, r)
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After: %v", r.header)
	}
	r = readyz.until(t, 10*time.Second, http.StatusServiceUnavailable)
	assertUnavailable(t, r, "store")

	proxy.restore(t)
	readyz.until(t, 15*time.Second, http.StatusOK)
	r = workspace.until(t, 15*time.Second, http.StatusOK)
	if r.body["id"] != kernel.FormatID(kernel.PrefixWorkspace, ws.ID) {
		t.Fatalf("workspace after recovery: %s", r.raw)
	}
}

// response is one answer of the app.
type response struct {
	status int // 0 when the request itself failed
	header http.Header
	body   map[string]any
	raw    string
}

// probe is a GET the test repeats.
type probe struct {
	url    string
	header http.Header
}

func (p probe) get() response {
	req, err := http.NewRequest(http.MethodGet, p.url, nil)
	if err != nil {
		return response{raw: err.Error()}
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return response{raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// until repeats the GET until it answers want, at most every 100ms and for at
// most timeout. Meanwhile only 200 and 503 are acceptable answers: losing the
// database must never show as an internal error or a dropped connection.
func (p probe) until(t *testing.T, timeout time.Duration, want int) response {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		r := p.get()
		if r.status == want {
			return r
		}
		if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
			t.Fatalf("GET %s (attempt %d): %d %s; want only 200 or 503 while the database comes and goes", p.url, attempt, r.status, r.raw)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s still %d after %s (%d attempts), want %d: %s", p.url, r.status, timeout, attempt, want, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertUnavailable checks the 503 envelope: code unavailable, the request ID
// of the header, and the fields named, if any.
func assertUnavailable(t *testing.T, r response, fields ...string) {
	t.Helper()
	env, _ := r.body["error"].(map[string]any)
	if env == nil || env["code"] != string(kernel.CodeUnavailable) {
		t.Fatalf("want the unavailable envelope, got %d %s", r.status, r.raw)
	}
	if id := r.header.Get("X-Request-ID"); id == "" || env["request_id"] != id {
		t.Fatalf("request_id %v does not match X-Request-ID %q", env["request_id"], id)
	}
	got, _ := env["fields"].(map[string]any)
	for _, f := range fields {
		if got[f] == nil {
			t.Fatalf("fields %v do not name %s: %s", got, f, r.raw)
		}
	}
}

// postgresHostPort is the host:port of a postgres:// URL.
func postgresHostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("cannot proxy PostgreSQL URL without a TCP host: %v", err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// withHost returns raw with its host:port replaced by hostPort.
func withHost(t *testing.T, raw, hostPort string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = hostPort
	return u.String()
}

// tcpProxy forwards connections on addr to target until lost, and can be
// restored on the same address.
type tcpProxy struct {
	addr, target string
	wg           sync.WaitGroup

	mu    sync.Mutex
	ln    net.Listener // nil while lost
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.lose()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

// forward pipes one client connection to the target until either side ends
// or the proxy is lost.
func (p *tcpProxy) forward(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		client.Close()
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, client)
	delete(p.conns, server)
	p.mu.Unlock()
}

// track records both ends of a connection, or reports false when the proxy
// was lost meanwhile.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// lose stops listening and cuts every proxied connection, as a database host
// that went away would.
func (p *tcpProxy) lose() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore listens on the same address again, retrying briefly if the port is
// not free yet.
func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("listen on %s again: %v", p.addr, err)
}
