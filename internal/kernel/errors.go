// Package kernel holds the vocabulary every other Atrium package shares: the
// error type and its codes, actors, identifiers, the clock and context helpers.
// It imports nothing from the rest of Atrium.
package kernel

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Code is one of a small, closed set of error codes. Clients switch on it; the
// HTTP layer turns it into a status through Status, the one table of the project.
type Code string

// The closed set of codes. Adding one means adding it to codeStatus below.
const (
	CodeInvalid              Code = "invalid"                   // the request is malformed or fails validation
	CodeUnauthenticated      Code = "unauthenticated"           // no valid credentials
	CodePaymentRequired      Code = "payment_required"          // the plan does not include this
	CodeQuotaExceeded        Code = "quota_exceeded"            // past a plan's quota: growth is refused, reading and deleting are not
	CodeForbidden            Code = "forbidden"                 // authenticated, but not allowed
	CodeEmailUnverified      Code = "email_unverified"          // the action needs a verified email address
	CodeReauthRequired       Code = "reauthentication_required" // the action needs a recent proof of identity
	CodeWorkspaceInactive    Code = "workspace_inactive"        // the workspace is deleted or suspended: reads only
	CodeNotFound             Code = "not_found"                 // no such thing, or not yours to see
	CodeMethodNotAllowed     Code = "method_not_allowed"        // the route exists for other methods
	CodeConflict             Code = "conflict"                  // clashes with the current state (duplicate, in flight)
	CodeTooLarge             Code = "too_large"                 // the body is over the limit
	CodeUnsupportedMediaType Code = "unsupported_media_type"    // the body is not JSON
	CodeUnprocessable        Code = "unprocessable"             // well-formed but cannot be applied (idempotency key reuse)
	CodeRateLimited          Code = "rate_limited"              // too many requests; see Retry-After
	CodeInternal             Code = "internal"                  // a fault of ours; details only in the log
	CodeUnavailable          Code = "unavailable"               // a backend is down; try again
)

// codeStatus is the one table mapping codes to HTTP statuses.
var codeStatus = map[Code]int{
	CodeInvalid:              http.StatusBadRequest,
	CodeUnauthenticated:      http.StatusUnauthorized,
	CodePaymentRequired:      http.StatusPaymentRequired,
	CodeQuotaExceeded:        http.StatusPaymentRequired,
	CodeForbidden:            http.StatusForbidden,
	CodeEmailUnverified:      http.StatusForbidden,
	CodeReauthRequired:       http.StatusForbidden,
	CodeWorkspaceInactive:    http.StatusForbidden,
	CodeNotFound:             http.StatusNotFound,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeConflict:             http.StatusConflict,
	CodeTooLarge:             http.StatusRequestEntityTooLarge,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeUnprocessable:        http.StatusUnprocessableEntity,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeInternal:             http.StatusInternalServerError,
	CodeUnavailable:          http.StatusServiceUnavailable,
}

// Status returns the HTTP status for the code; an unknown code is a 500.
func (c Code) Status() int {
	if s, ok := codeStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Codes returns every code in the closed set, for documentation and tests.
func Codes() []Code {
	out := make([]Code, 0, len(codeStatus))
	for c := range codeStatus {
		out = append(out, c)
	}
	return out
}

// Error is the one error type that crosses layers. Its Message is shown to the
// caller, so it must never carry internal detail; Fields names offending inputs
// (a JSON path such as "body.name" or a parameter such as "query.limit").
type Error struct {
	Code    Code
	Message string
	Fields  map[string]string
	// RetryAfter, when positive, tells a rate-limited or unavailable caller how
	// long to wait; the HTTP layer sends it as Retry-After (rounded up to seconds).
	RetryAfter time.Duration
	// Err is the cause, kept for logs and errors.Is; never shown to callers.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports one offending field.
func Invalid(field, message string) *Error {
	return &Error{Code: CodeInvalid, Message: message, Fields: map[string]string{field: message}}
}

// NotFound is the answer for something that does not exist or that the caller
// may not know exists; both must look the same.
func NotFound(what string) *Error {
	return &Error{Code: CodeNotFound, Message: what + " not found"}
}

// Internal wraps an unexpected cause. The caller sees only "internal error".
func Internal(err error) *Error {
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// Unavailable wraps a backend outage.
func Unavailable(what string, err error) *Error {
	return &Error{Code: CodeUnavailable, Message: what + " is unavailable, try again shortly", Err: err}
}

// As returns the *Error in err's chain, or an internal Error wrapping err when
// there is none. A nil err returns nil.
func As(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// CodeOf returns the code of err, CodeInternal for a foreign error and "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	return As(err).Code
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
