package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/kernel"
)

// ErrorEnvelope is the one error body of the whole API:
// {"error":{"code","message","fields","request_id"}}.
type ErrorEnvelope struct {
	Detail ErrorBody `json:"error"`
	status int
}

// ErrorBody is the inside of the envelope.
type ErrorBody struct {
	Code      string            `json:"code" doc:"Machine-readable error code, one of a closed set" example:"not_found"`
	Message   string            `json:"message" doc:"Human-readable explanation" example:"workspace not found"`
	Fields    map[string]string `json:"fields,omitempty" doc:"Offending inputs by location, such as body.name or query.limit"`
	RequestID string            `json:"request_id" doc:"The request's ID, also in the X-Request-ID header" example:"req_01h455vb4pex5vsknk084sn02q"`
}

// Error makes the envelope an error for huma.
func (e *ErrorEnvelope) Error() string { return e.Detail.Code + ": " + e.Detail.Message }

// GetStatus makes the envelope a huma.StatusError.
func (e *ErrorEnvelope) GetStatus() int { return e.status }

// envelope renders err for a caller. Anything that is not a *kernel.Error is
// internal: it is logged with the request ID and shown to nobody.
func envelope(ctx context.Context, err error) *ErrorEnvelope {
	ke := kernel.As(err)
	if (ke.Code == kernel.CodeInternal || ke.Code == kernel.CodeUnavailable) && ke.Err != nil {
		kernel.Logger(ctx).ErrorContext(ctx, "request failed", "code", ke.Code, "error", err.Error())
	}
	message := ke.Message
	if ke.Code == kernel.CodeInternal {
		message = "internal error"
	}
	return &ErrorEnvelope{
		status: ke.Code.Status(),
		Detail: ErrorBody{
			Code:      string(ke.Code),
			Message:   message,
			Fields:    ke.Fields,
			RequestID: kernel.RequestID(ctx),
		},
	}
}

// WriteError writes err as the envelope with its status.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	env := envelope(r.Context(), err)
	if after := retryAfter(kernel.As(err)); after != "" && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", after)
	}
	writeJSON(w, env.status, env)
}

// retryAfter is the Retry-After value for e in whole seconds, rounded up: the
// error's own RetryAfter, or 1 for a rate-limited or unavailable answer that
// names none; "" for every other error.
func retryAfter(e *kernel.Error) string {
	if e.Code != kernel.CodeRateLimited && e.Code != kernel.CodeUnavailable {
		return ""
	}
	seconds := int64(1)
	if e.RetryAfter > 0 {
		seconds = int64((e.RetryAfter + time.Second - 1) / time.Second)
	}
	return strconv.FormatInt(seconds, 10)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"internal error","request_id":""}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// hookHumaErrors makes huma render every error it raises (validation, body
// parsing, a handler's returned error) as the envelope. Huma's schema
// validation answers 422; Atrium answers malformed input with 400 naming the
// field, and keeps 422 for a well-formed request that cannot be applied.
func hookHumaErrors() {
	huma.NewErrorWithContext = func(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		if status == 0 && hctx == nil {
			return &ErrorEnvelope{} // huma asking for the error type, for the OpenAPI schema
		}
		ctx := context.Background()
		if hctx != nil {
			ctx = hctx.Context()
		}
		cause := humaError(status, msg, errs)
		env := envelope(ctx, cause)
		if after := retryAfter(kernel.As(cause)); hctx != nil && after != "" {
			hctx.SetHeader("Retry-After", after)
		}
		return env
	}
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		return huma.NewErrorWithContext(nil, status, msg, errs...)
	}
}

// humaError turns huma's status, message and details into a *kernel.Error.
func humaError(status int, msg string, errs []error) error {
	for _, e := range errs {
		var ke *kernel.Error
		if errors.As(e, &ke) {
			return ke
		}
	}
	fields := map[string]string{}
	for _, e := range errs {
		var d *huma.ErrorDetail
		if errors.As(e, &d) && d.Location != "" {
			if prev, ok := fields[d.Location]; ok {
				fields[d.Location] = prev + "; " + d.Message
			} else {
				fields[d.Location] = d.Message
			}
		}
	}
	if len(fields) == 0 {
		fields = nil
	}
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return &kernel.Error{Code: kernel.CodeInvalid, Message: validationMessage(fields, msg), Fields: fields}
	case http.StatusRequestEntityTooLarge:
		return &kernel.Error{Code: kernel.CodeTooLarge, Message: "request body is too large"}
	case http.StatusUnsupportedMediaType:
		return &kernel.Error{Code: kernel.CodeUnsupportedMediaType, Message: "send the body as application/json"}
	case http.StatusNotFound:
		return kernel.NotFound("route")
	case http.StatusMethodNotAllowed:
		return &kernel.Error{Code: kernel.CodeMethodNotAllowed, Message: "method not allowed"}
	}
	if status >= 500 || status == 0 {
		cause := errors.New(msg)
		if len(errs) > 0 {
			cause = errors.Join(errs...)
		}
		return kernel.Internal(cause)
	}
	return &kernel.Error{Code: kernel.CodeInvalid, Message: msg, Fields: fields}
}

func validationMessage(fields map[string]string, fallback string) string {
	if len(fields) == 1 {
		for loc, m := range fields {
			return loc + ": " + m
		}
	}
	if len(fields) > 1 {
		return "the request has " + strconv.Itoa(len(fields)) + " invalid fields"
	}
	if fallback == "" {
		return "invalid request"
	}
	return strings.ToUpper(fallback[:1]) + fallback[1:]
}
