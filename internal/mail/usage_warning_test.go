package mail_test

import "atrium/internal/mail"

// The usage_warning template lives in files of its own (internal/usage sends
// it); its sample joins sampleData here so TestEveryTemplateRenders renders it.
func init() {
	sampleData[mail.TemplateUsageWarning] = mail.UsageWarning{Name: "Ada", WorkspaceName: "Acme", Metric: "API calls",
		Threshold: 100, Used: "10,000", Limit: "10,000", PeriodEnd: "1 Feb 2026 00:00 UTC", AtLimit: true, BufferPercent: 5, GraceDays: 7}
}
