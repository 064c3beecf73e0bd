package usage_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/usage"
)

// TestAPICallsWarnThenGraceThenBlock walks api_calls (limit 100, buffer to
// 105) through every state: the header's thresholds, one event per
// threshold, the grace period, the buffer, and reads that are never refused.
func TestAPICallsWarnThenGraceThenBlock(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		if c := b.calls(t, b.svc, 79, true); c.Warning != 0 || c.Used != 79 {
			t.Fatalf("after 79 calls: %+v, want no warning", c)
		}
		for _, step := range []struct {
			calls, warning int
		}{{1, 80}, {9, 80}, {1, 90}, {5, 95}, {5, 100}} {
			if c := b.calls(t, b.svc, step.calls, true); c.Warning != step.warning {
				t.Fatalf("at %d calls: warning %d, want %d", c.Used, c.Warning, step.warning)
			}
		}
		b.flush(t, b.svc)
		want := []string{"usage.warning api_calls 100"} // 100 calls in one flush: one notice, the highest
		if got := summary(b.events(t)); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if n := b.warnings(t, usage.APICalls); n != 4 {
			t.Fatalf("%d warnings recorded, want all 4 thresholds", n)
		}

		// Past the limit: five more writes fit in the buffer, the sixth does not.
		b.calls(t, b.svc, 5, true)
		b.flush(t, b.svc)
		_, err := b.svc.CountCall(context.Background(), b.ws, true)
		assertQuotaExceeded(t, err, usage.APICalls, 105, 100)
		if m := b.metric(t, b.svc, usage.APICalls); m.Used != 105 || m.State != usage.StateGrace || m.Percent != 105 {
			t.Fatalf("report %+v, want 105 used, in grace", m)
		}
		// Reads (and deletes) go through and count.
		if c := b.calls(t, b.svc, 3, false); c.Used != 108 || c.Warning != 100 {
			t.Fatalf("reads: %+v", c)
		}
		b.flush(t, b.svc)
		got := summary(b.events(t))
		want = append(want, "usage.grace_started api_calls", "usage.blocked api_calls buffer_exceeded")
		if !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		m := b.metric(t, b.svc, usage.APICalls)
		if m.State != usage.StateBlocked || m.GraceEndsAt == nil || !m.GraceEndsAt.Equal(b.clock.Now().Add(usage.GracePeriod)) {
			t.Fatalf("report %+v, want blocked with the grace's end", m)
		}

		// A new period starts from nothing.
		start := b.clock.Now()
		b.clock.Set(time.Date(start.Year(), start.Month()+1, 1, 0, 0, 0, 0, time.UTC))
		if c := b.calls(t, b.svc, 1, true); c.Used != 1 || c.Warning != 0 {
			t.Fatalf("first call of a new period: %+v", c)
		}
		if m := b.metric(t, b.svc, usage.APICalls); m.State != usage.StateOK || m.GraceEndsAt != nil {
			t.Fatalf("report of the new period %+v, want ok", m)
		}
	})
}

// TestGraceEndsAfterSevenDays: past the limit but within the buffer,
// growth is allowed for seven days from the first call past the limit.
func TestGraceEndsAfterSevenDays(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		b.calls(t, b.svc, 101, true)
		b.flush(t, b.svc) // records the overage: grace from now
		began := b.clock.Now()
		b.clock.Advance(usage.GracePeriod - time.Second)
		b.calls(t, b.svc, 1, true)
		b.clock.Advance(time.Second)
		_, err := b.svc.CountCall(context.Background(), b.ws, true)
		assertQuotaExceeded(t, err, usage.APICalls, 102, 100)
		b.calls(t, b.svc, 1, false) // a read after the grace
		b.flush(t, b.svc)
		got := summary(b.events(t))
		want := []string{"usage.warning api_calls 100", "usage.grace_started api_calls", "usage.blocked api_calls grace_ended"}
		if !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		m := b.metric(t, b.svc, usage.APICalls)
		if m.State != usage.StateBlocked || !m.GraceEndsAt.Equal(began.Add(usage.GracePeriod)) {
			t.Fatalf("report %+v, want blocked since %v", m, began.Add(usage.GracePeriod))
		}
	})
}

