// Package identity owns people: accounts and passwords, email verification,
// password reset, magic-link login, sessions, workspace API keys and personal
// access tokens, TOTP MFA (mfa.go, mfa_login.go) and re-authentication
// (reauth.go).
//
// Every secret it hands out (a session token, an emailed link) is 256 bits
// from crypto/rand, shown once and stored only as its SHA-256, so the database
// alone never lets anyone in. Secrets are never logged.
//
// Answers do not reveal whether an email address has an account: sign-up
// answers the same for a new and a registered address (the owner of a
// registered one gets a notice by email instead), and a failed login answers
// the same for an unknown address and a wrong password after the same amount
// of hashing; asking for a password reset or a magic link answers the same
// whether or not the address has an account.
package identity

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity/authcache"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
)

// Session lifetimes, after OWASP ASVS 4.0 §3.3 and NIST SP 800-63B §7.2. A
// session is asked to sign in again after 30 days whatever happens (ASVS
// 3.3.2 at level 1; NIST's bound for AAL1) and ends earlier after 7 days
// unused, so a forgotten browser does not stay signed in for a month. These
// are the defaults for a B2B product where sign-in is by password; the
// privileged actions of issue 3 (email and MFA changes, key creation,
// workspace deletion) will ask for a recent authentication on top. Deployments
// with stricter rules shorten both in configuration.
const (
	DefaultIdleTimeout = 7 * 24 * time.Hour
	DefaultLifetime    = 30 * 24 * time.Hour

	// touchInterval is how stale last_seen_at may be before a request writes
	// it: at most one write a minute per session instead of one per request.
	// The idle timeout is therefore exact to within a minute.
	touchInterval = time.Minute

	// verifyEmailTTL is how long a verification link works.
	verifyEmailTTL = 24 * time.Hour
	// Resending a verification email is limited per account: no sooner than
	// resendInterval after the last one, and at most resendPerHour an hour.
	resendInterval = time.Minute
	resendPerHour  = 5
)

// Token purposes, as stored in user_token.purpose.
const (
	purposeVerifyEmail   = "verify_email"
	purposePasswordReset = "password_reset"
	purposeMagicLink     = "magic_link"
)

// User is a person's account as the rest of Atrium sees it. The password hash
// never leaves this package.
type User struct {
	ID              uuid.UUID
	Email           string
	Name            string
	EmailVerifiedAt *time.Time // nil until the address is verified
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// EmailVerified reports whether the user has proven they receive mail at Email.
func (u User) EmailVerified() bool { return u.EmailVerifiedAt != nil }

// Config is what a Service is built from.
type Config struct {
	DB        store.DB
	Hasher    *password.Hasher
	Mailer    mail.Mailer
	Templates *mail.Templates
	// BaseURL is the public URL links in emails point to, such as
	// https://app.example.com (no trailing slash needed).
	BaseURL string
	Logger  *slog.Logger
	// IdleTimeout ends a session unused this long; DefaultIdleTimeout when zero.
	IdleTimeout time.Duration
	// Lifetime ends a session this long after login, however it is used;
	// DefaultLifetime when zero.
	Lifetime time.Duration
	// Clock tells API keys and personal access tokens whether they have
	// expired, outside any transaction; kernel.SystemClock when nil. It must
	// be the store's clock, so that tests move both together.
	Clock kernel.Clock
	// Limiter counts login and MFA attempts for brute-force protection
	// (see throttle.go). Required.
	Limiter ratelimit.Limiter
	// LoginLimits are the brute-force limits; zero fields take
	// DefaultLoginLimits. Tests that log in many times from one address
	// raise PerIP here.
	LoginLimits LoginLimits
	// MFAKey is the 32-byte AES-256 key that seals TOTP secrets at rest,
	// derived from the app secret. Without it, enrolling in MFA fails
	// (internal) and accounts that have MFA cannot answer their challenge.
	MFAKey []byte
	// AuthCache, when set, keeps sessions, API keys and personal access
	// tokens for a few seconds so most requests authenticate without a store
	// read; nil reads the store every time.
	AuthCache *authcache.Cache
}

// Service holds the identity rules. It is safe for concurrent use.
type Service struct {
	db        store.DB
	hasher    *password.Hasher
	mailer    mail.Mailer
	templates *mail.Templates
	baseURL   *url.URL
	logger    *slog.Logger
	idle      time.Duration
	lifetime  time.Duration
	clock     kernel.Clock
	limiter   ratelimit.Limiter
	limits    LoginLimits
	mfaKey    []byte
	cache     *authcache.Cache
}

// NewService returns a Service built from cfg. It returns an error if a
// dependency is missing, if BaseURL is not an absolute http(s) URL, or if the
// idle timeout is negative or longer than the lifetime.
func NewService(cfg Config) (*Service, error) {
	if cfg.DB == nil || cfg.Hasher == nil || cfg.Mailer == nil || cfg.Templates == nil || cfg.Limiter == nil {
		return nil, errors.New("identity: a store, a hasher, a mailer, templates and a rate limiter are required")
	}
	limits := cfg.LoginLimits.withDefaults()
	for _, l := range []ratelimit.Limit{limits.PerIP, limits.PerAccount, limits.MFAPerAccount, {Events: 1, Window: limits.MaxLockout}} {
		if err := ratelimit.Check("login", l); err != nil || limits.Lockout <= 0 || limits.Lockout > limits.MaxLockout {
			return nil, fmt.Errorf("identity: login limits %+v are not valid", limits)
		}
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("identity: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.IdleTimeout < 0 || cfg.Lifetime < cfg.IdleTimeout {
		return nil, fmt.Errorf("identity: idle timeout %s must be positive and at most the lifetime %s", cfg.IdleTimeout, cfg.Lifetime)
	}
	if cfg.Clock == nil {
		cfg.Clock = kernel.SystemClock{}
	}
	if len(cfg.MFAKey) != 0 && len(cfg.MFAKey) != mfaKeySize {
		return nil, fmt.Errorf("identity: the MFA key must be %d bytes, not %d", mfaKeySize, len(cfg.MFAKey))
	}
	return &Service{
		clock: cfg.Clock, db: cfg.DB, hasher: cfg.Hasher, mailer: cfg.Mailer, templates: cfg.Templates,
		baseURL: base, logger: cfg.Logger, idle: cfg.IdleTimeout, lifetime: cfg.Lifetime, limiter: cfg.Limiter,
		limits: limits, mfaKey: bytes.Clone(cfg.MFAKey), cache: cfg.AuthCache,
	}, nil
}

// link returns the absolute URL of path on the public site with query.
func (s *Service) link(path string, query url.Values) string {
	u := *s.baseURL
	u.Path = path
	u.RawQuery = query.Encode()
	return u.String()
}

// forget drops the auth cache's entries tagged tag on this node, at once. The
// database's triggers tell every node (this one included) the same a moment
// later; the revoking node forgets synchronously as well, so that a request
// following a logout or a revocation on the same node never sees the old
// entry. A missed call here costs only that moment, never correctness.
func (s *Service) forget(tag string) {
	if s.cache != nil {
		s.cache.Invalidate(tag)
	}
}

// forgetUser forgets every cached session, token and role of the person.
func (s *Service) forgetUser(id uuid.UUID) {
	if id != uuid.Nil {
		s.forget(authcache.UserTag(id))
	}
}
