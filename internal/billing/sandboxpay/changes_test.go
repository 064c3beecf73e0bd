package sandboxpay_test

import (
	"fmt"
	"testing"
	"time"

	"atrium/internal/billing"
	"atrium/internal/kernel"
)

func TestSandboxProration(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		t.Run("an upgrade charges exactly the preview", func(t *testing.T) {
			// 15 January 09:30 to 15 February 09:30 is 31 days; ten days
			// and an hour in, 20 whole days remain.
			r.clock.Set(time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC))
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "pro", cardOK)
			r.clock.Advance(10*day + time.Hour)
			req := r.change(sub, "enterprise", billing.Monthly, false, "upgrade-1")
			preview, err := r.p.PreviewChange(r.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			// Credit round(2900 × 20/31) = round(1870.97); charge round(49900 × 20/31) = round(32193.55).
			if preview.AmountDueNow != 30323 || preview.NextAmount != 49900 || len(preview.Lines) != 2 ||
				preview.Lines[0].Amount != -1871 || preview.Lines[1].Amount != 32194 || !preview.Lines[0].Proration ||
				!preview.NextBilledAt.Equal(time.Date(2026, 2, 15, 9, 30, 0, 0, time.UTC)) {
				t.Fatalf("preview %+v", preview)
			}
			view, err := r.p.Change(r.ctx, req)
			if err != nil || view.PlanKey != "enterprise" {
				t.Fatalf("change: %+v, %v", view, err)
			}
			invs := r.invoices(t, ws)
			if len(invs) != 2 || invs[0].AmountPaid != preview.AmountDueNow || invs[0].Status != "paid" ||
				fmt.Sprint(invs[0].Lines) != fmt.Sprint(preview.Lines) {
				t.Fatalf("invoices %+v, preview %+v", invs, preview)
			}
			if s := r.sub(t, ws); s.PlanKey != "enterprise" || s.Amount != 49900 ||
				!s.CurrentPeriodEnd.Equal(time.Date(2026, 2, 15, 9, 30, 0, 0, time.UTC)) {
				t.Fatalf("ledger %+v", s)
			}
			if h := r.history(t, ws); h != "subscribed upgraded" {
				t.Fatalf("history %q", h)
			}
		})
		t.Run("a failed proration charge leaves the plan and the key answers the same", func(t *testing.T) {
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "pro", cardOK)
			r.clock.Advance(5 * day)
			if err := r.p.FailNextCharge(r.ctx, ws); err != nil {
				t.Fatal(err)
			}
			req := r.change(sub, "enterprise", billing.Monthly, false, "upgrade-declined")
			for range 2 {
				if _, err := r.p.Change(r.ctx, req); kernel.CodeOf(err) != kernel.CodePaymentRequired {
					t.Fatalf("change with a failing charge: %v", err)
				}
			}
			if s := r.sub(t, ws); s.PlanKey != "pro" || len(r.invoices(t, ws)) != 1 {
				t.Fatalf("the plan changed without payment: %+v", s)
			}
			req.IdempotencyKey = "upgrade-again"
			if view, err := r.p.Change(r.ctx, req); err != nil || view.PlanKey != "enterprise" {
				t.Fatalf("the next attempt (the simulated failure is used up): %+v, %v", view, err)
			}
		})
		t.Run("an interval change starts a new period paid in full", func(t *testing.T) {
			r.clock.Set(time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC))
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "pro", cardOK)
			r.clock.Advance(10*day + time.Hour)
			now := r.clock.Now()
			req := r.change(sub, "pro", billing.Yearly, false, "yearly")
			preview, err := r.p.PreviewChange(r.ctx, req)
			if err != nil || preview.AmountDueNow != 29000-1871 || !preview.NextBilledAt.Equal(now.AddDate(1, 0, 0)) {
				t.Fatalf("preview %+v, %v", preview, err)
			}
			if _, err := r.p.Change(r.ctx, req); err != nil {
				t.Fatal(err)
			}
			s := r.sub(t, ws)
			if s.Interval != billing.Yearly || !s.CurrentPeriodStart.Equal(now) || !s.CurrentPeriodEnd.Equal(now.AddDate(1, 0, 0)) ||
				r.invoices(t, ws)[0].AmountPaid != 27129 {
				t.Fatalf("ledger %+v", s)
			}
		})
		t.Run("a downgrade made now leaves a credit the renewals spend", func(t *testing.T) {
			r.clock.Set(time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC))
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "enterprise", cardOK)
			r.clock.Advance(10*day + time.Hour)
			preview, err := r.p.PreviewChange(r.ctx, r.change(sub, "pro", billing.Monthly, false, ""))
			if err != nil || preview.AmountDueNow != 1871-32194 {
				t.Fatalf("preview %+v, %v", preview, err)
			}
			if _, err := r.p.Change(r.ctx, r.change(sub, "pro", billing.Monthly, false, "down-now")); err != nil {
				t.Fatal(err)
			}
			if n := len(r.invoices(t, ws)); n != 1 {
				t.Fatalf("a credit made an invoice: %d invoices", n)
			}
			// 30323 of credit pays ten months of Pro (2900), and 1323 of the eleventh.
			for month := 1; month <= 11; month++ {
				r.clock.Set(time.Date(2026, time.Month(1+month), 15, 9, 30, 0, 0, time.UTC))
				r.renew(t)
			}
			invs := r.invoices(t, ws)
			if len(invs) != 12 || invs[1].AmountDue != 0 || invs[0].AmountDue != 2900*11-30323 || invs[0].Status != "paid" {
				t.Fatalf("invoices %+v", invs)
			}
			if len(invs[0].Lines) != 2 || invs[0].Lines[1].Description != "Credit applied" || invs[0].Lines[1].Amount != -(30323-2900*10) {
				t.Fatalf("last invoice lines %+v", invs[0].Lines)
			}
		})
	})
}