// TestNodesWarnOnce: several nodes crossing the same threshold record it,
// and emit its event, once between them.
func TestNodesWarnOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		nodes := []*usage.Service{b.svc, b.node(t), b.node(t)}
		for _, n := range nodes {
			b.calls(t, n, 30, true)
		}
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() { b.flush(t, n) })
		}
		wg.Wait()
		for _, n := range nodes { // each learns the others' calls, and judges them
			b.calls(t, n, 1, false)
			b.flush(t, n)
		}
		if got, want := summary(b.events(t)), []string{"usage.warning api_calls 90"}; !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if n := b.warnings(t, usage.APICalls); n != 2 {
			t.Fatalf("%d warnings recorded, want 80 and 90 once each", n)
		}
		for _, n := range nodes { // within a flush, every node sees every call
			b.metric(t, n, usage.APICalls)
			b.flush(t, n)
		}
		for i, n := range nodes {
			if m := b.metric(t, n, usage.APICalls); m.Used != 93 {
				t.Errorf("node %d reports %d calls, want 93", i, m.Used)
			}
		}
	})
}

// TestOneNodeRacesForTheLastCall: of many writes racing for the last call
// within the buffer, one gets it.
func TestOneNodeRacesForTheLastCall(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		b.calls(t, b.svc, 104, true)
		b.flush(t, b.svc)
		var mu sync.Mutex
		var wg sync.WaitGroup
		won, refused := 0, 0
		for i := 0; i < 50; i++ {
			wg.Go(func() {
				_, err := b.svc.CountCall(context.Background(), b.ws, true)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case kernel.IsCode(err, kernel.CodeQuotaExceeded):
					refused++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if won != 1 || refused != 49 {
			t.Fatalf("%d won and %d were refused, want 1 and 49", won, refused)
		}
	})
}

// TestUnlimitedCountsWithoutJudging: an unlimited plan counts calls and
// never warns.
func TestUnlimitedCountsWithoutJudging(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		b.limits.set("api_calls_per_month", usage.Unlimited)
		if c := b.calls(t, b.svc, 500, true); c.Warning != 0 || c.Limit != -1 {
			t.Fatalf("%+v", c)
		}
		b.flush(t, b.svc)
		if m := b.metric(t, b.svc, usage.APICalls); m.Used != 500 || m.State != usage.StateOK || m.Percent != 0 || m.Limit != -1 {
			t.Fatalf("report %+v", m)
		}
		if evs := b.events(t); len(evs) != 0 {
			t.Fatalf("events %v", summary(evs))
		}
	})
}

// TestGracefulRestartKeepsEveryCall: a node that closes flushes what it
// counted, and the next node starts from there.
func TestGracefulRestartKeepsEveryCall(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		b.limits.set("api_calls_per_month", usage.Unlimited)
		b.calls(t, b.svc, 250, false)
		if err := b.svc.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if m := b.metric(t, b.node(t), usage.APICalls); m.Used != 250 {
			t.Fatalf("after a restart the report shows %d calls, want 250", m.Used)
		}
	})
}

func TestUsageIsReadableByEveryMemberAndKeys(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		user := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorUser, ID: kernel.NewID(), Via: kernel.ViaCookie})
		for _, role := range policy.Roles() {
			rep, err := b.svc.Usage(user, policy.Resource{Workspace: b.ws, Role: role})
			if err != nil || len(rep.Metrics) != 3 {
				t.Fatalf("%s: %+v %v", role, rep, err)
			}
		}
		if _, err := b.svc.Usage(user, policy.Resource{Workspace: b.ws}); !kernel.IsCode(err, kernel.CodeForbidden) {
			t.Fatalf("an outsider: %v, want forbidden", err)
		}
		key := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorAPIKey, ID: kernel.NewID(), Via: kernel.ViaBearer,
			WorkspaceID: b.ws, Scopes: kernel.ScopeRead})
		if _, err := b.svc.Usage(key, policy.Resource{Workspace: b.ws}); err != nil {
			t.Fatalf("a read key: %v", err)
		}
		rep, _ := b.svc.Usage(key, policy.Resource{Workspace: b.ws})
		if got := []string{rep.Metrics[0].Metric, rep.Metrics[1].Metric, rep.Metrics[2].Metric}; !slices.Equal(got, usage.Metrics()) {
			t.Fatalf("metrics %v", got)
		}
		if !rep.PeriodStart.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || !rep.PeriodEnd.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("period %v – %v", rep.PeriodStart, rep.PeriodEnd)
		}
	})
}
