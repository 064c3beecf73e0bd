package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
)

// requestState is filled in as a request passes down the chain (the route, the
// actor, the workspace) and read on the way back up by the logger and tracer.
type requestState struct {
	route     string
	actor     kernel.Actor
	workspace uuid.UUID
	// shownOnce marks a response that carries a secret shown only this once
	// (a new API key, a TOTP secret, backup codes): it is never stored for
	// Idempotency-Key replays.
	shownOnce bool
}

// showOnce marks the response to ctx's request as carrying a secret that must
// be shown this once and kept nowhere, not even for idempotent replays.
func showOnce(ctx context.Context) { stateFrom(ctx).shownOnce = true }

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	s, _ := ctx.Value(stateKey{}).(*requestState)
	if s == nil {
		return &requestState{} // a throwaway, for handlers mounted outside the chain
	}
	return s
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines (for SSE later).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recovery turns a panic into a 500 envelope, logged once with its stack, and
// keeps the server serving. It runs before the request ID exists, so it reads
// the ID back from the response header the next middleware sets.
// http.ErrAbortHandler passes through, as net/http expects.
func recovery(base *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w}
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if p == http.ErrAbortHandler {
					panic(p)
				}
				id := w.Header().Get("X-Request-ID")
				base.ErrorContext(r.Context(), "panic serving request", "request_id", id,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					ctx := kernel.WithRequestID(r.Context(), id)
					WriteError(sw, r.WithContext(ctx), &kernel.Error{Code: kernel.CodeInternal, Message: "internal error"})
				}
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:\-]{1,128}$`)

// requestID accepts a well-formed inbound X-Request-ID or mints one, puts it in
// the context (marking the context as a request's) and echoes it. It also sets
// the headers every response carries.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if id == "" || !validRequestID.MatchString(id) {
			id = kernel.FormatID(kernel.PrefixRequest, kernel.NewID())
		}
		h := w.Header()
		// Canonical keys assigned directly: these run on every response.
		h["X-Request-Id"] = []string{id}
		// API answers are per caller and often private: never cached, never sniffed.
		h["Cache-Control"] = []string{"no-store"}
		h["X-Content-Type-Options"] = []string{"nosniff"}
		ctx := kernel.WithRequestID(r.Context(), id)
		ctx = context.WithValue(ctx, stateKey{}, &requestState{})
		ctx = authcache.WithRequestScope(ctx) // one auth-epoch read per request on SQLite
		ctx = kernel.WithClient(ctx, kernel.Client{IP: clientIP(r), UserAgent: kernel.BoundedText(r.UserAgent(), 512)})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// clientIP is the peer address. Behind a proxy, the operator's proxy must be
// trusted explicitly (a later issue adds ATRIUM_TRUSTED_PROXIES); until then
// forwarded headers are ignored, since any client can forge them.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// logger puts the base logger in the context (its handler adds the request and
// workspace IDs to each line) and writes one access line when the request ends. The path is logged without its query string, which may carry
// tokens.
func logger(base *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ctx := r.Context()
			l := base // its handler adds request_id and workspace_id from ctx (kernel.ContextHandler)
			ctx = kernel.WithLogger(ctx, l)
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(ctx))
			st := stateFrom(ctx)
			level := slog.LevelInfo
			switch {
			case sw.status >= 500:
				level = slog.LevelError
			case st.route == "GET /healthz" || st.route == "GET /readyz":
				level = slog.LevelDebug
			}
			if !l.Enabled(ctx, level) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", st.route),
				slog.Int("status", sw.status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("actor", st.actor.String()),
			}
			if st.workspace != uuid.Nil {
				// The handler cannot see it: the workspace was added to a context
				// further down the chain.
				attrs = append(attrs, slog.String("workspace_id", kernel.FormatID(kernel.PrefixWorkspace, st.workspace)))
			}
			l.LogAttrs(ctx, level, "request", attrs...)
		})
	}
}

// tracing opens a server span per request, continuing a W3C traceparent when
// one is sent. With no exporter configured the tracer is a no-op.
func tracing(tracer trace.Tracer) func(http.Handler) http.Handler {
	if tracer == nil {
		return nil
	}
	prop := propagation.TraceContext{}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			if !span.IsRecording() {
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(ctx))
			st := stateFrom(ctx)
			span.SetName(r.Method + " " + strings.TrimPrefix(st.route, r.Method+" "))
			span.SetAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("http.route", st.route),
				attribute.Int("http.response.status_code", sw.status),
				attribute.String("atrium.request_id", kernel.RequestID(ctx)),
			)
			if sw.status >= 500 {
				span.SetStatus(codes.Error, "")
			}
		})
	}
}

// cors answers cross-origin requests from the allow-list only. Credentials are
// allowed for listed origins; every other origin gets no CORS headers at all,
// so the browser blocks it.
func cors(origins []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			allowed := slices.Contains(origins, origin)
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if preflight {
				h.Add("Vary", "Access-Control-Request-Method")
				h.Add("Vary", "Access-Control-Request-Headers")
				if !allowed {
					WriteError(w, r, &kernel.Error{Code: kernel.CodeForbidden, Message: "origin not allowed"})
					return
				}
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Credentials", "true")
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, X-Request-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if allowed {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Credentials", "true")
				h.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Idempotent-Replayed")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// errNoActor is what the tenant check answers an anonymous caller.
var errNoActor = &kernel.Error{Code: kernel.CodeUnauthenticated, Message: "authentication required"}
