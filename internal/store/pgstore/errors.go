package pgstore

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"atrium/internal/kernel"
)

// mapErr translates pgx and server errors to kernel codes by SQLSTATE, never
// by message text. Context errors pass through untouched.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ke *kernel.Error
	if errors.As(err, &ke) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &kernel.Error{Code: kernel.CodeNotFound, Message: "record not found", Err: err}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return mapPgError(pe)
	}
	if isConnectionError(err) {
		return kernel.Unavailable("database", err)
	}
	return kernel.Internal(err)
}

func mapPgError(pe *pgconn.PgError) error {
	switch pe.Code {
	case "23505": // unique_violation
		return &kernel.Error{Code: kernel.CodeConflict, Message: "already exists", Err: pe}
	case "23503": // foreign_key_violation
		return &kernel.Error{Code: kernel.CodeConflict, Message: "a referenced record is missing or still in use", Err: pe}
	case "23514", "23502", "22001", "22P02", "22003", "22007", "22008", "22021", "22P05":
		// check, not null, too long, bad text, out of range, bad datetime, bad or untranslatable character
		return &kernel.Error{Code: kernel.CodeInvalid, Message: "a value is not acceptable", Err: pe}
	case "42501", "23001": // insufficient_privilege (RLS, grants), restrict_violation (append-only)
		return &kernel.Error{Code: kernel.CodeForbidden, Message: "not allowed", Err: pe}
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return &kernel.Error{Code: kernel.CodeConflict, Message: "concurrent update, try again", Err: pe}
	case "57P01", "57P02", "57P03", "53300": // shutdown, crash, cannot connect now, too many connections
		return kernel.Unavailable("database", pe)
	}
	if len(pe.Code) == 2+3 && pe.Code[:2] == "08" { // connection_exception class
		return kernel.Unavailable("database", pe)
	}
	return kernel.Internal(pe)
}

func isConnectionError(err error) bool {
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}
