package kernel

import (
	"context"
	"log/slog"
)

// ContextHandler wraps a slog.Handler so that every record logged with a context
// carries that context's request ID and workspace. The attributes are added
// when a line is written, not when a request starts, so a request that logs
// nothing pays nothing for them.
type ContextHandler struct {
	inner slog.Handler
}

// NewContextHandler returns inner enriched from the context of each record.
func NewContextHandler(inner slog.Handler) *ContextHandler { return &ContextHandler{inner: inner} }

func (h *ContextHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := RequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if ws, ok := WorkspaceFrom(ctx); ok {
			r.AddAttrs(slog.String("workspace_id", FormatID(PrefixWorkspace, ws)))
		}
	}
	return h.inner.Handle(ctx, r)
}

func (h *ContextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &ContextHandler{inner: h.inner.WithAttrs(attrs)}
}

func (h *ContextHandler) WithGroup(name string) slog.Handler {
	return &ContextHandler{inner: h.inner.WithGroup(name)}
}
