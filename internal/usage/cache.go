package usage

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// overageTTL is how long a node trusts the overage it last read: another
// node's change (a plan change put a workspace straight into blocked) is
// seen within it.
const overageTTL = 30 * time.Second

// nodeCache is what this node knows of each workspace's quotas, so that
// metering a call reads nothing: the overage of a metric over its limit,
// and the highest threshold already recorded in the current period (so a
// flush records nothing again). Flushes refresh it.
type nodeCache struct {
	mu     sync.RWMutex
	states map[stateKey]nodeState
}

type stateKey struct {
	workspace uuid.UUID
	metric    string
}

type nodeState struct {
	// period is the start of the period warned is about (Unix µs).
	period int64
	warned int
	// over is the overage as read at loaded; nil when there is none.
	over   *overage
	loaded time.Time
}

func (c *nodeCache) init() { c.states = map[stateKey]nodeState{} }

func (c *nodeCache) get(workspaceID uuid.UUID, metricName string) nodeState {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.states[stateKey{workspaceID, metricName}]
}

// set records what was read or written about a metric in the period that
// starts at periodStart.
func (c *nodeCache) set(workspaceID uuid.UUID, metricName string, periodStart time.Time, warned int, over *overage, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states[stateKey{workspaceID, metricName}] = nodeState{period: periodStart.UnixMicro(), warned: warned, over: over, loaded: at}
}

// warnedIn returns the highest threshold known recorded in the period that
// starts at periodStart.
func (st nodeState) warnedIn(periodStart time.Time) int {
	if st.period != periodStart.UnixMicro() {
		return 0
	}
	return st.warned
}

// overageIn returns the overage that applies in the period that starts at
// periodStart (a counter's overage of an earlier period does not), and
// whether it was read recently enough to trust.
func (st nodeState) overageIn(periodStart time.Time, counter bool, now time.Time) (*overage, bool) {
	fresh := !st.loaded.IsZero() && now.Sub(st.loaded) < overageTTL && st.period == periodStart.UnixMicro()
	if st.over == nil || (counter && !st.over.PeriodStart.Equal(periodStart)) {
		return nil, fresh
	}
	return st.over, fresh
}
