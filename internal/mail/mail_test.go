package mail_test

import (
	"strings"
	"testing"

	"atrium/internal/kernel"
	"atrium/internal/mail"
)

func validMessage() mail.Message {
	return mail.Message{
		To:      []string{"ada@example.com", "Grace Hopper <grace@example.org>"},
		Subject: "Verify your email address",
		Text:    "Hello\n",
		HTML:    "<p>Hello</p>\n",
		Tag:     "verify_email",
	}
}

func TestValidateAcceptsAGoodMessage(t *testing.T) {
	if err := validMessage().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	m := validMessage()
	m.Subject = strings.Repeat("é", mail.MaxSubjectLength) // characters, not bytes
	m.Tag = ""
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate with a %d-character subject and no tag: %v", mail.MaxSubjectLength, err)
	}
}

func TestValidateRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(*mail.Message)
		field  string
	}{
		{"no recipient", func(m *mail.Message) { m.To = nil }, "to"},
		{"too many recipients", func(m *mail.Message) {
			m.To = make([]string, mail.MaxRecipients+1)
			for i := range m.To {
				m.To[i] = "a@example.com"
			}
		}, "to"},
		{"empty address", func(m *mail.Message) { m.To = []string{" "} }, "to"},
		{"not an address", func(m *mail.Message) { m.To = []string{"ada at example.com"} }, "to"},
		{"two addresses in one", func(m *mail.Message) { m.To = []string{"a@example.com, b@example.com"} }, "to"},
		{"CRLF in an address", func(m *mail.Message) { m.To = []string{"ada@example.com\r\nBcc: eve@example.net"} }, "to"},
		{"LF in a display name", func(m *mail.Message) { m.To = []string{"Ada\nBcc: eve@example.net <ada@example.com>"} }, "to"},
		{"NUL in an address", func(m *mail.Message) { m.To = []string{"ada\x00@example.com"} }, "to"},
		{"bad second address", func(m *mail.Message) { m.To = []string{"ok@example.com", "@example.com"} }, "to"},
		{"address too long", func(m *mail.Message) {
			m.To = []string{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 300) + ".com"}
		}, "to"},
		{"empty subject", func(m *mail.Message) { m.Subject = "  " }, "subject"},
		{"CRLF in the subject", func(m *mail.Message) { m.Subject = "Hi\r\nBcc: eve@example.net" }, "subject"},
		{"bare LF in the subject", func(m *mail.Message) { m.Subject = "Hi\nthere" }, "subject"},
		{"bare CR in the subject", func(m *mail.Message) { m.Subject = "Hi\rthere" }, "subject"},
		{"tab in the subject", func(m *mail.Message) { m.Subject = "Hi\tthere" }, "subject"},
		{"DEL in the subject", func(m *mail.Message) { m.Subject = "Hi\x7fthere" }, "subject"},
		{"C1 control in the subject", func(m *mail.Message) { m.Subject = "Hi\u0085there" }, "subject"},
		{"line separator in the subject", func(m *mail.Message) { m.Subject = "Hi\u2028there" }, "subject"},
		{"invalid UTF-8 subject", func(m *mail.Message) { m.Subject = "Hi \xff" }, "subject"},
		{"subject too long", func(m *mail.Message) { m.Subject = strings.Repeat("é", mail.MaxSubjectLength+1) }, "subject"},
		{"no text part", func(m *mail.Message) { m.Text = "\n" }, "text"},
		{"no HTML part", func(m *mail.Message) { m.HTML = "" }, "html"},
		{"invalid UTF-8 HTML", func(m *mail.Message) { m.HTML = "<p>\xc3</p>" }, "html"},
		{"tag with a space", func(m *mail.Message) { m.Tag = "verify email" }, "tag"},
		{"tag with a newline", func(m *mail.Message) { m.Tag = "verify\nemail" }, "tag"},
		{"tag too long", func(m *mail.Message) { m.Tag = strings.Repeat("a", mail.MaxTagLength+1) }, "tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMessage()
			tt.change(&m)
			err := m.Validate()
			e := kernel.As(err)
			if e == nil || e.Code != kernel.CodeInvalid {
				t.Fatalf("Validate: %v, want invalid", err)
			}
			if _, ok := e.Fields[tt.field]; !ok {
				t.Fatalf("Validate: fields %v, want %q among them", e.Fields, tt.field)
			}
			for _, addr := range m.To {
				if strings.Contains(addr, "@") && strings.Contains(err.Error(), addr) {
					t.Fatalf("error %q echoes the address %q", err, addr)
				}
			}
		})
	}
}

func TestValidateNamesEveryOffendingField(t *testing.T) {
	err := mail.Message{Subject: "a\nb", Tag: "X"}.Validate()
	e := kernel.As(err)
	for _, field := range []string{"to", "subject", "text", "html", "tag"} {
		if _, ok := e.Fields[field]; !ok {
			t.Errorf("fields %v lack %q", e.Fields, field)
		}
	}
}

func TestParseAddress(t *testing.T) {
	a, err := mail.ParseAddress("Ada Lovelace <ada@example.com>")
	if err != nil || a.Name != "Ada Lovelace" || a.Address != "ada@example.com" {
		t.Fatalf("ParseAddress: %+v, %v", a, err)
	}
	if _, err := mail.ParseAddress("ada@example.com\r\n"); err == nil {
		t.Fatal("ParseAddress accepted a trailing CRLF")
	}
}
