package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"atrium/internal/idempotency"
	"atrium/internal/kernel"
)

// IdempotencyStore is what the Idempotency-Key middleware needs of storage.
// Begin hands the request that must run a Claim; Complete and Abandon act only
// while that Claim still holds the key, so a handler that outlived its lease
// cannot disturb the retry that took the key over.
type IdempotencyStore interface {
	Begin(ctx context.Context, scope, key, fingerprint string) (idempotency.Claim, *idempotency.Response, error)
	Complete(ctx context.Context, c idempotency.Claim, r idempotency.Response) error
	Abandon(ctx context.Context, c idempotency.Claim) error
}

// maxStoredResponse bounds the response kept for replay.
const maxStoredResponse = 1 << 20

// idempotent makes POST retries safe: the first request with a key runs and its
// response is stored; a retry with the same key and body gets that response
// again (with Idempotent-Replayed: true); the same key with another body is
// 422, and while the first is still running 409. Keys are scoped to the actor
// and workspace, so two callers never collide. Anonymous requests carry no
// scope and are not deduplicated.
func idempotent(s IdempotencyStore) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get("Idempotency-Key")
			actor := kernel.ActorFrom(r.Context())
			if r.Method != http.MethodPost || key == "" || !actor.IsAuthenticated() {
				next.ServeHTTP(w, r)
				return
			}
			if err := idempotency.ValidKey(key); err != nil {
				WriteError(w, r, err)
				return
			}
			ctx := r.Context()
			scope := idempotencyScope(ctx, actor)
			fp := fingerprint(r, bodyFrom(ctx))
			claim, stored, err := s.Begin(ctx, scope, key, fp)
			if err != nil {
				WriteError(w, r, err)
				return
			}
			if stored != nil {
				replay(w, *stored)
				return
			}
			rec := &recordingWriter{ResponseWriter: w}
			completed := false
			defer func() {
				// A panic (or anything else that skips Complete) releases the key
				// so a retry can run; the detached context survives a client
				// that hung up.
				if !completed {
					_ = s.Abandon(context.WithoutCancel(ctx), claim)
				}
			}()
			next.ServeHTTP(rec, r)
			if rec.overflow {
				// Too large to keep: release the key rather than replay half a body.
				return
			}
			err = s.Complete(context.WithoutCancel(ctx), claim, storable(ctx, rec))
			if err != nil {
				kernel.Logger(ctx).ErrorContext(ctx, "store idempotent response", "error", err.Error())
				return
			}
			completed = true
		})
	}
}

// storable is the response kept for replays of rec's request. A response that
// carries a secret shown once (showOnce) or sets a cookie (a new session
// token) is never kept: its replay is a 409 saying the first request
// succeeded and its answer cannot be shown again. The key stays used, so a
// retry never creates a second key or session either.
func storable(ctx context.Context, rec *recordingWriter) idempotency.Response {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	if status < 300 && (stateFrom(ctx).shownOnce || len(rec.Header().Values("Set-Cookie")) > 0) {
		body, _ := json.Marshal(envelope(ctx, &kernel.Error{Code: kernel.CodeConflict,
			Message: "the request with this Idempotency-Key succeeded; its answer held a secret shown only once and is not kept"}))
		return idempotency.Response{Status: http.StatusConflict, ContentType: "application/json", Body: body}
	}
	return idempotency.Response{Status: status, ContentType: rec.Header().Get("Content-Type"), Body: rec.buf.Bytes()}
}

func idempotencyScope(ctx context.Context, actor kernel.Actor) string {
	scope := actor.String()
	if ws, ok := kernel.WorkspaceFrom(ctx); ok && ws != uuid.Nil {
		scope += "|" + kernel.FormatID(kernel.PrefixWorkspace, ws)
	}
	return scope
}

// fingerprint identifies a request by method, path, query and body.
func fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func replay(w http.ResponseWriter, resp idempotency.Response) {
	h := w.Header()
	if resp.ContentType != "" {
		h.Set("Content-Type", resp.ContentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// recordingWriter passes a response through while keeping a copy.
type recordingWriter struct {
	http.ResponseWriter
	status   int
	buf      bytes.Buffer
	overflow bool
}

func (w *recordingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.overflow {
		if w.buf.Len()+len(b) > maxStoredResponse {
			w.overflow = true
			w.buf.Reset()
		} else {
			w.buf.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
