package testkit

import (
	"io"
	"log/slog"
)

// DiscardLogger is a logger for tests that do not read the log.
func DiscardLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}
