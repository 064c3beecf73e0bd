package usage_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
	"atrium/internal/usage"
)

// TestRecalculateGauges: the hourly task measures storage from the sources
// and members from tenancy's tables, keeps both in the period's history,
// warns, and notices a grace period that ends without any growth.
func TestRecalculateGauges(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		ctx := context.Background()
		other, err := tenancy.NewService(b.db, nil).Create(ctx, "Globex", "globex")
		if err != nil {
			t.Fatal(err)
		}
		b.storage.bytes[b.ws] = 950
		b.storage.bytes[other.ID] = 10
		if err := b.admitMember(b.svc); err != nil {
			t.Fatal(err)
		}
		n, err := b.svc.RecalculateGauges(ctx, b.db)
		if err != nil || n != 2 {
			t.Fatalf("RecalculateGauges: %d, %v; want both workspaces", n, err)
		}
		if m := b.metric(t, b.svc, usage.StorageBytes); m.Used != 950 || m.State != usage.StateWarning || m.Percent != 95 {
			t.Fatalf("storage %+v", m)
		}
		if got, want := summary(b.events(t)), []string{"usage.warning storage_bytes 95"}; !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		history := func() map[string]int64 {
			out := map[string]int64{}
			err := b.db.ReadWorkspace(ctx, b.ws, func(tx store.Tx) error {
				rows, err := tx.Query(ctx, `SELECT metric, value FROM usage_counter WHERE workspace_id = $1`, b.ws)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var m string
					var v int64
					if err := rows.Scan(&m, &v); err != nil {
						return err
					}
					out[m] = v
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		if h := history(); h[usage.StorageBytes] != 950 || h[usage.Members] != 1 {
			t.Fatalf("history %v", h)
		}

		// Past the limit, the grace period ends by the clock alone; the next
		// recalculation records the block.
		b.storage.bytes[b.ws] = 1020
		if _, err := b.svc.RecalculateGauges(ctx, b.db); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(usage.GracePeriod)
		if _, err := b.svc.RecalculateGauges(ctx, b.db); err != nil {
			t.Fatal(err)
		}
		got := summary(b.events(t))
		want := []string{"usage.warning storage_bytes 95", "usage.warning storage_bytes 100", "usage.grace_started storage_bytes",
			"usage.blocked storage_bytes grace_ended"}
		if !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		// Deleting brings it back within the limit: the overage ends.
		b.storage.bytes[b.ws] = 500
		if _, err := b.svc.RecalculateGauges(ctx, b.db); err != nil {
			t.Fatal(err)
		}
		if m := b.metric(t, b.svc, usage.StorageBytes); m.State != usage.StateOK || m.GraceEndsAt != nil {
			t.Fatalf("storage %+v after deleting, want ok", m)
		}

		// A new period keeps a gauge's history per period and its value.
		b.clock.Set(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC))
		if m := b.metric(t, b.svc, usage.StorageBytes); m.Used != 500 {
			t.Fatalf("storage %d at the start of a period, want the last measured 500", m.Used)
		}
		if _, err := b.svc.RecalculateGauges(ctx, b.db); err != nil {
			t.Fatal(err)
		}
		var periods int
		err = b.db.ReadWorkspace(ctx, b.ws, func(tx store.Tx) error {
			return tx.QueryRow(ctx, `SELECT count(DISTINCT period_start) FROM usage_counter WHERE workspace_id = $1 AND metric = $2`,
				b.ws, usage.StorageBytes).Scan(&periods)
		})
		if err != nil || periods != 2 {
			t.Fatalf("storage history has %d periods (%v), want 2", periods, err)
		}

		// A deleted workspace is left alone.
		owner := kernel.WithActor(ctx, kernel.Actor{Kind: kernel.ActorUser, ID: kernel.NewID(), Via: kernel.ViaCookie, AuthenticatedAt: b.clock.Now()})
		if _, err := tenancy.NewService(b.db, nil).Delete(owner, policy.Resource{Workspace: other.ID, Role: policy.Owner}); err != nil {
			t.Fatal(err)
		}
		if n, err := b.svc.RecalculateGauges(ctx, b.db); err != nil || n != 1 {
			t.Fatalf("RecalculateGauges: %d, %v; want only the live workspace", n, err)
		}
	})
}

// TestWarningMail: the usage.warning subscriber mails the owners and
// admins once, however often the bus delivers the event.
func TestWarningMail(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d)
		ctx := context.Background()
		b.calls(t, b.svc, 90, true)
		b.flush(t, b.svc)
		evs := b.events(t)
		if len(evs) != 1 || evs[0].Type != usage.EventWarning {
			t.Fatalf("events %v", summary(evs))
		}
		for i := 0; i < 3; i++ {
			if err := usage.MailWarning(ctx, b.svc, evs[0].Envelope); err != nil {
				t.Fatalf("delivery %d: %v", i+1, err)
			}
		}
		msgs, err := b.mailbox.List(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 {
			t.Fatalf("%d mails, want 1", len(msgs))
		}
		m := msgs[0]
		if !slices.Equal(m.To, []string{"ada@example.com"}) || m.Subject != "Acme has used 90% of its API calls limit" ||
			!strings.Contains(m.Text, "90 of 100") || !strings.Contains(m.Text, "1 Feb 2026 00:00 UTC") || m.Tag != "usage_warning" {
			t.Fatalf("mail %+v", m)
		}
		// A malformed event is not retried.
		bad := events.Envelope{ID: evs[0].ID, Type: usage.EventWarning, WorkspaceID: evs[0].WorkspaceID, Data: []byte(`{"metric":`)}
		if err := usage.MailWarning(ctx, b.svc, bad); err == nil || !strings.Contains(err.Error(), "warning mail") {
			t.Fatalf("a malformed event: %v", err)
		}
	})
}
