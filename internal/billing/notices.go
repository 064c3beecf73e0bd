package billing

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/tenancy"
)

// Notices mails a workspace's owners and admins what billing has to tell
// them. It is sent after the change commits: a lost notice is logged, never
// a reason to undo the change, whose history row and event are the record.
type Notices struct {
	Mailer    mail.Mailer
	Templates *mail.Templates
	// Directory finds the owners and admins; tenancy.Service is one.
	Directory interface {
		Admins(ctx context.Context, workspaceID uuid.UUID) (tenancy.Workspace, []tenancy.Member, error)
	}
	// BaseURL is the public URL the notices link to.
	BaseURL string
	Logger  *slog.Logger
}

// notice is one message: who it is about and what it says.
type notice struct {
	subject    string // %s is the workspace's name
	paragraphs []string
	action     string // the button's label; the link is the billing page
}

// send mails n to every owner and admin of the workspace.
func (n *Notices) send(ctx context.Context, workspaceID uuid.UUID, what notice) {
	if n == nil || n.Mailer == nil || n.Templates == nil || n.Directory == nil {
		return
	}
	logger := n.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ws, admins, err := n.Directory.Admins(ctx, workspaceID)
	if err != nil {
		logger.ErrorContext(ctx, "billing notice: find whom to tell", "workspace_id", workspaceID, "error", err.Error())
		return
	}
	link := strings.TrimSuffix(n.BaseURL, "/") + "/console/workspaces/" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + "/billing"
	for _, m := range admins {
		if m.Email == "" {
			continue
		}
		data := mail.BillingNotice{Name: m.Name, WorkspaceName: ws.Name, Subject: fmt.Sprintf(what.subject, ws.Name),
			Paragraphs: what.paragraphs, ActionLabel: what.action, ActionURL: link}
		if what.action == "" {
			data.ActionURL = ""
		}
		msg, err := n.Templates.Message(mail.TemplateBillingNotice, []string{m.Email}, data)
		if err == nil {
			err = n.Mailer.Send(ctx, msg)
		}
		if err != nil {
			logger.ErrorContext(ctx, "billing notice: send", "workspace_id", workspaceID, "error", err.Error())
		}
	}
}

// noticeFor is the notice owed for a change of s, if any.
func noticeFor(change string, s Subscription, c *Catalog) (notice, bool) {
	day := func(t *time.Time) string {
		if t == nil {
			return "soon"
		}
		return t.UTC().Format("2 January 2006")
	}
	planName := s.PlanKey
	if p := c.Plan(s.PlanKey); p != nil {
		planName = p.Name
	}
	free := c.Default().Name
	switch change {
	case "trial_ending_3d", "trial_ending_1d":
		then := "the workspace goes back to the " + free + " plan. Nothing is deleted: everything above its limits is kept but cannot grow."
		if s.HasPaymentMethod {
			then = "the subscription starts and the payment method on file is charged."
		}
		return notice{subject: "The " + planName + " trial of %s ends on " + day(s.TrialEnd),
			paragraphs: []string{"The trial ends on " + day(s.TrialEnd) + ". Then " + then},
			action:     "Choose a plan"}, true
	case "trial_ended":
		return notice{subject: "The trial of %s has ended",
			paragraphs: []string{"The workspace is on the " + free + " plan now. Its data is kept; what is above the " + free +
				" plan's limits cannot grow until you upgrade."},
			action: "Upgrade"}, true
	case "past_due":
		return notice{subject: "A payment for %s failed",
			paragraphs: []string{"The latest payment for the " + planName + " plan failed. It is tried again automatically; " +
				"to avoid any interruption, check the payment method.",
				"If it stays unpaid, after 7 days the workspace keeps only the " + free + " plan's features, after 30 days it " +
					"becomes read-only, and after 60 days it is scheduled for deletion. A payment at any point restores everything."},
			action: "Update the payment method"}, true
	case "dunning_" + DunningDowngraded:
		return notice{subject: "%s is on the " + free + " plan's features until a payment goes through",
			paragraphs: []string{"The payment has been due for 7 days, so the workspace has only the " + free +
				" plan's features and limits for now. Nothing is deleted. Paying restores the " + planName + " plan at once.",
				"After 30 days unpaid the workspace becomes read-only."},
			action: "Pay now"}, true
	case "dunning_" + DunningSuspended:
		return notice{subject: "%s is read-only until a payment goes through",
			paragraphs: []string{"The payment has been due for 30 days, so the workspace is suspended: everything can be " +
				"read and exported, nothing can be changed. Paying restores it at once.",
				"After 60 days unpaid the workspace is scheduled for deletion."},
			action: "Pay now"}, true
	case "dunning_" + DunningDeletionScheduled:
		return notice{subject: "%s is scheduled for deletion",
			paragraphs: []string{"The payment has been due for 60 days, so the workspace is scheduled for deletion: it is " +
				"deleted for good in 30 days unless it is paid. Paying before then restores everything."},
			action: "Pay now"}, true
	case "payment_recovered":
		return notice{subject: "%s is paid up",
			paragraphs: []string{"The payment went through. Everything the " + planName + " plan includes is available again."}}, true
	}
	return notice{}, false
}
