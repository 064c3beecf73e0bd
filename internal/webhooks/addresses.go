package webhooks

import "net/netip"

// blockedPrefix is a range no webhook may reach, with the words that say why.
type blockedPrefix struct {
	prefix netip.Prefix
	reason string
}

func blocked(cidr, reason string) blockedPrefix {
	return blockedPrefix{prefix: netip.MustParsePrefix(cidr), reason: reason}
}

// blockedIPv4 are the IPv4 ranges of the IANA special-purpose registry that
// are not globally reachable, and multicast and reserved space.
var blockedIPv4 = []blockedPrefix{
	blocked("0.0.0.0/8", "an unspecified address"),
	blocked("10.0.0.0/8", "a private address"),
	blocked("100.64.0.0/10", "a shared (CGNAT) address"),
	blocked("127.0.0.0/8", "a loopback address"),
	blocked("169.254.0.0/16", "a link-local address (cloud metadata lives there)"),
	blocked("172.16.0.0/12", "a private address"),
	blocked("192.0.0.0/24", "an IETF protocol address"),
	blocked("192.0.2.0/24", "a documentation address"),
	blocked("192.88.99.0/24", "a 6to4 relay address"),
	blocked("192.168.0.0/16", "a private address"),
	blocked("198.18.0.0/15", "a benchmarking address"),
	blocked("198.51.100.0/24", "a documentation address"),
	blocked("203.0.113.0/24", "a documentation address"),
	blocked("224.0.0.0/4", "a multicast address"),
	blocked("240.0.0.0/4", "a reserved or broadcast address"),
}

// blockedIPv6 are the IPv6 ranges refused outright. Beyond them, only global
// unicast space (2000::/3) is reachable, and the ranges that embed an IPv4
// address are judged by that address (see forbidden).
var blockedIPv6 = []blockedPrefix{
	blocked("::/128", "an unspecified address"),
	blocked("::1/128", "a loopback address"),
	blocked("::/96", "an IPv4-compatible address"),
	blocked("::ffff:0:0:0/96", "an IPv4-translated address"),
	blocked("64:ff9b:1::/48", "a local-use NAT64 address"),
	blocked("2001::/32", "a Teredo tunnel address"),
	blocked("2001:2::/48", "a benchmarking address"),
	blocked("2001:db8::/32", "a documentation address"),
	blocked("3fff::/20", "a documentation address"),
	blocked("fc00::/7", "a unique-local address (cloud metadata lives there)"),
	blocked("fe80::/10", "a link-local address"),
	blocked("fec0::/10", "a site-local address"),
	blocked("ff00::/8", "a multicast address"),
}

var (
	globalUnicast = netip.MustParsePrefix("2000::/3")
	nat64         = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour     = netip.MustParsePrefix("2002::/16")
)

// forbidden reports whether a delivery must not reach addr, and why. An IPv6
// address that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is as
// forbidden as the IPv4 address it carries.
func forbidden(addr netip.Addr) (reason string, bad bool) {
	if addr.Zone() != "" {
		return "a scoped (zoned) address", true
	}
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	if addr.Is4() {
		return match(blockedIPv4, addr)
	}
	if reason, bad := match(blockedIPv6, addr); bad {
		return reason, true
	}
	b := addr.As16()
	switch {
	case nat64.Contains(addr):
		return embedded(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case sixToFour.Contains(addr):
		return embedded(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	case !globalUnicast.Contains(addr):
		return "a reserved address", true
	}
	return "", false
}

func embedded(v4 netip.Addr) (string, bool) {
	if reason, bad := match(blockedIPv4, v4); bad {
		return reason + " (embedded in IPv6)", true
	}
	return "", false
}

func match(list []blockedPrefix, addr netip.Addr) (string, bool) {
	for _, b := range list {
		if b.prefix.Contains(addr) {
			return b.reason, true
		}
	}
	return "", false
}
