package usage

import "time"

// The event types this package emits, each documented with its payload in
// the event catalogue (internal/events/catalog).
const (
	EventWarning      = "usage.warning"
	EventGraceStarted = "usage.grace_started"
	EventBlocked      = "usage.blocked"
)

// WarningEvent is the data of usage.warning: a workspace reached a
// threshold of one of its limits, for the first time in the period.
type WarningEvent struct {
	Metric      string    `json:"metric" enum:"api_calls,storage_bytes,members" doc:"The metric"`
	Threshold   int       `json:"threshold" enum:"80,90,95,100" doc:"The percentage of the limit reached"`
	Used        int64     `json:"used" doc:"The usage when the threshold was noticed"`
	Limit       int64     `json:"limit" doc:"The plan's limit"`
	PeriodStart time.Time `json:"period_start" doc:"Start of the period the usage is counted in"`
	PeriodEnd   time.Time `json:"period_end" doc:"End (exclusive) of the period"`
}

// GraceStartedEvent is the data of usage.grace_started: a workspace went
// past a limit. It may keep growing up to buffer_limit until grace_ends_at.
type GraceStartedEvent struct {
	Metric      string    `json:"metric" enum:"api_calls,storage_bytes,members" doc:"The metric"`
	Used        int64     `json:"used" doc:"The usage when it went past the limit"`
	Limit       int64     `json:"limit" doc:"The plan's limit"`
	BufferLimit int64     `json:"buffer_limit" doc:"The most the workspace may use during the grace period: the limit and 5 %"`
	GraceEndsAt time.Time `json:"grace_ends_at" doc:"When growth past the limit stops being allowed"`
}

// BlockedEvent is the data of usage.blocked: growth of a metric is refused
// from now on (reading and deleting still work), until usage is back
// within the limit or the plan raises it.
type BlockedEvent struct {
	Metric string `json:"metric" enum:"api_calls,storage_bytes,members" doc:"The metric"`
	Used   int64  `json:"used" doc:"The usage when growth was refused"`
	Limit  int64  `json:"limit" doc:"The plan's limit"`
	Reason string `json:"reason" enum:"buffer_exceeded,grace_ended,plan_changed" doc:"Past the buffer, past the grace period, or past a limit a plan change lowered (no grace then)"`
}
