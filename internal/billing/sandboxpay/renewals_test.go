package sandboxpay_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

func TestSandboxRenewals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		t.Run("a renewal starts the next period and pays it", func(t *testing.T) {
			r.clock.Set(time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC))
			ws := r.workspace(t)
			r.subscribe(t, ws, "pro", cardOK)
			// Anchored on the 31st: February's period ends on its last day.
			feb := time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC)
			if end := *r.sub(t, ws).CurrentPeriodEnd; !end.Equal(feb) {
				t.Fatalf("first period ends %s", end)
			}
			r.clock.Set(feb.Add(time.Minute))
			if rep := r.renew(t); rep.Renewed != 1 {
				t.Fatalf("report %+v", rep)
			}
			if rep := r.renew(t); rep.Renewed != 0 {
				t.Fatalf("renewed twice: %+v", rep)
			}
			s := r.sub(t, ws)
			if !s.CurrentPeriodStart.Equal(feb) || !s.CurrentPeriodEnd.Equal(time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)) ||
				s.Status != billing.StatusActive {
				t.Fatalf("after the renewal %+v", s)
			}
			if invs := r.invoices(t, ws); len(invs) != 2 || invs[0].Status != "paid" || !invs[0].PeriodStart.Equal(feb) {
				t.Fatalf("invoices %+v", invs)
			}
			if h := r.history(t, ws); h != "subscribed renewed" {
				t.Fatalf("history %q", h)
			}
			// Three months with no scheduler: three renewals in one run.
			r.clock.Set(time.Date(2026, 6, 29, 12, 0, 0, 0, time.UTC))
			if rep := r.renew(t); rep.Renewed != 3 {
				t.Fatalf("catching up: %+v", rep)
			}
			if end := *r.sub(t, ws).CurrentPeriodEnd; !end.Equal(time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)) {
				t.Fatalf("after catching up the period ends %s", end)
			}
		})
		t.Run("a failed renewal goes past due and a retry recovers it", func(t *testing.T) {
			r.clock.Set(time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC))
			ws := r.workspace(t)
			r.subscribe(t, ws, "pro", cardOK)
			if err := r.p.FailNextCharge(r.ctx, ws); err != nil {
				t.Fatal(err)
			}
			end := *r.sub(t, ws).CurrentPeriodEnd
			r.clock.Set(end)
			if rep := r.renew(t); rep.Failed != 1 || rep.Renewed != 0 {
				t.Fatalf("report %+v", rep)
			}
			s := r.sub(t, ws)
			inv := r.invoices(t, ws)[0]
			if s.Status != billing.StatusPastDue || s.DunningStep != billing.DunningPastDue || !s.CurrentPeriodStart.Equal(end) ||
				inv.Status != "open" || inv.AttemptCount != 1 || inv.NextAttemptAt == nil || !inv.NextAttemptAt.Equal(end.Add(day)) {
				t.Fatalf("past due %+v, invoice %+v", s, inv)
			}
			if n := r.count(t, ws, `SELECT count(*) FROM outbox WHERE workspace_id = $1 AND event_type = 'invoice.payment_failed'`); n != 1 {
				t.Fatalf("%d payment_failed events", n)
			}
			r.clock.Set(end.Add(day - time.Minute))
			if rep := r.renew(t); charges(rep) != 0 {
				t.Fatalf("retried early: %+v", rep)
			}
			r.clock.Set(end.Add(day))
			if rep := r.renew(t); rep.Recovered != 1 {
				t.Fatalf("report %+v", rep)
			}
			s = r.sub(t, ws)
			inv = r.invoices(t, ws)[0]
			if s.Status != billing.StatusActive || s.PastDueSince != nil || inv.Status != "paid" || inv.AttemptCount != 2 {
				t.Fatalf("recovered %+v, invoice %+v", s, inv)
			}
			if h := r.history(t, ws); h != "subscribed past_due payment_recovered" {
				t.Fatalf("history %q", h)
			}
		})
		t.Run("retries back off 1, 2, 4 and 7 days until a new card pays", func(t *testing.T) {
			r.clock.Set(time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC))
			ws := r.workspace(t)
			r.subscribe(t, ws, "pro", cardLater)
			failedAt := *r.sub(t, ws).CurrentPeriodEnd
			r.clock.Set(failedAt)
			r.renew(t)
			for attempt, after := range []time.Duration{day, 3 * day, 7 * day, 14 * day, 21 * day} {
				inv := r.invoices(t, ws)[0]
				if inv.Status != "open" || inv.AttemptCount != attempt+1 || !inv.NextAttemptAt.Equal(failedAt.Add(after)) {
					t.Fatalf("after attempt %d: %+v (want the next on day %d)", attempt+1, inv, after/day)
				}
				r.clock.Set(*inv.NextAttemptAt)
				if rep := r.renew(t); rep.Failed != 1 {
					t.Fatalf("retry %d: %+v", attempt+1, rep)
				}
			}
			if s := r.sub(t, ws); s.Status != billing.StatusPastDue {
				t.Fatalf("ledger %+v", s)
			}
			portal, err := r.p.Portal(r.ctx, r.sub(t, ws).ProviderCustomerID, "/billing")
			if err != nil || !strings.HasPrefix(portal, baseURL+"/sandbox/checkout/cs_sbx_") {
				t.Fatalf("portal %q, %v", portal, err)
			}
			id := strings.TrimPrefix(portal, baseURL+"/sandbox/checkout/")
			page, err := r.p.CheckoutPage(r.ctx, id)
			if err != nil || page.Mode != "setup" || page.Subscription == nil || page.Subscription.CardLast4 != "0341" ||
				len(page.Invoices) != 2 || page.Invoices[0].Status != "open" {
				t.Fatalf("portal page %+v, %v", page, err)
			}
			if _, err := r.p.CompleteCheckout(r.ctx, id, cardDeclined); kernel.CodeOf(err) != kernel.CodePaymentRequired {
				t.Fatalf("a declined new card: %v", err)
			}
			if redirect, err := r.p.CompleteCheckout(r.ctx, id, cardOK); err != nil || redirect != baseURL+"/billing" {
				t.Fatalf("new card: %q, %v", redirect, err)
			}
			s := r.sub(t, ws)
			inv := r.invoices(t, ws)[0]
			if s.Status != billing.StatusActive || inv.Status != "paid" || inv.AttemptCount != 7 {
				t.Fatalf("after the new card %+v, %+v", s, inv)
			}
			if page, _ := r.p.CheckoutPage(r.ctx, id); page.Subscription.CardLast4 != "4242" {
				t.Fatalf("card on file %s", page.Subscription.CardLast4)
			}
		})
	})
}

