package usage

import (
	"math"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	now := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	since := func(d time.Duration) *overage { return &overage{OverSince: now.Add(-d)} }
	for _, c := range []struct {
		name        string
		used, limit int64
		over        *overage
		state       string
		reason      string
		graceEnds   time.Time
	}{
		{"unlimited", 1 << 40, -1, nil, StateOK, "", time.Time{}},
		{"nothing used", 0, 100, nil, StateOK, "", time.Time{}},
		{"below 80 %", 79, 100, nil, StateOK, "", time.Time{}},
		{"at 80 %", 80, 100, nil, StateWarning, "", time.Time{}},
		{"at the limit", 100, 100, nil, StateWarning, "", time.Time{}},
		{"within the limit, an old overage ignored", 100, 100, since(30 * 24 * time.Hour), StateWarning, "", time.Time{}},
		{"just past, grace starts now", 101, 100, nil, StateGrace, "", now.Add(GracePeriod)},
		{"the buffer's last unit", 105, 100, since(time.Hour), StateGrace, "", now.Add(GracePeriod - time.Hour)},
		{"past the buffer", 106, 100, since(time.Hour), StateBlocked, BlockedBufferExceeded, now.Add(GracePeriod - time.Hour)},
		{"grace's last moment", 101, 100, since(GracePeriod - time.Microsecond), StateGrace, "", now.Add(time.Microsecond)},
		{"grace over", 101, 100, since(GracePeriod), StateBlocked, BlockedGraceEnded, now},
		{"a plan change: no grace", 101, 100, &overage{OverSince: now, WithoutGrace: true}, StateBlocked, BlockedPlanChanged, now.Add(GracePeriod)},
		{"small limits have no buffer", 6, 5, nil, StateBlocked, BlockedBufferExceeded, now.Add(GracePeriod)},
		{"a zero limit, unused", 0, 0, nil, StateOK, "", time.Time{}},
		{"a zero limit, used", 1, 0, nil, StateBlocked, BlockedBufferExceeded, now.Add(GracePeriod)},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := judge(c.used, c.limit, c.over, now)
			if v.State != c.state || v.Reason != c.reason {
				t.Fatalf("judge(%d, %d) = %s %q, want %s %q", c.used, c.limit, v.State, v.Reason, c.state, c.reason)
			}
			switch {
			case c.graceEnds.IsZero() && v.GraceEndsAt != nil:
				t.Fatalf("grace ends at %v, want none", v.GraceEndsAt)
			case !c.graceEnds.IsZero() && (v.GraceEndsAt == nil || !v.GraceEndsAt.Equal(c.graceEnds)):
				t.Fatalf("grace ends at %v, want %v", v.GraceEndsAt, c.graceEnds)
			}
		})
	}
}

func TestThresholdsAndPercentAreExact(t *testing.T) {
	for _, c := range []struct {
		used, limit int64
		highest     int
		percent     int
	}{
		{0, 10, 0, 0},
		{7, 10, 0, 70},
		{8, 10, 80, 80},
		{899, 1000, 80, 89},
		{900, 1000, 90, 90},
		{949, 1000, 90, 94},
		{950, 1000, 95, 95},
		{1000, 1000, 100, 100},
		{1500, 1000, 100, 150},
		{math.MaxInt64, math.MaxInt64, 100, 100},
		{math.MaxInt64 - 1, math.MaxInt64, 95, 99},
		{math.MaxInt64, 1, 100, math.MaxInt32},
		{5, -1, 0, 0},
	} {
		if got := highestThreshold(c.used, c.limit); got != c.highest {
			t.Errorf("highestThreshold(%d, %d) = %d, want %d", c.used, c.limit, got, c.highest)
		}
		if got := percentOf(c.used, c.limit); got != c.percent {
			t.Errorf("percentOf(%d, %d) = %d, want %d", c.used, c.limit, got, c.percent)
		}
	}
	if got := ceiling(1000); got != 1050 {
		t.Errorf("ceiling(1000) = %d", got)
	}
	if got := ceiling(math.MaxInt64 / 2); got <= 0 {
		t.Errorf("ceiling overflowed: %d", got)
	}
}
