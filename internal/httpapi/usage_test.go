package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
	"atrium/internal/usage"
	"atrium/internal/usage/storemeter"
)

// fixedPlan is a plan with fixed limits.
type fixedPlan map[string]int64

func (p fixedPlan) Limit(_ context.Context, _ uuid.UUID, metric string) (int64, error) {
	v, ok := p[metric]
	if !ok {
		return 0, fmt.Errorf("no limit %q", metric)
	}
	return v, nil
}

// usageWorld is a store with two workspaces and a usage service over it.
type usageWorld struct {
	db      store.SystemDB
	svc     *usage.Service
	ws, oth uuid.UUID
}

func newUsageWorld(t *testing.T, d store.Dialect, plan fixedPlan) usageWorld {
	t.Helper()
	db := testkit.OpenStore(t, d, testkit.NewClock())
	tenancySvc := tenancy.NewService(db, nil)
	ws, err := tenancySvc.Create(context.Background(), "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tenancySvc.Create(context.Background(), "Globex", "globex")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := usage.New(usage.Config{DB: db, Counters: storemeter.New(db), Limits: plan, Clock: testkit.NewClock(),
		Logger: testkit.DiscardLogger(), FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	return usageWorld{db: db, svc: svc, ws: ws.ID, oth: other.ID}
}

func TestUsageRoute(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newUsageWorld(t, d, fixedPlan{"api_calls_per_month": 10, "storage_bytes": -1, "members": 5})
		for i := 0; i < 9; i++ {
			if _, err := w.svc.CountCall(context.Background(), w.ws, true); err != nil {
				t.Fatal(err)
			}
		}
		h := httpapi.NewHandler(httpapi.Deps{Logger: testkit.DiscardLogger(), Auth: testkit.TestAuth{},
			Routes: []func(huma.API){func(api huma.API) { httpapi.RegisterUsage(api, w.svc) }}})
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		path := "/api/v1/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, w.ws) + "/usage"

		r := call(t, srv.URL, "GET", path, map[string]string{"Authorization": testkit.KeyFor(w.ws)}, "")
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		var body httpapi.UsageBody
		if err := json.Unmarshal([]byte(r.raw), &body); err != nil {
			t.Fatal(err)
		}
		want := []httpapi.MetricUsageBody{
			{Metric: "api_calls", Used: 9, Limit: 10, Percent: 90, State: "warning"},
			{Metric: "storage_bytes", Used: 0, Limit: -1, Percent: 0, State: "ok"},
			{Metric: "members", Used: 0, Limit: 5, Percent: 0, State: "ok"},
		}
		if fmt.Sprint(body.Metrics) != fmt.Sprint(want) || body.PeriodStart.Month() != 1 || body.PeriodEnd.Month() != 2 {
			t.Fatalf("body %s", r.raw)
		}
		if strings.Contains(r.raw, "grace_ends_at") {
			t.Fatalf("grace_ends_at shown within the limit: %s", r.raw)
		}
		// Another workspace's key gets the 404 of a missing workspace.
		r = call(t, srv.URL, "GET", path, map[string]string{"Authorization": testkit.KeyFor(w.oth)}, "")
		assertEnvelope(t, r, 404, kernel.CodeNotFound)
	})
}

// metered serves handler behind the metering middleware, as if the tenant
// middleware had resolved workspaceID for an actor that came via.
func metered(svc *usage.Service, workspaceID uuid.UUID, via kernel.Via) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mw := httpapi.UsageMetering(svc)(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor := kernel.Actor{Kind: kernel.ActorAPIKey, ID: kernel.NewID(), Via: via, WorkspaceID: workspaceID, Scopes: kernel.ScopeRead | kernel.ScopeWrite}
		ctx := kernel.WithWorkspace(kernel.WithActor(r.Context(), actor), workspaceID)
		mw.ServeHTTP(w, r.WithContext(ctx))
	})
}

func serve(h http.Handler, method string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/api/v1/workspaces/x/things", nil))
	return rec
}

func TestUsageMetering(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newUsageWorld(t, d, fixedPlan{"api_calls_per_month": 20, "storage_bytes": -1, "members": 5})
		h := metered(w.svc, w.ws, kernel.ViaBearer)
		for i := 1; i <= 21; i++ { // the limit and 5 %: 21 calls
			rec := serve(h, "POST")
			if rec.Code != http.StatusNoContent {
				t.Fatalf("call %d: %d %s", i, rec.Code, rec.Body)
			}
			want := map[int]string{16: "api_calls=80", 17: "api_calls=80", 18: "api_calls=90", 19: "api_calls=95",
				20: "api_calls=100", 21: "api_calls=100"}[i]
			if got := rec.Header().Get(httpapi.UsageWarningHeader); got != want {
				t.Fatalf("call %d: %s %q, want %q", i, httpapi.UsageWarningHeader, got, want)
			}
		}
		for _, method := range []string{"POST", "PUT", "PATCH"} {
			rec := serve(h, method)
			var env struct {
				Error struct {
					Code   string            `json:"code"`
					Fields map[string]string `json:"fields"`
				} `json:"error"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &env)
			if rec.Code != http.StatusPaymentRequired || env.Error.Code != "quota_exceeded" ||
				env.Error.Fields["metric"] != "api_calls" || env.Error.Fields["current"] != "21" || env.Error.Fields["limit"] != "20" {
				t.Fatalf("%s past the buffer: %d %s", method, rec.Code, rec.Body)
			}
		}
		for _, method := range []string{"GET", "HEAD", "DELETE"} {
			if rec := serve(h, method); rec.Code != http.StatusNoContent || rec.Header().Get(httpapi.UsageWarningHeader) != "api_calls=100" {
				t.Fatalf("%s while blocked: %d %v", method, rec.Code, rec.Header())
			}
		}
		// Refused calls are not counted; reads are.
		if n, err := w.svc.Meter().Count(context.Background(), w.ws, usage.APICalls); err != nil || n != 24 {
			t.Fatalf("count %d (%v), want 21 writes and 3 reads", n, err)
		}
		// Cookie sessions (the console) and requests outside a workspace are not metered.
		other := metered(w.svc, w.oth, kernel.ViaCookie)
		for i := 0; i < 30; i++ {
			if rec := serve(other, "POST"); rec.Code != http.StatusNoContent {
				t.Fatalf("a cookie request: %d", rec.Code)
			}
		}
		if n, _ := w.svc.Meter().Count(context.Background(), w.oth, usage.APICalls); n != 0 {
			t.Fatalf("cookie requests counted: %d", n)
		}
		if httpapi.UsageMetering(nil) != nil {
			t.Fatal("a nil service must leave metering out of the chain")
		}
	})
}

// TestUsageMeteringRace: of many writes racing for the last call, one
// gets through.
func TestUsageMeteringRace(t *testing.T) {
	w := newUsageWorld(t, store.SQLite, fixedPlan{"api_calls_per_month": 100, "storage_bytes": -1, "members": 5})
	h := metered(w.svc, w.ws, kernel.ViaBearer)
	for i := 0; i < 104; i++ {
		serve(h, "POST")
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	codes := map[int]int{}
	for i := 0; i < 40; i++ {
		wg.Go(func() {
			rec := serve(h, "POST")
			mu.Lock()
			codes[rec.Code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusNoContent] != 1 || codes[http.StatusPaymentRequired] != 39 {
		t.Fatalf("answers %v, want one 204 and 39 402", codes)
	}
}
