package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atrium/internal/events/natsbus"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
	"atrium/internal/webhooks"
)

// hookRequest is one request a hook receiver got.
type hookRequest struct {
	header http.Header
	body   []byte
}

// hookReceiver is a webhook receiver on loopback: it answers status (204
// until changed) and hands every request to the test.
type hookReceiver struct {
	*httptest.Server
	got    chan hookRequest
	status atomic.Int32
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{got: make(chan hookRequest, 100)}
	h.status.Store(http.StatusNoContent)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.got <- hookRequest{header: r.Header.Clone(), body: body}
		w.WriteHeader(int(h.status.Load()))
	}))
	t.Cleanup(h.Close)
	return h
}

// next waits for the receiver's next request.
func (h *hookReceiver) next(t *testing.T) hookRequest {
	t.Helper()
	select {
	case r := <-h.got:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook arrived in 20s")
	}
	return hookRequest{}
}

// quiet checks no request arrives for a moment.
func (h *hookReceiver) quiet(t *testing.T) {
	t.Helper()
	select {
	case r := <-h.got:
		t.Fatalf("an unexpected webhook arrived: %v %s", r.header, r.body)
	case <-time.After(300 * time.Millisecond):
	}
}

// waitForFanOut waits until the webhooks subscriber's consumer exists: it
// receives the events published from then on.
func waitForFanOut(t *testing.T, f fixture) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := f.app.Bus.JS.Consumer(context.Background(), natsbus.EventsStream, "sub_webhooks")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhooks subscriber is not consuming: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls done until it reports true, for at most 20 seconds.
func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForDelivery polls a delivery until it has settled and returns it.
func waitForDelivery(t *testing.T, f fixture, path string, headers map[string]string) response {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := call(t, f.url, "GET", path, headers, "")
		if r.status != 200 {
			t.Fatalf("get %s: %d %s", path, r.status, r.raw)
		}
		if r.body["status"] != webhooks.StatusPending {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery still pending: %s", r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func verifySignature(t *testing.T, f fixture, secret string, req hookRequest) {
	t.Helper()
	if err := webhooks.Verify(secret, req.header, req.body, f.app.Clock.Now()); err != nil {
		t.Fatalf("signature: %v (%v)", err, req.header)
	}
}

func TestWebhooksThroughTheApp(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_WEBHOOK_ALLOW_PRIVATE": "true"}})
		owner := f.app.SignUp(t, "owner@example.com")
		ws := createWorkspace(t, f, owner, "hooks")
		startTrial(t, f, owner, ws) // webhooks need a plan that has them
		hooks := newHookReceiver(t)
		waitForFanOut(t, f)
		base := "/api/v1/workspaces/" + ws + "/webhook-endpoints"

		created := call(t, f.url, "POST", base, owner.Headers(),
			`{"url": "`+hooks.URL+`/atrium", "description": "CRM", "event_types": ["workspace.updated"]}`)
		secret, _ := created.body["secret"].(string)
		if created.status != 201 || !strings.HasPrefix(secret, "whsec_") || created.body["enabled"] != true {
			t.Fatalf("create: %d %s", created.status, created.raw)
		}
		endpoint := base + "/" + created.body["id"].(string)
		if r := call(t, f.url, "GET", endpoint, owner.Headers(), ""); r.status != 200 || strings.Contains(r.raw, secret) {
			t.Fatalf("get shows the secret, or fails: %d %s", r.status, r.raw)
		}

		// A workspace change reaches the endpoint once, signed.
		if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+ws, owner.Headers(), `{"name": "Hooks Inc"}`); r.status != 200 {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
		first := hooks.next(t)
		verifySignature(t, f, secret, first)
		var envelope map[string]any
		_ = json.Unmarshal(first.body, &envelope)
		data, _ := envelope["data"].(map[string]any)
		if envelope["type"] != "workspace.updated" || envelope["workspace_id"] != ws || data["name"] != "Hooks Inc" ||
			first.header.Get("webhook-id") != envelope["id"] {
			t.Fatalf("delivered %v %s", first.header, first.body)
		}
		hooks.quiet(t)
		list := call(t, f.url, "GET", endpoint+"/deliveries", owner.Headers(), "")
		if list.status != 200 || len(items(list)) != 1 {
			t.Fatalf("delivery log: %d %s", list.status, list.raw)
		}
		delivery := endpoint + "/deliveries/" + items(list)[0]["id"].(string)
		got := waitForDelivery(t, f, delivery, owner.Headers())
		attempts, _ := got.body["attempts"].([]any)
		if got.body["status"] != "succeeded" || got.body["event_id"] != envelope["id"] || len(attempts) != 1 ||
			attempts[0].(map[string]any)["status_code"] != float64(204) {
			t.Fatalf("delivery: %s", got.raw)
		}

		// A replay sends the same event again, with the same webhook-id.
		replay := call(t, f.url, "POST", delivery+"/replay", owner.Headers(), "")
		if replay.status != 202 || replay.body["replay_of"] != items(list)[0]["id"] {
			t.Fatalf("replay: %d %s", replay.status, replay.raw)
		}
		again := hooks.next(t)
		if again.header.Get("webhook-id") != first.header.Get("webhook-id") || string(again.body) != string(first.body) {
			t.Fatalf("replayed %v %s", again.header, again.body)
		}
		verifySignature(t, f, secret, again)

		// A test event goes to this endpoint whatever its filter.
		if r := call(t, f.url, "POST", endpoint+"/test", owner.Headers(), ""); r.status != 202 || r.body["event_type"] != "webhook.test" {
			t.Fatalf("test: %d %s", r.status, r.raw)
		}
		if test := hooks.next(t); !strings.Contains(string(test.body), `"type":"webhook.test"`) {
			t.Fatalf("test event %s", test.body)
		}

		// After a rotation, requests carry a signature with each secret.
		rotated := call(t, f.url, "POST", endpoint+"/rotate-secret", owner.Headers(), "")
		newSecret, _ := rotated.body["secret"].(string)
		if rotated.status != 200 || newSecret == "" || newSecret == secret || rotated.body["previous_secret_expires_at"] == nil {
			t.Fatalf("rotate: %d %s", rotated.status, rotated.raw)
		}
		if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+ws, owner.Headers(), `{"name": "Hooks Ltd"}`); r.status != 200 {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
		signed := hooks.next(t)
		if sigs := strings.Fields(signed.header.Get("webhook-signature")); len(sigs) != 2 {
			t.Fatalf("signatures during a rotation: %v", sigs)
		}
		verifySignature(t, f, secret, signed)
		verifySignature(t, f, newSecret, signed)

		if r := call(t, f.url, "DELETE", endpoint, owner.Headers(), ""); r.status != 204 {
			t.Fatalf("delete: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", delivery, owner.Headers(), ""), 404, kernel.CodeNotFound)
	})
}

func TestWebhookSecretsAreShownOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_WEBHOOK_ALLOW_PRIVATE": "true"}})
		owner := f.app.SignUp(t, "owner@example.com")
		ws := createWorkspace(t, f, owner, "hooks")
		startTrial(t, f, owner, ws) // webhooks need a plan that has them
		hooks := newHookReceiver(t)
		headers := map[string]string{"Idempotency-Key": "create-hook-1"}
		for k, v := range owner.Headers() {
			headers[k] = v
		}
		body := `{"url": "` + hooks.URL + `", "enabled": false}`
		base := "/api/v1/workspaces/" + ws + "/webhook-endpoints"
		first := call(t, f.url, "POST", base, headers, body)
		if first.status != 201 || first.body["enabled"] != false || first.body["disabled_reason"] != "manual" {
			t.Fatalf("create: %d %s", first.status, first.raw)
		}
		// (The stored answer keeps the first request's request_id, so
		// assertEnvelope's check of it does not apply to a replay.)
		replayed := call(t, f.url, "POST", base, headers, body)
		if env, _ := replayed.body["error"].(map[string]any); replayed.status != 409 || env["code"] != string(kernel.CodeConflict) {
			t.Fatalf("replay: %d %s", replayed.status, replayed.raw)
		}
		if strings.Contains(replayed.raw, first.body["secret"].(string)) {
			t.Fatal("an idempotent replay showed the secret again")
		}
		if r := call(t, f.url, "GET", base, owner.Headers(), ""); len(items(r)) != 1 {
			t.Fatalf("the replay created another endpoint: %s", r.raw)
		}
	})
}

func TestWebhookEndpointsRefuseBadInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{}) // private addresses refused, as in production
		owner, member := f.app.SignUp(t, "owner@example.com"), f.app.SignUp(t, "member@example.com")
		outsider := f.app.SignUp(t, "outsider@example.com")
		ws := createWorkspace(t, f, owner, "hooks")
		startTrial(t, f, owner, ws) // webhooks need a plan that has them
		createWorkspace(t, f, outsider, "elsewhere")
		addMember(t, f, ws, member, policy.Member)
		base := "/api/v1/workspaces/" + ws + "/webhook-endpoints"
		for _, url := range []string{"http://127.0.0.1:8080/", "http://2130706433/", "http://0x7f.1/", "http://017700000001/",
			"http://[::ffff:127.0.0.1]/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
			"http://100.64.0.1/", "http://localhost/", "http://[::]/"} {
			assertEnvelope(t, call(t, f.url, "POST", base, owner.Headers(), `{"url": "`+url+`"}`), 422, kernel.CodeUnprocessable, "url")
		}
		for body, field := range map[string]string{
			`{"url": "ftp://hooks.example.com/"}`:      "url",
			`{"url": "http://user:pw@93.184.215.14/"}`: "url",
			`{"url": 5}`: "body.url",
			`{"url": "https://93.184.215.14/", "secret": "whsec_mine"}`:    "body.secret",
			`{"url": "https://93.184.215.14/", "event_types": ["Nope"]}`:   "event_types",
			`{"url": "https://93.184.215.14/", "event_types": "member.*"}`: "body.event_types",
		} {
			assertEnvelope(t, call(t, f.url, "POST", base, owner.Headers(), body), 400, kernel.CodeInvalid, field)
		}
		assertEnvelope(t, call(t, f.url, "POST", base, owner.Headers(), `{"url": "https://93.184.215.14/"`), 400, kernel.CodeInvalid)
		assertEnvelope(t, call(t, f.url, "POST", base, member.Headers(), `{"url": "https://93.184.215.14/"}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "GET", base, member.Headers(), ""), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "GET", base, outsider.Headers(), ""), 404, kernel.CodeNotFound)
		for _, path := range []string{"/nonsense", "/we_00000000000000000000000000", "/team_01h455vb4pex5vsknk084sn02q",
			"/we_01h455vb4pex5vsknk084sn02q/deliveries", "/we_01h455vb4pex5vsknk084sn02q/deliveries/x'--"} {
			assertEnvelope(t, call(t, f.url, "GET", base+path, owner.Headers(), ""), 404, kernel.CodeNotFound)
		}
		assertEnvelope(t, call(t, f.url, "GET", base+"?limit=1&cursor=forged", owner.Headers(), ""), 400, kernel.CodeInvalid, "query.cursor")
	})
}

func TestFailingWebhookIsDisabledAndAdminsAreEmailed(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_WEBHOOK_ALLOW_PRIVATE": "true"}})
		owner, admin := f.app.SignUp(t, "owner@example.com"), f.app.SignUp(t, "admin@example.com")
		member := f.app.SignUp(t, "member@example.com")
		ws := createWorkspace(t, f, owner, "hooks")
		startTrial(t, f, owner, ws) // webhooks need a plan that has them
		addMember(t, f, ws, admin, policy.Admin)
		addMember(t, f, ws, member, policy.Member)
		hooks := newHookReceiver(t)
		hooks.status.Store(http.StatusInternalServerError)
		waitForFanOut(t, f)
		base := "/api/v1/workspaces/" + ws
		created := call(t, f.url, "POST", base+"/webhook-endpoints", owner.Headers(), `{"url": "`+hooks.URL+`", "event_types": ["team.*"]}`)
		if created.status != 201 {
			t.Fatalf("create: %d %s", created.status, created.raw)
		}
		endpoint := base + "/webhook-endpoints/" + created.body["id"].(string)
		createTeam := func(name string) {
			if r := call(t, f.url, "POST", base+"/teams", owner.Headers(), `{"name": "`+name+`"}`); r.status != 201 {
				t.Fatalf("create team: %d %s", r.status, r.raw)
			}
		}
		createTeam("One")
		waitFor(t, "the failure to be recorded", func() bool {
			return call(t, f.url, "GET", endpoint, owner.Headers(), "").body["failing_since"] != nil
		})
		f.app.Clock.Advance(webhooks.DefaultDisableAfter)
		createTeam("Two") // its delivery, or the first one's retry, fails 5 days into the streak
		var ep response
		waitFor(t, "the endpoint to be disabled", func() bool {
			ep = call(t, f.url, "GET", endpoint, owner.Headers(), "")
			return ep.body["enabled"] == false
		})
		if ep.body["disabled_reason"] != "failing" {
			t.Fatalf("disabled: %s", ep.raw)
		}
		var to []string
		waitFor(t, "the notices", func() bool {
			msgs, err := f.app.Services.Mailbox.List(context.Background(), 100)
			if err != nil {
				t.Fatal(err)
			}
			to = to[:0]
			for _, m := range msgs {
				if m.Tag == "webhook_disabled" {
					to = append(to, m.To...)
				}
			}
			return len(to) >= 2
		})
		slices.Sort(to)
		if strings.Join(to, " ") != "admin@example.com owner@example.com" {
			t.Fatalf("notices went to %v, want the owner and the admin once each", to)
		}
	})
}

// startTrial starts the workspace's Pro trial, whose plan has webhooks.
func startTrial(t *testing.T, f fixture, owner testkit.Person, ws string) {
	t.Helper()
	if r := call(t, f.url, "POST", "/api/v1/workspaces/"+ws+"/subscription/trial", owner.Headers(), ""); r.status != 200 {
		t.Fatalf("start the trial: %d %s", r.status, r.raw)
	}
}

// TestWebhooksNeedAPlanThatHasThem: on the free plan an endpoint cannot be
// created (402 naming the feature and where to upgrade) and no event is
// delivered to one made during a trial once the trial has ended; reading and
// deleting it still work.
func TestWebhooksNeedAPlanThatHasThem(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_WEBHOOK_ALLOW_PRIVATE": "true"}})
		hooks := newHookReceiver(t)
		owner := f.app.SignUp(t, "free-hooks@example.com")
		ws := createWorkspace(t, f, owner, "free-hooks")
		base := "/api/v1/workspaces/" + ws + "/webhook-endpoints"
		body := `{"url": "` + hooks.URL + `", "event_types": ["workspace.updated"]}`
		assertEnvelope(t, call(t, f.url, "POST", base, owner.Headers(), body), 402, kernel.CodePaymentRequired, "feature", "upgrade_url")

		startTrial(t, f, owner, ws)
		created := call(t, f.url, "POST", base, owner.Headers(), body)
		if created.status != 201 {
			t.Fatalf("create during the trial: %d %s", created.status, created.raw)
		}
		waitForFanOut(t, f)
		wsID, _ := kernel.ParseID(kernel.PrefixWorkspace, ws)
		if _, err := f.app.Services.Billing.Ledger.EndTrial(context.Background(), wsID); err != nil {
			t.Fatal(err)
		}
		if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+ws, owner.Headers(), `{"name": "No hooks now"}`); r.status != 200 {
			t.Fatalf("rename: %d %s", r.status, r.raw)
		}
		hooks.quiet(t)
		id := created.body["id"].(string)
		if r := call(t, f.url, "GET", base+"/"+id, owner.Headers(), ""); r.status != 200 {
			t.Fatalf("read after the trial: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "POST", base+"/"+id+"/test", owner.Headers(), ""), 402, kernel.CodePaymentRequired)
		if r := call(t, f.url, "DELETE", base+"/"+id, owner.Headers(), ""); r.status != 204 {
			t.Fatalf("delete after the trial: %d %s", r.status, r.raw)
		}
	})
}
