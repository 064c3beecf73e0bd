package smtpmail

import (
	"fmt"
	"strings"
	"testing"

	"atrium/internal/kernel"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want Config
	}{
		{"smtp://user:pass@smtp.example.com:587?from=Atrium%20<no-reply@example.com>",
			Config{Host: "smtp.example.com", Port: 587, Username: "user", Password: "pass", From: "Atrium <no-reply@example.com>"}},
		{"smtp://smtp.example.com?from=no-reply@example.com",
			Config{Host: "smtp.example.com", Port: 587, From: "no-reply@example.com"}},
		{"smtp://localhost:1025/?from=no-reply@example.com",
			Config{Host: "localhost", Port: 1025, From: "no-reply@example.com"}},
		{"smtps://smtp.example.com?from=no-reply@example.com",
			Config{Host: "smtp.example.com", Port: 465, ImplicitTLS: true, From: "no-reply@example.com"}},
		{"smtps://apikey:s%40cr%3At%2F@smtp.example.com:2465?from=no-reply@example.com&helo=app.example.com",
			Config{Host: "smtp.example.com", Port: 2465, ImplicitTLS: true, Username: "apikey", Password: "s@cr:t/",
				From: "no-reply@example.com", HelloName: "app.example.com"}},
		{"smtp://[::1]:25?from=no-reply@example.com",
			Config{Host: "::1", Port: 25, From: "no-reply@example.com"}},
		{"  smtp://smtp.example.com?from=no-reply@example.com\n",
			Config{Host: "smtp.example.com", Port: 587, From: "no-reply@example.com"}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.raw)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.raw, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseURL(%q):\n got %+v\nwant %+v", tt.raw, got, tt.want)
		}
	}
}

func TestParseURLRefuses(t *testing.T) {
	const secret = "Sup3rS3cret"
	tests := []struct {
		raw  string
		says string // a word the error must contain
	}{
		{"", "scheme"},
		{"smtp.example.com:587", "scheme"},
		{"http://u:" + secret + "@smtp.example.com?from=a@example.com", "scheme"},
		{"smtp:u:" + secret + "@smtp.example.com", "two slashes"},
		{"smtp://u:" + secret + "@:587?from=a@example.com", "host"},
		{"smtp://u:" + secret + "@smtp.example.com:0?from=a@example.com", "port"},
		{"smtp://u:" + secret + "@smtp.example.com:99999?from=a@example.com", "port"},
		{"smtp://u:" + secret + "@smtp.example.com:abc?from=a@example.com", "URL"},
		{"smtp://u:" + secret + "@smtp.example.com%zz?from=a@example.com", "URL"},
		{"smtp://" + secret + "@smtp.example.com?from=a@example.com", "password"},
		{"smtp://u:@smtp.example.com?from=a@example.com", "password"},
		{"smtp://:" + secret + "@smtp.example.com?from=a@example.com", "user name"},
		{"smtp://u:" + secret + "@smtp.example.com/path?from=a@example.com", "path"},
		{"smtp://u:" + secret + "@smtp.example.com?from=a@example.com#x", "fragment"},
		{"smtp://u:" + secret + "@smtp.example.com", "from"},
		{"smtp://u:" + secret + "@smtp.example.com?from=", "from"},
		{"smtp://u:" + secret + "@smtp.example.com?from=not-an-address", "from"},
		{"smtp://u:" + secret + "@smtp.example.com?from=a@example.com%0D%0ABcc:b@example.com", "from"},
		{"smtp://u:" + secret + "@smtp.example.com?from=a@example.com&from=b@example.com", "2 times"},
		{"smtp://u:" + secret + "@smtp.example.com?from=a@example.com&tls=off", `"tls"`},
		{"smtp://u:" + secret + "@smtp.example.com?from=a@example.com&helo=a%20b", "helo"},
		{"smtp://u:" + secret + "@smtp.example.com?from=a@example.com;x", "query"},
		{"u:" + secret + "@smtp.example.com", "scheme"},
		{secret + ":" + secret + "@smtp.example.com", "scheme"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.raw)
		if !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("ParseURL(%q): %v, want invalid", tt.raw, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.says) {
			t.Errorf("ParseURL(%q): %q does not mention %q", tt.raw, err, tt.says)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q): error %q shows the secret", tt.raw, err)
		}
	}
}

func TestConfigStringHidesThePassword(t *testing.T) {
	cfg := Config{Host: "smtp.example.com", Port: 587, Username: "user", Password: "hunter2", From: "a@example.com"}
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprint(cfg)} {
		if strings.Contains(s, "hunter2") || !strings.Contains(s, "smtp.example.com:587") {
			t.Errorf("%q", s)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no host":     {Port: 25, From: "a@example.com"},
		"no port":     {Host: "smtp.example.com", From: "a@example.com"},
		"no sender":   {Host: "smtp.example.com", Port: 25},
		"bad sender":  {Host: "smtp.example.com", Port: 25, From: "a@example.com\r\nBcc: b@example.com"},
		"bare secret": {Host: "smtp.example.com", Port: 25, From: "a@example.com", Password: "x"},
	} {
		if _, err := New(cfg); !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("%s: New answered %v, want invalid", name, err)
		}
	}
}
