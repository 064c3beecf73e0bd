package usage

import (
	"math"
	"math/bits"
	"time"
)

// The quota rules of DESIGN.md: warnings at 80, 90, 95 and 100 % of the limit,
// growth allowed up to 5 % past the limit for 7 days from the moment usage
// first exceeded it, and growth refused beyond that buffer or after that
// grace. Reading and deleting are never refused.
const (
	// BufferPercent is how far past its limit a workspace may grow during
	// its grace period.
	BufferPercent = 5
	// GracePeriod is how long a workspace may stay past its limit (within
	// the buffer) before growth is refused.
	GracePeriod = 7 * 24 * time.Hour
)

// Thresholds are the percentages of a limit at which a workspace is warned,
// each once per period.
var Thresholds = []int{80, 90, 95, 100}

// The states of a metric, as GET /usage shows them.
const (
	StateOK      = "ok"      // below 80 % of the limit, or unlimited
	StateWarning = "warning" // at 80 % or more, within the limit
	StateGrace   = "grace"   // past the limit, within the buffer and the grace period: growth still allowed
	StateBlocked = "blocked" // growth refused until usage is back within the limit or the limit is raised
)

// Unlimited is the limit that never binds.
const Unlimited int64 = -1

// overage is a workspace's metric over its limit, as usage_overage keeps it.
type overage struct {
	PeriodStart  time.Time
	OverSince    time.Time
	BlockedAt    *time.Time
	WithoutGrace bool
}

// verdict is what the rules say of one usage against one limit.
type verdict struct {
	State string
	// GraceEndsAt is when growth past the limit stops being allowed: set
	// whenever usage is past the limit, nil otherwise.
	GraceEndsAt *time.Time
	// Reason says why a blocked verdict is blocked (one of the Blocked*
	// reasons); empty otherwise.
	Reason string
}

// Why growth is refused, as the usage.blocked event says.
const (
	BlockedBufferExceeded = "buffer_exceeded" // past the limit by more than the buffer
	BlockedGraceEnded     = "grace_ended"     // past the limit for longer than the grace period
	BlockedPlanChanged    = "plan_changed"    // past a limit lowered by a plan change: no grace
)

// judge applies the rules to used against limit at now. over is the
// recorded overage, nil when none is; without one, a usage past the limit
// is judged as if the grace period started now (the node that records it
// will say when it really did).
func judge(used, limit int64, over *overage, now time.Time) verdict {
	if limit < 0 || used <= limit {
		if limit >= 0 && used > 0 && reached(used, limit, Thresholds[0]) {
			return verdict{State: StateWarning}
		}
		return verdict{State: StateOK}
	}
	since := now
	if over != nil {
		since = over.OverSince
	}
	ends := since.Add(GracePeriod)
	v := verdict{State: StateGrace, GraceEndsAt: &ends}
	switch {
	case over != nil && over.WithoutGrace:
		v.State, v.Reason = StateBlocked, BlockedPlanChanged
	case used > ceiling(limit):
		v.State, v.Reason = StateBlocked, BlockedBufferExceeded
	case !now.Before(ends):
		v.State, v.Reason = StateBlocked, BlockedGraceEnded
	}
	return v
}

// ceiling is the most a workspace may use during its grace period: the
// limit and its buffer, rounded down.
func ceiling(limit int64) int64 {
	if limit < 0 {
		return math.MaxInt64
	}
	return limit + limit*BufferPercent/100
}

// reached reports whether used is at least percent % of limit, exactly
// (no overflow, no rounding). A limit of 0 is reached by any use.
func reached(used, limit int64, percent int) bool {
	if limit < 0 || used <= 0 {
		return false
	}
	if limit == 0 {
		return true
	}
	uh, ul := bits.Mul64(uint64(used), 100)
	lh, ll := bits.Mul64(uint64(limit), uint64(percent))
	return uh > lh || (uh == lh && ul >= ll)
}

// highestThreshold returns the highest of Thresholds that used reaches
// against limit, 0 for none.
func highestThreshold(used, limit int64) int {
	highest := 0
	for _, t := range Thresholds {
		if reached(used, limit, t) {
			highest = t
		}
	}
	return highest
}

// percentOf is used as a whole percentage of limit, rounded down: 0 when
// unlimited, 100 for any use of a zero limit, and at most math.MaxInt32.
func percentOf(used, limit int64) int {
	switch {
	case limit < 0 || used <= 0:
		return 0
	case limit == 0:
		return 100
	}
	hi, lo := bits.Mul64(uint64(used), 100)
	if hi >= uint64(limit) {
		return math.MaxInt32
	}
	q, _ := bits.Div64(hi, lo, uint64(limit))
	return int(min(q, math.MaxInt32))
}
