package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"atrium/internal/testkit"
)

// The acceptance check, run on real processes: three atrium nodes on
// one PostgreSQL schema and one NATS server, and the same suite on the
// embedded defaults with one node. Events committed through one node reach
// an event-stream client on another and a webhook receiver once per
// delivery attempt; every scheduled task runs once per tick across the
// nodes; a node killed with SIGKILL in the middle of deliveries loses
// nothing.

// deployment is a set of atrium processes sharing a store and a bus.
type deployment struct {
	t     *testing.T
	env   map[string]string // shared by every node
	nodes []*node
}

// node is one atrium process; restart starts it again on the same address
// and data directory.
type node struct {
	name string
	env  map[string]string
	base string
	proc *process
}

func (d *deployment) start(name string, extra map[string]string) *node {
	d.t.Helper()
	env := with(d.env, "ATRIUM_ADDR", freeAddr(d.t), "ATRIUM_NODE_ID", name,
		"ATRIUM_DATA_DIR", filepath.Join(d.t.TempDir(), "data"))
	for k, v := range extra {
		env[k] = v
	}
	n := &node{name: name, env: env, base: "http://" + env["ATRIUM_ADDR"]}
	n.proc = startAtrium(d.t, env)
	waitHealthy(d.t, n.base)
	d.nodes = append(d.nodes, n)
	return n
}

// kill ends the node with SIGKILL: no shutdown, no flush, no goodbye.
func (n *node) kill(t *testing.T) {
	t.Helper()
	_ = n.proc.cmd.Process.Signal(syscall.SIGKILL)
	n.proc.wait(t, 10*time.Second)
}

// restart starts a killed node again with the same environment.
func (n *node) restart(t *testing.T) {
	t.Helper()
	n.proc = startAtrium(t, n.env)
	waitHealthy(t, n.base)
}

// client sends API requests as one caller.
type client struct {
	t       *testing.T
	headers map[string]string
}

func (c client) do(base, method, path, body string) (int, map[string]any, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// must sends a request and fails the test unless it answers want.
func (c client) must(want int, base, method, path, body string) map[string]any {
	c.t.Helper()
	status, out, raw := c.do(base, method, path, body)
	if status != want {
		c.t.Fatalf("%s %s%s: %d, want %d: %s", method, base, path, status, want, raw)
	}
	return out
}

var verifyToken = regexp.MustCompile(`verify-email\?token=([A-Za-z0-9_\-]+)`)

// owner signs a person up through the nodes (each step on another node, to
// show they share one store), creates a workspace and a read-write API key,
// and returns the workspace ID, a client using the key and one using the
// person's session.
func (d *deployment) owner() (string, client, client) {
	t := d.t
	at := func(i int) string { return d.nodes[i%len(d.nodes)].base }
	anon := client{t: t}
	email, password := "ada@example.com", "correct horse battery staple"
	anon.must(http.StatusAccepted, at(0), "POST", "/api/v1/auth/signup",
		`{"email": "`+email+`", "password": "`+password+`", "name": "Ada"}`)
	var token string
	waitFor(t, 10*time.Second, "the verification mail", func() bool {
		_, _, raw := anon.do(at(1), "GET", "/dev/mailbox", "")
		if m := verifyToken.FindStringSubmatch(raw); m != nil {
			token = m[1]
		}
		return token != ""
	})
	anon.must(http.StatusOK, at(2), "POST", "/api/v1/auth/email/verify", `{"token": "`+token+`"}`)
	req, _ := http.NewRequest("POST", at(0)+"/api/v1/auth/login",
		strings.NewReader(`{"email": "`+email+`", "password": "`+password+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("log in: %v %v", err, resp)
	}
	resp.Body.Close()
	var cookie string
	for _, c := range resp.Cookies() {
		cookie = c.Name + "=" + c.Value
	}
	person := client{t: t, headers: map[string]string{"Cookie": cookie}}
	ws := person.must(http.StatusCreated, at(1), "POST", "/api/v1/workspaces", `{"name": "Acme", "slug": "acme"}`)["id"].(string)
	// Webhooks need a plan that has them: the Pro trial does.
	person.must(http.StatusOK, at(0), "POST", "/api/v1/workspaces/"+ws+"/subscription/trial", "")
	key := person.must(http.StatusCreated, at(2), "POST", "/api/v1/workspaces/"+ws+"/api-keys",
		`{"name": "cluster test", "scopes": ["read", "write"]}`)["secret"].(string)
	return ws, client{t: t, headers: map[string]string{"Authorization": "Bearer " + key}}, person
}

// receiver is a webhook endpoint that checks every signature and records
// each delivery attempt by its webhook-id.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	secret  []byte
	byID    map[string]int
	bad     []string
	delay   time.Duration
	arrived chan string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{byID: map[string]int{}, arrived: make(chan string, 1000)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	r.mu.Lock()
	delay := r.delay
	if !r.signedBy(id, ts, body, req.Header.Get("webhook-signature")) {
		r.bad = append(r.bad, id)
	}
	r.byID[id]++
	r.mu.Unlock()
	time.Sleep(delay)
	w.WriteHeader(http.StatusNoContent)
	r.arrived <- id
}

// signedBy reports whether one of the signatures is the Standard Webhooks
// v1 signature of id.timestamp.body under the receiver's secret.
func (r *receiver) signedBy(id, ts string, body []byte, signatures string) bool {
	mac := hmac.New(sha256.New, r.secret)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(signatures) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func (r *receiver) setSecret(t *testing.T, whsec string) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	if err != nil {
		t.Fatalf("secret %q: %v", whsec, err)
	}
	r.mu.Lock()
	r.secret = raw
	r.mu.Unlock()
}

func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// sseEvent is one event read from an event stream.
type sseEvent struct {
	id, event string
	data      map[string]any
}

// stream opens the workspace's event stream on base and sends its events to
// the returned channel until the test ends.
func stream(t *testing.T, c client, base, ws string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/workspaces/"+ws+"/events/stream", nil)
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %v %v", err, resp)
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.event != "" {
					out <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id:"):
				e.id = strings.TrimSpace(line[3:])
			case strings.HasPrefix(line, "event:"):
				e.event = strings.TrimSpace(line[6:])
			case strings.HasPrefix(line, "data:"):
				_ = json.Unmarshal([]byte(strings.TrimSpace(line[5:])), &e.data)
			}
		}
	}()
	return out
}

