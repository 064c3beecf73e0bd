// Package config reads Atrium's typed configuration from ATRIUM_* environment
// variables, with command-line flags overriding them, and validates it before
// anything is created or opened.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail/smtpmail"
)

// Environments.
const (
	Development = "development"
	Production  = "production"
)

// Config is the whole configuration. Every field has one variable and one flag.
type Config struct {
	Addr               string        // ATRIUM_ADDR, --addr
	DataDir            string        // ATRIUM_DATA_DIR, --data-dir
	DatabaseURL        string        // ATRIUM_DATABASE_URL; empty = embedded SQLite in DataDir
	MigrateDatabaseURL string        // ATRIUM_MIGRATE_DATABASE_URL; owner role for migrations
	AutoMigrate        bool          // ATRIUM_AUTO_MIGRATE; apply migrations at start
	Env                string        // ATRIUM_ENV: development or production
	SecretKey          string        // ATRIUM_SECRET_KEY; at least 32 bytes
	BaseURL            string        // ATRIUM_BASE_URL; the public URL of this deployment
	LogLevel           slog.Level    // ATRIUM_LOG_LEVEL: debug, info, warn, error
	CORSOrigins        []string      // ATRIUM_CORS_ORIGINS: comma-separated origins allowed cross-origin
	MaxBodyBytes       int64         // ATRIUM_MAX_BODY_BYTES: request body limit
	ShutdownTimeout    time.Duration // ATRIUM_SHUTDOWN_TIMEOUT: how long in-flight requests get on SIGTERM
	OTLPEndpoint       string        // ATRIUM_OTLP_ENDPOINT: OTLP/HTTP traces endpoint; empty = no exporter
	SessionIdleTimeout time.Duration // ATRIUM_SESSION_IDLE_TIMEOUT: a session unused this long ends
	SessionLifetime    time.Duration // ATRIUM_SESSION_LIFETIME: a session ends this long after login
	RedisURL           string        // ATRIUM_REDIS_URL: redis:// or rediss://; empty = rate limits in the store
	NATSURL            string        // ATRIUM_NATS_URL: nats:// servers, comma-separated; empty = an embedded NATS JetStream server
	NATSMaxStore       int64         // ATRIUM_NATS_MAX_STORE: bytes the embedded server may keep on disk
	NATSMaxMemory      int64         // ATRIUM_NATS_MAX_MEMORY: bytes the embedded server may keep in memory
	// WebhookAllowPrivate lets webhooks reach loopback and private addresses:
	// for development and tests only; refused in production.
	WebhookAllowPrivate bool // ATRIUM_WEBHOOK_ALLOW_PRIVATE
	// SSEMaxPerWorkspace caps one workspace's event-stream connections on a node.
	SSEMaxPerWorkspace int // ATRIUM_SSE_MAX_PER_WORKSPACE
	// NodeID names this node in scheduler leases and run records; empty = host name and process ID.
	NodeID string // ATRIUM_NODE_ID
	// PlansFile replaces the embedded plan catalogue; empty = the embedded free, pro and enterprise plans.
	PlansFile string // ATRIUM_PLANS_FILE
	// StripeSecretKey makes Stripe the payment provider; empty = the sandbox.
	StripeSecretKey string // ATRIUM_STRIPE_SECRET_KEY
	// StripeWebhookSecret checks the signature of Stripe's webhooks; required with StripeSecretKey.
	StripeWebhookSecret string // ATRIUM_STRIPE_WEBHOOK_SECRET
	// StripeAPIBase replaces Stripe's API URL (stripe-mock in tests).
	StripeAPIBase string // ATRIUM_STRIPE_API_BASE

	// SMTP is ATRIUM_SMTP_URL parsed; a zero Host means no SMTP: mail goes to
	// the dev mailbox. Its String hides the password.
	SMTP smtpmail.Config // ATRIUM_SMTP_URL: smtp(s)://user:pass@host:port?from=…
}

// Production reports whether this is a production deployment.
func (c Config) Production() bool { return c.Env == Production }

// NATSDir is where the embedded NATS server keeps its JetStream store.
func (c Config) NATSDir() string { return filepath.Join(c.DataDir, "nats") }

