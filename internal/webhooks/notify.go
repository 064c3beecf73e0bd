package webhooks

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"atrium/internal/mail"
)

// notifyDisabled emails the owners and admins of the endpoint's workspace
// that Atrium disabled it, one message each. It runs once per disabling,
// after the transaction that disabled it. Failures are logged, not
// returned: the endpoint is disabled either way, and its state says why.
func (s *Service) notifyDisabled(ctx context.Context, ep Endpoint, reason string) {
	logger := s.logger.With("endpoint_id", endpointAPIID(ep.ID), "reason", reason)
	logger.WarnContext(ctx, "webhook endpoint disabled")
	if s.mailer == nil || s.templates == nil || s.directory == nil {
		return
	}
	// The job's context may be near its end; the notice is owed regardless.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ws, admins, err := s.directory.Admins(ctx, ep.WorkspaceID)
	if err != nil {
		logger.ErrorContext(ctx, "webhook endpoint disabled: find whom to tell", "error", err.Error())
		return
	}
	for _, m := range admins {
		if m.Email == "" {
			continue
		}
		msg, err := s.templates.Message(mail.TemplateWebhookDisabled, []string{m.Email}, mail.WebhookDisabled{
			Name: m.Name, WorkspaceName: ws.Name, EndpointID: endpointAPIID(ep.ID), EndpointURL: withoutQuery(ep.URL),
			Reason: reasonWords(reason, s.disableAfter)})
		if err == nil {
			err = s.mailer.Send(ctx, msg)
		}
		if err != nil {
			logger.ErrorContext(ctx, "webhook endpoint disabled: send notice", "error", err.Error())
		}
	}
}

// reasonWords completes "Atrium disabled it because …".
func reasonWords(reason string, after time.Duration) string {
	if reason == DisabledGone {
		return "its receiver answered 410 Gone, which asks for no more deliveries"
	}
	days := int(after / (24 * time.Hour))
	if days >= 1 {
		return fmt.Sprintf("it kept failing for %d days without a single success", days)
	}
	return "it kept failing for " + after.String() + " without a single success"
}

// withoutQuery is a URL as a notice shows it: its query may hold a
// credential.
func withoutQuery(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.RawQuery, u.ForceQuery = "", false
	return u.String()
}
