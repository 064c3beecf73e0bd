package app

import (
	"fmt"
	"log/slog"

	"atrium/internal/config"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/webhooks"
)

// newWebhooks builds the webhooks service, sealing endpoint secrets under
// key, and registers its fan-out and delivery job on rt, which must not be
// running yet. directory names whom to tell when an endpoint is disabled.
func newWebhooks(cfg config.Config, db store.DB, clock kernel.Clock, logger *slog.Logger, key []byte,
	mailer mail.Mailer, directory webhooks.Directory, rt *events.Runtime) (*webhooks.Service, error) {
	templates, err := mail.LoadTemplates(productName)
	if err != nil {
		return nil, err
	}
	if cfg.WebhookAllowPrivate {
		logger.Warn("webhooks may reach loopback and private addresses (ATRIUM_WEBHOOK_ALLOW_PRIVATE): for development and tests only")
	}
	svc, err := webhooks.New(webhooks.Config{DB: db, Key: key, Guard: webhooks.NewGuard(cfg.WebhookAllowPrivate, nil),
		Mailer: mailer, Templates: templates, Directory: directory, Logger: logger, Clock: clock})
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	svc.Register(rt)
	return svc, nil
}
