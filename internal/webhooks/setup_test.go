package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
	"atrium/internal/webhooks"
)

// bundle is one test's world: a fresh store with a workspace, the service
// over it, and an owner's context in that workspace.
type bundle struct {
	db       store.SystemDB
	clock    *testkit.Clock
	svc      *webhooks.Service
	resolver *webhooks.FakeResolver
	mailbox  *devmail.Mailbox
	ws       uuid.UUID
	ctx      context.Context
	res      policy.Resource
}

type options struct {
	allowPrivate bool
	timeout      time.Duration
}

func forEachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// fakeDirectory names the workspace's one owner; the app's test covers
// tenancy's own Admins.
type fakeDirectory struct{}

func (fakeDirectory) Admins(context.Context, uuid.UUID) (tenancy.Workspace, []tenancy.Member, error) {
	return tenancy.Workspace{Name: "Acme"}, []tenancy.Member{{Email: "ada@example.com", Name: "Ada"}}, nil
}

func setup(t *testing.T, d store.Dialect, opts options) *bundle {
	t.Helper()
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, d, clock)
	ws, err := tenancy.NewService(db, nil).Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	templates, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatal(err)
	}
	resolver := webhooks.NewFakeResolver()
	resolver.Set("hooks.example.com", "93.184.215.14")
	mailbox := devmail.New(db)
	svc, err := webhooks.New(webhooks.Config{DB: db, Key: bytes.Repeat([]byte{7}, webhooks.KeySize),
		Guard: webhooks.NewGuard(opts.allowPrivate, resolver), Mailer: mailbox, Templates: templates,
		Directory: fakeDirectory{}, Clock: clock, Timeout: opts.timeout})
	if err != nil {
		t.Fatal(err)
	}
	ctx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorUser, ID: kernel.NewID(), Via: kernel.ViaCookie})
	return &bundle{db: db, clock: clock, svc: svc, resolver: resolver, mailbox: mailbox, ws: ws.ID, ctx: ctx,
		res: policy.Resource{Workspace: ws.ID, Role: policy.Owner}}
}

// create registers an endpoint as the owner and returns it with its secret.
func (b *bundle) create(t *testing.T, url string, types ...string) (webhooks.Endpoint, string) {
	t.Helper()
	ep, secret, err := b.svc.Create(b.ctx, b.res, webhooks.NewEndpoint{URL: url, EventTypes: types})
	if err != nil {
		t.Fatalf("create %s: %v", url, err)
	}
	return ep, secret
}

// event makes an event of the workspace as the bus would carry it.
func (b *bundle) event(eventType string) events.Envelope {
	return events.Envelope{ID: kernel.FormatID(kernel.PrefixEvent, kernel.NewID()), Type: eventType,
		WorkspaceID: kernel.FormatID(kernel.PrefixWorkspace, b.ws), CreatedAt: b.clock.Now(), Data: json.RawMessage(`{"n":1}`)}
}

// deliveries lists an endpoint's deliveries, newest first.
func (b *bundle) deliveries(t *testing.T, endpointID uuid.UUID) []webhooks.Delivery {
	t.Helper()
	list, err := b.svc.ListDeliveries(b.ctx, b.res, endpointID, uuid.Nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// only returns the endpoint's one delivery, failing the test if there are
// more or none.
func (b *bundle) only(t *testing.T, endpointID uuid.UUID) webhooks.Delivery {
	t.Helper()
	list := b.deliveries(t, endpointID)
	if len(list) != 1 {
		t.Fatalf("endpoint has %d deliveries, want 1: %+v", len(list), list)
	}
	return list[0]
}

// run is attempt number attempt of a delivery's job, as the runtime runs it.
func (b *bundle) run(t *testing.T, d webhooks.Delivery, attempt int) error {
	t.Helper()
	payload, _ := json.Marshal(map[string]string{"delivery_id": kernel.FormatID(kernel.PrefixDelivery, d.ID)})
	job := &events.Job{ID: kernel.NewID(), Kind: webhooks.DeliverJob, WorkspaceID: d.WorkspaceID, Payload: payload, Attempt: attempt}
	_, err := b.svc.Deliver(kernel.WithActor(context.Background(), kernel.SystemActor), job)
	return err
}

// get reads a delivery with its attempts.
func (b *bundle) get(t *testing.T, d webhooks.Delivery) webhooks.Delivery {
	t.Helper()
	got, err := b.svc.GetDelivery(b.ctx, b.res, d.EndpointID, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (b *bundle) endpoint(t *testing.T, id uuid.UUID) webhooks.Endpoint {
	t.Helper()
	ep, err := b.svc.Get(b.ctx, b.res, id)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook receiver on loopback that answers with respond
// (204 when nil) and keeps what it received.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []received
}

func newReceiver(t *testing.T, respond http.HandlerFunc) *receiver {
	t.Helper()
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		if respond == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		respond(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func wantCode(t *testing.T, err error, code kernel.Code) {
	t.Helper()
	if !kernel.IsCode(err, code) {
		t.Fatalf("error %v, want %s", err, code)
	}
}

// auditActions lists the workspace's audit actions, oldest first.
func (b *bundle) auditActions(t *testing.T) []string {
	t.Helper()
	return b.strings(t, "SELECT action FROM audit_log WHERE workspace_id = $1 ORDER BY created_at, id")
}

// eventTypes lists the workspace's outbox events, oldest first.
func (b *bundle) eventTypes(t *testing.T) []string {
	t.Helper()
	return b.strings(t, "SELECT event_type FROM outbox WHERE workspace_id = $1 AND kind = 'event' ORDER BY created_at, id")
}

func (b *bundle) strings(t *testing.T, query string) []string {
	t.Helper()
	var out []string
	err := b.db.ReadWorkspace(context.Background(), b.ws, func(tx store.Tx) error {
		rows, err := tx.Query(context.Background(), query, b.ws)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (string, error) {
			var s string
			return s, row.Scan(&s)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
