package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"golang.org/x/net/idna"

	"atrium/internal/kernel"
)

// MaxURLLength is the longest endpoint URL accepted, in bytes.
const MaxURLLength = 2048

// Resolver looks host names up; *net.Resolver is one. Tests give the guard
// their own, to make a name resolve one way at registration and another at
// dial time.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard decides which URLs may be endpoints and which addresses a delivery
// may connect to. Registration refuses a URL whose host is, or resolves to,
// an internal address; every connection is checked again against the address
// actually dialed, so a name that resolves differently later (DNS rebinding)
// gains nothing. AllowPrivate lifts the address rules, for development and
// tests only (the configuration refuses it in production).
type Guard struct {
	allowPrivate bool
	resolver     Resolver
	dialer       *net.Dialer
}

// NewGuard returns a guard that looks names up with resolver
// (net.DefaultResolver when nil).
func NewGuard(allowPrivate bool, resolver Resolver) *Guard {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	g := &Guard{allowPrivate: allowPrivate, resolver: resolver}
	g.dialer = &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: g.control}
	return g
}

// errInternalAddress is the cause of every refusal of an address.
var errInternalAddress = errors.New("internal address")

// refusedAddress explains why an address may not be dialed.
type refusedAddress struct {
	addr   netip.Addr
	reason string
}

func (e *refusedAddress) Error() string {
	return fmt.Sprintf("refused to connect to %s: %s", e.addr, e.reason)
}

func (e *refusedAddress) Unwrap() error { return errInternalAddress }

// CheckURL vets raw as an endpoint URL and returns it trimmed. It returns an
// invalid *kernel.Error on field "url" for a URL that is malformed, too long,
// not http or https, carries a user name or password or a fragment, or
// writes an IPv4 address in other than dotted-decimal form; an unprocessable
// one when the host is an internal address in any notation, does not
// resolve, or resolves to any internal address; or unavailable when the name
// cannot be looked up right now.
func (g *Guard) CheckURL(ctx context.Context, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	host, err := parseEndpointURL(raw)
	if err != nil {
		return "", err
	}
	if g.allowPrivate {
		return raw, nil
	}
	if addr, ok := hostAddr(host); ok {
		if reason, bad := forbidden(addr); bad {
			return "", refuseURL("points to " + reason)
		}
		return raw, nil
	}
	if isLocalName(host) {
		return "", refuseURL("points to this machine")
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := g.resolver.LookupNetIP(lctx, "ip", host)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound, err == nil && len(addrs) == 0:
		return "", refuseURL("its host name does not resolve")
	case err != nil:
		return "", kernel.Unavailable("DNS", fmt.Errorf("resolve %s: %w", host, err))
	}
	for _, a := range addrs {
		if reason, bad := forbidden(a); bad {
			return "", refuseURL("its host name resolves to " + reason)
		}
	}
	return raw, nil
}

func refuseURL(why string) error {
	msg := "the URL " + why + ": webhooks only go to public addresses"
	return &kernel.Error{Code: kernel.CodeUnprocessable, Message: msg, Fields: map[string]string{"url": why}}
}

// parseEndpointURL checks raw's syntax and returns its host in the ASCII
// form the HTTP client dials (IDNA mapped, lower case, no trailing dot).
func parseEndpointURL(raw string) (string, error) {
	invalid := func(msg string) error { return kernel.Invalid("url", msg) }
	switch {
	case raw == "":
		return "", invalid("is required")
	case len(raw) > MaxURLLength:
		return "", invalid("must be at most 2048 bytes")
	case strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "", invalid("must not contain spaces or control characters")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", invalid("is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", invalid("must be an http or https URL")
	case u.Opaque != "" || u.Host == "":
		return "", invalid("must name a host")
	case u.User != nil:
		return "", invalid("must not carry a user name or password")
	case u.Fragment != "" || strings.HasSuffix(raw, "#"):
		return "", invalid("must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", invalid("has an invalid port")
		}
	}
	host := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", invalid("has an invalid IPv6 address")
		}
		return host, nil
	}
	ascii, err := asciiHost(strings.TrimSuffix(host, "."))
	if err != nil {
		return "", invalid("has an invalid host name")
	}
	if addr, numeric, ok := parseIPv4(ascii); numeric {
		if !ok {
			return "", invalid("has an invalid IPv4 address")
		}
		if addr.String() != ascii {
			if reason, bad := forbidden(addr); bad {
				return "", refuseURL("points to " + reason)
			}
			return "", invalid("must write an IPv4 address as four decimal numbers")
		}
	}
	return ascii, nil
}

