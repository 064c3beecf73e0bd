package webhooks

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"atrium/internal/kernel"
)

func TestCheckURL(t *testing.T) {
	resolver := NewFakeResolver()
	resolver.Set("hooks.example.com", "93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
	resolver.Set("internal.example.com", "10.0.0.5")
	resolver.Set("mixed.example.com", "93.184.215.14", "127.0.0.1")
	resolver.Set("mapped.example.com", "::ffff:127.0.0.1")
	resolver.Set("metadata.example.com", "fd00:ec2::254")
	resolver.Fail("servfail.example.com", &net.DNSError{Err: "server misbehaving", Name: "servfail.example.com", IsTemporary: true})
	g := NewGuard(false, resolver)

	refused := []string{
		// Loopback, in every notation inet_aton and browsers accept.
		"http://127.0.0.1/", "http://127.0.0.1.:8080/hook", "http://2130706433/", "http://0x7f.1/", "http://0x7f000001/",
		"http://017700000001/", "http://0177.0.0.1/", "http://127.1/", "http://127.0.1/", "http://0x7f.0x0.0x0.0x1/",
		"http://１２７.0.0.1/", "http://localhost/", "http://LOCALHOST./", "http://api.localhost:3000/",
		"http://[::1]/", "http://[0:0:0:0:0:0:0:1]/",
		// Unspecified.
		"http://0/", "http://0.0.0.0/", "http://[::]/",
		// IPv4 inside IPv6: mapped, compatible, NAT64, 6to4, translated.
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:ffff:169.254.169.254]/",
		"http://[::127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::]/",
		"http://[2002:c0a8:101::1]/", "http://[::ffff:0:a00:1]/",
		// Private, shared, link-local and cloud metadata.
		"http://10.0.0.1/", "http://172.16.0.1/", "http://172.31.255.255/", "http://192.168.1.1/", "http://100.64.0.1/",
		"http://100.100.100.200/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
		"http://[fc00::1]/", "http://[fe80::1]/", "http://[fec0::1]/",
		// Multicast, broadcast, reserved, documentation, tunnels.
		"http://224.0.0.1/", "http://255.255.255.255/", "http://240.0.0.1/", "http://192.0.2.10/", "http://[ff02::1]/",
		"http://[2001:db8::1]/", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "http://[100::1]/",
		// Names that resolve inside, or not at all.
		"https://internal.example.com/hook", "https://mixed.example.com/hook", "https://mapped.example.com/",
		"https://metadata.example.com/", "https://nowhere.example.com/",
	}
	for _, raw := range refused {
		_, err := g.CheckURL(context.Background(), raw)
		if !kernel.IsCode(err, kernel.CodeUnprocessable) || kernel.As(err).Fields["url"] == "" {
			t.Errorf("%s: %v, want unprocessable naming url", raw, err)
		}
	}

	invalid := []string{
		"", "hooks.example.com/hook", "ftp://hooks.example.com/", "javascript:alert(1)", "file:///etc/passwd",
		"http://user:pass@hooks.example.com/", "http://user@hooks.example.com/", "http:///hook", "http://hooks.example.com/#frag",
		"http://hooks.example.com:0/", "http://hooks.example.com:65536/", "http://256.1.1.1/", "http://1.2.3.4.5/",
		"http://0x8.0x8.0x8.0x8/", "http://134744072/", "http://hooks.123/", "http://hooks example.com/",
		"http://[fe80::1%25eth0]/", "http://[1.2.3.4]/", "https://hooks.example.com/" + strings.Repeat("a", MaxURLLength),
		"http://hooks.example.com/\x00",
	}
	for _, raw := range invalid {
		_, err := g.CheckURL(context.Background(), raw)
		if !kernel.IsCode(err, kernel.CodeInvalid) || kernel.As(err).Fields["url"] == "" {
			t.Errorf("%q: %v, want invalid naming url", raw, err)
		}
	}

	for _, raw := range []string{
		"https://hooks.example.com/atrium", "https://93.184.215.14/hook", "http://1.1.1.1:8080/x?token=y",
		"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", "https://[2002:5db8:d70e::1]/", "https://[64:ff9b::5db8:d70e]/",
		"  https://hooks.example.com/padded  ",
	} {
		got, err := g.CheckURL(context.Background(), raw)
		if err != nil || got != strings.TrimSpace(raw) {
			t.Errorf("%s: %q %v, want it accepted", raw, got, err)
		}
	}

	_, err := g.CheckURL(context.Background(), "https://servfail.example.com/")
	if !kernel.IsCode(err, kernel.CodeUnavailable) {
		t.Errorf("a failing resolver: %v, want unavailable", err)
	}
}

