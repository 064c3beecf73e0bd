package catalog

import "atrium/internal/usage"

// usageTypes documents the events of quotas (internal/usage).
var usageTypes = []Type{
	{Name: usage.EventWarning, Payload: usage.WarningEvent{},
		Description: "The workspace reached 80, 90, 95 or 100 % of one of its plan's limits, for the first time in the period. " +
			"Its owners and admins are mailed."},
	{Name: usage.EventGraceStarted, Payload: usage.GraceStartedEvent{},
		Description: "The workspace went past one of its plan's limits. It may keep growing up to `buffer_limit` (the limit and 5 %) " +
			"until `grace_ends_at`; after that, or beyond that, growth is refused."},
	{Name: usage.EventBlocked, Payload: usage.BlockedEvent{},
		Description: "Growth of a metric is refused from now on (402 `quota_exceeded`) until usage is back within the limit or the plan " +
			"raises it; reading and deleting still work."},
}
