package kernel

import (
	"context"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

type (
	requestIDKey struct{}
	loggerKey    struct{}
	workspaceKey struct{}
	requestKey   struct{}
	clientKey    struct{}
)

// Client describes where a request came from, for audit entries.
type Client struct {
	IP        string
	UserAgent string
}

// WithRequestID returns ctx carrying the request ID and marked as a request
// context (see InRequest).
func WithRequestID(ctx context.Context, id string) context.Context {
	ctx = context.WithValue(ctx, requestKey{}, true)
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// InRequest reports whether ctx belongs to an HTTP request. The store's system
// path refuses such contexts, so no handler can reach cross-tenant data.
func InRequest(ctx context.Context) bool {
	v, _ := ctx.Value(requestKey{}).(bool)
	return v
}

// WithClient returns ctx carrying the caller's address and user agent.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the client in ctx, or the zero Client.
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// WithLogger returns ctx carrying a logger enriched for this request or job.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger returns the logger in ctx, or slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// WithWorkspace returns ctx carrying the workspace the Tenant middleware resolved.
func WithWorkspace(ctx context.Context, id uuid.UUID) context.Context {
	return context.WithValue(ctx, workspaceKey{}, id)
}

// WorkspaceFrom returns the resolved workspace, and whether there is one.
func WorkspaceFrom(ctx context.Context) (uuid.UUID, bool) {
	id, ok := ctx.Value(workspaceKey{}).(uuid.UUID)
	return id, ok
}

// BoundedText makes client-supplied text safe to store: valid UTF-8 (headers
// may carry any byte; PostgreSQL text may not) and at most n bytes, cut on a
// character boundary.
func BoundedText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
