package usage_test

import (
	"context"
	"encoding/json"
	"fmt"
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
	"atrium/internal/testkit"
	"atrium/internal/usage"
	"atrium/internal/usage/storemeter"
)

// limits is a plan with fixed limits, changed by the test as a plan change
// would.
type limits struct {
	mu     sync.Mutex
	values map[string]int64
}

func (l *limits) Limit(_ context.Context, _ uuid.UUID, metric string) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.values[metric]
	if !ok {
		return 0, fmt.Errorf("no limit %q in the test plan", metric)
	}
	return v, nil
}

func (l *limits) set(metric string, v int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.values[metric] = v
}

// directory names the workspace's one owner; the app's tests cover
// tenancy's own Admins.
type directory struct{}

func (directory) Admins(context.Context, uuid.UUID) (tenancy.Workspace, []tenancy.Member, error) {
	return tenancy.Workspace{Name: "Acme"}, []tenancy.Member{{Email: "ada@example.com", Name: "Ada"}}, nil
}

// storage is a storage source with a fixed size per workspace.
type storage struct {
	mu    sync.Mutex
	bytes map[uuid.UUID]int64
}

func (s *storage) StorageBytes(_ context.Context, _ store.Tx, workspaceID uuid.UUID) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes[workspaceID], nil
}

// bundle is one test's world: a fresh store with a workspace, a plan, and
// the service (a node) over them.
type bundle struct {
	db      store.SystemDB
	clock   *testkit.Clock
	limits  *limits
	storage *storage
	mailbox *devmail.Mailbox
	svc     *usage.Service
	ws      uuid.UUID
}

func forEachDialect(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func setup(t *testing.T, d store.Dialect) *bundle {
	t.Helper()
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, d, clock)
	ws, err := tenancy.NewService(db, nil).Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{db: db, clock: clock, ws: ws.ID, mailbox: devmail.New(db), storage: &storage{bytes: map[uuid.UUID]int64{}},
		limits: &limits{values: map[string]int64{"api_calls_per_month": 100, "storage_bytes": 1000, "members": 5}}}
	b.svc = b.node(t)
	return b
}

// node starts another service over the bundle's store, as another node of
// the deployment; it flushes only when told.
func (b *bundle) node(t *testing.T) *usage.Service {
	t.Helper()
	templates, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := usage.New(usage.Config{DB: b.db, Counters: storemeter.New(b.db), Limits: b.limits, Clock: b.clock,
		Logger: testkit.DiscardLogger(), FlushEvery: -1, Storage: []usage.StorageSource{b.storage},
		Mailer: b.mailbox, Templates: templates, Directory: directory{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return svc
}

func (b *bundle) flush(t *testing.T, svc *usage.Service) {
	t.Helper()
	if err := svc.Meter().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// calls makes n API calls, all of which must go through, and returns the last.
func (b *bundle) calls(t *testing.T, svc *usage.Service, n int, growth bool) usage.Call {
	t.Helper()
	var last usage.Call
	for i := 0; i < n; i++ {
		c, err := svc.CountCall(context.Background(), b.ws, growth)
		if err != nil {
			t.Fatalf("call %d of %d: %v", i+1, n, err)
		}
		last = c
	}
	return last
}

// metric returns one metric of the workspace's report.
func (b *bundle) metric(t *testing.T, svc *usage.Service, name string) usage.MetricUsage {
	t.Helper()
	rep, err := svc.Report(context.Background(), b.ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Metrics {
		if m.Metric == name {
			return m
		}
	}
	t.Fatalf("no %s in the report: %+v", name, rep)
	return usage.MetricUsage{}
}

// event is one outbox row.
type event struct {
	events.Envelope
	data map[string]any
}

// events lists the workspace's usage.* events, oldest first.
func (b *bundle) events(t *testing.T) []event {
	t.Helper()
	var out []event
	err := b.db.ReadWorkspace(context.Background(), b.ws, func(tx store.Tx) error {
		rows, err := tx.Query(context.Background(), `SELECT id, event_type, payload, created_at FROM outbox
            WHERE workspace_id = $1 AND event_type LIKE 'usage.%' ORDER BY created_at, id`, b.ws)
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(r store.Row) (event, error) {
			var e event
			var id uuid.UUID
			var payload string
			if err := r.Scan(&id, &e.Type, &payload, &e.CreatedAt); err != nil {
				return e, err
			}
			e.ID, e.WorkspaceID, e.Data = kernel.FormatID(kernel.PrefixEvent, id), kernel.FormatID(kernel.PrefixWorkspace, b.ws), json.RawMessage(payload)
			return e, json.Unmarshal(e.Data, &e.data)
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// summary is the events as "type metric threshold-or-reason" lines.
func summary(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s %v", e.Type, e.data["metric"])
		if th, ok := e.data["threshold"]; ok {
			out[i] += fmt.Sprintf(" %v", th)
		}
		if r, ok := e.data["reason"]; ok {
			out[i] += fmt.Sprintf(" %v", r)
		}
	}
	return out
}

// warnings counts the workspace's recorded warnings of a metric.
func (b *bundle) warnings(t *testing.T, metric string) int {
	t.Helper()
	var n int
	err := b.db.ReadWorkspace(context.Background(), b.ws, func(tx store.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT count(*) FROM usage_warning WHERE workspace_id = $1 AND metric = $2`, b.ws, metric).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// invite adds a pending invitation straight to the store, in tx: what
// tenancy's CreateInvite writes, without its checks, valid for 30 days so
// that a test may move the clock past a grace period.
func invite(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) error {
	id := kernel.NewID()
	_, err := tx.Exec(ctx, `INSERT INTO invite (id, workspace_id, email, role, token_hash, invited_by, created_at, expires_at)
        VALUES ($1, $2, $3, 'member', $4, $5, $6, $7)`, id, workspaceID, "p-"+id.String()+"@example.com", id.String(),
		kernel.NewID(), tx.Now(), tx.Now().Add(30*24*time.Hour))
	return err
}

// admitMember admits one more member and adds the invitation, as tenancy
// does in the transaction that invites.
func (b *bundle) admitMember(svc *usage.Service) error {
	ctx := context.Background()
	return b.db.InWorkspace(ctx, b.ws, func(tx store.Tx) error {
		if err := svc.Admit(ctx, tx, b.ws, usage.Members, 1); err != nil {
			return err
		}
		return invite(ctx, tx, b.ws)
	})
}

func assertQuotaExceeded(t *testing.T, err error, metric string, current, limit int64) {
	t.Helper()
	e := kernel.As(err)
	if e == nil || e.Code != kernel.CodeQuotaExceeded || kernel.CodeQuotaExceeded.Status() != 402 {
		t.Fatalf("got %v, want quota_exceeded (402)", err)
	}
	want := map[string]string{"metric": metric, "current": fmt.Sprint(current), "limit": fmt.Sprint(limit)}
	for k, v := range want {
		if e.Fields[k] != v {
			t.Fatalf("fields %v, want %v", e.Fields, want)
		}
	}
}
