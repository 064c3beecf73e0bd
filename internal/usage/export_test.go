package usage

import (
	"context"

	"atrium/internal/events"
)

// MailWarning is the usage.warning subscriber, as the events runtime calls it.
func MailWarning(ctx context.Context, s *Service, e events.Envelope) error {
	return s.mailWarning(ctx, e)
}
