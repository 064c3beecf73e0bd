package mailtest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/mail"
)

// SMTPServer is a small SMTP server on 127.0.0.1 that records what it is
// sent. It speaks EHLO, HELO, STARTTLS, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA,
// RSET, NOOP and QUIT, as far as a submission client needs. Set the exported
// fields, then call Start. Every package that delivers mail (smtpmail, the mail
// queue, the whole app) tests against it: a real local peer, not a fake.
type SMTPServer struct {
	TLS         *tls.Config // offered with STARTTLS, or spoken from the start with ImplicitTLS
	ImplicitTLS bool
	User, Pass  string // when set, AUTH is offered and required before MAIL
	Mechanisms  string // AUTH mechanisms offered; "PLAIN LOGIN" when empty
	Silent      bool   // accept connections and never say a word
	RcptReply   string // when set, the reply to RCPT ("550 5.1.1 no such user")

	addr       string // after Start
	ln         net.Listener
	wg         sync.WaitGroup
	mu         sync.Mutex
	down       bool // greet with 421 and hang up, as a server out of service does
	conns      []net.Conn
	received   []Received
	authTries  int
	plainAuths int // AUTH attempts over a connection without TLS
}

// Received is one message the server accepted.
type Received struct {
	From     string   // the envelope sender (MAIL FROM)
	To       []string // the envelope recipients (RCPT TO)
	Data     []byte   // as sent, CRLF line ends, dot-stuffing undone
	TLS      bool
	AuthUser string
}

// Start listens on a free port of 127.0.0.1 and serves until the test ends.
func (s *SMTPServer) Start(t testing.TB) *SMTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.addr = ln, ln.Addr().String()
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// Addr is the host:port the server listens on.
func (s *SMTPServer) Addr() string { return s.addr }

// Port is the port the server listens on.
func (s *SMTPServer) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// SetDown takes the server out of service (every new connection is greeted
// with "421 service not available" and closed) or puts it back.
func (s *SMTPServer) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Messages returns what the server has accepted so far.
func (s *SMTPServer) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Inbox returns what the server has accepted so far as a recipient reads it
// (see ParseMIME), failing t on a malformed message.
func (s *SMTPServer) Inbox(t testing.TB) []mail.Message {
	t.Helper()
	var out []mail.Message
	for _, r := range s.Messages() {
		m, _ := ParseMIME(t, r.Data)
		out = append(out, m)
	}
	return out
}

// AuthCounts returns the AUTH attempts so far, and how many of them came over
// a connection without TLS.
func (s *SMTPServer) AuthCounts() (tries, plainText int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authTries, s.plainAuths
}

func (s *SMTPServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		_, _ = io.WriteString(conn, "421 4.3.2 service not available\r\n")
		return
	}
	if s.Silent {
		_, _ = io.Copy(io.Discard, conn) // until the client gives up
		return
	}
	secure := false
	if s.ImplicitTLS {
		conn, secure = tls.Server(conn, s.TLS), true
	}
	tp := textproto.NewConn(conn)
	reply := func(format string, args ...any) { _ = tp.PrintfLine(format, args...) }
	var msg Received
	authed := ""
	reply("220 test.local ESMTP ready")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"test.local", "8BITMIME"}
			if s.TLS != nil && !secure {
				ext = append(ext, "STARTTLS")
			}
			if s.User != "" {
				ext = append(ext, "AUTH "+s.mechanismList())
			}
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				reply("250%s%s", sep, e)
			}
		case "HELO", "NOOP":
			reply("250 OK")
		case "STARTTLS":
			if s.TLS == nil || secure {
				reply("502 5.5.1 not available")
				continue
			}
			reply("220 2.0.0 go ahead")
			tc := tls.Server(conn, s.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, secure, authed, msg = tc, true, "", Received{}
			tp = textproto.NewConn(conn)
		case "AUTH":
			user, pass, ok := s.readAuth(tp, reply, arg)
			s.mu.Lock()
			s.authTries++
			if !secure {
				s.plainAuths++
			}
			s.mu.Unlock()
			if ok && user == s.User && pass == s.Pass {
				authed = user
				reply("235 2.7.0 authenticated")
			} else {
				reply("535 5.7.8 authentication failed")
			}
		case "MAIL":
			if s.User != "" && authed == "" {
				reply("530 5.7.0 authentication required")
				continue
			}
			msg = Received{From: envelopeAddress(arg), TLS: secure, AuthUser: authed}
			reply("250 2.1.0 OK")
		case "RCPT":
			switch {
			case s.RcptReply != "":
				reply("%s", s.RcptReply)
			default:
				msg.To = append(msg.To, envelopeAddress(arg))
				reply("250 2.1.5 OK")
			}
		case "DATA":
			if len(msg.To) == 0 {
				reply("503 5.5.1 no recipients")
				continue
			}
			reply("354 end with <CRLF>.<CRLF>")
			data, err := readData(tp.R)
			if err != nil {
				return
			}
			msg.Data = data
			s.mu.Lock()
			s.received = append(s.received, msg)
			s.mu.Unlock()
			msg = Received{}
			reply("250 2.0.0 queued")
		case "RSET":
			msg = Received{}
			reply("250 OK")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			reply("500 5.5.2 unknown command")
		}
	}
}

func (s *SMTPServer) mechanismList() string {
	if s.Mechanisms == "" {
		return "PLAIN LOGIN"
	}
	return s.Mechanisms
}

// readAuth reads the credentials of an AUTH command, PLAIN or LOGIN.
func (s *SMTPServer) readAuth(tp *textproto.Conn, reply func(string, ...any), arg string) (user, pass string, ok bool) {
	mechanism, initial, _ := strings.Cut(arg, " ")
	if !strings.Contains(" "+s.mechanismList()+" ", " "+strings.ToUpper(mechanism)+" ") {
		return "", "", false
	}
	ask := func(prompt string) string {
		reply("334 %s", base64.StdEncoding.EncodeToString([]byte(prompt)))
		line, _ := tp.ReadLine()
		b, _ := base64.StdEncoding.DecodeString(line)
		return string(b)
	}
	switch strings.ToUpper(mechanism) {
	case "PLAIN":
		var b []byte
		if initial != "" {
			b, _ = base64.StdEncoding.DecodeString(initial)
		} else {
			b = []byte(ask(""))
		}
		parts := strings.Split(string(b), "\x00")
		if len(parts) != 3 {
			return "", "", false
		}
		return parts[1], parts[2], true
	case "LOGIN":
		user = ask("Username:")
		return user, ask("Password:"), true
	}
	return "", "", false
}

// envelopeAddress reads "FROM:<a@b> BODY=8BITMIME" as a@b.
func envelopeAddress(arg string) string {
	_, rest, _ := strings.Cut(arg, ":")
	rest, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
	return strings.Trim(rest, "<>")
}

// readData reads a DATA body up to the lone dot, keeping CRLF line ends and
// undoing dot-stuffing.
func readData(r *bufio.Reader) ([]byte, error) {
	var out bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == ".\r\n" {
			return out.Bytes(), nil
		}
		out.WriteString(strings.TrimPrefix(line, "."))
	}
}

// SelfSignedTLS returns a server TLS config for host and 127.0.0.1, for
// SMTPServer.TLS, and a client config that trusts it.
func SelfSignedTLS(t testing.TB, host string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{RootCAs: pool}
}
