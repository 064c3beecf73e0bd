package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// Authenticator turns a request's credentials into an Actor. It returns the
// anonymous actor when there are none, and an unauthenticated *kernel.Error
// when there are some and they are not valid (an expired session, a revoked
// key): presenting bad credentials is never treated as presenting none.
type Authenticator interface {
	Authenticate(r *http.Request) (kernel.Actor, error)
}

// Anonymous is the Authenticator of a deployment with no credentials wired
// yet: every request is anonymous.
type Anonymous struct{}

func (Anonymous) Authenticate(*http.Request) (kernel.Actor, error) { return kernel.Actor{}, nil }

// WorkspaceAccess decides whether an actor may use a workspace, and with which
// role. It returns a not_found *kernel.Error when the workspace does not exist
// or the actor may not use it (the two must look the same), or another code
// when access is refused for a reason the caller may know. The role is ""
// for an actor admitted without one, such as an API key.
type WorkspaceAccess interface {
	Authorize(ctx context.Context, actor kernel.Actor, workspaceID uuid.UUID) (policy.Role, error)
}

// KeyBindingAccess admits API-key actors to the workspace their key is bound
// to and nobody else, with no role and no store read. It returns not_found
// for anyone else.
type KeyBindingAccess struct{}

func (KeyBindingAccess) Authorize(_ context.Context, actor kernel.Actor, workspaceID uuid.UUID) (policy.Role, error) {
	if actor.Kind == kernel.ActorAPIKey && actor.WorkspaceID == workspaceID {
		return "", nil
	}
	return "", kernel.NotFound("workspace")
}

// auth resolves the actor; nothing downstream trusts anything else.
func auth(a Authenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			actor, err := a.Authenticate(r)
			if err != nil {
				if !errors.Is(err, errStaleSession) {
					WriteError(w, r, err)
					return
				}
				if !credentialRoutes[r.URL.Path] {
					w.Header().Add("Set-Cookie", clearedSessionCookie())
					WriteError(w, r, err)
					return
				}
				actor = kernel.Actor{} // a stale cookie does not stop anyone logging in again
			}
			if !actor.IsAuthenticated() {
				next.ServeHTTP(w, r)
				return
			}
			stateFrom(r.Context()).actor = actor
			next.ServeHTTP(w, r.WithContext(kernel.WithActor(r.Context(), actor)))
		})
	}
}

// workspacePrefix starts every workspace-scoped route.
const workspacePrefix = "/api/v1/workspaces/"

// tenant resolves the workspace of a workspace-scoped route before any handler
// runs, and the caller's role in it for the policy. A malformed ID, an unknown
// workspace and a workspace the caller may not use all answer the same 404.
func tenant(access WorkspaceAccess) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, ok := workspaceSegment(r.URL.Path)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			ctx := r.Context()
			actor := kernel.ActorFrom(ctx)
			if !actor.IsAuthenticated() {
				WriteError(w, r, errNoActor)
				return
			}
			workspaceID, err := kernel.ParseID(kernel.PrefixWorkspace, raw)
			// A personal access token limited to one workspace sees no other.
			if err != nil || (actor.OnlyWorkspace != uuid.Nil && actor.OnlyWorkspace != workspaceID) {
				WriteError(w, r, kernel.NotFound("workspace"))
				return
			}
			role, err := access.Authorize(ctx, actor, workspaceID)
			if err != nil {
				WriteError(w, r, err)
				return
			}
			stateFrom(ctx).workspace = workspaceID
			ctx = policy.WithRole(kernel.WithWorkspace(ctx, workspaceID), workspaceID, role)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// workspaceSegment returns the {workspace_id} of a workspace-scoped path.
func workspaceSegment(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, workspacePrefix)
	if !ok || rest == "" {
		return "", false
	}
	seg, _, _ := strings.Cut(rest, "/")
	return seg, seg != ""
}

// csrf refuses cross-origin unsafe requests authenticated by a cookie, using
// the browser's Sec-Fetch-Site and Origin headers (net/http's
// CrossOriginProtection). Bearer credentials are not sent by browsers on their
// own, so they need no such check. The credential routes (sign-up, login,
// logout, verification) are checked whoever calls them: a cross-site form
// must not log a victim's browser into an attacker's account (login CSRF).
// Clients that are not browsers send neither header and pass.
func csrf(trustedOrigins []string) func(http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	for _, o := range trustedOrigins {
		_ = cop.AddTrustedOrigin(o) // validated by config
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if kernel.ActorFrom(r.Context()).Via == kernel.ViaCookie || strings.HasPrefix(r.URL.Path, authPrefix) {
				if err := cop.Check(r); err != nil {
					WriteError(w, r, &kernel.Error{Code: kernel.CodeForbidden, Message: "cross-origin request refused", Err: err})
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
