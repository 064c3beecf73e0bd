package config

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./data" || c.DatabaseURL != "" || c.Env != Development ||
		c.BaseURL != "http://127.0.0.1:8080" || c.LogLevel != slog.LevelInfo || c.MaxBodyBytes != 1<<20 || !c.AutoMigrate ||
		c.SessionIdleTimeout != 7*24*time.Hour || c.SessionLifetime != 30*24*time.Hour {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	c, err := Load([]string{"--addr", ":9999", "--log-level=debug"}, env(map[string]string{"ATRIUM_ADDR": ":7777", "ATRIUM_DATA_DIR": "/tmp/x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9999" || c.DataDir != "/tmp/x" || c.LogLevel != slog.LevelDebug {
		t.Fatalf("got %+v", c)
	}
}

func TestInvalidValuesNameTheirVariable(t *testing.T) {
	cases := map[string]map[string]string{
		"ATRIUM_ADDR":                 {"ATRIUM_ADDR": "nonsense"},
		"ATRIUM_ENV":                  {"ATRIUM_ENV": "staging"},
		"ATRIUM_DATABASE_URL":         {"ATRIUM_DATABASE_URL": "mysql://x"},
		"ATRIUM_LOG_LEVEL":            {"ATRIUM_LOG_LEVEL": "loud"},
		"ATRIUM_SECRET_KEY":           {"ATRIUM_SECRET_KEY": "short"},
		"ATRIUM_BASE_URL":             {"ATRIUM_BASE_URL": "ftp://x"},
		"ATRIUM_CORS_ORIGINS":         {"ATRIUM_CORS_ORIGINS": "*"},
		"ATRIUM_MAX_BODY_BYTES":       {"ATRIUM_MAX_BODY_BYTES": "12"},
		"ATRIUM_AUTO_MIGRATE":         {"ATRIUM_AUTO_MIGRATE": "perhaps"},
		"ATRIUM_SESSION_IDLE_TIMEOUT": {"ATRIUM_SESSION_IDLE_TIMEOUT": "30s"},
		"ATRIUM_SESSION_LIFETIME":     {"ATRIUM_SESSION_LIFETIME": "forever"},
		"ATRIUM_SMTP_URL":             {"ATRIUM_SMTP_URL": "http://mailer:s3cret@mail.example.com?from=a@example.com"},
		"ATRIUM_REDIS_URL":            {"ATRIUM_REDIS_URL": "http://:s3cret@x"},
		"ATRIUM_SESSION_IDLE_TIMEOUT (--session-idle-timeout): must not be longer": {
			"ATRIUM_SESSION_IDLE_TIMEOUT": "48h", "ATRIUM_SESSION_LIFETIME": "24h"},
	}
	for variable, e := range cases {
		_, err := Load(nil, env(e))
		if err == nil || !strings.Contains(err.Error(), variable) {
			t.Errorf("%s: error %v does not name the variable", variable, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %v shows a password", variable, err)
		}
	}
}

func TestProductionRequiresSecretAndBaseURL(t *testing.T) {
	_, err := Load(nil, env(map[string]string{"ATRIUM_ENV": "production"}))
	if err == nil || !strings.Contains(err.Error(), "ATRIUM_SECRET_KEY") || !strings.Contains(err.Error(), "ATRIUM_BASE_URL") {
		t.Fatalf("got %v", err)
	}
}

func TestEnsureSecretGeneratesOnceAndKeepsIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c, err := Load([]string{"--data-dir", dir}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := EnsureSecret(c, logger)
	if err != nil || len(first) < 32 {
		t.Fatalf("first: %q %v", first, err)
	}
	second, err := EnsureSecret(c, logger)
	if err != nil || second != first {
		t.Fatalf("second read %q, want %q (%v)", second, first, err)
	}
	info, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", info, err)
	}
}

func TestSMTPURL(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil || c.SMTPConfigured() {
		t.Fatalf("default: SMTP configured %v, err %v; want the dev mailbox", c.SMTPConfigured(), err)
	}
	c, err = Load(nil, env(map[string]string{"ATRIUM_SMTP_URL": "smtps://mailer:s3cret@mail.example.com?from=no-reply@example.com"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.SMTPConfigured() || c.SMTP.Host != "mail.example.com" || c.SMTP.Port != 465 || c.SMTP.Password != "s3cret" {
		t.Fatalf("SMTP %+v", c.SMTP)
	}
	if s := fmt.Sprintf("%v %+v", c, c); strings.Contains(s, "s3cret") {
		t.Fatalf("printing the config shows the SMTP password: %s", s)
	}
	_, err = Load(nil, env(map[string]string{"ATRIUM_SMTP_URL": "smtp://mailer:s3cret@mail.example.com"}))
	if err == nil || !strings.Contains(err.Error(), "ATRIUM_SMTP_URL (--smtp-url): smtp: no sender") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a URL without from: %v, want the variable named, the problem said, no password", err)
	}
}
