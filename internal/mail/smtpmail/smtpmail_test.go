package smtpmail

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/mailtest"
)

const (
	testFrom = "Atrium <no-reply@example.com>"
	testHost = "mail.example.com" // resolves nowhere: tests dial the local server
)

// mailerFor returns a Mailer for cfg whose connections reach srv whatever host
// cfg names, so TLS and AUTH rules see the configured name.
func mailerFor(t *testing.T, cfg Config, srv *mailtest.SMTPServer) *Mailer {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr())
	}
	return m
}

func hello() mail.Message {
	return mail.Message{To: []string{"ada@example.com"}, Subject: "Hello", Text: "Hello\n", HTML: "<p>Hello</p>\n", Tag: "hello"}
}

// inbox reads what srv accepted as a recipient would, checking each message's
// envelope against its headers.
func inbox(srv *mailtest.SMTPServer) mailtest.Inbox {
	return func(t *testing.T) []mail.Message {
		var out []mail.Message
		for _, r := range srv.Messages() {
			m, _ := mailtest.ParseMIME(t, r.Data)
			var headerTo []string
			for _, addr := range m.To {
				a, _ := mail.ParseAddress(addr)
				headerTo = append(headerTo, a.Address)
			}
			if !slices.Equal(r.To, headerTo) || r.From != "no-reply@example.com" {
				t.Errorf("envelope %s -> %v, headers To %v", r.From, r.To, headerTo)
			}
			out = append(out, m)
		}
		return out
	}
}

func TestConformance(t *testing.T) {
	mailtest.Run(t, func(t *testing.T) (mail.Mailer, mailtest.Inbox) {
		srv := (&mailtest.SMTPServer{}).Start(t)
		return mailerFor(t, Config{Host: "127.0.0.1", Port: 25, From: testFrom}, srv), inbox(srv)
	})
}

func TestHeaders(t *testing.T) {
	srv := (&mailtest.SMTPServer{}).Start(t)
	if err := mailerFor(t, Config{Host: testHost, Port: 25, From: testFrom}, srv).Send(context.Background(), hello()); err != nil {
		t.Fatal(err)
	}
	got := srv.Messages()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	_, h := mailtest.ParseMIME(t, got[0].Data)
	if from := h.Get("From"); from != `"Atrium" <no-reply@example.com>` {
		t.Errorf("From %q", from)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID %q", id)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute || time.Since(d) < -time.Minute {
		t.Errorf("Date %v, %v; want about now", d, err)
	}
	if got[0].TLS || got[0].AuthUser != "" {
		t.Errorf("plain server without auth: tls %v, user %q", got[0].TLS, got[0].AuthUser)
	}
}

