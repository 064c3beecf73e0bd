package mail_test

import "atrium/internal/mail"

// The billing_notice template lives in files of its own (internal/billing
// sends it); its sample joins sampleData so TestEveryTemplateRenders renders it.
func init() {
	sampleData[mail.TemplateBillingNotice] = mail.BillingNotice{Name: "Ada", WorkspaceName: "Acme",
		Subject: "A payment for Acme failed", Paragraphs: []string{"The payment of $29.00 failed.", "We try again in 3 days."},
		ActionLabel: "Update the payment method", ActionURL: "https://atrium.example/console/workspaces/ws_1/billing"}
}