func TestSandboxIdempotencyKeys(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		ws := r.workspace(t)
		req := billing.CheckoutRequest{WorkspaceID: ws, Plan: r.plan("pro"), Interval: billing.Monthly, Currency: "usd",
			IdempotencyKey: "checkout-key"}
		first, err := r.p.Checkout(r.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := r.p.Checkout(r.ctx, req)
		if err != nil || again != first {
			t.Fatalf("repeat: %+v, %v (first %+v)", again, err, first)
		}
		if n := r.count(t, ws, `SELECT count(*) FROM sandbox_checkout WHERE workspace_id = $1`); n != 1 {
			t.Fatalf("%d sessions for one key", n)
		}
		other := req
		other.Plan = r.plan("enterprise")
		if _, err := r.p.Checkout(r.ctx, other); kernel.CodeOf(err) != kernel.CodeConflict {
			t.Fatalf("the key with other parameters: %v", err)
		}
		if _, err := r.p.CompleteCheckout(r.ctx, first.ID, cardOK); err != nil {
			t.Fatal(err)
		}
		sub := r.sub(t, ws).ProviderSubscriptionID
		r.clock.Advance(2 * day)

		// The same key from several callers at once: one charge.
		change := r.change(sub, "enterprise", billing.Monthly, false, "upgrade-key")
		var wg sync.WaitGroup
		views := make([]billing.ProviderSubscription, 4)
		for i := range views {
			wg.Go(func() {
				v, err := r.p.Change(r.ctx, change)
				if err != nil {
					t.Errorf("change %d: %v", i, err)
				}
				views[i] = v
			})
		}
		wg.Wait()
		for _, v := range views[1:] {
			if v != views[0] {
				t.Fatalf("answers differ: %+v and %+v", v, views[0])
			}
		}
		if n := r.count(t, ws, `SELECT count(*) FROM sandbox_invoice WHERE workspace_id = $1 AND billing_reason = 'subscription_update'`); n != 1 {
			t.Fatalf("%d proration invoices for one key", n)
		}
		if h := r.history(t, ws); h != "subscribed upgraded" {
			t.Fatalf("history %q", h)
		}
		for range 2 {
			if v, err := r.p.Cancel(r.ctx, sub, true, "cancel-key"); err != nil || !v.CancelAtPeriodEnd {
				t.Fatalf("cancel: %+v, %v", v, err)
			}
		}
		if _, err := r.p.Resume(r.ctx, sub, "cancel-key"); kernel.CodeOf(err) != kernel.CodeConflict {
			t.Fatalf("a cancel's key on a resume: %v", err)
		}
		// A day later the key is free again.
		r.clock.Advance(day)
		if rep := r.renew(t); rep.KeysForgotten != 3 {
			t.Fatalf("report %+v", rep)
		}
		if _, err := r.p.Resume(r.ctx, sub, "cancel-key"); err != nil {
			t.Fatal(err)
		}
	})
}
