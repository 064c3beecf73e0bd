package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// responseExcerpt is how much of an answer an attempt keeps.
	responseExcerpt = 1 << 10
	// responseDrain is how much more of an answer is read, so the
	// connection can be reused; a longer answer closes it instead.
	responseDrain = 64 << 10
	// userAgent names Atrium to receivers.
	userAgent = "Atrium-Webhooks/1"
)

// newClient is the HTTP client of deliveries: every connection through the
// guard, no proxy (a proxy would dial for us, unchecked), no redirect
// followed (a 3xx is a failed attempt), a limit on the whole exchange.
func newClient(g *Guard, timeout time.Duration) *http.Client {
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		// As many as deliveries run at once, so a busy endpoint keeps its
		// connections rather than opening one per delivery.
		MaxIdleConnsPerHost:    deliveryConcurrency,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Compressed answers would be inflated before the read limit applies.
		DisableCompression: true,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// outcome is what one attempt came to.
type outcome struct {
	statusCode int // 0 when no answer came
	duration   time.Duration
	err        string // why the attempt failed; empty on success
	body       string
}

func (o outcome) succeeded() bool { return o.statusCode >= 200 && o.statusCode < 300 }

// summary says in a few words how the attempt went, for logs and errors.
func (o outcome) summary() string {
	if o.statusCode != 0 {
		return fmt.Sprintf("answered %d", o.statusCode)
	}
	return o.err
}

// post sends body to rawURL with the headers of a signed delivery and
// reads at most responseExcerpt bytes of the answer.
func (s *Service) post(ctx context.Context, rawURL string, header http.Header, body []byte) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return outcome{err: "the URL cannot be requested"}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	started := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return outcome{duration: time.Since(started), err: describe(err, s.client.Timeout)}
	}
	defer resp.Body.Close()
	excerpt, readErr := io.ReadAll(io.LimitReader(resp.Body, responseExcerpt))
	if readErr == nil {
		_, _ = io.CopyN(io.Discard, resp.Body, responseDrain)
	}
	out := outcome{statusCode: resp.StatusCode, duration: time.Since(started), body: printable(excerpt)}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		out.err = fmt.Sprintf("answered %d: redirects are not followed", resp.StatusCode)
	case !out.succeeded():
		out.err = fmt.Sprintf("answered %d", resp.StatusCode)
	}
	return out
}

// describe turns a request error into words for the delivery log, without
// the URL (it may hold a credential, and the log names the endpoint).
func describe(err error, timeout time.Duration) string {
	var refused *refusedAddress
	var netErr interface{ Timeout() bool }
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return printable([]byte(err.Error()))
}

// printable is b as text a database column takes: valid UTF-8, no NUL, at
// most responseExcerpt bytes, cut between characters.
func printable(b []byte) string {
	s := strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\x00", "")
	if len(s) <= responseExcerpt {
		return s
	}
	cut := responseExcerpt
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
