package mail_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// sampleData holds data for every shipped template; a template added without
// an entry here fails TestEveryTemplateRenders.
var sampleData = map[string]any{
	mail.TemplateVerifyEmail:     mail.VerifyEmail{Name: "Ada", Link: "https://app.example.com/verify?token=abc", ExpiresIn: "24 hours"},
	mail.TemplateAccountExists:   mail.AccountExists{Name: "Ada", LoginLink: "https://app.example.com/login"},
	mail.TemplatePasswordReset:   mail.PasswordReset{Name: "Ada", Link: "https://app.example.com/reset-password?token=abc", ExpiresIn: "1 hour"},
	mail.TemplatePasswordChanged: mail.PasswordChanged{Name: "Ada", ResetLink: "https://app.example.com/forgot-password"},
	mail.TemplateMagicLink:       mail.MagicLink{Name: "Ada", Link: "https://app.example.com/magic-link?token=abc", ExpiresIn: "15 minutes"},
	mail.TemplateAccountLocked: mail.AccountLocked{Name: "Ada", LockedFor: "15 minutes", Until: "15 Jan 2026 09:45 UTC",
		ResetLink: "https://app.example.com/forgot-password"},
	mail.TemplateInvite: mail.Invite{WorkspaceName: "Acme", InviterName: "Ada", Role: "member",
		Link: "https://app.example.com/invite?token=abc", ExpiresIn: "7 days"},

	mail.TemplateEmailChange:       mail.EmailChange{Name: "Ada", Link: "https://app.example.com/confirm-email-change?token=abc", ExpiresIn: "24 hours"},
	mail.TemplateEmailChangeNotice: mail.EmailChangeNotice{Name: "Ada", NewEmail: "ada@new.example", ResetLink: "https://app.example.com/forgot-password"},

	mail.TemplateWebhookDisabled: mail.WebhookDisabled{Name: "Ada", WorkspaceName: "Acme", EndpointID: "we_01h455vb4pex5vsknk084sn02q",
		EndpointURL: "https://hooks.example.com/atrium", Reason: "it kept failing for 5 days without a single success"},
}

func loadTemplates(t *testing.T) *mail.Templates {
	t.Helper()
	tpl, err := mail.LoadTemplates("Atrium")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	return tpl
}

func TestEveryTemplateRenders(t *testing.T) {
	tpl := loadTemplates(t)
	if len(tpl.Names()) == 0 {
		t.Fatal("no templates embedded")
	}
	for _, name := range tpl.Names() {
		t.Run(name, func(t *testing.T) {
			data, ok := sampleData[name]
			if !ok {
				t.Fatalf("template %s has no sample data in this test", name)
			}
			m, err := tpl.Message(name, []string{"ada@example.com"}, data)
			if err != nil {
				t.Fatalf("Message: %v", err)
			}
			if m.Tag != name || m.Subject == "" || strings.TrimSpace(m.Text) == "" || strings.TrimSpace(m.HTML) == "" {
				t.Fatalf("Message: %+v, want a tag, a subject and both parts", m)
			}
			if !strings.Contains(m.Subject+m.Text+m.HTML, "Atrium") {
				t.Error("the product name appears nowhere")
			}
			// No external assets: the HTML stands alone in any mail client.
			for _, banned := range []string{"<link", "<script", "<img", "<style", "src=", "url("} {
				if strings.Contains(m.HTML, banned) {
					t.Errorf("HTML part contains %q", banned)
				}
			}
			if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") {
				t.Errorf("HTML part does not start with the layout: %.60q", m.HTML)
			}
		})
	}
}