func TestCheckURLAllowPrivate(t *testing.T) {
	g := NewGuard(true, NewFakeResolver())
	for _, raw := range []string{"http://127.0.0.1:8080/hook", "http://localhost/", "http://[::1]/", "http://10.0.0.1/"} {
		if _, err := g.CheckURL(context.Background(), raw); err != nil {
			t.Errorf("%s with private addresses allowed: %v", raw, err)
		}
	}
	for _, raw := range []string{"ftp://127.0.0.1/", "http://user:pw@127.0.0.1/"} {
		if _, err := g.CheckURL(context.Background(), raw); !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("%s with private addresses allowed: %v, want invalid", raw, err)
		}
	}
}

func TestParseIPv4(t *testing.T) {
	for host, want := range map[string]string{
		"2130706433": "127.0.0.1", "0x7f.1": "127.0.0.1", "017700000001": "127.0.0.1", "127.1": "127.0.0.1",
		"0x7f000001": "127.0.0.1", "0177.0.0.01": "127.0.0.1", "1.2.3": "1.2.0.3", "4294967295": "255.255.255.255",
		"0": "0.0.0.0", "0x": "0.0.0.0", "10.0.0.1": "10.0.0.1",
	} {
		addr, numeric, ok := parseIPv4(host)
		if !numeric || !ok || addr.String() != want {
			t.Errorf("%s: %v numeric=%v ok=%v, want %s", host, addr, numeric, ok, want)
		}
	}
	for _, host := range []string{"4294967296", "256.0.0.1", "1.2.3.256", "1.2.65536", "08", "1.2.3.4.5", "a.1", "1..2"} {
		if _, numeric, ok := parseIPv4(host); !numeric || ok {
			t.Errorf("%s: numeric=%v ok=%v, want a malformed IPv4 address", host, numeric, ok)
		}
	}
	for _, host := range []string{"example.com", "1.2.3.example", "0x7f.example", "x1", "0x1g"} {
		if _, numeric, _ := parseIPv4(host); numeric {
			t.Errorf("%s: read as an IPv4 address", host)
		}
	}
}

func TestDialRefusesInternalAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	resolver := NewFakeResolver()
	resolver.Set("rebind.example.com", "127.0.0.1")
	g := NewGuard(false, resolver)
	for _, addr := range []string{"rebind.example.com:" + port, "127.0.0.1:" + port, "[::ffff:127.0.0.1]:" + port} {
		_, err := g.DialContext(context.Background(), "tcp", addr)
		if !errors.Is(err, errInternalAddress) {
			t.Errorf("dial %s: %v, want refused", addr, err)
		}
	}
	// The socket-level check stands on its own, whatever resolved the name.
	if err := g.control("tcp4", "169.254.169.254:80", nil); !errors.Is(err, errInternalAddress) {
		t.Errorf("control on the metadata address: %v", err)
	}
	if err := g.control("tcp4", "93.184.215.14:443", nil); err != nil {
		t.Errorf("control on a public address: %v", err)
	}
	select {
	case <-accepted:
		t.Fatal("a refused address was connected to")
	default:
	}
	if conn, err := NewGuard(true, resolver).DialContext(context.Background(), "tcp", "rebind.example.com:"+port); err != nil {
		t.Errorf("with private addresses allowed: %v", err)
	} else {
		conn.Close()
	}
}
