package store

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strconv"

	"atrium/internal/kernel"
)

// ErrSystemFromRequest is returned when the system path is asked for from an
// HTTP request's context. Cross-tenant reads are for background work only.
var ErrSystemFromRequest = errors.New("store: the system path is not reachable from a request")

// EnterSystem is called by each dialect's System before it begins: it refuses a
// request context and logs the use with its reason and caller.
func EnterSystem(ctx context.Context, logger *slog.Logger, reason string) error {
	caller := "unknown"
	if _, file, line, ok := runtime.Caller(2); ok {
		caller = file + ":" + strconv.Itoa(line)
	}
	if kernel.InRequest(ctx) {
		logger.ErrorContext(ctx, "system path refused from a request", "reason", reason, "caller", caller, "request_id", kernel.RequestID(ctx))
		return kernel.Internal(ErrSystemFromRequest)
	}
	level := slog.LevelInfo
	if ctx.Value(pollingKey{}) != nil {
		level = slog.LevelDebug
	}
	logger.Log(ctx, level, "system path", "reason", reason, "caller", caller, "actor", kernel.ActorFrom(ctx).String())
	return nil
}

type pollingKey struct{}

// Polling marks ctx as a background loop's that enters the system path many
// times a second (the outbox relay, the scheduler's lease): its uses are
// logged at debug level rather than info, so the log keeps the uses a person
// would look for.
func Polling(ctx context.Context) context.Context {
	return context.WithValue(ctx, pollingKey{}, true)
}
