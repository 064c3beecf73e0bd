package app

import (
	"github.com/redis/go-redis/v9"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/usage"
	"atrium/internal/usage/redismeter"
	"atrium/internal/usage/storemeter"
)

// initUsage builds the usage meter and quotas over the plans' limits. The
// meter's counters live in the database, or in Redis (and the database as
// history) when ATRIUM_REDIS_URL is set. Its buffer is flushed when the app
// closes, before the store and Redis are.
func (a *App) initUsage(clock kernel.Clock, mailer mail.Mailer, client *redis.Client) error {
	var counters usage.Counters = storemeter.New(a.DB)
	if client != nil {
		counters = redismeter.New(client, a.DB, redismeter.Options{Logger: a.Logger})
	}
	templates, err := mail.LoadTemplates(productName)
	if err != nil {
		return err
	}
	svc, err := usage.New(usage.Config{DB: a.DB, Counters: counters, Limits: a.Services.Billing.Entitlements, Clock: clock,
		Logger: a.Logger, Mailer: mailer, Templates: templates, Directory: a.Services.Workspaces})
	if err != nil {
		return err
	}
	a.closers = append(a.closers, svc.Close)
	svc.Register(a.Events)
	a.Services.Usage = svc
	a.Services.Workspaces.WithSeats(svc)
	return nil
}
