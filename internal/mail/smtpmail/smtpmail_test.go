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
func mailerFor(t *testing.T, cfg Config, srv *testServer) *Mailer {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.addr)
	}
	return m
}

func hello() mail.Message {
	return mail.Message{To: []string{"ada@example.com"}, Subject: "Hello", Text: "Hello\n", HTML: "<p>Hello</p>\n", Tag: "hello"}
}

// inbox reads what srv accepted as a recipient would, checking each message's
// envelope against its headers.
func inbox(srv *testServer) mailtest.Inbox {
	return func(t *testing.T) []mail.Message {
		var out []mail.Message
		for _, r := range srv.messages() {
			m, _ := mailtest.ParseMIME(t, r.data)
			var headerTo []string
			for _, addr := range m.To {
				a, _ := mail.ParseAddress(addr)
				headerTo = append(headerTo, a.Address)
			}
			if !slices.Equal(r.to, headerTo) || r.from != "no-reply@example.com" {
				t.Errorf("envelope %s -> %v, headers To %v", r.from, r.to, headerTo)
			}
			out = append(out, m)
		}
		return out
	}
}

func TestConformance(t *testing.T) {
	mailtest.Run(t, func(t *testing.T) (mail.Mailer, mailtest.Inbox) {
		srv := (&testServer{}).start(t)
		return mailerFor(t, Config{Host: "127.0.0.1", Port: 25, From: testFrom}, srv), inbox(srv)
	})
}

func TestHeaders(t *testing.T) {
	srv := (&testServer{}).start(t)
	if err := mailerFor(t, Config{Host: testHost, Port: 25, From: testFrom}, srv).Send(context.Background(), hello()); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages, want 1", len(got))
	}
	_, h := mailtest.ParseMIME(t, got[0].data)
	if from := h.Get("From"); from != `"Atrium" <no-reply@example.com>` {
		t.Errorf("From %q", from)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID %q", id)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute || time.Since(d) < -time.Minute {
		t.Errorf("Date %v, %v; want about now", d, err)
	}
	if got[0].tls || got[0].authUser != "" {
		t.Errorf("plain server without auth: tls %v, user %q", got[0].tls, got[0].authUser)
	}
}

func TestSTARTTLSThenAuth(t *testing.T) {
	for _, mechanisms := range []string{"PLAIN LOGIN", "LOGIN", "CRAM-MD5 PLAIN"} {
		t.Run(mechanisms, func(t *testing.T) {
			serverTLS, clientTLS := selfSignedTLS(t, testHost)
			password := "p@ss:w/rd?&=%" // every character URL syntax cares about
			srv := (&testServer{tls: serverTLS, user: "mailer", pass: password, mechanisms: mechanisms}).start(t)
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
			got := srv.messages()
			if len(got) != 1 || !got[0].tls || got[0].authUser != "mailer" {
				t.Fatalf("received %+v, want one message over TLS from user mailer", got)
			}
			if _, plain := srv.authCounts(); plain != 0 {
				t.Errorf("%d AUTH attempts before TLS", plain)
			}
		})
	}
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t, testHost)
	srv := (&testServer{tls: serverTLS, implicitTLS: true, user: "mailer", pass: "secret"}).start(t)
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
	if got := srv.messages(); len(got) != 1 || !got[0].tls || got[0].authUser != "mailer" {
		t.Fatalf("received %+v, want one message over TLS from user mailer", got)
	}
}

func TestCredentialsNeverTravelInPlainText(t *testing.T) {
	srv := (&testServer{user: "mailer", pass: "hunter2-secret"}).start(t) // offers AUTH, no STARTTLS
	err := mailerFor(t, Config{Host: testHost, Port: 587, From: testFrom, Username: "mailer", Password: "hunter2-secret"}, srv).
		Send(context.Background(), hello())
	if !kernel.IsCode(err, kernel.CodeInternal) || !strings.Contains(err.Error(), "plain text") {
		t.Fatalf("Send: %v, want internal refusing plain text", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if tries, _ := srv.authCounts(); tries != 0 || len(srv.messages()) != 0 {
		t.Fatalf("server saw %d AUTH attempts and %d messages, want none", tries, len(srv.messages()))
	}
}

func TestPlainTextAuthToLoopback(t *testing.T) {
	srv := (&testServer{user: "mailer", pass: "secret"}).start(t)
	m := mailerFor(t, Config{Host: "127.0.0.1", Port: 587, From: testFrom, Username: "mailer", Password: "secret"}, srv)
	if err := m.Send(context.Background(), hello()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.messages(); len(got) != 1 || got[0].authUser != "mailer" || got[0].tls {
		t.Fatalf("received %+v, want one plain-text message from user mailer", got)
	}
}

func TestNoFallbackWhenSTARTTLSFails(t *testing.T) {
	serverTLS, _ := selfSignedTLS(t, testHost)
	srv := (&testServer{tls: serverTLS, user: "mailer", pass: "secret"}).start(t)
	// The client does not trust the server's certificate.
	err := mailerFor(t, Config{Host: testHost, Port: 587, From: testFrom, Username: "mailer", Password: "secret"}, srv).
		Send(context.Background(), hello())
	var certErr *tls.CertificateVerificationError
	if !kernel.IsCode(err, kernel.CodeInternal) || !errors.As(err, &certErr) {
		t.Fatalf("Send: %v, want internal with a certificate error", err)
	}
	if tries, _ := srv.authCounts(); tries != 0 || len(srv.messages()) != 0 {
		t.Fatalf("server saw %d AUTH attempts and %d messages, want none", tries, len(srv.messages()))
	}
}

func TestServerRefusals(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t, testHost)
	tests := []struct {
		name  string
		srv   *testServer
		cfg   Config
		code  kernel.Code
		reply int // the SMTP code kept in the chain; 0 for none
	}{
		{"recipient refused", &testServer{rcptReply: "550 5.1.1 no such user"}, Config{}, kernel.CodeInternal, 550},
		{"recipient deferred", &testServer{rcptReply: "451 4.3.0 try again later"}, Config{}, kernel.CodeUnavailable, 451},
		{"wrong password", &testServer{tls: serverTLS, user: "mailer", pass: "right"},
			Config{Username: "mailer", Password: "wrong"}, kernel.CodeInternal, 535},
		{"auth required, none configured", &testServer{tls: serverTLS, user: "mailer", pass: "x"}, Config{}, kernel.CodeInternal, 530},
		{"no AUTH offered", &testServer{tls: serverTLS}, Config{Username: "mailer", Password: "x"}, kernel.CodeInternal, 0},
		{"no supported mechanism", &testServer{tls: serverTLS, user: "mailer", pass: "x", mechanisms: "CRAM-MD5 XOAUTH2"},
			Config{Username: "mailer", Password: "x"}, kernel.CodeInternal, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv.start(t)
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
			if n := len(srv.messages()); n != 0 {
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
			srv := (&testServer{silent: true}).start(t)
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
	srv := (&testServer{}).start(t)
	m := mailerFor(t, Config{Host: testHost, Port: 25, From: testFrom}, srv)
	dialed := false
	m.dial = func(context.Context, string, string) (net.Conn, error) { dialed = true; return nil, errors.New("no") }
	msg := hello()
	msg.Subject = "Hi\r\nBcc: eve@example.net"
	if err := m.Send(context.Background(), msg); !kernel.IsCode(err, kernel.CodeInvalid) || dialed {
		t.Fatalf("Send: %v (dialed %v), want invalid without dialling", err, dialed)
	}
}
