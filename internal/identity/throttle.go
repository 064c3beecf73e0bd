package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/ratelimit"
	"atrium/internal/store"
)

// Brute-force protection (issue 3, part 8). Counters live in the
// ratelimit.Limiter the service is given (the database by default, Redis
// when configured), so they survive restarts and hold across nodes.
//
//   - Every login attempt counts against its client address (PerIP; an IPv6
//     address counts by its /64) before anything else, in particular before
//     any password is hashed: a flood from one address cannot buy Argon2id
//     time, and gets 429 rate_limited with Retry-After.
//   - Every failed password counts against the address typed, normalised and
//     hashed (PerAccount), whether or not it has an account: the key is
//     "login:acct:<sha256 of the address>", never a user ID, so an unknown
//     address is limited exactly like a known one and a 429 tells nobody
//     which addresses have accounts.
//   - The failure that spends PerAccount starts a lockout: password logins
//     for that address answer 429 for Lockout, doubling with each further
//     lockout of the past day or so (the lockouts count is itself a key, 24
//     a day, forgetting one an hour), capped at MaxLockout. The owner of an
//     existing account is emailed once per lockout (account_locked), and
//     user.locked_out is audited.
//   - Wrong MFA codes count per account (MFAPerAccount), wrong passwords and
//     codes at re-authentication per account too (PerAccount, on a key of
//     their own: a stolen session must not lock its owner out of logging in).
//
// An attacker cannot lock a victim out for good: a lockout lasts at most
// MaxLockout; a successful password reset or magic-link login clears every
// counter of the account; and the lockout never blocks asking for a reset or
// a magic link, nor using one. A successful password login clears the
// address's failures.
//
// When the limiter fails (Redis down), login fails closed with 503
// unavailable: a window without brute-force protection is worse than a
// short outage of logging in.

// LoginLimits are the brute-force limits. A zero field takes its value from
// DefaultLoginLimits.
type LoginLimits struct {
	// PerIP bounds login attempts, right or wrong, from one client address.
	PerIP ratelimit.Limit
	// PerAccount bounds failed passwords for one email address; spending it
	// starts a lockout. It also bounds failed re-authentications.
	PerAccount ratelimit.Limit
	// MFAPerAccount bounds wrong MFA codes at login for one account.
	MFAPerAccount ratelimit.Limit
	// Lockout is the first lockout's length; each further one doubles it up
	// to MaxLockout.
	Lockout    time.Duration
	MaxLockout time.Duration
}

// DefaultLoginLimits are 5 attempts a minute per address, 10 failed
// passwords an hour per account, 10 wrong MFA codes an hour per account,
// and lockouts of 15 minutes, 30, then an hour.
func DefaultLoginLimits() LoginLimits {
	return LoginLimits{
		PerIP:         ratelimit.Limit{Events: 5, Window: time.Minute},
		PerAccount:    ratelimit.Limit{Events: 10, Window: time.Hour},
		MFAPerAccount: ratelimit.Limit{Events: 10, Window: time.Hour},
		Lockout:       15 * time.Minute,
		MaxLockout:    time.Hour,
	}
}

// withDefaults fills the zero fields of l from DefaultLoginLimits.
func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits()
	if l.PerIP.Events == 0 {
		l.PerIP = d.PerIP
	}
	if l.PerAccount.Events == 0 {
		l.PerAccount = d.PerAccount
	}
	if l.MFAPerAccount.Events == 0 {
		l.MFAPerAccount = d.MFAPerAccount
	}
	if l.Lockout == 0 {
		l.Lockout = d.Lockout
	}
	if l.MaxLockout == 0 {
		l.MaxLockout = max(d.MaxLockout, l.Lockout)
	}
	return l
}

// lockoutsPerDay is the lockouts key's limit: its bucket forgets one lockout
// an hour, and its fill level picks the next lockout's length.
var lockoutsPerDay = ratelimit.Limit{Events: 24, Window: 24 * time.Hour}

// Limiter keys. Addresses are hashed so that no key holds one.
func ipKey(ip string) string {
	if addr, err := netip.ParseAddr(ip); err == nil {
		addr = addr.Unmap()
		if addr.Is6() {
			p, _ := addr.Prefix(64)
			return "login:ip:" + p.String()
		}
		return "login:ip:" + addr.String()
	}
	return "login:ip:?" + hashHex(ip)[:32]
}

