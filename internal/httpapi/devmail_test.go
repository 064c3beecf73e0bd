package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestDevMailbox(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ctx := context.Background()
		for i, to := range []string{"ada@example.com", "Grace <grace@example.org>", "ada@example.com"} {
			err := f.app.Services.Mailbox.Send(ctx, mail.Message{To: []string{to}, Subject: fmt.Sprintf("Message %d", i),
				Text: "Hello\n", HTML: `<p style="color:red">Hello</p><script>alert(1)</script>`, Tag: "hello"})
			if err != nil {
				t.Fatal(err)
			}
		}

		r := call(t, f.url, "GET", "/dev/mailbox", nil, "")
		items, _ := r.body["items"].([]any)
		if r.status != 200 || len(items) != 3 || r.body["has_more"] != false {
			t.Fatalf("list: %d %s", r.status, r.raw)
		}
		newest := items[0].(map[string]any)
		if newest["subject"] != "Message 2" || newest["text"] != "Hello\n" || newest["tag"] != "hello" ||
			!strings.HasPrefix(newest["id"].(string), "msg_") || newest["created_at"] == nil {
			t.Fatalf("newest message: %v", newest)
		}

		r = call(t, f.url, "GET", "/dev/mailbox?limit=2", nil, "")
		if items, _ := r.body["items"].([]any); r.status != 200 || len(items) != 2 || r.body["has_more"] != true {
			t.Fatalf("limit=2: %d %s", r.status, r.raw)
		}
		r = call(t, f.url, "GET", "/dev/mailbox?to=GRACE@example.org", nil, "")
		if items, _ := r.body["items"].([]any); r.status != 200 || len(items) != 1 || items[0].(map[string]any)["subject"] != "Message 1" {
			t.Fatalf("to=grace: %d %s", r.status, r.raw)
		}
		r = call(t, f.url, "GET", "/dev/mailbox?to=ada@example.com&limit=1", nil, "")
		if items, _ := r.body["items"].([]any); r.status != 200 || len(items) != 1 || r.body["has_more"] != true {
			t.Fatalf("to=ada, limit=1: %d %s", r.status, r.raw)
		}
		for _, path := range []string{"/dev/mailbox?limit=0", "/dev/mailbox?to=not-an-address", "/dev/mailbox?to=a%0d%0aBcc:x@y.z",
			"/dev/mailbox?unknown=1"} {
			assertEnvelope(t, call(t, f.url, "GET", path, nil, ""), 400, kernel.CodeInvalid)
		}

		id := newest["id"].(string)
		r = call(t, f.url, "GET", "/dev/mailbox/"+id, nil, "")
		if r.status != 200 || r.body["id"] != id || r.body["subject"] != "Message 2" || r.body["html"] == "" {
			t.Fatalf("get: %d %s", r.status, r.raw)
		}
		to, _ := r.body["to"].([]any)
		if len(to) != 1 || to[0] != "ada@example.com" {
			t.Fatalf("get: to %v", r.body["to"])
		}

		r = call(t, f.url, "GET", "/dev/mailbox/"+id+"/html", nil, "")
		if r.status != 200 || !strings.Contains(r.raw, `<p style="color:red">Hello</p>`) ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("html: %d %v %s", r.status, r.header, r.raw)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
			strings.Contains(csp, "script-src") || !strings.Contains(csp, "img-src data:") {
			t.Fatalf("html: Content-Security-Policy %q", csp)
		}

		missing := kernel.FormatID("msg", kernel.NewID())
		for _, path := range []string{"/dev/mailbox/" + missing, "/dev/mailbox/" + missing + "/html",
			"/dev/mailbox/not-an-id", "/dev/mailbox/" + strings.Replace(id, "msg_", "usr_", 1), "/dev/mailbox/%00",
			"/dev/mailbox/" + id + "x", "/dev/mailbox/" + strings.Repeat("a", 5000), "/dev/mailbox/..%2f..%2fetc%2fpasswd"} {
			assertEnvelope(t, call(t, f.url, "GET", path, nil, ""), 404, kernel.CodeNotFound)
		}
		assertEnvelope(t, call(t, f.url, "DELETE", "/dev/mailbox/"+id, nil, ""), 405, kernel.CodeMethodNotAllowed)

		r = call(t, f.url, "GET", "/api/openapi.json", nil, "")
		for path := range r.body["paths"].(map[string]any) {
			if strings.HasPrefix(path, "/dev/") {
				t.Fatalf("the public OpenAPI document lists %s", path)
			}
		}
	})
}

// TestDevMailboxAbsentInProduction boots a production app: the routes do not
// exist, and every path under them answers the 404 of an unknown route.
func TestDevMailboxAbsentInProduction(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		a := testkit.Boot(t, d, testkit.AppOptions{Env: map[string]string{
			"ATRIUM_ENV":        "production",
			"ATRIUM_SECRET_KEY": strings.Repeat("k", 32),
			"ATRIUM_BASE_URL":   "https://app.example.com",
		}})
		if a.Services.Mailbox == nil {
			t.Fatal("no dev mailbox wired in production without SMTP: mail would go nowhere")
		}
		if err := a.Services.Mailbox.Send(context.Background(), mail.Message{To: []string{"ada@example.com"}, Subject: "Hi",
			Text: "Hi\n", HTML: "<p>Hi</p>\n"}); err != nil {
			t.Fatal(err)
		}
		msgs, err := a.Services.Mailbox.List(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		id := kernel.FormatID("msg", msgs[0].ID)
		for _, path := range []string{"/dev/mailbox", "/dev/mailbox?limit=5", "/dev/mailbox/" + id, "/dev/mailbox/" + id + "/html"} {
			assertEnvelope(t, call(t, a.URL(), "GET", path, nil, ""), 404, kernel.CodeNotFound)
		}
		if !strings.Contains(a.Logs(), "email goes to the dev mailbox") {
			t.Fatal("production without SMTP did not warn that email goes to the dev mailbox")
		}
	})
}
