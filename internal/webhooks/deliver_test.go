package webhooks_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/webhooks"
)

// attemptLimit is the request limit of these tests' services: short, so a
// hanging receiver costs the suite little.
const attemptLimit = 500 * time.Millisecond

func TestDeliverySignsAndDeliversOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, nil)
		ep, secret := b.create(t, rcv.URL+"/hook")
		e := b.event("workspace.updated")
		for range 2 { // the bus may hand an event over twice
			if err := b.svc.FanOut(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		dlv := b.only(t, ep.ID)
		if dlv.Status != webhooks.StatusPending || dlv.EventType != "workspace.updated" || kernel.FormatID(kernel.PrefixEvent, dlv.EventID) != e.ID {
			t.Fatalf("delivery %+v", dlv)
		}
		if err := b.run(t, dlv, 1); err != nil {
			t.Fatalf("deliver: %v", err)
		}
		got := rcv.requests()
		if len(got) != 1 {
			t.Fatalf("receiver got %d requests", len(got))
		}
		req := got[0]
		if err := webhooks.Verify(secret, req.header, req.body, b.clock.Now()); err != nil {
			t.Fatalf("signature: %v (headers %v)", err, req.header)
		}
		var body map[string]any
		if err := json.Unmarshal(req.body, &body); err != nil || req.header.Get(webhooks.HeaderID) != e.ID || body["id"] != e.ID ||
			body["type"] != "workspace.updated" || body["workspace_id"] != e.WorkspaceID || body["data"] == nil ||
			req.header.Get("Content-Type") != "application/json" {
			t.Fatalf("request %v %s", req.header, req.body)
		}
		dlv = b.get(t, dlv)
		if dlv.Status != webhooks.StatusSucceeded || dlv.Attempts != 1 || len(dlv.AttemptLog) != 1 ||
			*dlv.AttemptLog[0].StatusCode != http.StatusNoContent || dlv.AttemptLog[0].Error != "" {
			t.Fatalf("after delivering: %+v", dlv)
		}
		// A redelivered job sends nothing again.
		if err := b.run(t, dlv, 2); err != nil || len(rcv.requests()) != 1 {
			t.Fatalf("a settled delivery ran again: %v, %d requests", err, len(rcv.requests()))
		}
	})
}

func TestDeliveryFilters(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		rcv := newReceiver(t, nil)
		all, _ := b.create(t, rcv.URL)
		members, _ := b.create(t, rcv.URL, "member.*")
		exact, _ := b.create(t, rcv.URL, "workspace.updated")
		off, _ := b.create(t, rcv.URL)
		disabled := false
		if _, err := b.svc.Update(b.ctx, b.res, off.ID, webhooks.EndpointChange{Enabled: &disabled}); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"member.invited", "member.role.changed", "workspace.updated", "team.created"} {
			if err := b.svc.FanOut(context.Background(), b.event(typ)); err != nil {
				t.Fatal(err)
			}
		}
		for ep, want := range map[uuid.UUID][]string{
			all.ID:     {"team.created", "workspace.updated", "member.role.changed", "member.invited"},
			members.ID: {"member.role.changed", "member.invited"},
			exact.ID:   {"workspace.updated"},
			off.ID:     nil,
		} {
			var got []string
			for _, dlv := range b.deliveries(t, ep) {
				got = append(got, dlv.EventType)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("endpoint got %v, want %v", got, want)
			}
		}
	})
}

func TestDeliveryBoundsHostileReceivers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{allowPrivate: true, timeout: attemptLimit})
		released := make(chan struct{})
		t.Cleanup(func() { close(released) })
		followed := newReceiver(t, nil)
		for name, tc := range map[string]struct {
			respond http.HandlerFunc
			check   func(t *testing.T, a webhooks.Attempt, err error)
		}{
			"hangs": {
				respond: func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-r.Context().Done():
					case <-released:
					}
				},
				check: func(t *testing.T, a webhooks.Attempt, err error) {
					if err == nil || a.StatusCode != nil || !strings.Contains(a.Error, "no answer within") ||
						a.Duration < attemptLimit || a.Duration > attemptLimit+2*time.Second {
						t.Fatalf("attempt %+v, error %v", a, err)
					}
				},
			},
			"answers slowly": {
				respond: func(w http.ResponseWriter, r *http.Request) {
					time.Sleep(attemptLimit / 4)
					w.WriteHeader(http.StatusOK)
				},
				check: func(t *testing.T, a webhooks.Attempt, err error) {
					if err != nil || *a.StatusCode != http.StatusOK || a.Duration < attemptLimit/4 {
						t.Fatalf("attempt %+v, error %v", a, err)
					}
				},
			},
			"redirects": {
				respond: func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, followed.URL, http.StatusTemporaryRedirect)
				},
				check: func(t *testing.T, a webhooks.Attempt, err error) {
					if err == nil || *a.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(a.Error, "redirects are not followed") {
						t.Fatalf("attempt %+v, error %v", a, err)
					}
					if n := len(followed.requests()); n != 0 {
						t.Fatalf("the redirect was followed %d times", n)
					}
				},
			},
			"answers a huge body": {
				respond: func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusOK)
					chunk := []byte(strings.Repeat("x", 32<<10))
					for {
						if _, err := w.Write(chunk); err != nil {
							return
						}
					}
				},
				check: func(t *testing.T, a webhooks.Attempt, err error) {
					if err != nil || *a.StatusCode != http.StatusOK || len(a.ResponseBody) != 1024 || a.Duration > attemptLimit {
						t.Fatalf("attempt %+v (body %d bytes), error %v", a, len(a.ResponseBody), err)
					}
				},
			},
			"fails": {
				respond: func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusInternalServerError)
					_, _ = w.Write([]byte("boom\x00\xff"))
				},
				check: func(t *testing.T, a webhooks.Attempt, err error) {
					if err == nil || *a.StatusCode != http.StatusInternalServerError || a.ResponseBody != "boom\uFFFD" {
						t.Fatalf("attempt %+v, error %v", a, err)
					}
				},
			},
		} {
			t.Run(name, func(t *testing.T) {
				ep, _ := b.create(t, newReceiver(t, tc.respond).URL)
				dlv, err := b.svc.SendTest(b.ctx, b.res, ep.ID)
				if err != nil {
					t.Fatal(err)
				}
				started := time.Now()
				err = b.run(t, dlv, 1)
				if elapsed := time.Since(started); elapsed > attemptLimit+2*time.Second {
					t.Fatalf("the attempt took %s", elapsed)
				}
				dlv = b.get(t, dlv)
				if len(dlv.AttemptLog) != 1 {
					t.Fatalf("delivery %+v", dlv)
				}
				tc.check(t, dlv.AttemptLog[0], err)
				if err != nil && dlv.Status != webhooks.StatusPending {
					t.Fatalf("a failed first attempt settled the delivery instead of leaving it to a retry: %+v", dlv)
				}
			})
		}
	})
}
