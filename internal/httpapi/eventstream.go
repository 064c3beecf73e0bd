package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/google/uuid"

	"atrium/internal/events/catalog"
	"atrium/internal/events/realtime"
	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// streamWriteTimeout bounds one write to an event stream: a client that does
// not take a message (or a heartbeat) within it is cut off, and resumes with
// Last-Event-ID when it can. It replaces the server's WriteTimeout, which
// would end every stream a minute after it opened.
const streamWriteTimeout = 10 * time.Second

// subscribeWait bounds how long a stream waits for the node's hub to read the
// event stream (at start-up, or while NATS is away) before answering 503.
const subscribeWait = 5 * time.Second

// streamDescription documents the event stream in the OpenAPI document.
const streamDescription = "Every member, and API keys: the workspace's events as they happen, as Server-Sent Events " +
	"(`text/event-stream`, for the browser's EventSource). Each message's `data` is the event's envelope, " +
	"`{id, type, workspace_id, created_at, data}`, exactly as webhook endpoints receive it; the webhooks of " +
	"this document list every event type and its data. The stream sends `: ping` comment lines when idle (about " +
	"every 15 s), and ends when the caller's access to the workspace does (within the same interval). " +
	"To resume after a disconnection, send the last `id` received as the Last-Event-ID header (EventSource does " +
	"this by itself) or the last_event_id parameter: the events after it are sent first, then the stream goes on " +
	"live, without gaps or repeats. Events are kept for 7 days; resuming from an older one starts with the " +
	"oldest kept. A malformed ID, or one of another workspace, answers 400. Each workspace may hold a limited " +
	"number of streams on each server; beyond it the answer is 429 with Retry-After. While the server cannot " +
	"reach the event bus (NATS) the answer is 503."

type eventStreamInput struct {
	workspacePath
	LastEventID    string `header:"Last-Event-ID" doc:"The id of the last event received: the stream starts with the events after it. Browsers' EventSource sends it when they reconnect."`
	LastEventQuery string `query:"last_event_id" doc:"The same as Last-Event-ID, for clients that cannot set headers; the header wins when both are sent"`
}

// eventStream serves GET …/events/stream.
type eventStream struct {
	hub    *realtime.Hub
	auth   Authenticator
	access WorkspaceAccess
}

// registerEvents documents the event catalogue and, with a hub, serves the
// event stream.
func registerEvents(api huma.API, events *catalog.Catalog, hub *realtime.Hub, auth Authenticator, access WorkspaceAccess) {
	types := events.Types()
	envelopes := documentEvents(api, types)
	if hub == nil {
		return
	}
	s := eventStream{hub: hub, auth: auth, access: access}
	huma.Register(api, huma.Operation{
		OperationID: "stream-events", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/events/stream",
		Summary: "Stream the workspace's events", Tags: []string{"Events"}, Security: bearerOrSession,
		Description: streamDescription,
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests,
			http.StatusServiceUnavailable},
		Responses: map[string]*huma.Response{"200": streamResponse(envelopes, types)},
	}, func(ctx context.Context, in *eventStreamInput) (*huma.StreamResponse, error) {
		res, err := resourceFrom(ctx)
		if err != nil {
			return nil, err
		}
		if err := policy.Check(kernel.ActorFrom(ctx), policy.EventStream, res); err != nil {
			return nil, err
		}
		after, err := s.resumePoint(res.Workspace, in)
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) { s.serve(hctx, res.Workspace, after) }}, nil
	})
}

// resumePoint returns the stream sequence to resume after, 0 for none. It
// returns an invalid *kernel.Error naming the parameter when the ID is not
// one of this workspace's.
func (s eventStream) resumePoint(workspaceID uuid.UUID, in *eventStreamInput) (uint64, error) {
	switch {
	case in.LastEventID != "":
		return s.hub.ParseEventID("header.Last-Event-ID", workspaceID, in.LastEventID)
	case in.LastEventQuery != "":
		return s.hub.ParseEventID("query.last_event_id", workspaceID, in.LastEventQuery)
	}
	return 0, nil
}

// serve holds one stream open: it takes a place in the workspace's limit
// (or answers 429), sends the headers and runs the subscription until it
// ends.
func (s eventStream) serve(hctx huma.Context, workspaceID uuid.UUID, after uint64) {
	r, w := humago.Unwrap(hctx)
	wait, cancel := context.WithTimeout(r.Context(), subscribeWait)
	sub, err := s.hub.Subscribe(wait, workspaceID)
	cancel()
	if err != nil {
		if kernel.IsCode(err, kernel.CodeRateLimited) {
			w.Header().Set("X-RateLimit-Limit", strconv.Itoa(s.hub.MaxPerWorkspace()))
			w.Header().Set("X-RateLimit-Remaining", "0")
		}
		WriteError(w, r, err)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	// The server's ReadTimeout would cancel the request's context half a
	// minute in; a stream reads nothing after its headers.
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		WriteError(w, r, kernel.Internal(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(p []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
		return rc.Flush()
	}
	err = sub.Serve(r.Context(), send, realtime.ServeOptions{After: after, StillAllowed: s.stillAllowed(r, workspaceID)})
	logStreamEnd(r.Context(), err)
}

// stillAllowed checks the caller again as the spine did when the stream
// opened: the same credentials through the same authenticator and the same
// workspace access, then the policy. Each check reads the auth epoch afresh
// (a new request scope), so a revoked session or key, a removed member or a
// deleted account ends the stream at the next heartbeat.
func (s eventStream) stillAllowed(r *http.Request, workspaceID uuid.UUID) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx = authcache.WithRequestScope(ctx)
		actor, err := s.auth.Authenticate(r.WithContext(ctx))
		if err != nil {
			return err
		}
		if !actor.IsAuthenticated() {
			return errNoActor
		}
		role, err := s.access.Authorize(ctx, actor, workspaceID)
		if err != nil {
			return err
		}
		return policy.Check(actor, policy.EventStream, policy.Resource{Workspace: workspaceID, Role: role})
	}
}

// logStreamEnd logs why a stream ended when it is worth a line: the access
// log already records every stream with its duration.
func logStreamEnd(ctx context.Context, err error) {
	logger := kernel.Logger(ctx)
	switch code := kernel.CodeOf(err); {
	case err == nil, errors.Is(err, realtime.ErrClosed):
	case code == kernel.CodeUnauthenticated, code == kernel.CodeNotFound, code == kernel.CodeForbidden:
		logger.InfoContext(ctx, "event stream ended: access withdrawn", "code", code)
	case code == kernel.CodeUnavailable:
		logger.WarnContext(ctx, "event stream ended: the event stream is unavailable", "error", err.Error())
	default:
		logger.DebugContext(ctx, "event stream ended", "error", err.Error())
	}
}
