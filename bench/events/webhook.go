package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/webhooks"
)

// webhookConcurrency is how many deliveries one node sends at once: the
// Concurrency webhooks.Service.Register gives the webhook.deliver job. The
// bare loop runs at the same.
const webhookConcurrency = 16

// webhookOptions shape the webhook scenarios.
type webhookOptions struct {
	deliveries int
	rounds     int
}

// The webhook scenarios, in the order a round runs them.
const (
	scenarioWebhook      = "WH"
	scenarioBarePost     = "BARE-POST"
	scenarioBarePostSign = "BARE-POST+sign"
)

var webhookScenarios = []string{scenarioWebhook, scenarioBarePost, scenarioBarePostSign}

// receiver is the loopback endpoint: it reads each request's body, answers
// 204 and counts, and says when the awaited count is reached.
type receiver struct {
	url   string
	srv   *http.Server
	conns atomic.Int64 // connections accepted, all runs
	mu    sync.Mutex
	count int
	want  int
	last  time.Time
	done  chan struct{}
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &receiver{url: "http://" + ln.Addr().String() + "/hooks", done: make(chan struct{})}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				rc.conns.Add(1)
			}
		}}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusNoContent)
	now := time.Now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.count++
	if rc.count == rc.want {
		rc.last = now
		close(rc.done)
	}
}

// expect resets the count and awaits n requests.
func (rc *receiver) expect(n int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.count, rc.want, rc.done = 0, n, make(chan struct{})
}

// wait returns when the awaited requests have arrived, with the time of the
// last, or an error after limit.
func (rc *receiver) wait(limit time.Duration) (time.Time, error) {
	rc.mu.Lock()
	done := rc.done
	rc.mu.Unlock()
	select {
	case <-done:
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.last, nil
	case <-time.After(limit):
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return time.Time{}, fmt.Errorf("the receiver got %d of %d requests in %s", rc.count, rc.want, limit)
	}
}

func (rc *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = rc.srv.Shutdown(ctx)
}

// webhookRun is what one run observed.
type webhookRun struct {
	n        int
	conns    int64         // connections the receiver accepted during the run
	received time.Duration // start to the last request at the receiver
	settled  time.Duration // start to every delivery recorded as succeeded (WH only)
	errors   int
	firstErr string
}

func (r webhookRun) perSecond() float64 { return float64(r.n) / r.received.Seconds() }

// webhookRig is a bus rig with the webhooks service, one endpoint pointing
// at the loopback receiver, and the actor that manages it.
type webhookRig struct {
	*busRig
	svc      *webhooks.Service
	rc       *receiver
	ctx      context.Context // carries the endpoint manager's actor
	res      policy.Resource
	endpoint uuid.UUID
	secret   string
	body     []byte // a webhook.test delivery's body, for the bare loops
}

func newWebhookRig(ctx context.Context, dialect store.Dialect) (_ *webhookRig, err error) {
	br, err := newBusRig(ctx, dialect, 1)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			br.close()
		}
	}()
	r := &webhookRig{busRig: br}
	if r.rc, err = startReceiver(); err != nil {
		return nil, err
	}
	br.closers = append(br.closers, r.rc.close)
	key := make([]byte, webhooks.KeySize)
	_, _ = rand.Read(key)
	// The guard lets deliveries reach loopback, as in development: the
	// receiver is on this machine. Every connection still goes through it.
	r.svc, err = webhooks.New(webhooks.Config{DB: br.db, Key: key, Guard: webhooks.NewGuard(true, nil), Logger: br.logger})
	if err != nil {
		return nil, err
	}
	ws := br.workspaces[0]
	r.res = policy.Resource{Workspace: ws}
	r.ctx = kernel.WithActor(ctx, kernel.Actor{Kind: kernel.ActorAPIKey, ID: kernel.NewID(), WorkspaceID: ws,
		Scopes: kernel.ScopeRead | kernel.ScopeWrite})
	ep, secret, err := r.svc.Create(r.ctx, r.res, webhooks.NewEndpoint{URL: r.rc.url, Description: "events benchmark receiver"})
	if err != nil {
		return nil, fmt.Errorf("create endpoint: %w", err)
	}
	r.endpoint, r.secret = ep.ID, secret
	if _, err := br.drainOutbox(ctx); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(map[string]string{"endpoint_id": kernel.FormatID(kernel.PrefixWebhookEndpoint, ep.ID),
		"message": "This is a test event: the endpoint is reachable and the signature can be verified."})
	r.body, err = json.Marshal(events.Envelope{ID: kernel.FormatID(kernel.PrefixEvent, kernel.NewID()), Type: webhooks.TestEventType,
		WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, ws), CreatedAt: time.Now().UTC(), Data: data})
	return r, err
}

