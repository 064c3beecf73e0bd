package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/httpapi/jsoncheck"
	"atrium/internal/kernel"
)

// maxJSONDepth bounds nesting in request bodies; no Atrium payload comes close.
const maxJSONDepth = 32

type bodyKey struct{}

// bodyFrom returns the request body bodyCheck read, or nil.
func bodyFrom(ctx context.Context) []byte {
	b, _ := ctx.Value(bodyKey{}).([]byte)
	return b
}

// bodyCheck reads the body of a request that has one, answering 413 over the
// limit, 415 when it is not JSON and 400 for malformed JSON, duplicate keys,
// trailing data or excessive nesting, all before any handler runs. The body is
// then served again from memory. Paths in rawBodyPaths are exempt (they verify
// their own bodies, such as signed provider webhooks).
func bodyCheck(limit int64, rawBodyPrefixes []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !hasBody(r) {
				next.ServeHTTP(w, r)
				return
			}
			for _, p := range rawBodyPrefixes {
				if strings.HasPrefix(r.URL.Path, p) {
					r.Body = http.MaxBytesReader(w, r.Body, limit)
					next.ServeHTTP(w, r)
					return
				}
			}
			if r.ContentLength > limit {
				WriteError(w, r, tooLarge(limit))
				return
			}
			if !isJSON(r.Header.Get("Content-Type")) {
				WriteError(w, r, &kernel.Error{Code: kernel.CodeUnsupportedMediaType,
					Message: "send the body as application/json", Fields: map[string]string{"header.Content-Type": "must be application/json"}})
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					WriteError(w, r, tooLarge(limit))
					return
				}
				WriteError(w, r, &kernel.Error{Code: kernel.CodeInvalid, Message: "could not read the request body", Err: err})
				return
			}
			if err := jsoncheck.Check(body, maxJSONDepth); err != nil {
				WriteError(w, r, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, body)))
		})
	}
}

func tooLarge(limit int64) *kernel.Error {
	return kernel.Errorf(kernel.CodeTooLarge, "request body is larger than %d bytes", limit)
}

// hasBody reports whether the request carries a body to check. GET, HEAD and
// OPTIONS bodies are not read by any handler.
func hasBody(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return r.ContentLength > 0 || (r.ContentLength == -1 && r.Body != nil && r.Body != http.NoBody)
}

func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return mt == "application/json" || mt == "application/merge-patch+json"
}

// rejectUnexpectedBody refuses a body sent to an operation that takes none:
// a client posting {"plan": "enterprise"} to the trial route must learn that
// nothing of it was read, not see a 200 and believe it applied. An empty
// body, or an empty JSON object, is accepted (some clients always send one).
func rejectUnexpectedBody(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if ctx.Operation().RequestBody != nil || ctx.Method() == http.MethodGet || ctx.Method() == http.MethodHead {
			next(ctx)
			return
		}
		raw, err := io.ReadAll(io.LimitReader(ctx.BodyReader(), 1024))
		if err != nil {
			huma.WriteErr(api, ctx, http.StatusBadRequest, "the request body could not be read")
			return
		}
		if body := bytes.TrimSpace(raw); len(body) > 0 && !bytes.Equal(bytes.Join(bytes.Fields(body), nil), []byte("{}")) {
			huma.WriteErr(api, ctx, http.StatusBadRequest, "this operation takes no request body",
				&huma.ErrorDetail{Location: "body", Message: "unexpected body: nothing in it would be read"})
			return
		}
		next(ctx)
	}
}
