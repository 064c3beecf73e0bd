package sqlitestore

import (
	"context"
	"database/sql"
	"errors"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"atrium/internal/kernel"
)

// mapErr translates database/sql and SQLite errors to kernel codes by the
// extended result code, never by message text. Context errors pass through.
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
	if errors.Is(err, sql.ErrNoRows) {
		return &kernel.Error{Code: kernel.CodeNotFound, Message: "record not found", Err: err}
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone) {
		return kernel.Internal(err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return kernel.Internal(err)
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return &kernel.Error{Code: kernel.CodeConflict, Message: "already exists", Err: err}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return &kernel.Error{Code: kernel.CodeConflict, Message: "a referenced record is missing or still in use", Err: err}
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG:
		return &kernel.Error{Code: kernel.CodeInvalid, Message: "a value is not acceptable", Err: err}
	case sqlite3.SQLITE_CONSTRAINT_TRIGGER: // RAISE(ABORT) from an append-only or tenant guard
		return &kernel.Error{Code: kernel.CodeForbidden, Message: "not allowed", Err: err}
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
		return &kernel.Error{Code: kernel.CodeForbidden, Message: "not allowed", Err: err}
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_SNAPSHOT, sqlite3.SQLITE_LOCKED:
		return &kernel.Error{Code: kernel.CodeConflict, Message: "the database is busy, try again", Err: err}
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
		return kernel.Unavailable("database", err)
	}
	switch se.Code() & 0xff { // primary result code of an extended code
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return kernel.Unavailable("database", err)
	case sqlite3.SQLITE_BUSY:
		return &kernel.Error{Code: kernel.CodeConflict, Message: "the database is busy, try again", Err: err}
	}
	return kernel.Internal(err)
}