// asciiHost is host as the HTTP client dials it: lower case, and a name with
// non-ASCII characters mapped by IDNA (so that full-width digits are digits).
func asciiHost(host string) (string, error) {
	if strings.IndexFunc(host, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
		var err error
		if host, err = idna.Lookup.ToASCII(host); err != nil {
			return "", err
		}
	}
	if host == "" {
		return "", errors.New("empty host")
	}
	return strings.ToLower(host), nil
}

// hostAddr returns the address a checked host names literally, if it does.
func hostAddr(host string) (netip.Addr, bool) {
	addr, err := netip.ParseAddr(host)
	return addr, err == nil
}

// isLocalName reports names that mean this machine whatever DNS says
// (RFC 6761): localhost and anything under it.
func isLocalName(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || host == "localhost.localdomain"
}

// parseIPv4 reads host the way inet_aton and the WHATWG URL standard do, so
// that 2130706433, 0x7f.1, 017700000001 and 127.1 are all 127.0.0.1:
// one to four parts, each decimal, octal (a leading 0) or hexadecimal (0x),
// the last filling the remaining bytes. numeric reports whether host must be
// an IPv4 address at all (its last label is a number); ok whether it is one.
func parseIPv4(host string) (addr netip.Addr, numeric, ok bool) {
	parts := strings.Split(host, ".")
	last := parts[len(parts)-1]
	if !isNumber(last) {
		return netip.Addr{}, false, false
	}
	if len(parts) > 4 {
		return netip.Addr{}, true, false
	}
	var value uint64
	for i, p := range parts {
		n, ok := parseIPv4Part(p)
		if !ok {
			return netip.Addr{}, true, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, true, false
			}
			value |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, true, false
		}
		value |= n
	}
	return netip.AddrFrom4([4]byte{byte(value >> 24), byte(value >> 16), byte(value >> 8), byte(value)}), true, true
}

// isNumber reports whether a label is written as a number: decimal digits,
// or 0x followed by hexadecimal digits.
func isNumber(label string) bool {
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return label != "" && strings.Trim(label, "0123456789") == ""
}

// parseIPv4Part reads one part of an inet_aton address.
func parseIPv4Part(p string) (uint64, bool) {
	base := 10
	switch {
	case p == "":
		return 0, false
	case strings.HasPrefix(p, "0x"):
		p, base = p[2:], 16
		if p == "" {
			return 0, true
		}
	case len(p) > 1 && p[0] == '0':
		p, base = p[1:], 8
	}
	if len(p) > 12 { // beyond any 32-bit value in any base, and far from overflowing
		return 0, false
	}
	n, err := strconv.ParseUint(p, base, 64)
	return n, err == nil
}

// DialContext connects to address (host:port) for the HTTP client: it
// resolves a name itself and refuses every internal address among the
// results, then dials the first address that answers. It returns an error
// wrapping errInternalAddress when every address was refused.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = g.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	var firstErr error
	for _, a := range addrs {
		if reason, bad := forbidden(a); bad && !g.allowPrivate {
			firstErr = firstOf(firstErr, &refusedAddress{addr: a, reason: reason})
			continue
		}
		conn, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		firstErr = firstOf(firstErr, err)
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%s has no address", host)
	}
	return nil, firstErr
}

func firstOf(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// control checks the address the socket is about to connect to, whatever
// produced it: the last word on where a delivery goes.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: %w", address, errInternalAddress)
	}
	if reason, bad := forbidden(ap.Addr()); bad {
		return &refusedAddress{addr: ap.Addr(), reason: reason}
	}
	return nil
}