// runWebhook seeds n deliveries with SendTest and relays their jobs, then
// starts a runtime with the webhooks service registered and times it until
// the receiver has every delivery and the store records each as succeeded.
func runWebhook(ctx context.Context, r *webhookRig, n int, prof func() func()) (run webhookRun, err error) {
	if err := seedDeliveries(r, n); err != nil {
		return webhookRun{}, err
	}
	if _, err := r.drainOutbox(ctx); err != nil {
		return webhookRun{}, err
	}
	r.rc.expect(n)
	conns := r.rc.conns.Load()
	defer func() { run.conns = r.rc.conns.Load() - conns }()
	rt := r.newRuntime()
	r.svc.Register(rt)
	runtime.GC()
	stopProfile := prof()
	defer stopProfile()
	start := time.Now()
	stop := running(rt)
	defer stop()
	last, err := r.rc.wait(2 * time.Minute)
	if err != nil {
		return webhookRun{}, err
	}
	run = webhookRun{n: n, received: last.Sub(start)}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var pending int
		err := r.db.ReadWorkspace(ctx, r.res.Workspace, func(tx store.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM webhook_delivery WHERE status <> 'succeeded'").Scan(&pending)
		})
		if err != nil {
			return run, err
		}
		if pending == 0 {
			run.settled = time.Since(start)
			return run, nil
		}
		if time.Now().After(deadline) {
			return run, fmt.Errorf("%d deliveries not recorded as succeeded a minute after the receiver had them all", pending)
		}
	}
}

// seedDeliveries makes n pending deliveries with their jobs, from a few
// goroutines.
func seedDeliveries(r *webhookRig, n int) error {
	var next atomic.Int64
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := r.svc.SendTest(r.ctx, r.res, r.endpoint); err != nil {
					errs <- fmt.Errorf("seed deliveries: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// runBarePost is the baseline: webhookConcurrency goroutines post the same
// body with the same headers to the same receiver, n requests in all, over a
// keep-alive client with an idle connection per goroutine. With sign, each
// request is signed afresh (webhooks.Sign, a new webhook-id and timestamp);
// without, the headers are signed once.
func runBarePost(r *webhookRig, n int, sign bool, prof func() func()) (run webhookRun, err error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: webhookConcurrency * 2, MaxIdleConnsPerHost: webhookConcurrency,
		IdleConnTimeout: time.Minute, DisableCompression: true}, Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()
	staticID := kernel.FormatID(kernel.PrefixEvent, kernel.NewID())
	staticTS := time.Now().Unix()
	staticSig, err := webhooks.Sign(r.secret, staticID, staticTS, r.body)
	if err != nil {
		return webhookRun{}, err
	}
	r.rc.expect(n)
	conns := r.rc.conns.Load()
	defer func() { run.conns = r.rc.conns.Load() - conns }()
	var next atomic.Int64
	var errCount atomic.Int64
	var firstErr atomic.Value
	runtime.GC()
	stopProfile := prof()
	defer stopProfile()
	start := time.Now()
	var wg sync.WaitGroup
	for range webhookConcurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				id, ts, sig := staticID, staticTS, staticSig
				if sign {
					var err error
					id, ts = kernel.FormatID(kernel.PrefixEvent, kernel.NewID()), time.Now().Unix()
					if sig, err = webhooks.Sign(r.secret, id, ts, r.body); err != nil {
						panic(err) // the same secret signed once above
					}
				}
				if err := post(client, r.rc.url, id, ts, sig, r.body); err != nil {
					if errCount.Add(1) == 1 {
						firstErr.Store(err.Error())
					}
				}
			}
		})
	}
	wg.Wait()
	run = webhookRun{n: n, received: time.Since(start), errors: int(errCount.Load())}
	if run.errors > 0 {
		run.firstErr, _ = firstErr.Load().(string)
		return run, nil
	}
	if _, err := r.rc.wait(5 * time.Second); err != nil {
		return run, err
	}
	return run, nil
}