func TestSandboxChangesAtPeriodEnd(t *testing.T) {
	forEachDialect(t, func(t *testing.T, newRig func() *rig) {
		r := newRig()
		t.Run("a downgrade waits for the renewal and charges nothing now", func(t *testing.T) {
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "enterprise", cardOK)
			end := *r.sub(t, ws).CurrentPeriodEnd
			r.clock.Advance(3 * day)
			req := r.change(sub, "pro", billing.Monthly, true, "downgrade")
			preview, err := r.p.PreviewChange(r.ctx, req)
			if err != nil || !preview.AtPeriodEnd || preview.AmountDueNow != 0 || preview.NextAmount != 2900 || !preview.NextBilledAt.Equal(end) {
				t.Fatalf("preview %+v, %v", preview, err)
			}
			view, err := r.p.Change(r.ctx, req)
			if err != nil || view.PlanKey != "enterprise" {
				t.Fatalf("change: %+v, %v", view, err)
			}
			if s := r.sub(t, ws); s.PlanKey != "enterprise" || len(r.invoices(t, ws)) != 1 {
				t.Fatalf("the downgrade applied early: %+v", s)
			}
			r.clock.Set(end)
			if rep := r.renew(t); rep.Renewed != 1 {
				t.Fatalf("report %+v", rep)
			}
			s := r.sub(t, ws)
			invs := r.invoices(t, ws)
			if s.PlanKey != "pro" || s.Amount != 2900 || len(invs) != 2 || invs[0].AmountPaid != 2900 {
				t.Fatalf("after the renewal %+v, %+v", s, invs)
			}
			if h := r.history(t, ws); h != "subscribed downgraded" {
				t.Fatalf("history %q", h)
			}
		})
		t.Run("choosing the current plan again drops a pending change", func(t *testing.T) {
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "enterprise", cardOK)
			if _, err := r.p.Change(r.ctx, r.change(sub, "pro", billing.Yearly, true, "")); err != nil {
				t.Fatal(err)
			}
			if _, err := r.p.Change(r.ctx, r.change(sub, "enterprise", billing.Monthly, true, "")); err != nil {
				t.Fatal(err)
			}
			r.clock.Set(*r.sub(t, ws).CurrentPeriodEnd)
			r.renew(t)
			if s := r.sub(t, ws); s.PlanKey != "enterprise" || s.Interval != billing.Monthly {
				t.Fatalf("after the renewal %+v", s)
			}
		})
		t.Run("cancel at the period end, resume, cancel again, end", func(t *testing.T) {
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "pro", cardOK)
			end := *r.sub(t, ws).CurrentPeriodEnd
			if v, err := r.p.Cancel(r.ctx, sub, true, "cancel-1"); err != nil || !v.CancelAtPeriodEnd {
				t.Fatalf("cancel: %+v, %v", v, err)
			}
			if s := r.sub(t, ws); !s.CancelAtPeriodEnd || s.PlanKey != "pro" {
				t.Fatalf("ledger %+v", s)
			}
			if v, err := r.p.Resume(r.ctx, sub, "resume-1"); err != nil || v.CancelAtPeriodEnd {
				t.Fatalf("resume: %+v, %v", v, err)
			}
			if r.sub(t, ws).CancelAtPeriodEnd {
				t.Fatal("the ledger still ends it")
			}
			if _, err := r.p.Cancel(r.ctx, sub, true, "cancel-2"); err != nil {
				t.Fatal(err)
			}
			r.clock.Set(end.Add(-time.Second))
			if rep := r.renew(t); rep.Ended != 0 {
				t.Fatalf("ended early: %+v", rep)
			}
			r.clock.Set(end)
			if rep := r.renew(t); rep.Ended != 1 {
				t.Fatalf("report %+v", rep)
			}
			s := r.sub(t, ws)
			if s.PlanKey != "free" || s.CanceledAt == nil || !s.CanceledAt.Equal(end) || len(r.invoices(t, ws)) != 1 {
				t.Fatalf("after the end %+v", s)
			}
			if h := r.history(t, ws); h != "subscribed cancel_scheduled resumed cancel_scheduled canceled" {
				t.Fatalf("history %q", h)
			}
			if _, err := r.p.Resume(r.ctx, sub, "resume-2"); kernel.CodeOf(err) != kernel.CodeConflict {
				t.Fatalf("resume after the end: %v", err)
			}
			// The workspace may subscribe again.
			r.subscribe(t, ws, "pro", cardOK)
			if s := r.sub(t, ws); s.PlanKey != "pro" || s.ProviderSubscriptionID == sub {
				t.Fatalf("a new subscription %+v", s)
			}
		})
		t.Run("cancel now ends at once and voids what is unpaid", func(t *testing.T) {
			ws := r.workspace(t)
			sub := r.subscribe(t, ws, "pro", cardLater)
			r.clock.Set(*r.sub(t, ws).CurrentPeriodEnd)
			r.renew(t)
			if v, err := r.p.Cancel(r.ctx, sub, false, "cancel-now"); err != nil || v.Status != billing.StatusCanceled {
				t.Fatalf("cancel: %+v, %v", v, err)
			}
			if s := r.sub(t, ws); s.PlanKey != "free" || s.CanceledAt == nil || s.Status != billing.StatusActive {
				t.Fatalf("ledger %+v", s)
			}
			if invs := r.invoices(t, ws); invs[0].Status != "void" {
				t.Fatalf("unpaid invoice after the end: %+v", invs[0])
			}
		})
	})
}
