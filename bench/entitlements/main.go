// Command entitlements measures what plan checks cost a request (issue 5):
// the whole request chain of a workspace route with two entitlement checks
// and one meter increment in its handler, beside the same chain whose
// handler does neither, in the same process and run.
//
//	PLAIN  GET /api/v1/workspaces/{ws}/bench/plain: the handler answers
//	       {"ok":true}.
//	GATED  GET /api/v1/workspaces/{ws}/bench/gated: the handler first asks
//	       Entitlements.Can (webhooks) and Entitlements.Limit (members),
//	       and counts one usage.Increment (api_calls), then answers the same.
//
// Both go through the whole spine as a bearer caller (testkit's test keys),
// with the per-plan rate limit and the API-call meter of every bearer
// request; requests are served in process (Handler().ServeHTTP) by
// -concurrency goroutines (16) over -workspaces workspaces (100) for
// -duration per round, rounds alternating the order. Target: GATED ≥ 0.95×
// PLAIN (requests per second, median of the rounds).
//
//	go run ./bench/entitlements
//	go run ./bench/entitlements -dialect postgres -duration 5s -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/bench/benchkit"
	"atrium/internal/app"
	"atrium/internal/billing"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
	"atrium/internal/usage"
)

func main() {
	dialect := flag.String("dialect", "sqlite", "sqlite or postgres")
	duration := flag.Duration("duration", 3*time.Second, "length of one scenario's round")
	rounds := flag.Int("rounds", 3, "rounds per scenario")
	concurrency := flag.Int("concurrency", 16, "goroutines sending requests")
	workspaces := flag.Int("workspaces", 100, "workspaces the requests are spread over")
	flag.Parse()
	if err := run(store.Dialect(*dialect), *duration, *rounds, *concurrency, *workspaces); err != nil {
		fmt.Fprintln(os.Stderr, "entitlements:", err)
		os.Exit(1)
	}
}

type okBody struct {
	Body struct {
		OK bool `json:"ok"`
	}
}

func run(dialect store.Dialect, duration time.Duration, rounds, concurrency, workspaces int) error {
	ctx := context.Background()
	var a *app.App // set once booted; the routes run only after
	routes := func(api huma.API) {
		plain := func(ctx context.Context, _ *struct {
			WorkspaceID string `path:"workspace_id"`
		}) (*okBody, error) {
			out := &okBody{}
			out.Body.OK = true
			return out, nil
		}
		huma.Get(api, "/api/v1/workspaces/{workspace_id}/bench/plain", plain)
		huma.Get(api, "/api/v1/workspaces/{workspace_id}/bench/gated", func(ctx context.Context, in *struct {
			WorkspaceID string `path:"workspace_id"`
		}) (*okBody, error) {
			ws, _ := kernel.WorkspaceFrom(ctx)
			if _, err := a.Services.Billing.Entitlements.Can(ctx, ws, billing.FeatureWebhooks); err != nil {
				return nil, err
			}
			if _, err := a.Services.Billing.Entitlements.Limit(ctx, ws, billing.LimitMembers); err != nil {
				return nil, err
			}
			if err := a.Services.Usage.Increment(ctx, ws, usage.APICalls, 1); err != nil {
				return nil, err
			}
			return plain(ctx, nil)
		})
	}
	in, err := benchkit.Boot(ctx, dialect, app.Options{Auth: testkit.TestAuth{}, Routes: []func(huma.API){routes},
		PasswordParams: ptr(testkit.FastPasswordParams())})
	if err != nil {
		return err
	}
	defer in.Close()
	a = in.App
	ids := make([]uuid.UUID, workspaces)
	for i := range ids {
		ws, err := a.Services.Workspaces.Create(ctx, fmt.Sprintf("Bench %d", i), fmt.Sprintf("bench-%d", i))
		if err != nil {
			return err
		}
		ids[i] = ws.ID
	}
	handler := a.Handler()
	scenario := func(path string) (float64, error) {
		var done, failed atomic.Int64
		deadline := time.Now().Add(duration)
		var wg sync.WaitGroup
		for g := range concurrency {
			wg.Go(func() {
				for i := g; time.Now().Before(deadline); i += concurrency {
					ws := ids[i%len(ids)]
					req := httptest.NewRequest(http.MethodGet, "/api/v1/workspaces/"+kernel.FormatID(kernel.PrefixWorkspace, ws)+path, nil)
					req.Header.Set("Authorization", testkit.KeyFor(ws))
					rec := httptest.NewRecorder()
					handler.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						failed.Add(1)
						continue
					}
					done.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n > 0 {
			return 0, fmt.Errorf("%s: %d requests failed", path, n)
		}
		return float64(done.Load()) / duration.Seconds(), nil
	}
	// Warm the caches (entitlements, meter keys, rate-limit keys) first.
	for _, p := range []string{"/bench/plain", "/bench/gated"} {
		if _, err := scenario(p); err != nil {
			return err
		}
	}
	var plain, gated []float64
	for r := range rounds {
		order := []string{"/bench/plain", "/bench/gated"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			rps, err := scenario(p)
			if err != nil {
				return err
			}
			if p == "/bench/plain" {
				plain = append(plain, rps)
			} else {
				gated = append(gated, rps)
			}
		}
	}
	p, g := median(plain), median(gated)
	verdict := "met"
	if g/p < 0.95 {
		verdict = "NOT MET"
	}
	fmt.Printf("entitlements on %s, %d goroutines, %d workspaces, %d rounds of %s (median req/s)\n", dialect, concurrency, workspaces, rounds, duration)
	fmt.Printf("  PLAIN  %10.0f req/s\n", p)
	fmt.Printf("  GATED  %10.0f req/s  %.3f× PLAIN (target ≥ 0.95×: %s)\n", g, g/p, verdict)
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ptr[T any](v T) *T { return &v }
