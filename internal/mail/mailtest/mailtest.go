// Package mailtest is the conformance suite every mail.Mailer runs: what a
// recipient reads is what was sent, and nothing invalid or cancelled is
// delivered. A change to mail.Mailer starts by extending Run. It also holds
// what those tests read mail with: ParseMIME, and SMTPServer, a local SMTP
// server for the backends that send over the network.
package mailtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// Inbox returns the messages a Mailer has delivered so far, in any order, as a
// recipient reads them: To as the addresses delivered to, text and HTML with
// line ends as LF. Tag may be empty when the backend does not carry it.
type Inbox func(t *testing.T) []mail.Message

// Opener returns a fresh Mailer for one test and the inbox it delivers to.
type Opener func(t *testing.T) (mail.Mailer, Inbox)

// Run exercises the mail.Mailer contract on the mailers open returns.
func Run(t *testing.T, open Opener) {
	t.Run("DeliversWhatWasSent", func(t *testing.T) {
		t.Parallel()
		mailer, inbox := open(t)
		m := mail.Message{
			To:      []string{"ada@example.com", "Zoë Grün <zoe@example.org>"},
			Subject: "Vérifiez votre adresse ✓ =?not-encoded?=",
			Text:    "Hello Zoë,\n\n=== a line with = signs and a long tail " + strings.Repeat("mot ", 40) + "\n.\n..leading dots\nthe end.\n",
			HTML:    "<p style=\"color:#000\">Hello Zoë</p>\n<p>" + strings.Repeat("x", 200) + "</p>\n",
			Tag:     "verify_email",
		}
		if err := mailer.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := inbox(t)
		if len(got) != 1 {
			t.Fatalf("inbox holds %d messages, want 1", len(got))
		}
		Equal(t, got[0], m)
	})

	t.Run("RefusesInvalidMessages", func(t *testing.T) {
		t.Parallel()
		mailer, inbox := open(t)
		good := mail.Message{To: []string{"ada@example.com"}, Subject: "Hi", Text: "Hi\n", HTML: "<p>Hi</p>\n"}
		for name, change := range map[string]func(*mail.Message){
			"header injection in subject": func(m *mail.Message) { m.Subject = "Hi\r\nBcc: eve@example.net" },
			"header injection in address": func(m *mail.Message) { m.To = []string{"ada@example.com\r\nBcc: eve@example.net"} },
			"no recipient":                func(m *mail.Message) { m.To = nil },
			"no HTML part":                func(m *mail.Message) { m.HTML = "" },
			"no text part":                func(m *mail.Message) { m.Text = "" },
		} {
			m := good
			change(&m)
			if err := mailer.Send(context.Background(), m); !kernel.IsCode(err, kernel.CodeInvalid) {
				t.Errorf("%s: Send answered %v, want invalid", name, err)
			}
		}
		if got := inbox(t); len(got) != 0 {
			t.Fatalf("inbox holds %d messages after invalid sends, want none", len(got))
		}
	})

	t.Run("CancelledContextSendsNothing", func(t *testing.T) {
		t.Parallel()
		mailer, inbox := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		m := mail.Message{To: []string{"ada@example.com"}, Subject: "Hi", Text: "Hi\n", HTML: "<p>Hi</p>\n"}
		if err := mailer.Send(ctx, m); err == nil {
			t.Fatal("Send with a cancelled context answered nil")
		}
		if got := inbox(t); len(got) != 0 {
			t.Fatalf("inbox holds %d messages after a cancelled send, want none", len(got))
		}
	})

	t.Run("ConcurrentSends", func(t *testing.T) {
		t.Parallel()
		mailer, inbox := open(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- mailer.Send(context.Background(), mail.Message{
					To: []string{fmt.Sprintf("user%d@example.com", i)}, Subject: fmt.Sprintf("Message %d", i),
					Text: "Hi\n", HTML: "<p>Hi</p>\n",
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		var subjects []string
		for _, m := range inbox(t) {
			subjects = append(subjects, m.Subject)
		}
		slices.Sort(subjects)
		if len(subjects) != n || subjects[0] != "Message 0" || subjects[n-1] != fmt.Sprintf("Message %d", n-1) {
			t.Fatalf("inbox subjects %q, want Message 0 to %d", subjects, n-1)
		}
	})
}

// Equal fails t unless got, read from an inbox, is want as sent: the same
// addresses in order, subject, parts and (when got carries one) tag.
func Equal(t testing.TB, got, want mail.Message) {
	t.Helper()
	if g, w := addresses(t, got.To), addresses(t, want.To); !slices.Equal(g, w) {
		t.Errorf("To %q, want %q", g, w)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject %q, want %q", got.Subject, want.Subject)
	}
	if got.Text != want.Text {
		t.Errorf("text part:\n got %q\nwant %q", got.Text, want.Text)
	}
	if got.HTML != want.HTML {
		t.Errorf("HTML part:\n got %q\nwant %q", got.HTML, want.HTML)
	}
	if got.Tag != "" && got.Tag != want.Tag {
		t.Errorf("Tag %q, want %q", got.Tag, want.Tag)
	}
}

func addresses(t testing.TB, list []string) []string {
	t.Helper()
	out := make([]string, len(list))
	for i, s := range list {
		a, err := mail.ParseAddress(s)
		if err != nil {
			t.Fatalf("address %q: %v", s, err)
		}
		out[i] = a.Address
	}
	return out
}
