package mail

import (
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"slices"
	"strings"
	texttemplate "text/template"
)

//go:embed templates/*.tmpl
var embedded embed.FS

// Template names shipped with Atrium, each with the type of data it renders.
const (
	TemplateVerifyEmail     = "verify_email"     // data: VerifyEmail
	TemplateAccountExists   = "account_exists"   // data: AccountExists
	TemplatePasswordReset   = "password_reset"   // data: PasswordReset
	TemplatePasswordChanged = "password_changed" // data: PasswordChanged
	TemplateMagicLink       = "magic_link"       // data: MagicLink
	TemplateAccountLocked   = "account_locked"   // data: AccountLocked
	TemplateInvite          = "invite"           // data: Invite

	TemplateEmailChange       = "email_change"        // data: EmailChange
	TemplateEmailChangeNotice = "email_change_notice" // data: EmailChangeNotice

	TemplateWebhookDisabled = "webhook_disabled" // data: WebhookDisabled
)

// WebhookDisabled is the data of the webhook_disabled template: the notice
// sent to a workspace's owners and admins when Atrium turned one of its
// webhook endpoints off.
type WebhookDisabled struct {
	Name          string // the recipient's name; may be empty
	WorkspaceName string
	EndpointID    string // the endpoint's API ID (we_…)
	EndpointURL   string // the endpoint's URL without its query, which may hold a credential
	Reason        string // why, in words, completing "Atrium disabled it because …"
}

// EmailChange is the data of the email_change template: the link, sent to a
// new address, that confirms it as the account's.
type EmailChange struct {
	Name      string // the account's name; may be empty
	Link      string // the absolute confirmation link
	ExpiresIn string // how long the link works, in words ("24 hours")
}

// EmailChangeNotice is the data of the email_change_notice template: the
// notice sent to the current address when a change to another is asked for.
type EmailChangeNotice struct {
	Name      string // the account's name; may be empty
	NewEmail  string // the address asked for
	ResetLink string // the absolute link to ask for a password reset, for an owner who did not ask
}

// VerifyEmail is the data of the verify_email template.
type VerifyEmail struct {
	Name      string // the recipient's name; may be empty
	Link      string // the absolute verification link
	ExpiresIn string // how long the link works, in words ("24 hours")
}

// AccountExists is the data of the account_exists template: the notice sent
// to the owner of an address when someone signs up with it again.
type AccountExists struct {
	Name      string // the account's name; may be empty
	LoginLink string // the absolute link to the login page
}

// PasswordReset is the data of the password_reset template.
type PasswordReset struct {
	Name      string // the recipient's name; may be empty
	Link      string // the absolute link to the page that sets a new password
	ExpiresIn string // how long the link works, in words ("1 hour")
}

// PasswordChanged is the data of the password_changed template: the notice
// sent after a password was reset.
type PasswordChanged struct {
	Name      string // the recipient's name; may be empty
	ResetLink string // the absolute link to ask for another reset, for an owner who did not do it
}

// MagicLink is the data of the magic_link template.
type MagicLink struct {
	Name      string // the recipient's name; may be empty
	Link      string // the absolute link that logs in
	ExpiresIn string // how long the link works, in words ("15 minutes")
}

// Invite is the data of the invite template: an invitation to join a
// workspace, sent to an address that may have no account yet.
type Invite struct {
	WorkspaceName string // the workspace's display name
	InviterName   string // the name of the person who sent it; may be empty
	Role          string // the role the invitation grants ("member")
	Link          string // the absolute link that accepts the invitation
	ExpiresIn     string // how long the link works, in words ("7 days")
}

// AccountLocked is the data of the account_locked template: the notice sent
// to an account's owner when failed logins start a lockout.
type AccountLocked struct {
	Name      string // the account's name; may be empty
	LockedFor string // the lock's length, in words ("15 minutes")
	Until     string // when the lock ends, such as "15 Jan 2026 09:45 UTC"
	ResetLink string // the absolute link to ask for a password reset
}

const (
	textSuffix = ".txt.tmpl"
	htmlSuffix = ".html.tmpl"
)

// Templates renders messages from pairs of files: NAME.txt.tmpl (text/template)
// for the plain-text part, whose {{define "subject"}} block is the subject, and
// NAME.html.tmpl (html/template, so data is escaped) for the HTML part. Files
// whose names start with '_' are partials parsed into every template of their
// kind; the shipped _layout.html.tmpl defines "layout", which executes the
// message's "content". Every template may call {{product}}, the product name.
//
// A Templates is safe for concurrent use.
type Templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// LoadTemplates parses the templates embedded in the binary for productName.
// It returns an error if productName is empty or holds a control character, or
// if a template does not parse.
func LoadTemplates(productName string) (*Templates, error) {
	fsys, err := fs.Sub(embedded, "templates")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	return ParseTemplates(fsys, productName)
}

