package kernel

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// ActorKind says who is acting.
type ActorKind string

const (
	ActorAnonymous ActorKind = ""        // nobody authenticated
	ActorUser      ActorKind = "user"    // a person, by session or personal access token
	ActorAPIKey    ActorKind = "api_key" // a workspace API key
	ActorSystem    ActorKind = "system"  // Atrium itself: jobs, the scheduler, migrations
)

// Via says how an actor proved who it is; CSRF checks apply to cookies only.
type Via string

const (
	ViaNone    Via = ""
	ViaCookie  Via = "cookie"
	ViaBearer  Via = "bearer"
	ViaProcess Via = "process" // in-process work, no credentials
)

// Actor is the authenticated principal of a request or a job. The Auth middleware
// is the only code that creates one from a request; nothing else is trusted.
type Actor struct {
	Kind ActorKind
	ID   uuid.UUID
	Via  Via
	// WorkspaceID binds an API key to its workspace; uuid.Nil for users.
	WorkspaceID uuid.UUID
	// SessionID is the session a user proved themselves with (Via cookie), so
	// that logout can end it and a session list can mark it; uuid.Nil otherwise.
	SessionID uuid.UUID
	// Scopes are what an API key may do; the policy grants an API-key actor
	// nothing beyond them. Unused for other kinds.
	Scopes Scopes
	// OnlyWorkspace confines a user acting through a personal access token
	// limited to one workspace: the tenant middleware answers 404 for any
	// other. uuid.Nil means no such limit.
	OnlyWorkspace uuid.UUID
	// AuthenticatedAt is when the person last proved who they are in this
	// session (login or re-authentication), for actions that need a recent
	// proof; zero for every actor that did not come with a session.
	AuthenticatedAt time.Time
}

// Scopes is a set of API-key scopes, as bits, so that Actor stays comparable.
type Scopes uint8

// The API-key scopes; their names are "read" and "write".
const (
	ScopeRead Scopes = 1 << iota
	ScopeWrite
)

// Has reports whether every scope of x is in s.
func (s Scopes) Has(x Scopes) bool { return x != 0 && s&x == x }

// SystemActor is the actor of Atrium's own background work.
var SystemActor = Actor{Kind: ActorSystem, Via: ViaProcess}

// IsAuthenticated reports whether anyone is acting.
func (a Actor) IsAuthenticated() bool { return a.Kind != ActorAnonymous }

// String renders the actor for logs and audit entries, e.g. "user:usr_…".
func (a Actor) String() string {
	switch a.Kind {
	case ActorUser:
		return "user:" + FormatID(PrefixUser, a.ID)
	case ActorAPIKey:
		return "api_key:" + FormatID(PrefixAPIKey, a.ID)
	case ActorSystem:
		return "system"
	default:
		return "anonymous"
	}
}

type actorKey struct{}

// WithActor returns ctx carrying the actor.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx, or the anonymous actor.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	return a
}
