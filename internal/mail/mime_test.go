package mail_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/mailtest"
)

func TestBuildMIMEParsesBack(t *testing.T) {
	date := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	m := mail.Message{
		To:      []string{"ada@example.com", "Zoë Grün <zoe@example.org>"},
		Subject: "Vérifiez votre adresse ✓",
		Text:    "Hello Zoë,\n\nA line with = signs and a long tail " + strings.Repeat("word ", 40) + "\nthe end.\n",
		HTML:    "<p style=\"color:#000\">Hello Zoë</p>\n<p>" + strings.Repeat("x", 200) + "</p>\n",
		Tag:     "verify_email",
	}
	raw, err := mail.BuildMIME(m, "Atrium <no-reply@mail.example.com>", date)
	if err != nil {
		t.Fatal(err)
	}
	got, header := mailtest.ParseMIME(t, raw)
	mailtest.Equal(t, got, m)
	if got.To[1] != "=?utf-8?q?Zo=C3=AB_Gr=C3=BCn?= <zoe@example.org>" {
		t.Errorf("To keeps the display name: %q", got.To[1])
	}
	from, err := header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Atrium" || from[0].Address != "no-reply@mail.example.com" {
		t.Errorf("From %v: %v", from, err)
	}
	if d, err := header.Date(); err != nil || !d.Equal(date) {
		t.Errorf("Date %v: %v, want %v", d, err, date)
	}
	if id := header.Get("Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}@mail\.example\.com>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	if v := header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version %q", v)
	}
	if v := header.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted %q", v)
	}

	again, _ := mail.BuildMIME(m, "no-reply@mail.example.com", date)
	if _, h := mailtest.ParseMIME(t, again); h.Get("Message-ID") == header.Get("Message-ID") {
		t.Error("two messages share a Message-ID")
	}
}

func TestBuildMIMESubjects(t *testing.T) {
	base := validMessage()
	for name, subject := range map[string]string{
		"ASCII":                       "Verify your email address",
		"long ASCII":                  strings.TrimSpace(strings.Repeat("Verify your address ", 10)),
		"ASCII without spaces":        strings.Repeat("x", mail.MaxSubjectLength),
		"ASCII that looks encoded":    "=?utf-8?q?Your_bank?= says hi",
		"longest multibyte":           strings.Repeat("✓", mail.MaxSubjectLength),
		"mixed":                       "Résumé: " + strings.Repeat("é ", 90),
		"underscores and specials":    "a_b=c?d \"quoted\" (x) <y>",
		"four-byte characters":        strings.Repeat("😀", 60),
		"multibyte next to ASCII run": "ü" + strings.Repeat("a", 150),
	} {
		t.Run(name, func(t *testing.T) {
			m := base
			m.Subject = subject
			raw, err := mail.BuildMIME(m, "no-reply@example.com", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
			lines := strings.Split(head, "\r\n")
			for i, line := range lines {
				if strings.HasPrefix(line, " ") && len(line) > 78 && strings.Contains(line, "=?") {
					t.Errorf("header line %d holds an encoded word %d long: %q", i+1, len(line), line)
				}
			}
			if got, _ := mailtest.ParseMIME(t, raw); got.Subject != subject {
				t.Errorf("Subject read back as %q, want %q", got.Subject, subject)
			}
		})
	}
}

func TestBuildMIMERefuses(t *testing.T) {
	m := validMessage()
	m.Subject = "Hi\r\nBcc: eve@example.net"
	if _, err := mail.BuildMIME(m, "no-reply@example.com", time.Now()); !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Errorf("subject with CRLF: %v, want invalid", err)
	}
	for _, from := range []string{"", "nobody", "a@example.com\r\nBcc: eve@example.net", "a@example.com, b@example.com"} {
		_, err := mail.BuildMIME(validMessage(), from, time.Now())
		if e := kernel.As(err); e == nil || e.Code != kernel.CodeInvalid || e.Fields["from"] == "" {
			t.Errorf("from %q: %v, want invalid naming from", from, err)
		}
	}
}