func accountKey(kind, normalizedEmail string) string {
	return "login:" + kind + ":" + hashHex(normalizedEmail)
}
func mfaLimitKey(userID uuid.UUID) string { return "login:mfa:" + userID.String() }
func reauthKey(userID uuid.UUID) string   { return "reauth:user:" + userID.String() }

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// errLimited is the 429 of a spent limit, with when to try again.
func errLimited(message string, retryAfter time.Duration) error {
	return &kernel.Error{Code: kernel.CodeRateLimited, Message: message, RetryAfter: max(retryAfter, time.Second)}
}

// errLimiterDown fails closed when the limiter cannot answer.
func errLimiterDown(err error) error {
	return kernel.Unavailable("login", fmt.Errorf("identity: brute-force limiter: %w", err))
}

// checkLogin runs before a password is looked at: it counts the attempt
// against client's address and refuses an address that is locked out
// (normalized is "" for an address that is not one). It returns 429
// rate_limited with RetryAfter, or 503 unavailable when the limiter fails.
func (s *Service) checkLogin(ctx context.Context, normalized string, client kernel.Client) error {
	d, err := s.limiter.Hit(ctx, ipKey(client.IP), s.limits.PerIP)
	if err != nil {
		return errLimiterDown(err)
	}
	if !d.Allowed {
		return errLimited("too many login attempts from this address; try again later", d.RetryAfter)
	}
	if normalized == "" {
		return nil
	}
	return s.checkLock(ctx, normalized)
}

// checkLock refuses an address that is locked out with 429 rate_limited
// (RetryAfter is the lock's remaining time), or 503 when the limiter fails.
func (s *Service) checkLock(ctx context.Context, normalized string) error {
	d, err := s.limiter.Peek(ctx, accountKey("lock", normalized), ratelimit.Limit{Events: 1, Window: s.limits.MaxLockout})
	if err != nil {
		return errLimiterDown(err)
	}
	if !d.Allowed {
		return errLimited("too many failed logins for this account: try again later, reset the password or log in with an emailed link", d.RetryAfter)
	}
	return nil
}

// passwordFailed counts a failed password for the address and starts a
// lockout when that spends PerAccount. u is the account, zero for an
// unknown address. It returns nil, or 503 when the limiter fails.
func (s *Service) passwordFailed(ctx context.Context, normalized string, u User) error {
	d, err := s.limiter.Hit(ctx, accountKey("acct", normalized), s.limits.PerAccount)
	if err != nil {
		return errLimiterDown(err)
	}
	if d.Allowed && d.Remaining > 0 {
		return nil
	}
	return s.startLockout(ctx, normalized, u)
}

// startLockout locks password logins for the address. Concurrent failures
// race for one lock key: only the request that sets it counts the lockout,
// audits user.locked_out and emails the owner (if the address has an
// account), so one lockout sends one email. It returns 503 when the limiter
// fails, or the store's error.
func (s *Service) startLockout(ctx context.Context, normalized string, u User) error {
	level, err := s.limiter.Peek(ctx, accountKey("lockouts", normalized), lockoutsPerDay)
	if err != nil {
		return errLimiterDown(err)
	}
	length := s.limits.Lockout
	for n := lockoutsPerDay.Events - level.Remaining; n > 0 && length < s.limits.MaxLockout; n-- {
		length *= 2
	}
	length = min(length, s.limits.MaxLockout)
	lock, err := s.limiter.Hit(ctx, accountKey("lock", normalized), ratelimit.Limit{Events: 1, Window: length})
	if err != nil {
		return errLimiterDown(err)
	}
	if !lock.Allowed {
		return nil // another request started this lockout
	}
	if _, err := s.limiter.Hit(ctx, accountKey("lockouts", normalized), lockoutsPerDay); err != nil {
		return errLimiterDown(err)
	}
	var until time.Time
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		until = tx.Now().Add(length)
		target := ""
		if u.ID != uuid.Nil {
			target = apiUserID(u.ID)
		}
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.locked_out", TargetType: "user", TargetID: target,
			Metadata: map[string]any{"lockout_seconds": int(length.Seconds()), "lockout_number": lockoutsPerDay.Events - level.Remaining + 1}})
		return err
	})
	if err != nil {
		return fmt.Errorf("identity: lockout: %w", err)
	}
	if u.ID != uuid.Nil {
		s.notify(ctx, u, mail.TemplateAccountLocked, mail.AccountLocked{Name: u.Name, LockedFor: inWords(length),
			Until: until.UTC().Format("2 Jan 2006 15:04 MST"), ResetLink: s.link("/forgot-password", nil)})
	}
	return nil
}

