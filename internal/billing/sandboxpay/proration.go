package sandboxpay

import (
	"fmt"
	"math"
	"time"

	"atrium/internal/billing"
)

const day = 24 * time.Hour

// periodEnd is the end of the period that starts at start, counted from
// anchor: a monthly period ends on the anchor's day of the month (the
// month's last day when it is shorter: a subscription anchored on the 31st
// renews on 28 February, then on 31 March) at the anchor's time of day, a
// yearly one likewise twelve months on. Times are UTC.
func periodEnd(anchor, start time.Time, interval billing.Interval) time.Time {
	months := 1
	if interval == billing.Yearly {
		months = 12
	}
	year, month, _ := start.Date()
	first := time.Date(year, month+time.Month(months), 1, 0, 0, 0, 0, time.UTC)
	lastDay := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return time.Date(first.Year(), first.Month(), min(anchor.Day(), lastDay),
		anchor.Hour(), anchor.Minute(), anchor.Second(), anchor.Nanosecond(), time.UTC)
}

// daysIn is the number of days of a period, at least one.
func daysIn(start, end time.Time) int64 {
	return max(int64(math.Round(end.Sub(start).Hours()/24)), 1)
}

// prorated is amount × part / whole, rounded to the nearest minor unit,
// halves up. Amounts and day counts are never negative.
func prorated(amount, part, whole int64) int64 {
	return (2*amount*part + whole) / (2 * whole)
}

// quote is what a change made now costs: the invoice lines, the amount
// due now (their sum: negative is a credit), the credit balance the lines
// spend, and the subscription's period after the change.
type quote struct {
	Lines       []billing.InvoiceLine
	Due         int64
	CreditUsed  int64
	NewAmount   int64
	Anchor      time.Time
	PeriodStart time.Time
	PeriodEnd   time.Time
}

// quoteChange prices moving s to plan at price now, by the rules of the
// package documentation (Proration). A trial is not prorated: nothing was
// paid, and nothing is charged before it ends. PreviewChange and Change
// both price with it, so a preview is exactly what the change charges at
// the same clock reading.
func (p *Provider) quoteChange(s *subscription, plan *billing.Plan, price billing.Price, now time.Time) quote {
	q := quote{NewAmount: price.Amount * int64(max(s.Quantity, 1)), Anchor: s.BillingAnchor, PeriodStart: s.PeriodStart,
		PeriodEnd: s.PeriodEnd, Lines: []billing.InvoiceLine{}}
	if s.Status == billing.StatusTrialing {
		return q
	}
	days := daysIn(s.PeriodStart, s.PeriodEnd)
	remaining := min(max(int64(s.PeriodEnd.Sub(now)/day), 0), days)
	q.Lines = append(q.Lines, billing.InvoiceLine{
		Description: fmt.Sprintf("Unused time on %s (%d of %d days)", p.describe(s.PlanKey, s.Interval), remaining, days),
		Amount:      -prorated(s.amount(), remaining, days), Proration: true, PeriodStart: now, PeriodEnd: s.PeriodEnd,
	})
	if price.Interval == s.Interval {
		q.Lines = append(q.Lines, billing.InvoiceLine{
			Description: fmt.Sprintf("Remaining time on %s (%d of %d days)", p.describe(plan.Key, price.Interval), remaining, days),
			Amount:      prorated(q.NewAmount, remaining, days), Proration: true, PeriodStart: now, PeriodEnd: s.PeriodEnd,
		})
	} else {
		// Another interval starts a new period now, paid in full.
		q.Anchor, q.PeriodStart, q.PeriodEnd = now, now, periodEnd(now, now, price.Interval)
		q.Lines = append(q.Lines, billing.InvoiceLine{Description: p.describe(plan.Key, price.Interval), Amount: q.NewAmount,
			PeriodStart: q.PeriodStart, PeriodEnd: q.PeriodEnd})
	}
	subtotal := sumLines(q.Lines)
	if subtotal > 0 && s.CreditBalance > 0 {
		q.CreditUsed = min(subtotal, s.CreditBalance)
		q.Lines = append(q.Lines, billing.InvoiceLine{Description: "Credit applied", Amount: -q.CreditUsed})
	}
	q.Due = sumLines(q.Lines)
	return q
}

// periodLines are the lines of a period's invoice for s: its price, and
// the credit balance it spends. It returns the amount due.
func (p *Provider) periodLines(s *subscription, start, end time.Time) ([]billing.InvoiceLine, int64, int64) {
	lines := []billing.InvoiceLine{{Description: p.describe(s.PlanKey, s.Interval), Amount: s.amount(), PeriodStart: start, PeriodEnd: end}}
	used := min(s.amount(), s.CreditBalance)
	if used > 0 {
		lines = append(lines, billing.InvoiceLine{Description: "Credit applied", Amount: -used})
	}
	return lines, s.amount() - used, used
}

func sumLines(lines []billing.InvoiceLine) int64 {
	var sum int64
	for _, l := range lines {
		sum += l.Amount
	}
	return sum
}

// describe names a plan price on an invoice line: "Pro (monthly)".
func (p *Provider) describe(planKey string, interval billing.Interval) string {
	name := planKey
	if plan := p.catalog.Plan(planKey); plan != nil {
		name = plan.Name
	}
	if interval == billing.Yearly {
		return name + " (yearly)"
	}
	return name + " (monthly)"
}
