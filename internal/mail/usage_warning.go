package mail

// TemplateUsageWarning is the notice sent to a workspace's owners and admins
// when its usage of a metric reaches a threshold of its plan's limit.
const TemplateUsageWarning = "usage_warning" // data: UsageWarning

// UsageWarning is the data of the usage_warning template.
type UsageWarning struct {
	Name          string // the recipient's name; may be empty
	WorkspaceName string
	Metric        string // what is measured, in words ("API calls")
	Threshold     int    // the percentage of the limit reached: 80, 90, 95 or 100
	Used          string // the usage, formatted ("9,500", "1.2 GB")
	Limit         string // the plan's limit, formatted the same way
	PeriodEnd     string // when the period ends, such as "1 Feb 2026 00:00 UTC"
	// AtLimit is true at 100 %: the message then says what happens past the
	// limit (the buffer and the grace period).
	AtLimit       bool
	BufferPercent int // how far past the limit growth is allowed during the grace period
	GraceDays     int // how long the grace period lasts
}
