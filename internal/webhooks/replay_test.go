package webhooks_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/webhooks"
)

func TestRotationSignsWithBothSecretsForADay(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, nil)
		ep, oldSecret := b.create(t, rcv.URL)
		_, newSecret, err := b.svc.RotateSecret(b.ctx, b.res, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		send := func() received {
			t.Helper()
			dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.run(t, dlv, 1); err != nil {
				t.Fatal(err)
			}
			reqs := rcv.requests()
			return reqs[len(reqs)-1]
		}
		during := send()
		if sigs := strings.Fields(during.header.Get(webhooks.HeaderSignature)); len(sigs) != 2 {
			t.Fatalf("signatures during the rotation: %v", sigs)
		}
		for _, secret := range []string{oldSecret, newSecret} {
			if err := webhooks.Verify(secret, during.header, during.body, b.clock.Now()); err != nil {
				t.Fatalf("during the rotation: %v", err)
			}
		}
		b.clock.Advance(24*time.Hour + time.Second)
		after := send()
		if sigs := strings.Fields(after.header.Get(webhooks.HeaderSignature)); len(sigs) != 1 {
			t.Fatalf("signatures after the rotation: %v", sigs)
		}
		if webhooks.Verify(oldSecret, after.header, after.body, b.clock.Now()) == nil ||
			webhooks.Verify(newSecret, after.header, after.body, b.clock.Now()) != nil {
			t.Fatal("after the grace period only the new secret must sign")
		}
	})
}

func TestReplayAndTestEvents(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv, bystander := newReceiver(t, nil), newReceiver(t, nil)
		ep, _ := b.create(t, rcv.URL)
		b.create(t, bystander.URL)
		e := b.event("team.created")
		if err := b.svc.FanOut(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		orig := b.only(t, ep.ID)
		if err := b.run(t, orig, 1); err != nil {
			t.Fatal(err)
		}
		replay, err := b.svc.Replay(b.ctx, b.res, ep.ID, orig.ID)
		if err != nil || replay.ReplayOf != orig.ID || replay.EventID != orig.EventID || replay.Status != webhooks.StatusPending {
			t.Fatalf("replay: %+v %v", replay, err)
		}
		if err := b.run(t, replay, 1); err != nil {
			t.Fatal(err)
		}
		reqs := rcv.requests()
		if len(reqs) != 2 || reqs[1].header.Get(webhooks.HeaderID) != e.ID || string(reqs[1].body) != string(reqs[0].body) {
			t.Fatalf("the replay must send the same event with the same webhook-id: %v", reqs)
		}

		test, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err != nil || test.EventType != webhooks.TestEventType {
			t.Fatalf("test: %+v %v", test, err)
		}
		if err := b.run(t, test, 1); err != nil {
			t.Fatal(err)
		}
		if reqs := rcv.requests(); len(reqs) != 3 || !strings.Contains(string(reqs[2].body), `"type":"webhook.test"`) {
			t.Fatalf("test event: %v", reqs)
		}
		if n := len(bystander.requests()); n != 0 {
			t.Fatalf("the other endpoint got %d requests", n)
		}
		if got := b.eventTypes(t); strings.Contains(strings.Join(got, " "), "webhook.test") {
			t.Fatalf("the test event went through the outbox: %v", got)
		}
		if list := b.deliveries(t, ep.ID); len(list) != 3 || list[0].ID != test.ID || list[2].ID != orig.ID {
			t.Fatalf("deliveries, newest first: %+v", list)
		}
		if page, err := b.svc.ListDeliveries(b.ctx, b.res, ep.ID, replay.ID, 10); err != nil || len(page) != 1 || page[0].ID != orig.ID {
			t.Fatalf("page after the replay: %+v %v", page, err)
		}

		_, err = b.svc.Replay(b.ctx, b.res, ep.ID, kernel.NewID())
		wantCode(t, err, kernel.CodeNotFound)
		other, _ := b.create(t, rcv.URL)
		_, err = b.svc.Replay(b.ctx, b.res, other.ID, orig.ID)
		wantCode(t, err, kernel.CodeNotFound)
	})
}

func TestDeletingAnEndpointStopsItsDeliveries(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, nil)
		ep, _ := b.create(t, rcv.URL)
		dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.svc.Delete(b.ctx, b.res, ep.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.run(t, dlv, 1); err != nil || len(rcv.requests()) != 0 {
			t.Fatalf("a deleted endpoint's delivery: %v, %d requests", err, len(rcv.requests()))
		}
	})
}

// Deleting an endpoint while its deliveries record their attempts must not
// deadlock on PostgreSQL: both lock the endpoint before its deliveries.
func TestDeletingAnEndpointDuringAttempts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: 5 * time.Second})
		for round := range 3 {
			release := make(chan struct{})
			rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { <-release })
			ep, _ := b.create(t, rcv.URL)
			var deliveries []webhooks.Delivery
			for range 5 {
				dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
				if err != nil {
					t.Fatal(err)
				}
				deliveries = append(deliveries, dlv)
			}
			errs := make(chan error, len(deliveries)+1)
			for _, dlv := range deliveries {
				go func() { errs <- b.run(t, dlv, 1) }()
			}
			for len(rcv.requests()) < len(deliveries) {
				time.Sleep(5 * time.Millisecond)
			}
			go func() { errs <- b.svc.Delete(b.ctx, b.res, ep.ID) }()
			close(release)
			for range len(deliveries) + 1 {
				if err := <-errs; err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
	})
}
