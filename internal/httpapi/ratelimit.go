package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/ratelimit"
)

// PlanLimits reads the limits of a workspace's current plan;
// billing.Entitlements is one.
type PlanLimits interface {
	// Limit returns the workspace's limit for metric (such as
	// "api_calls_per_hour") under its current plan; -1 is unlimited.
	Limit(ctx context.Context, workspaceID uuid.UUID, metric string) (int64, error)
}

// apiCallsPerHour is the plan limit the API rate limit enforces.
const apiCallsPerHour = "api_calls_per_hour"

// The limiter counts at most one event a millisecond per key (see
// ratelimit.Check), so a plan's rate is held at these: 3,600,000 calls an
// hour and a burst of 60,000 a minute. A plan that needs more says -1.
const (
	maxCallsPerHour   = 3_600_000
	maxCallsPerMinute = 60_000
)

// apiLimits returns the two buckets of a plan allowing perHour API calls an
// hour: the hour itself, and a burst of a twentieth of it a minute (three
// times the average rate, at least one call), so that a client cannot spend
// its hour in the first seconds of it.
func apiLimits(perHour int64) (hour, minute ratelimit.Limit) {
	perHour = min(perHour, maxCallsPerHour)
	burst := min((perHour+19)/20, maxCallsPerMinute)
	return ratelimit.Limit{Events: int(perHour), Window: time.Hour},
		ratelimit.Limit{Events: int(burst), Window: time.Minute}
}

// planRateLimit holds the API calls of each workspace to its plan's
// api_calls_per_hour, counted per workspace (every key and token of it
// together) under the keys ws:<ws_…>:api:m and ws:<ws_…>:api:h. It limits
// callers authenticated by a bearer credential (API keys and personal
// access tokens) on workspace-scoped routes, so it runs after tenant; people
// in the console, on their session cookie, are not limited by it.
//
// A request is counted against the minute's burst first and, when that
// admits it, against the hour: a client refused by the burst spends nothing
// of its hour. Every answer on a limited route carries the tighter bucket
// (the one with fewer calls left; the one that refused, over the limit):
//
//	X-RateLimit-Limit      the bucket's size in calls
//	X-RateLimit-Remaining  the calls it admits now
//	X-RateLimit-Reset      seconds until it is whole again (delta seconds,
//	                       as in the IETF RateLimit header draft, not a
//	                       Unix time), rounded up
//
// Over the limit it answers 429 rate_limited with Retry-After. A plan of -1
// is unlimited (no counting, no headers); a plan of 0 calls answers 402
// payment_required. A limiter or plan error answers that error: the limit
// is never lifted because it could not be checked (the fallback limiter
// keeps answering while Redis is away). It returns nil, no middleware at
// all, when limiter or plans is nil.
func planRateLimit(limiter ratelimit.Limiter, plans PlanLimits) func(http.Handler) http.Handler {
	if limiter == nil || plans == nil {
		return nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			workspaceID, ok := kernel.WorkspaceFrom(ctx)
			if !ok || kernel.ActorFrom(ctx).Via != kernel.ViaBearer {
				next.ServeHTTP(w, r)
				return
			}
			perHour, err := plans.Limit(ctx, workspaceID, apiCallsPerHour)
			if err != nil {
				WriteError(w, r, err)
				return
			}
			switch {
			case perHour < 0:
				next.ServeHTTP(w, r)
				return
			case perHour == 0:
				WriteError(w, r, &kernel.Error{Code: kernel.CodePaymentRequired, Message: "this workspace's plan includes no API calls"})
				return
			}
			d, err := hitAPILimits(ctx, limiter, workspaceID, perHour)
			if err != nil {
				WriteError(w, r, err)
				return
			}
			h := w.Header()
			h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit.Events))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
			h.Set("X-RateLimit-Reset", strconv.FormatInt(resetSeconds(d), 10))
			if !d.Allowed {
				hour, minute := apiLimits(perHour)
				WriteError(w, r, &kernel.Error{Code: kernel.CodeRateLimited, RetryAfter: d.RetryAfter,
					Message: fmt.Sprintf("API rate limit reached: this workspace's plan allows %d calls an hour, at most %d a minute",
						hour.Events, minute.Events)})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// hitAPILimits counts one call of workspaceID against its minute and hour
// buckets and returns the decision of the tighter one. It returns the
// limiter's error.
func hitAPILimits(ctx context.Context, limiter ratelimit.Limiter, workspaceID uuid.UUID, perHour int64) (ratelimit.Decision, error) {
	hourLimit, minuteLimit := apiLimits(perHour)
	key := "ws:" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + ":api:"
	minute, err := limiter.Hit(ctx, key+"m", minuteLimit)
	if err != nil || !minute.Allowed {
		return minute, err
	}
	hour, err := limiter.Hit(ctx, key+"h", hourLimit)
	if err != nil {
		return hour, err
	}
	if !hour.Allowed || hour.Remaining <= minute.Remaining {
		return hour, nil
	}
	return minute, nil
}

// resetSeconds is how long until d's bucket is whole again, in whole seconds
// rounded up, worked out from the decision alone so that it follows the
// limiter's clock: over the limit exactly (the refused Hit left the bucket
// full, RetryAfter short of one more interval), and within the limit at most
// one interval (Window/Events) late, since Remaining is rounded down.
func resetSeconds(d ratelimit.Decision) int64 {
	interval := time.Duration(ratelimit.Interval(d.Limit)) * time.Microsecond
	reset := interval * time.Duration(d.Limit.Events-d.Remaining)
	if !d.Allowed {
		reset = d.RetryAfter + interval*time.Duration(d.Limit.Events-1)
	}
	return int64((reset + time.Second - 1) / time.Second)
}
