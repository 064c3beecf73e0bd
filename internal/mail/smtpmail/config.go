package smtpmail

import (
	"crypto/tls"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// Default ports and timeouts.
const (
	DefaultPort        = 587 // submission, with STARTTLS
	DefaultImplicitTLS = 465 // submissions, TLS from the first byte
	DefaultDialTimeout = 10 * time.Second
	DefaultTimeout     = 60 * time.Second
)

// Config says how to reach the mail server. ParseURL builds one from
// ATRIUM_SMTP_URL; its String never shows the password.
type Config struct {
	Host string
	Port int
	// ImplicitTLS speaks TLS from the first byte (smtps). Without it the
	// connection starts in plain text and switches to TLS with STARTTLS whenever
	// the server offers it; a failed switch is an error, never a fallback.
	ImplicitTLS bool
	// Username and Password, when set, authenticate with AUTH PLAIN or LOGIN.
	// They are sent only over TLS, or in plain text to a loopback host.
	Username string
	Password string
	// From is the sender as a From header shows it: "Atrium <no-reply@example.com>".
	From string
	// HelloName is the name given in EHLO; "localhost" when empty.
	HelloName string
	// DialTimeout bounds connecting; DefaultDialTimeout when zero.
	DialTimeout time.Duration
	// Timeout bounds a whole Send when the context has no earlier deadline;
	// DefaultTimeout when zero.
	Timeout time.Duration
	// TLSConfig, when set, is used (cloned) for STARTTLS and implicit TLS, say to
	// trust a private CA. Its ServerName defaults to Host and its MinVersion to
	// TLS 1.2.
	TLSConfig *tls.Config
}

// String describes c for logs, without the password.
func (c Config) String() string {
	scheme := "smtp"
	if c.ImplicitTLS {
		scheme = "smtps"
	}
	user := ""
	if c.Username != "" {
		user = c.Username + ":***@"
	}
	return fmt.Sprintf("%s://%s%s from %s", scheme, user, hostPort(c.Host, c.Port), c.From)
}

// ParseURL reads an ATRIUM_SMTP_URL value:
//
//	smtp://user:pass@host:587?from=Atrium%20<no-reply@example.com>   STARTTLS when offered
//	smtps://user:pass@host:465?from=no-reply@example.com             implicit TLS
//
// The port defaults to 587 for smtp and 465 for smtps. The user name and
// password are percent-decoded; a user needs a password. Query values are
// percent-decoded too, with '+' read as a space, so write a '+' in an address
// as %2B. Query parameters:
// from (required, one address, optionally with a display name) and helo (the
// EHLO name). It returns an invalid *kernel.Error naming what is wrong (an
// unknown scheme, a missing host, a bad port, an unknown or repeated
// parameter, a bad from address); the message never contains the password.
func ParseURL(raw string) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, kernel.Errorf(kernel.CodeInvalid, "smtp url: "+format, args...)
	}
	// url.Parse's own errors quote the whole input, password included: never
	// pass them on.
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return bad("not a valid URL (want smtp://user:pass@host:port?from=...)")
	}
	var c Config
	switch u.Scheme {
	case "smtp":
		c.Port = DefaultPort
	case "smtps":
		c.Port, c.ImplicitTLS = DefaultImplicitTLS, true
	case "":
		return bad("no scheme (want smtp:// or smtps://)")
	default:
		return bad("the scheme must be smtp or smtps") // not echoed: a URL missing "smtp://" starts with the user name
	}
	if u.Opaque != "" {
		return bad("want %s://host, with two slashes", u.Scheme)
	}
	if c.Host = u.Hostname(); c.Host == "" {
		return bad("no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("port %q is not a number from 1 to 65535", p)
		}
		c.Port = n
	}
	if u.User != nil {
		c.Username = u.User.Username()
		pass, hasPass := u.User.Password()
		c.Password = pass
		switch {
		case c.Username == "":
			return bad("a password without a user name")
		case !hasPass || pass == "":
			return bad("a user name without a password") // not echoed: it might be a secret
		}
	}
	if u.Path != "" && u.Path != "/" {
		return bad("unexpected path after the host")
	}
	if u.Fragment != "" {
		return bad("unexpected fragment")
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("malformed query")
	}
	for key, values := range query {
		if len(values) != 1 {
			return bad("parameter %q given %d times", key, len(values))
		}
		switch key {
		case "from":
			c.From = values[0]
		case "helo":
			c.HelloName = values[0]
		default:
			return bad("unknown parameter %q (known: from, helo)", key)
		}
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// validate checks what New and ParseURL both need.
func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return kernel.Errorf(kernel.CodeInvalid, "smtp: "+format, args...)
	}
	if c.Host == "" || strings.ContainsAny(c.Host, " /@\r\n") {
		return bad("the host is missing or malformed")
	}
	if c.Port < 1 || c.Port > 65535 {
		return bad("port %d is not from 1 to 65535", c.Port)
	}
	if c.From == "" {
		return bad("no sender: add ?from=no-reply@your.domain")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return bad("from: %v", err)
	}
	if c.Username == "" && c.Password != "" {
		return bad("a password without a user name")
	}
	if c.HelloName != "" && !validHelloName(c.HelloName) {
		return bad("helo must be a host name or an address literal")
	}
	return nil
}

func validHelloName(s string) bool {
	if len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '-' || c == '[' || c == ']' || c == ':') {
			return false
		}
	}
	return true
}