func TestSTARTTLSThenAuth(t *testing.T) {
	for _, mechanisms := range []string{"PLAIN LOGIN", "LOGIN", "CRAM-MD5 PLAIN"} {
		t.Run(mechanisms, func(t *testing.T) {
			serverTLS, clientTLS := mailtest.SelfSignedTLS(t, testHost)
			password := "p@ss:w/rd?&=%" // every character URL syntax cares about
			srv := (&mailtest.SMTPServer{TLS: serverTLS, User: "mailer", Pass: password, Mechanisms: mechanisms}).Start(t)
			u := url.URL{Scheme: "smtp", User: url.UserPassword("mailer", password), Host: testHost,
				RawQuery: "from=" + url.QueryEscape(testFrom)}
			cfg, err := ParseURL(u.String())
			if err != nil {
				t.Fatal(err)
			}
			cfg.TLSConfig = clientTLS
			if err := mailerFor(t, cfg, srv).Send(context.Background(), hello()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.Messages()
			if len(got) != 1 || !got[0].TLS || got[0].AuthUser != "mailer" {
				t.Fatalf("received %+v, want one message over TLS from user mailer", got)
			}
			if _, plain := srv.AuthCounts(); plain != 0 {
				t.Errorf("%d AUTH attempts before TLS", plain)
			}
		})
	}
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := mailtest.SelfSignedTLS(t, testHost)
	srv := (&mailtest.SMTPServer{TLS: serverTLS, ImplicitTLS: true, User: "mailer", Pass: "secret"}).Start(t)
	cfg, err := ParseURL("smtps://mailer:secret@" + testHost + "?from=no-reply@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 465 || !cfg.ImplicitTLS {
		t.Fatalf("ParseURL: port %d, implicit TLS %v", cfg.Port, cfg.ImplicitTLS)
	}
	cfg.TLSConfig = clientTLS
	if err := mailerFor(t, cfg, srv).Send(context.Background(), hello()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.Messages(); len(got) != 1 || !got[0].TLS || got[0].AuthUser != "mailer" {
		t.Fatalf("received %+v, want one message over TLS from user mailer", got)
	}
}

func TestCredentialsNeverTravelInPlainText(t *testing.T) {
	srv := (&mailtest.SMTPServer{User: "mailer", Pass: "hunter2-secret"}).Start(t) // offers AUTH, no STARTTLS
	err := mailerFor(t, Config{Host: testHost, Port: 587, From: testFrom, Username: "mailer", Password: "hunter2-secret"}, srv).
		Send(context.Background(), hello())
	if !kernel.IsCode(err, kernel.CodeInternal) || !strings.Contains(err.Error(), "plain text") {
		t.Fatalf("Send: %v, want internal refusing plain text", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if tries, _ := srv.AuthCounts(); tries != 0 || len(srv.Messages()) != 0 {
		t.Fatalf("server saw %d AUTH attempts and %d messages, want none", tries, len(srv.Messages()))
	}
}

func TestPlainTextAuthToLoopback(t *testing.T) {
	srv := (&mailtest.SMTPServer{User: "mailer", Pass: "secret"}).Start(t)
	m := mailerFor(t, Config{Host: "127.0.0.1", Port: 587, From: testFrom, Username: "mailer", Password: "secret"}, srv)
	if err := m.Send(context.Background(), hello()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.Messages(); len(got) != 1 || got[0].AuthUser != "mailer" || got[0].TLS {
		t.Fatalf("received %+v, want one plain-text message from user mailer", got)
	}
}

func TestNoFallbackWhenSTARTTLSFails(t *testing.T) {
	serverTLS, _ := mailtest.SelfSignedTLS(t, testHost)
	srv := (&mailtest.SMTPServer{TLS: serverTLS, User: "mailer", Pass: "secret"}).Start(t)
	// The client does not trust the server's certificate.
	err := mailerFor(t, Config{Host: testHost, Port: 587, From: testFrom, Username: "mailer", Password: "secret"}, srv).
		Send(context.Background(), hello())
	var certErr *tls.CertificateVerificationError
	if !kernel.IsCode(err, kernel.CodeInternal) || !errors.As(err, &certErr) {
		t.Fatalf("Send: %v, want internal with a certificate error", err)
	}
	if tries, _ := srv.AuthCounts(); tries != 0 || len(srv.Messages()) != 0 {
		t.Fatalf("server saw %d AUTH attempts and %d messages, want none", tries, len(srv.Messages()))
	}
}

func TestServerRefusals(t *testing.T) {
	serverTLS, clientTLS := mailtest.SelfSignedTLS(t, testHost)
	tests := []struct {
		name  string
		srv   *mailtest.SMTPServer
		cfg   Config
		code  kernel.Code
		reply int // the SMTP code kept in the chain; 0 for none
	}{
		{"recipient refused", &mailtest.SMTPServer{RcptReply: "550 5.1.1 no such user"}, Config{}, kernel.CodeInternal, 550},
		{"recipient deferred", &mailtest.SMTPServer{RcptReply: "451 4.3.0 try again later"}, Config{}, kernel.CodeUnavailable, 451},
		{"wrong password", &mailtest.SMTPServer{TLS: serverTLS, User: "mailer", Pass: "right"},
			Config{Username: "mailer", Password: "wrong"}, kernel.CodeInternal, 535},
		{"auth required, none configured", &mailtest.SMTPServer{TLS: serverTLS, User: "mailer", Pass: "x"}, Config{}, kernel.CodeInternal, 530},
		{"no AUTH offered", &mailtest.SMTPServer{TLS: serverTLS}, Config{Username: "mailer", Password: "x"}, kernel.CodeInternal, 0},
		{"no supported mechanism", &mailtest.SMTPServer{TLS: serverTLS, User: "mailer", Pass: "x", Mechanisms: "CRAM-MD5 XOAUTH2"},
			Config{Username: "mailer", Password: "x"}, kernel.CodeInternal, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv.Start(t)
			cfg := tt.cfg
			cfg.Host, cfg.Port, cfg.From, cfg.TLSConfig = testHost, 587, testFrom, clientTLS
			err := mailerFor(t, cfg, srv).Send(context.Background(), hello())
			if kernel.CodeOf(err) != tt.code {
				t.Fatalf("Send: %v, want %s", err, tt.code)
			}
			var reply *textproto.Error
			if tt.reply != 0 && (!errors.As(err, &reply) || reply.Code != tt.reply) {
				t.Errorf("Send: %v, want the server's %d in the chain", err, tt.reply)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server accepted %d messages", n)
			}
		})
	}
}

func TestContextBoundsASilentServer(t *testing.T) {
	withTimeout := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 200*time.Millisecond)
	}
	cancelSoon := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		return ctx, cancel
	}
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration // Config.Timeout
		want    error
	}{
		{"context deadline", withTimeout, 0, context.DeadlineExceeded},
		{"context cancelled, no deadline", cancelSoon, 0, context.Canceled},
		{"config timeout", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, 200 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := (&mailtest.SMTPServer{Silent: true}).Start(t)
			m := mailerFor(t, Config{Host: testHost, Port: 25, From: testFrom, Timeout: tt.timeout}, srv)
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			err := m.Send(ctx, hello())
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Send took %v against a silent server", elapsed)
			}
			if !errors.Is(err, tt.want) || !kernel.IsCode(err, kernel.CodeUnavailable) {
				t.Fatalf("Send: %v, want unavailable wrapping %v", err, tt.want)
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	m, err := New(Config{Host: "127.0.0.1", Port: port, From: testFrom})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), hello()); !kernel.IsCode(err, kernel.CodeUnavailable) ||
		!strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("Send: %v, want unavailable naming the address", err)
	}
}

func TestInvalidMessageNeverConnects(t *testing.T) {
	srv := (&mailtest.SMTPServer{}).Start(t)
	m := mailerFor(t, Config{Host: testHost, Port: 25, From: testFrom}, srv)
	dialed := false
	m.dial = func(context.Context, string, string) (net.Conn, error) { dialed = true; return nil, errors.New("no") }
	msg := hello()
	msg.Subject = "Hi\r\nBcc: eve@example.net"
	if err := m.Send(context.Background(), msg); !kernel.IsCode(err, kernel.CodeInvalid) || dialed {
		t.Fatalf("Send: %v (dialed %v), want invalid without dialling", err, dialed)
	}
}
