package usage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Call is what metering one API call found.
type Call struct {
	// Used is the live count of the period's calls, this one included.
	Used int64
	// Limit is the plan's api_calls_per_month; -1 is unlimited.
	Limit int64
	// Warning is the highest threshold reached (80, 90, 95 or 100), 0 for
	// none: a response carries it in X-Atrium-Usage-Warning.
	Warning int
}

// CountCall counts one API call of workspaceID and decides whether it may
// go ahead. growth says whether the call may add to the workspace (POST,
// PUT, PATCH): such a call is refused, and not counted, with quota_exceeded
// (Fields metric, current and limit) when it would take api_calls to a
// blocked state; any other call is counted and never refused.
//
// It reads nothing on the hot path: the limit comes from PlanLimits (billing
// caches it in-process), the overage from this node's cache (refreshed at
// each flush) and the count from the Meter. Blocking is exact on one node
// (of N calls racing for the last unit, one gets it) and across nodes within
// one flush interval. When the limit or the count cannot be read, the call
// is still counted, unjudged, and the error is returned for the caller to
// log.
func (s *Service) CountCall(ctx context.Context, workspaceID uuid.UUID, growth bool) (Call, error) {
	m, _ := lookupMetric(APICalls)
	limit, err := s.limit(ctx, workspaceID, m)
	if err != nil {
		return Call{}, errors.Join(err, s.meter.Increment(ctx, workspaceID, APICalls, 1))
	}
	if limit < 0 {
		return Call{Limit: limit}, s.meter.Increment(ctx, workspaceID, APICalls, 1)
	}
	now := s.clock.Now()
	key, err := s.period(ctx, workspaceID, APICalls, now)
	if err != nil {
		return Call{}, err
	}
	over, _ := s.cache.get(workspaceID, APICalls).overageIn(key.PeriodStart, true, now)
	allow := func(next int64) bool {
		return !growth || judge(next, limit, over, now).State != StateBlocked
	}
	used, ok, err := s.meter.add(ctx, workspaceID, APICalls, 1, allow)
	if err != nil {
		// The total could not be read (the backend is down): the call is
		// counted unjudged rather than lost.
		return Call{}, errors.Join(err, s.meter.Increment(ctx, workspaceID, APICalls, 1))
	}
	if !ok {
		return Call{Used: used, Limit: limit, Warning: highestThreshold(used, limit)}, quotaExceeded(m, used, limit)
	}
	return Call{Used: used, Limit: limit, Warning: highestThreshold(used, limit)}, nil
}

// quotaExceeded is the error of growth refused.
func quotaExceeded(m metric, used, limit int64) error {
	return &kernel.Error{Code: kernel.CodeQuotaExceeded,
		Message: fmt.Sprintf("the workspace is past its plan's %s limit (%d of %d): adding more is refused until usage is back within the limit or the plan raises it; reading and deleting still work",
			m.Words, used, limit),
		Fields: map[string]string{"metric": m.Name, "current": strconv.FormatInt(used, 10), "limit": strconv.FormatInt(limit, 10)}}
}

// MetricUsage is one metric's usage against its limit.
type MetricUsage struct {
	Metric string
	Used   int64
	// Limit is the plan's limit; -1 is unlimited.
	Limit int64
	// Percent is Used as a whole percentage of Limit, rounded down; 0 when
	// unlimited.
	Percent int
	// State is one of StateOK, StateWarning, StateGrace, StateBlocked.
	State string
	// GraceEndsAt is when growth past the limit stops being allowed; nil
	// while usage is within the limit.
	GraceEndsAt *time.Time
}

// Report is a workspace's usage in its current period.
type Report struct {
	PeriodStart, PeriodEnd time.Time
	Metrics                []MetricUsage
}

// Usage reports the usage of the workspace of res against its limits. It
// returns forbidden unless the actor may read it (policy.UsageRead: every
// member, and API keys), or the errors of Report.
func (s *Service) Usage(ctx context.Context, res policy.Resource) (Report, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.UsageRead, res); err != nil {
		return Report{}, err
	}
	return s.Report(ctx, res.Workspace)
}