// ParseTemplates parses the *.tmpl files at the root of fsys, so that a fork can
// ship its own set. It returns an error naming the file if one does not parse,
// if a text template has no "subject" block, or if a name has a text template
// without an HTML one or the other way round; and an error if productName is
// empty or holds a control character.
func ParseTemplates(fsys fs.FS, productName string) (*Templates, error) {
	if strings.TrimSpace(productName) == "" || hasControl(productName) {
		return nil, fmt.Errorf("mail: templates: the product name must be non-empty text on one line")
	}
	files, err := fs.Glob(fsys, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	var textPartials, htmlPartials, textNames, htmlNames []string
	for _, f := range files {
		partial := strings.HasPrefix(f, "_")
		switch {
		case strings.HasSuffix(f, textSuffix) && partial:
			textPartials = append(textPartials, f)
		case strings.HasSuffix(f, htmlSuffix) && partial:
			htmlPartials = append(htmlPartials, f)
		case strings.HasSuffix(f, textSuffix):
			textNames = append(textNames, strings.TrimSuffix(f, textSuffix))
		case strings.HasSuffix(f, htmlSuffix):
			htmlNames = append(htmlNames, strings.TrimSuffix(f, htmlSuffix))
		default:
			return nil, fmt.Errorf("mail: template %s: want NAME%s or NAME%s", f, textSuffix, htmlSuffix)
		}
	}
	for _, n := range textNames {
		if !slices.Contains(htmlNames, n) {
			return nil, fmt.Errorf("mail: template %s%s has no %s%s", n, textSuffix, n, htmlSuffix)
		}
	}
	for _, n := range htmlNames {
		if !slices.Contains(textNames, n) {
			return nil, fmt.Errorf("mail: template %s%s has no %s%s", n, htmlSuffix, n, textSuffix)
		}
	}

	product := func() string { return productName }
	t := &Templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, name := range textNames {
		root := texttemplate.New(name + textSuffix).Option("missingkey=error").
			Funcs(texttemplate.FuncMap{"product": product})
		for _, f := range append(slices.Clone(textPartials), name+textSuffix) {
			src, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, fmt.Errorf("mail: template %s: %w", f, err)
			}
			into := root // the message's own file is the root template's body
			if f != root.Name() {
				into = root.New(f)
			}
			if _, err := into.Parse(string(src)); err != nil {
				return nil, fmt.Errorf("mail: template %s: %w", f, err)
			}
		}
		if root.Lookup("subject") == nil {
			return nil, fmt.Errorf(`mail: template %s%s: no {{define "subject"}} block`, name, textSuffix)
		}
		t.text[name] = root

		hroot := htmltemplate.New(name + htmlSuffix).Option("missingkey=error").
			Funcs(htmltemplate.FuncMap{"product": product})
		for _, f := range append(slices.Clone(htmlPartials), name+htmlSuffix) {
			src, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, fmt.Errorf("mail: template %s: %w", f, err)
			}
			into := hroot
			if f != hroot.Name() {
				into = hroot.New(f)
			}
			if _, err := into.Parse(string(src)); err != nil {
				return nil, fmt.Errorf("mail: template %s: %w", f, err)
			}
		}
		t.html[name] = hroot
	}
	return t, nil
}

// Names returns the names of the templates, sorted.
func (t *Templates) Names() []string {
	names := make([]string, 0, len(t.text))
	for n := range t.text {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Render executes the template pair called name with data. The subject has its
// whitespace collapsed to single spaces, so template line breaks never reach a
// header; the text part ends with one newline. It returns an error if there is
// no template of that name or executing either part fails (a missing field, a
// failing method); the subject is not validated here (Message does that).
func (t *Templates) Render(name string, data any) (subject, text, html string, err error) {
	tt, ok := t.text[name]
	if !ok {
		return "", "", "", fmt.Errorf("mail: no template %q", name)
	}
	var b strings.Builder
	if err := tt.ExecuteTemplate(&b, "subject", data); err != nil {
		return "", "", "", fmt.Errorf("mail: template %s: subject: %w", name, err)
	}
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := tt.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("mail: template %s: text: %w", name, err)
	}
	text = strings.Trim(b.String(), "\r\n") + "\n"
	b.Reset()
	if err := t.html[name].Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("mail: template %s: html: %w", name, err)
	}
	return subject, text, strings.TrimSpace(b.String()) + "\n", nil
}

// Message renders the template pair called name for the recipients in to and
// tags the message with the name. It returns Render's error, or Validate's
// invalid *kernel.Error when the result breaks a rule (a bad address, a subject
// that grew too long from its data).
func (t *Templates) Message(name string, to []string, data any) (Message, error) {
	subject, text, html, err := t.Render(name, data)
	if err != nil {
		return Message{}, err
	}
	m := Message{To: to, Subject: subject, Text: text, HTML: html, Tag: name}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}