// nextEvent waits for the stream's next event of type typ.
func nextEvent(t *testing.T, events <-chan sseEvent, typ string) sseEvent {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e := <-events:
			if e.event == typ {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event on the stream within 15s", typ)
		}
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestClusterOfThreeNodes is the check on real engines: three nodes
// on one PostgreSQL schema and one NATS server.
func TestClusterOfThreeNodes(t *testing.T) {
	schema := testkit.NewPostgresSchema(t)
	bus := testkit.StartNATS(t)
	d := &deployment{t: t, env: with(newEnv(t),
		"ATRIUM_DATABASE_URL", schema.AppURL, "ATRIUM_AUTO_MIGRATE", "false", "ATRIUM_NATS_URL", bus.URL(),
		"ATRIUM_SECRET_KEY", randomHex(t, 32), "ATRIUM_WEBHOOK_ALLOW_PRIVATE", "true")}
	for _, name := range []string{"node-a", "node-b", "node-c"} {
		d.start(name, nil)
	}
	d.check(func() {
		// Kill the node in the middle: the others finish its deliveries.
		d.nodes[1].kill(t)
	})
}

// TestOneNodeOnEmbeddedDefaults is the same suite on SQLite and the embedded
// NATS server: the killed node is the only one, so it is started again and
// finishes from its own store.
func TestOneNodeOnEmbeddedDefaults(t *testing.T) {
	d := &deployment{t: t, env: with(newEnv(t), "ATRIUM_WEBHOOK_ALLOW_PRIVATE", "true")}
	n := d.start("solo", nil)
	d.check(func() {
		n.kill(t)
		n.restart(t)
	})
}

// check runs the suite: an event through node 0 reaches a stream client on
// the last node and the receiver once; then a burst of events during which
// interrupt kills a node, and every one of them still arrives.
func (d *deployment) check(interrupt func()) {
	t := d.t
	first, last := d.nodes[0].base, d.nodes[len(d.nodes)-1].base
	ws, key, person := d.owner()
	rcv := newReceiver(t)
	endpoint := key.must(http.StatusCreated, last, "POST", "/api/v1/workspaces/"+ws+"/webhook-endpoints",
		`{"url": "`+rcv.URL+`", "event_types": ["workspace.updated"]}`)
	rcv.setSecret(t, endpoint["secret"].(string))

	events := stream(t, key, last, ws)
	key.must(http.StatusOK, first, "PATCH", "/api/v1/workspaces/"+ws, `{"name": "Renamed"}`)
	e := nextEvent(t, events, "workspace.updated")
	id, _ := e.data["id"].(string)
	if e.data["workspace_id"] != ws || id == "" {
		t.Fatalf("stream event %+v", e)
	}
	waitFor(t, 15*time.Second, "the webhook delivery", func() bool { return rcv.count(id) > 0 })
	time.Sleep(time.Second) // a second delivery would arrive by now
	if n := rcv.count(id); n != 1 {
		t.Fatalf("event %s delivered %d times, want once", id, n)
	}

	// A burst, with a node killed while its deliveries are in flight.
	rcv.mu.Lock()
	rcv.delay = 50 * time.Millisecond
	rcv.mu.Unlock()
	const burst = 30
	for i := range burst {
		key.must(http.StatusOK, first, "PATCH", "/api/v1/workspaces/"+ws, fmt.Sprintf(`{"name": "Name %d"}`, i))
	}
	waitFor(t, 15*time.Second, "the first deliveries of the burst", func() bool { return rcv.distinct() >= 5 })
	interrupt()
	waitFor(t, 60*time.Second, "every event of the burst", func() bool { return rcv.distinct() == burst+1 })
	rcv.mu.Lock()
	if len(rcv.bad) > 0 {
		t.Fatalf("deliveries with a bad signature: %v", rcv.bad)
	}
	rcv.mu.Unlock()
	d.checkScheduler(person)
}

// checkScheduler makes the person a platform admin with the CLI, as an
// operator would, and reads the scheduler's runs: every task has run, and
// no tick of any task ran twice, whichever nodes were up.
func (d *deployment) checkScheduler(person client) {
	t := d.t
	grant := startAtrium(t, d.nodes[0].env, "admin", "grant", "ada@example.com")
	if code := grant.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("atrium admin grant: exit %d: %s", code, grant.stderr.String())
	}
	base := d.nodes[0].base
	tasks := person.must(http.StatusOK, base, "GET", "/api/v1/admin/scheduler/tasks", "")["items"].([]any)
	if len(tasks) < 4 {
		t.Fatalf("scheduler tasks: %v", tasks)
	}
	for _, task := range tasks {
		name := task.(map[string]any)["name"].(string)
		waitFor(t, 20*time.Second, "a run of "+name, func() bool {
			runs := person.must(http.StatusOK, base, "GET", "/api/v1/admin/scheduler/runs?task="+name+"&limit=100", "")["items"].([]any)
			return len(runs) > 0
		})
	}
	runs := person.must(http.StatusOK, base, "GET", "/api/v1/admin/scheduler/runs?limit=100", "")["items"].([]any)
	ticks := map[string]string{}
	for _, r := range runs {
		run := r.(map[string]any)
		tick := fmt.Sprint(run["task"], " @ ", run["scheduled_at"])
		if other, dup := ticks[tick]; dup {
			t.Fatalf("%s ran twice: on %s and %s", tick, other, run["node"])
		}
		ticks[tick] = fmt.Sprint(run["node"])
	}
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

// TestKillBetweenCommitAndPublish commits a change while NATS is away, so
// its event can only be in the outbox, kills the node with SIGKILL, and
// brings both back: the event is delivered after the restart.
func TestKillBetweenCommitAndPublish(t *testing.T) {
	bus := testkit.StartNATS(t)
	d := &deployment{t: t, env: with(newEnv(t), "ATRIUM_NATS_URL", bus.URL(), "ATRIUM_WEBHOOK_ALLOW_PRIVATE", "true")}
	n := d.start("solo", nil)
	ws, key, _ := d.owner()
	rcv := newReceiver(t)
	endpoint := key.must(http.StatusCreated, n.base, "POST", "/api/v1/workspaces/"+ws+"/webhook-endpoints",
		`{"url": "`+rcv.URL+`", "event_types": ["workspace.updated"]}`)
	rcv.setSecret(t, endpoint["secret"].(string))

	bus.Stop()
	key.must(http.StatusOK, n.base, "PATCH", "/api/v1/workspaces/"+ws, `{"name": "Written while NATS was away"}`)
	n.kill(t)
	bus.Start(t)
	n.restart(t)
	waitFor(t, 30*time.Second, "the event committed before the kill", func() bool { return rcv.distinct() == 1 })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Fatalf("deliveries with a bad signature: %v", rcv.bad)
	}
}