func post(client *http.Client, url, id string, ts int64, sig string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set(webhooks.HeaderID, id)
	req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(webhooks.HeaderSignature, sig)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Atrium-Webhooks/1")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// webhookResult holds every run by scenario.
type webhookResult struct {
	runs     map[string][]webhookRun
	bodySize int
}

// measureWebhooks runs the webhook scenarios round after round, the order
// reversed every other round.
func measureWebhooks(ctx context.Context, dialect store.Dialect, o webhookOptions, p *profiler) (webhookResult, error) {
	r, err := newWebhookRig(ctx, dialect)
	if err != nil {
		return webhookResult{}, err
	}
	defer r.close()
	res := webhookResult{runs: map[string][]webhookRun{}, bodySize: len(r.body)}
	for round := range o.rounds {
		for i := range webhookScenarios {
			name := webhookScenarios[i]
			if round%2 == 1 {
				name = webhookScenarios[len(webhookScenarios)-1-i]
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			prof := func() func() { return p.start(string(dialect), name) }
			var run webhookRun
			switch name {
			case scenarioWebhook:
				run, err = runWebhook(ctx, r, o.deliveries, prof)
			case scenarioBarePost:
				run, err = runBarePost(r, o.deliveries, false, prof)
			case scenarioBarePostSign:
				run, err = runBarePost(r, o.deliveries, true, prof)
			}
			if err != nil {
				return res, fmt.Errorf("%s: %w", name, err)
			}
			res.runs[name] = append(res.runs[name], run)
		}
	}
	return res, nil
}

func (res webhookResult) rates(name string) []float64 {
	var out []float64
	for _, run := range res.runs[name] {
		out = append(out, run.perSecond())
	}
	return out
}

// report prints the runs, the ratios and the target; it returns false if a
// bare request failed.
func (res webhookResult) report(w io.Writer, o webhookOptions) bool {
	fmt.Fprintf(w, "webhook delivery: %d deliveries a run (%d-byte body) to a loopback receiver at concurrency %d;\n",
		o.deliveries, res.bodySize, webhookConcurrency)
	fmt.Fprintf(w, "   %s the webhook.deliver job from a full queue (load, sign, POST, record); %s a bare net/http loop\n",
		scenarioWebhook, scenarioBarePost)
	fmt.Fprintf(w, "  %-15s %11s %12s %9s   %s\n", "scenario", "deliveries/s", "(spread)", "conns/run", "by run")
	ok := true
	for _, name := range webhookScenarios {
		rates := res.rates(name)
		var conns []float64
		for _, run := range res.runs[name] {
			conns = append(conns, float64(run.conns))
		}
		fmt.Fprintf(w, "  %-15s %11.0f %12s %9.0f   %s\n", name, median(rates), spread(rates, "%.0f"), median(conns), list(rates, "%.0f"))
		for _, run := range res.runs[name] {
			if run.errors > 0 {
				ok = false
				fmt.Fprintf(w, "  FAILED %s: %d of %d requests failed; first: %s\n", name, run.errors, run.n, run.firstErr)
				break
			}
		}
	}
	var settled []float64
	for _, run := range res.runs[scenarioWebhook] {
		settled = append(settled, float64(run.n)/run.settled.Seconds())
	}
	fmt.Fprintf(w, "  (conns/run: connections the receiver accepted in a run)\n")
	fmt.Fprintf(w, "  %s counted until every delivery is recorded as succeeded: %.0f/s (by run %s)\n", scenarioWebhook, median(settled), list(settled, "%.0f"))
	wh, bare, signed := res.rates(scenarioWebhook), res.rates(scenarioBarePost), res.rates(scenarioBarePostSign)
	var byRound []float64
	for i := range min(len(wh), len(bare)) {
		byRound = append(byRound, wh[i]/bare[i])
	}
	ratio := median(wh) / median(bare)
	fmt.Fprintf(w, "  ratio %s / %s: %.2f× (by round %s); / %s: %.2f×\n", scenarioWebhook, scenarioBarePost, ratio,
		list(byRound, "%.2f"), scenarioBarePostSign, median(wh)/median(signed))
	fmt.Fprintf(w, "targets:\n")
	verdict(w, "WH ≥ 0.70× BARE-POST", ratio, 0.70, true, ok)
	return ok
}
