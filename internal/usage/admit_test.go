package usage_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/usage"
)

// TestRacersForTheLastSeatOneWins: members limit 5 (no buffer at that
// size), 4 seats taken, 16 invitations racing in their own transactions:
// exactly one is admitted, on both dialects.
func TestRacersForTheLastSeatOneWins(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		for i := 0; i < 4; i++ {
			if err := b.admitMember(b.svc); err != nil {
				t.Fatal(err)
			}
		}
		nodes := []*usage.Service{b.svc, b.node(t)}
		var mu sync.Mutex
		var wg sync.WaitGroup
		won, refused := 0, 0
		for i := 0; i < 16; i++ {
			wg.Go(func() {
				err := b.admitMember(nodes[i%2])
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
		if won != 1 || refused != 15 {
			t.Fatalf("%d admitted and %d refused, want 1 and 15", won, refused)
		}
		if m := b.metric(t, b.svc, usage.Members); m.Used != 5 || m.State != usage.StateWarning || m.Percent != 100 {
			t.Fatalf("report %+v, want 5 of 5", m)
		}
		err := b.admitMember(b.svc)
		assertQuotaExceeded(t, err, usage.Members, 5, 5)
	})
}

// TestSeatsPastTheLimit: with a limit of 20 the buffer is one seat, granted
// for seven days; reads of the gauge are never refused, and leaving brings
// the workspace back within its limit.
func TestSeatsPastTheLimit(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		b.limits.set("members", 20)
		for i := 0; i < 21; i++ {
			if err := b.admitMember(b.svc); err != nil {
				t.Fatalf("seat %d: %v", i+1, err)
			}
		}
		m := b.metric(t, b.svc, usage.Members)
		if m.State != usage.StateGrace || m.GraceEndsAt == nil || !m.GraceEndsAt.Equal(b.clock.Now().Add(usage.GracePeriod)) {
			t.Fatalf("report %+v, want grace for seven days", m)
		}
		assertQuotaExceeded(t, b.admitMember(b.svc), usage.Members, 21, 20)
		want := []string{"usage.warning members 80", "usage.warning members 90", "usage.warning members 95",
			"usage.warning members 100", "usage.grace_started members"}
		if got := summary(b.events(t)); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}

		// Two leave (here: invitations revoked): back within the limit,
		// the next seat is admitted and nothing is past the limit.
		err := b.db.InWorkspace(context.Background(), b.ws, func(tx store.Tx) error {
			_, err := tx.Exec(context.Background(), `UPDATE invite SET revoked_at = $2 WHERE id IN
                (SELECT id FROM invite WHERE workspace_id = $1 AND revoked_at IS NULL ORDER BY id LIMIT 2)`, b.ws, tx.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(usage.GracePeriod) // the old grace would be over
		if err := b.admitMember(b.svc); err != nil {
			t.Fatalf("a seat after two left: %v", err)
		}
		if m := b.metric(t, b.svc, usage.Members); m.Used != 20 || m.State != usage.StateWarning {
			t.Fatalf("report %+v, want 20 of 20", m)
		}
		// Expired invitations hold no seat.
		b.clock.Advance(30 * 24 * time.Hour)
		if m := b.metric(t, b.svc, usage.Members); m.Used != 0 {
			t.Fatalf("members %d after every invitation expired, want 0", m.Used)
		}
	})
}

// TestApplyLimitsBlocksWithoutGrace: a plan change to limits below usage
// blocks growth at once; a later one back above releases it.
func TestApplyLimitsBlocksWithoutGrace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		for i := 0; i < 3; i++ {
			if err := b.admitMember(b.svc); err != nil {
				t.Fatal(err)
			}
		}
		b.calls(t, b.svc, 50, true)
		b.limits.set("members", 2)
		b.limits.set("api_calls_per_month", 40)
		if err := b.svc.ApplyLimits(context.Background(), b.ws); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{usage.Members, usage.APICalls} {
			if m := b.metric(t, b.svc, name); m.State != usage.StateBlocked {
				t.Errorf("%s: %+v, want blocked", name, m)
			}
		}
		assertQuotaExceeded(t, b.admitMember(b.svc), usage.Members, 3, 2)
		_, err := b.svc.CountCall(context.Background(), b.ws, true)
		assertQuotaExceeded(t, err, usage.APICalls, 50, 40)
		if _, err := b.svc.CountCall(context.Background(), b.ws, false); err != nil {
			t.Fatalf("a read while blocked: %v", err)
		}
		got := summary(b.events(t))
		for _, want := range []string{"usage.blocked members plan_changed", "usage.blocked api_calls plan_changed"} {
			if !slices.Contains(got, want) {
				t.Errorf("events %v lack %q", got, want)
			}
		}
		if slices.Contains(got, "usage.grace_started members") {
			t.Errorf("events %v: a plan change gives no grace", got)
		}
		// Applying the same limits again changes nothing.
		before := len(got)
		if err := b.svc.ApplyLimits(context.Background(), b.ws); err != nil {
			t.Fatal(err)
		}
		if n := len(b.events(t)); n != before {
			t.Fatalf("applying the same limits again emitted %d events", n-before)
		}

		b.limits.set("members", 10)
		b.limits.set("api_calls_per_month", 1000)
		if err := b.svc.ApplyLimits(context.Background(), b.ws); err != nil {
			t.Fatal(err)
		}
		if err := b.admitMember(b.svc); err != nil {
			t.Fatalf("a seat after the upgrade: %v", err)
		}
		if _, err := b.svc.CountCall(context.Background(), b.ws, true); err != nil {
			t.Fatalf("a write after the upgrade: %v", err)
		}
		if m := b.metric(t, b.svc, usage.Members); m.State != usage.StateOK || m.GraceEndsAt != nil {
			t.Fatalf("report %+v, want ok", m)
		}
	})
}

func TestAdmitRefusesMisuse(t *testing.T) {
	b := setup(t, store.SQLite)
	ctx := context.Background()
	err := b.db.InWorkspace(ctx, b.ws, func(tx store.Tx) error { return b.svc.Admit(ctx, tx, b.ws, usage.APICalls, 1) })
	if !kernel.IsCode(err, kernel.CodeInternal) {
		t.Fatalf("admitting a counter: %v, want internal", err)
	}
	err = b.db.InWorkspace(ctx, b.ws, func(tx store.Tx) error { return b.svc.Admit(ctx, tx, kernel.NewID(), usage.Members, 1) })
	if !kernel.IsCode(err, kernel.CodeInternal) {
		t.Fatalf("admitting into another workspace's transaction: %v, want internal", err)
	}
}