// SQLitePath is the embedded database file.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "atrium.db") }

// setting describes one setting: its variable, flag, default and how to apply it.
type setting struct {
	env, flag, def, usage string
	apply                 func(c *Config, v string) error
}

var settings = []setting{
	{"ATRIUM_ADDR", "addr", "127.0.0.1:8080", "address to listen on (host:port)", func(c *Config, v string) error {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return errors.New("want host:port, such as 127.0.0.1:8080 or :8080")
		}
		c.Addr = v
		return nil
	}},
	{"ATRIUM_DATA_DIR", "data-dir", "./data", "directory for the embedded database, secret and files", func(c *Config, v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("must not be empty")
		}
		c.DataDir = v
		return nil
	}},
	{"ATRIUM_DATABASE_URL", "database-url", "", "PostgreSQL URL (postgres://…); empty for embedded SQLite", func(c *Config, v string) error {
		if v != "" {
			if err := checkPostgresURL(v); err != nil {
				return err
			}
		}
		c.DatabaseURL = v
		return nil
	}},
	{"ATRIUM_MIGRATE_DATABASE_URL", "migrate-database-url", "", "PostgreSQL URL of the role that owns the tables, for migrations", func(c *Config, v string) error {
		if v != "" {
			if err := checkPostgresURL(v); err != nil {
				return err
			}
		}
		c.MigrateDatabaseURL = v
		return nil
	}},
	{"ATRIUM_AUTO_MIGRATE", "auto-migrate", "true", "apply pending migrations at start", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.AutoMigrate = b
		return nil
	}},
	{"ATRIUM_ENV", "env", Development, "development or production", func(c *Config, v string) error {
		if v != Development && v != Production {
			return errors.New("want development or production")
		}
		c.Env = v
		return nil
	}},
	{"ATRIUM_SECRET_KEY", "secret-key", "", "secret for signing (at least 32 characters); generated in development", func(c *Config, v string) error {
		if v != "" && len(v) < 32 {
			return errors.New("must be at least 32 characters")
		}
		c.SecretKey = v
		return nil
	}},
	{"ATRIUM_BASE_URL", "base-url", "", "public URL, such as https://app.example.com; default http://ATRIUM_ADDR", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return errors.New("want an absolute http(s) URL with no path, such as https://app.example.com")
			}
			v = strings.TrimSuffix(v, "/")
		}
		c.BaseURL = v
		return nil
	}},
	{"ATRIUM_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", func(c *Config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"ATRIUM_CORS_ORIGINS", "cors-origins", "", "comma-separated origins allowed to call the API from browsers", func(c *Config, v string) error {
		c.CORSOrigins = nil
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || o == "*" {
				return fmt.Errorf("%q is not an origin such as https://app.example.com", o)
			}
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
		return nil
	}},
	{"ATRIUM_MAX_BODY_BYTES", "max-body-bytes", "1048576", "largest request body accepted, in bytes", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > 1<<30 {
			return errors.New("want a number of bytes between 1024 and 1073741824")
		}
		c.MaxBodyBytes = n
		return nil
	}},
	{"ATRIUM_SHUTDOWN_TIMEOUT", "shutdown-timeout", "20s", "time in-flight requests get to finish on shutdown", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 10*time.Minute {
			return errors.New("want a duration such as 20s, at most 10m")
		}
		c.ShutdownTimeout = d
		return nil
	}},
	{"ATRIUM_OTLP_ENDPOINT", "otlp-endpoint", "", "OTLP/HTTP endpoint for traces, such as http://127.0.0.1:4318; empty = off", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("want an http(s) URL such as http://127.0.0.1:4318")
			}
		}
		c.OTLPEndpoint = v
		return nil
	}},
	{"ATRIUM_SESSION_IDLE_TIMEOUT", "session-idle-timeout", "168h", "a session unused this long ends (sign in again)", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 90*24*time.Hour {
			return errors.New("want a duration between 1m and 2160h, such as 30m or 168h")
		}
		c.SessionIdleTimeout = d
		return nil
	}},
	{"ATRIUM_SESSION_LIFETIME", "session-lifetime", "720h", "a session ends this long after login, however it is used", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute || d > 90*24*time.Hour {
			return errors.New("want a duration between 1m and 2160h, such as 12h or 720h")
		}
		c.SessionLifetime = d
		return nil
	}},
	{"ATRIUM_REDIS_URL", "redis-url", "", "Redis URL (redis://… or rediss://…) for rate-limit counters; empty keeps them in the database", func(c *Config, v string) error {
		if v != "" {
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				return errors.New("want a URL such as redis://:password@host:6379/0 or rediss://…")
			}
		}
		c.RedisURL = v
		return nil
	}},
	{"ATRIUM_NATS_URL", "nats-url", "", "NATS server URLs (nats://host:4222, comma-separated) with JetStream enabled; empty runs an embedded server with its store under the data directory", func(c *Config, v string) error {
		for _, server := range strings.Split(v, ",") {
			if v == "" {
				break
			}
			u, err := url.Parse(strings.TrimSpace(server))
			if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
				return errors.New("want URLs such as nats://host:4222 or tls://user:pass@host:4222, comma-separated")
			}
		}
		c.NATSURL = v
		return nil
	}},
	{"ATRIUM_NATS_MAX_STORE", "nats-max-store", "1073741824", "bytes the embedded NATS server may keep on disk (events, jobs, dead letters)", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 16<<20 {
			return errors.New("want a byte count of at least 16777216 (16 MiB)")
		}
		c.NATSMaxStore = n
		return nil
	}},
	{"ATRIUM_NATS_MAX_MEMORY", "nats-max-memory", "67108864", "bytes the embedded NATS server may keep in memory", func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1<<20 {
			return errors.New("want a byte count of at least 1048576 (1 MiB)")
		}
		c.NATSMaxMemory = n
		return nil
	}},
	{"ATRIUM_WEBHOOK_ALLOW_PRIVATE", "webhook-allow-private", "false", "let webhook endpoints be loopback or private addresses (development and tests only; refused in production)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.WebhookAllowPrivate = b
		return nil
	}},
	{"ATRIUM_SSE_MAX_PER_WORKSPACE", "sse-max-per-workspace", "100", "event-stream connections one workspace may hold open on one node", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return errors.New("want a number between 1 and 100000")
		}
		c.SSEMaxPerWorkspace = n
		return nil
	}},
	{"ATRIUM_NODE_ID", "node-id", "", "this node's name in scheduler leases and run records; empty = host name and process ID", func(c *Config, v string) error {
		if len(v) > 100 {
			return errors.New("want at most 100 characters")
		}
		c.NodeID = v
		return nil
	}},
	{"ATRIUM_STRIPE_SECRET_KEY", "stripe-secret-key", "", "a Stripe secret key (sk_…) to take payments through Stripe; empty = the sandbox provider", func(c *Config, v string) error {
		c.StripeSecretKey = v
		return nil
	}},
	{"ATRIUM_STRIPE_WEBHOOK_SECRET", "stripe-webhook-secret", "", "the signing secret (whsec_…) of the Stripe webhook endpoint; required with ATRIUM_STRIPE_SECRET_KEY", func(c *Config, v string) error {
		c.StripeWebhookSecret = v
		return nil
	}},
	{"ATRIUM_STRIPE_API_BASE", "stripe-api-base", "", "Stripe's API URL, replaced for stripe-mock in tests; empty = Stripe's", func(c *Config, v string) error {
		c.StripeAPIBase = v
		return nil
	}},
	{"ATRIUM_PLANS_FILE", "plans-file", "", "a JSON plan catalogue replacing the embedded free, pro and enterprise plans (see README)", func(c *Config, v string) error {
		c.PlansFile = v
		return nil
	}},
	{"ATRIUM_SMTP_URL", "smtp-url", "", "SMTP server for outgoing mail, such as smtp://user:pass@host:587?from=no-reply@example.com; empty = the dev mailbox", func(c *Config, v string) error {
		c.SMTP = smtpmail.Config{}
		if v == "" {
			return nil
		}
		smtp, err := smtpmail.ParseURL(v)
		if err != nil {
			return errors.New(kernel.As(err).Message) // never the URL: it may hold the password
		}
		c.SMTP = smtp
		return nil
	}},
}