// loginSucceeded forgets the address's failed passwords. A failure to do so
// is logged, not returned: the person has proved their password.
func (s *Service) loginSucceeded(ctx context.Context, normalized string) {
	if err := s.limiter.Reset(ctx, accountKey("acct", normalized)); err != nil {
		s.logger.ErrorContext(ctx, "reset login failures", "error", err.Error())
	}
}

// clearLoginLimits forgets the password counters of the address (failed
// passwords, the lockout and its count) after its owner proved they read its
// mail: a password reset or a magic-link login. The MFA and re-authentication
// counters stay: reading the mailbox proves nothing about the second factor,
// so someone holding the mailbox must not win fresh guesses at the code.
// Failures are logged, not returned.
func (s *Service) clearLoginLimits(ctx context.Context, u User) {
	normalized, err := NormalizeEmail(u.Email)
	if err != nil {
		normalized = u.Email
	}
	keys := []string{accountKey("acct", normalized), accountKey("lock", normalized), accountKey("lockouts", normalized)}
	for _, k := range keys {
		if err := s.limiter.Reset(ctx, k); err != nil {
			s.logger.ErrorContext(ctx, "reset login limits", "user_id", apiUserID(u.ID), "error", err.Error())
			return
		}
	}
}

// inWords is a lockout's length for an email: "15 minutes", "1 hour".
func inWords(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d >= time.Minute:
		return plural(int((d+time.Minute-1)/time.Minute), "minute")
	}
	return plural(int((d+time.Second-1)/time.Second), "second")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// challengeUserSQL finds whose login challenge a token is, live or not.
const challengeUserSQL = "SELECT user_id FROM mfa_challenge WHERE token_hash = $1"

// checkMFALimit refuses a code for a login challenge whose account has had
// MFAPerAccount wrong codes, before the code is looked at. An unknown
// challenge passes: LoginMFA answers it as usual. It returns 429
// rate_limited, 503 when the limiter fails, or the store's error.
func (s *Service) checkMFALimit(ctx context.Context, challengeToken string) error {
	var userID uuid.UUID
	err := s.db.ReadTx(ctx, func(tx store.Tx) error {
		return tx.QueryRow(ctx, challengeUserSQL, hashToken(challengeToken)).Scan(&userID)
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("identity: MFA login: %w", err)
	}
	d, err := s.limiter.Peek(ctx, mfaLimitKey(userID), s.limits.MFAPerAccount)
	if err != nil {
		return errLimiterDown(err)
	}
	if !d.Allowed {
		return errLimited("too many wrong codes for this account; try again later", d.RetryAfter)
	}
	return nil
}

// countMFAFailure counts a wrong MFA code for the account. It returns nil, or
// 503 when the limiter fails.
func (s *Service) countMFAFailure(ctx context.Context, userID uuid.UUID) error {
	if _, err := s.limiter.Hit(ctx, mfaLimitKey(userID), s.limits.MFAPerAccount); err != nil {
		return errLimiterDown(err)
	}
	return nil
}

// checkReauth refuses re-authentication for an account that has failed it
// PerAccount times, before the password is hashed. It returns 429
// rate_limited, or 503 when the limiter fails.
func (s *Service) checkReauth(ctx context.Context, userID uuid.UUID) error {
	d, err := s.limiter.Peek(ctx, reauthKey(userID), s.limits.PerAccount)
	if err != nil {
		return errLimiterDown(err)
	}
	if !d.Allowed {
		return errLimited("too many failed attempts; try again later", d.RetryAfter)
	}
	return nil
}

// reauthFailedCount counts a failed re-authentication. It returns nil, or
// 503 when the limiter fails.
func (s *Service) reauthFailedCount(ctx context.Context, userID uuid.UUID) error {
	if _, err := s.limiter.Hit(ctx, reauthKey(userID), s.limits.PerAccount); err != nil {
		return errLimiterDown(err)
	}
	return nil
}
