package app

import (
	"atrium/internal/events"
	"atrium/internal/events/catalog"
	"atrium/internal/events/realtime"
)

// initEventStream installs Atrium's event catalogue, which the outbox
// enforces from now on, and builds the hub that serves the workspaces' event
// streams. Event IDs are sealed with a key derived from the deployment's
// secret, so that every node of a deployment reads the IDs of the others.
func (a *App) initEventStream(secret string) error {
	events.UseCatalogue(catalog.Atrium)
	hub, err := realtime.New(realtime.Config{
		JS:              a.Bus.JS,
		Logger:          a.Logger,
		Key:             deriveKey(secret, "atrium/event-stream/v1"),
		MaxPerWorkspace: a.Config.SSEMaxPerWorkspace,
	})
	if err != nil {
		return err
	}
	a.Realtime = hub
	return nil
}
