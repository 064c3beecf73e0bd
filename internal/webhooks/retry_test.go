package webhooks_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/webhooks"
)

func TestFailedAttemptsAreRetriedUntilASuccess(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		var status atomic.Int32
		status.Store(http.StatusInternalServerError)
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
		ep, _ := b.create(t, rcv.URL)
		dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.run(t, dlv, 1); err == nil {
			t.Fatal("a 500 counted as delivered")
		}
		if got := b.get(t, dlv); got.Status != webhooks.StatusPending || got.Attempts != 1 || *got.LastStatusCode != 500 {
			t.Fatalf("after a 500: %+v", got)
		}
		if got := b.endpoint(t, ep.ID); got.FailingSince == nil || !got.FailingSince.Equal(b.clock.Now()) || !got.Enabled() {
			t.Fatalf("endpoint after a 500: %+v", got)
		}
		status.Store(http.StatusOK)
		b.clock.Advance(time.Hour)
		if err := b.run(t, dlv, 2); err != nil {
			t.Fatalf("retry: %v", err)
		}
		got := b.get(t, dlv)
		if got.Status != webhooks.StatusSucceeded || got.Attempts != 2 || len(got.AttemptLog) != 2 || got.AttemptLog[1].Number != 2 {
			t.Fatalf("after the retry: %+v", got)
		}
		reqs := rcv.requests()
		if len(reqs) != 2 || reqs[0].header.Get(webhooks.HeaderID) != reqs[1].header.Get(webhooks.HeaderID) ||
			reqs[0].header.Get(webhooks.HeaderTimestamp) == reqs[1].header.Get(webhooks.HeaderTimestamp) {
			t.Fatalf("retries must keep the webhook-id and sign afresh: %v", reqs)
		}
		if got := b.endpoint(t, ep.ID); got.FailingSince != nil {
			t.Fatalf("a success left the endpoint failing since %v", got.FailingSince)
		}
	})
}

func TestLastAttemptFailsTheDelivery(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
		ep, _ := b.create(t, rcv.URL)
		dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.run(t, dlv, webhooks.MaxAttempts); err == nil {
			t.Fatal("a 502 counted as delivered")
		}
		if got := b.get(t, dlv); got.Status != webhooks.StatusFailed || got.LastError != "answered 502" {
			t.Fatalf("after the last attempt: %+v", got)
		}
		if !b.endpoint(t, ep.ID).Enabled() {
			t.Fatal("one failed delivery disabled the endpoint")
		}
	})
}

func TestGoneDisablesTheEndpoint(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
		ep, _ := b.create(t, rcv.URL)
		first, _ := b.svc.SendTest(b.ctx, b.res, ep.ID)
		second, _ := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err := b.run(t, first, 1); err == nil {
			t.Fatal("a 410 counted as delivered")
		}
		got := b.endpoint(t, ep.ID)
		if got.Enabled() || got.DisabledReason != webhooks.DisabledGone {
			t.Fatalf("endpoint after a 410: %+v", got)
		}
		if dlv := b.get(t, first); dlv.Status != webhooks.StatusFailed {
			t.Fatalf("delivery after a 410: %+v", dlv)
		}
		// What was still queued for it stops without a request.
		if err := b.run(t, second, 1); err == nil || len(rcv.requests()) != 1 {
			t.Fatalf("a delivery to a disabled endpoint: %v, %d requests", err, len(rcv.requests()))
		}
		if dlv := b.get(t, second); dlv.Status != webhooks.StatusFailed || dlv.LastError != "the endpoint is disabled" {
			t.Fatalf("queued delivery: %+v", dlv)
		}
		_, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
		wantCode(t, err, kernel.CodeConflict)
		assertNotices(t, b, 1, "410 Gone")
	})
}

func TestFailingForDaysDisablesTheEndpointAndTellsAdmins(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		ep, _ := b.create(t, rcv.URL+"/hook?token=s3cret")
		send := func() error {
			dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
			if err != nil {
				t.Fatal(err)
			}
			return b.run(t, dlv, 1)
		}
		_ = send()
		b.clock.Advance(webhooks.DefaultDisableAfter - time.Minute)
		_ = send()
		if !b.endpoint(t, ep.ID).Enabled() {
			t.Fatal("disabled before failing for the whole period")
		}
		b.clock.Advance(time.Minute)
		_ = send()
		got := b.endpoint(t, ep.ID)
		if got.Enabled() || got.DisabledReason != webhooks.DisabledFailing {
			t.Fatalf("after failing for the whole period: %+v", got)
		}
		notice := assertNotices(t, b, 1, "failing for 5 days")
		if strings.Contains(notice, "s3cret") || !strings.Contains(notice, rcv.URL+"/hook") {
			t.Fatalf("the notice shows the URL's query, or not the URL: %s", notice)
		}
		on := true
		if got, err := b.svc.Update(b.ctx, b.res, ep.ID, webhooks.EndpointChange{Enabled: &on}); err != nil || got.FailingSince != nil {
			t.Fatalf("enabling again keeps the failures: %+v %v", got, err)
		}
		_ = send()
		if !b.endpoint(t, ep.ID).Enabled() {
			t.Fatal("one failure after enabling again disabled the endpoint")
		}
		assertNotices(t, b, 1, "")
	})
}

// assertNotices checks the mailbox holds n webhook_disabled notices to the
// workspace's admin, the last one saying what it must, and returns its text.
func assertNotices(t *testing.T, b *bundle, n int, says string) string {
	t.Helper()
	msgs, err := b.mailbox.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var notices []string
	for _, m := range msgs {
		if m.Tag == "webhook_disabled" && strings.Join(m.To, ",") == "ada@example.com" {
			notices = append(notices, m.Text)
		}
	}
	if len(notices) != n || !strings.Contains(notices[0], says) {
		t.Fatalf("%d notices, want %d saying %q: %q", len(notices), n, says, notices)
	}
	return notices[0]
}

func TestRebindingToAnInternalAddressIsRefusedAtDialTime(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{timeout: attemptLimit})
		rcv := newReceiver(t, nil)
		port := rcv.Listener.Addr().String()[strings.LastIndex(rcv.Listener.Addr().String(), ":"):]
		b.resolver.Set("rebind.example.com", "93.184.215.14")
		ep, _ := b.create(t, "http://rebind.example.com"+port+"/hook")
		b.resolver.Set("rebind.example.com", "127.0.0.1")
		dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.run(t, dlv, 1); err == nil {
			t.Fatal("delivered to an address that turned internal")
		}
		got := b.get(t, dlv)
		if len(got.AttemptLog) != 1 || got.AttemptLog[0].StatusCode != nil ||
			!strings.Contains(got.AttemptLog[0].Error, "refused to connect to 127.0.0.1") || len(rcv.requests()) != 0 {
			t.Fatalf("attempt %+v, %d requests reached the receiver", got.AttemptLog, len(rcv.requests()))
		}
	})
}