func TestVerifyEmail(t *testing.T) {
	tpl := loadTemplates(t)
	link := "https://app.example.com/verify?token=abc&next=%2F"
	subject, text, html, err := tpl.Render(mail.TemplateVerifyEmail,
		mail.VerifyEmail{Name: "Ada <b>", Link: link, ExpiresIn: "24 hours"})
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Verify your email address for Atrium" {
		t.Errorf("subject %q", subject)
	}
	for _, want := range []string{"Hi Ada <b>,", "\n\n" + link + "\n\n", "24 hours", "Atrium"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	if strings.HasPrefix(text, "\n") || !strings.HasSuffix(text, ".\n") {
		t.Errorf("text part should start with the greeting and end with one newline: %q", text)
	}
	escapedLink := strings.ReplaceAll(link, "&", "&amp;")
	for _, want := range []string{"Hi Ada &lt;b&gt;,", `href="` + escapedLink + `"`, "24 hours", "Atrium"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML part lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "<b>") {
		t.Error("HTML part did not escape the name")
	}

	_, text, _, err = tpl.Render(mail.TemplateVerifyEmail, mail.VerifyEmail{Link: link, ExpiresIn: "24 hours"})
	if err != nil || !strings.HasPrefix(text, "Hi,\n") {
		t.Errorf("without a name: %q, %v", text, err)
	}
}

func TestHTMLRefusesAScriptLink(t *testing.T) {
	tpl := loadTemplates(t)
	_, _, html, err := tpl.Render(mail.TemplateVerifyEmail,
		mail.VerifyEmail{Link: "javascript:alert(1)", ExpiresIn: "24 hours"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, `href="javascript:`) || !strings.Contains(html, `href="#ZgotmplZ"`) {
		t.Fatalf("HTML part carries a javascript: link:\n%s", html)
	}
}

func TestRenderErrors(t *testing.T) {
	tpl := loadTemplates(t)
	if _, _, _, err := tpl.Render("no_such_template", nil); err == nil {
		t.Error("Render of an unknown template: no error")
	}
	wrongData := struct{ Link string }{"https://example.com"}
	if _, _, _, err := tpl.Render(mail.TemplateVerifyEmail, wrongData); err == nil {
		t.Error("Render with data lacking fields: no error")
	}
	if _, _, _, err := tpl.Render(mail.TemplateVerifyEmail, map[string]string{"Link": "x"}); err == nil {
		t.Error("Render with a map lacking keys: no error")
	}
	_, err := tpl.Message(mail.TemplateVerifyEmail, []string{"not an address"}, sampleData[mail.TemplateVerifyEmail])
	if !kernel.IsCode(err, kernel.CodeInvalid) {
		t.Errorf("Message to a bad address: %v, want invalid", err)
	}
}

func TestParseTemplates(t *testing.T) {
	good := fstest.MapFS{
		"_footer.txt.tmpl":  {Data: []byte(`{{define "footer"}}-- {{product}}{{end}}`)},
		"hello.txt.tmpl":    {Data: []byte("{{define \"subject\"}}\n  Hello\n  {{.}}\n{{end}}\nHi {{.}}\n{{template \"footer\"}}\n")},
		"hello.html.tmpl":   {Data: []byte(`<p>Hi {{.}}</p>`)},
		"goodbye.txt.tmpl":  {Data: []byte(`{{define "subject"}}Bye{{end}}Bye`)},
		"goodbye.html.tmpl": {Data: []byte(`<p>Bye</p>`)},
	}
	tpl, err := mail.ParseTemplates(good, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tpl.Names(), ","); got != "goodbye,hello" {
		t.Errorf("Names: %s", got)
	}
	subject, text, html, err := tpl.Render("hello", "Bob")
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Hello Bob" || text != "Hi Bob\n-- Acme\n" || html != "<p>Hi Bob</p>\n" {
		t.Errorf("Render: %q %q %q", subject, text, html)
	}

	bad := map[string]fstest.MapFS{
		"no HTML pair": {"a.txt.tmpl": {Data: []byte(`{{define "subject"}}A{{end}}`)}},
		"no text pair": {"a.html.tmpl": {Data: []byte(`A`)}},
		"no subject":   {"a.txt.tmpl": {Data: []byte(`A`)}, "a.html.tmpl": {Data: []byte(`A`)}},
		"syntax error": {"a.txt.tmpl": {Data: []byte(`{{define "subject"}}A{{end}}{{.`)}, "a.html.tmpl": {Data: []byte(`A`)}},
		"odd name":     {"a.tmpl": {Data: []byte(`A`)}},
	}
	for name, fsys := range bad {
		if _, err := mail.ParseTemplates(fsys, "Acme"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	for _, product := range []string{"", " ", "Acme\r\nBcc: x"} {
		if _, err := mail.ParseTemplates(good, product); err == nil {
			t.Errorf("product name %q: no error", product)
		}
	}
}