// SMTPConfigured reports whether mail leaves through SMTP rather than going
// to the dev mailbox.
func (c Config) SMTPConfigured() bool { return c.SMTP.Host != "" }

// Load reads the environment through getenv, then the flags in args, and
// validates the result. It returns every problem at once, each naming its
// variable, and touches nothing on disk.
func Load(args []string, getenv func(string) string) (Config, error) {
	fs := flag.NewFlagSet("atrium", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := getenv(s.env)
		if v == "" {
			v = s.def
		}
		values[s.env] = fs.String(s.flag, v, s.usage+" ("+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var c Config
	var problems []string
	for _, s := range settings {
		if err := s.apply(&c, *values[s.env]); err != nil {
			problems = append(problems, fmt.Sprintf("%s (--%s): %v", s.env, s.flag, err))
		}
	}
	problems = append(problems, c.crossChecks()...)
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + c.Addr
	}
	return c, nil
}

func (c *Config) crossChecks() []string {
	var out []string
	if c.Env == Production && c.SecretKey == "" {
		out = append(out, "ATRIUM_SECRET_KEY (--secret-key): required in production (at least 32 characters, such as the output of: openssl rand -hex 32)")
	}
	if c.Env == Production && c.BaseURL == "" {
		out = append(out, "ATRIUM_BASE_URL (--base-url): required in production")
	}
	if c.SessionIdleTimeout > c.SessionLifetime && c.SessionLifetime > 0 {
		out = append(out, "ATRIUM_SESSION_IDLE_TIMEOUT (--session-idle-timeout): must not be longer than ATRIUM_SESSION_LIFETIME")
	}
	if c.MigrateDatabaseURL != "" && c.DatabaseURL == "" {
		out = append(out, "ATRIUM_MIGRATE_DATABASE_URL (--migrate-database-url): needs ATRIUM_DATABASE_URL too")
	}
	if c.Env == Production && c.WebhookAllowPrivate {
		out = append(out, "ATRIUM_WEBHOOK_ALLOW_PRIVATE (--webhook-allow-private): not allowed in production, where webhooks must never reach internal addresses")
	}
	if c.StripeSecretKey != "" && c.StripeWebhookSecret == "" {
		out = append(out, "ATRIUM_STRIPE_WEBHOOK_SECRET (--stripe-webhook-secret): required with ATRIUM_STRIPE_SECRET_KEY, or Stripe's events could not be checked")
	}
	if c.StripeSecretKey == "" && (c.StripeWebhookSecret != "" || c.StripeAPIBase != "") {
		out = append(out, "ATRIUM_STRIPE_SECRET_KEY (--stripe-secret-key): required when any other ATRIUM_STRIPE_ setting is set")
	}
	return out
}

// Usage writes every setting with its variable, flag and default.
func Usage(w io.Writer) {
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "  %-28s --%-22s %s; default %s\n", s.env, s.flag, s.usage, def)
	}
}

func checkPostgresURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		return errors.New("want a URL such as postgres://user:password@host:5432/db")
	}
	return nil
}

// EnsureSecret returns the configured secret key. In development without one, it
// reads <data>/secret.key, creating it with a fresh random key (and a log line
// saying so) the first time.
func EnsureSecret(c Config, logger *slog.Logger) (string, error) {
	if c.SecretKey != "" {
		return c.SecretKey, nil
	}
	if c.Production() {
		return "", errors.New("ATRIUM_SECRET_KEY is required in production")
	}
	path := filepath.Join(c.DataDir, "secret.key")
	if b, err := os.ReadFile(path); err == nil {
		key := strings.TrimSpace(string(b))
		if len(key) < 32 {
			return "", fmt.Errorf("%s: the stored secret is shorter than 32 characters; delete it to generate another", path)
		}
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	key := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return EnsureSecret(c, logger)
		}
		return "", fmt.Errorf("write secret: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(key + "\n"); err != nil {
		return "", fmt.Errorf("write secret: %w", err)
	}
	logger.Warn("generated a development secret key; set ATRIUM_SECRET_KEY in production", "path", path)
	return key, nil
}
