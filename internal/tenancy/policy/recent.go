package policy

import (
	"time"

	"atrium/internal/kernel"
)

// RecentAuthWindow is how long after proving who they are (a login, or
// POST /api/v1/auth/reauthenticate) a person may take the privileged actions:
// changing their email address or second factor, creating API keys and
// personal access tokens, deleting a workspace or their own account. GitHub's "sudo mode" and
// Stripe's dashboard ask again on the same kind of bound; 15 minutes keeps a
// borrowed, unlocked laptop from being enough.
const RecentAuthWindow = 15 * time.Minute

// RequireRecentAuth returns nil when actor proved who they are within
// RecentAuthWindow before now, and otherwise a reauthentication_required
// *kernel.Error (403). Only a session carries such a proof: a personal access
// token or an API key never does, so tokens cannot take privileged actions,
// however they were scoped. A stolen token cannot mint further credentials
// nor lock its owner out.
func RequireRecentAuth(actor kernel.Actor, now time.Time) error {
	if actor.Kind == kernel.ActorUser && actor.Via == kernel.ViaCookie && !actor.AuthenticatedAt.IsZero() &&
		now.Sub(actor.AuthenticatedAt) < RecentAuthWindow {
		return nil
	}
	msg := "confirm it is you: re-authenticate (POST /api/v1/auth/reauthenticate), then try again"
	if actor.Via != kernel.ViaCookie {
		msg = "this action needs a signed-in session that re-authenticated recently; tokens and API keys cannot take it"
	}
	return &kernel.Error{Code: kernel.CodeReauthRequired, Message: msg}
}