// Report reports workspaceID's usage against its limits, checking no
// permission: for Atrium's own code (the console, billing). api_calls is
// this node's live count; members is counted now; storage_bytes is the last
// recalculation. It returns the errors of PlanLimits and the store.
func (s *Service) Report(ctx context.Context, workspaceID uuid.UUID) (Report, error) {
	now := s.clock.Now()
	start, end, err := s.periods.Period(ctx, workspaceID, now)
	if err != nil {
		return Report{}, fmt.Errorf("usage: period of %s: %w", workspaceID, err)
	}
	rep := Report{PeriodStart: start.UTC(), PeriodEnd: end.UTC()}
	calls, err := s.meter.Count(ctx, workspaceID, APICalls)
	if err != nil {
		return Report{}, err
	}
	used := map[string]int64{APICalls: calls}
	var overs map[string]*overage
	err = s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		for _, m := range metrics {
			if m.Counter {
				continue
			}
			var err error
			if used[m.Name], err = s.reportedGauge(ctx, tx, m, workspaceID); err != nil {
				return err
			}
		}
		var err error
		overs, err = overages(ctx, tx, workspaceID)
		return err
	})
	if err != nil {
		return Report{}, fmt.Errorf("usage: report of %s: %w", workspaceID, err)
	}
	for _, m := range metrics {
		limit, err := s.limit(ctx, workspaceID, m)
		if err != nil {
			return Report{}, err
		}
		over := overs[m.Name]
		if over != nil && m.Counter && !over.PeriodStart.Equal(rep.PeriodStart) {
			over = nil
		}
		v := judge(used[m.Name], limit, over, now)
		rep.Metrics = append(rep.Metrics, MetricUsage{Metric: m.Name, Used: used[m.Name], Limit: limit,
			Percent: percentOf(used[m.Name], limit), State: v.State, GraceEndsAt: v.GraceEndsAt})
	}
	return rep, nil
}

// reportedGauge is a gauge as Report shows it: members counted now, storage
// as last recalculated.
func (s *Service) reportedGauge(ctx context.Context, tx store.Tx, m metric, workspaceID uuid.UUID) (int64, error) {
	if m.Name == Members {
		return countMembers(ctx, tx, workspaceID)
	}
	var v int64
	err := tx.QueryRow(ctx, selectLatestGaugeSQL, workspaceID, m.Name).Scan(&v)
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return 0, nil
	}
	return v, err
}

// observe applies the quota rules to the counters a flush added to. It runs
// on the meter's flushing goroutine, so it must not call the meter. A
// counter whose thresholds and overage this node already recorded, and
// trusts, costs nothing; otherwise one workspace transaction records what
// is new, and the node's cache learns it.
func (s *Service) observe(ctx context.Context, flushed []Flushed) {
	for _, f := range flushed {
		m, ok := lookupMetric(f.Key.Metric)
		if !ok {
			continue // a fork's own metric: no quota
		}
		if err := s.observeOne(ctx, m, f.Key, f.Total); err != nil {
			s.logger.Error("usage: apply the quota rules after a flush", "workspace_id", kernel.FormatID(kernel.PrefixWorkspace, f.Key.WorkspaceID),
				"metric", m.Name, "error", err.Error())
		}
	}
}

func (s *Service) observeOne(ctx context.Context, m metric, key Key, total int64) error {
	limit, err := s.limit(ctx, key.WorkspaceID, m)
	if err != nil {
		return err
	}
	now := s.clock.Now()
	st := s.cache.get(key.WorkspaceID, m.Name)
	known := highestThreshold(total, limit) <= st.warnedIn(key.PeriodStart)
	if limit >= 0 && total > limit {
		// Past the limit, the overage must be recorded (the grace's start)
		// and read recently, and a block that is due recorded too.
		over, fresh := st.overageIn(key.PeriodStart, m.Counter, now)
		known = known && fresh && over != nil && (over.BlockedAt != nil || judge(total, limit, over, now).State != StateBlocked)
	}
	if known {
		return nil
	}
	var rec recorded
	err = s.db.InWorkspace(ctx, key.WorkspaceID, func(tx store.Tx) error {
		var err error
		rec, err = s.record(ctx, tx, m, key, total, limit)
		return err
	})
	if err != nil {
		return err
	}
	s.cache.set(key.WorkspaceID, m.Name, key.PeriodStart, rec.warned, rec.over, now)
	return nil
}
