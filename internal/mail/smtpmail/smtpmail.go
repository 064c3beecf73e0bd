// Package smtpmail is the mail.Mailer that sends through an SMTP server,
// chosen when ATRIUM_SMTP_URL is set. Each Send opens one connection, switches
// to TLS (implicit, or STARTTLS whenever offered), authenticates if configured,
// delivers one message and quits. The context bounds all of it: its deadline
// becomes the connection's, and cancelling it interrupts a blocked read.
package smtpmail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
)

// Mailer sends mail through one SMTP server. It is safe for concurrent use.
type Mailer struct {
	cfg          Config
	envelopeFrom string // the bare sender address, for MAIL FROM
	// dial opens the TCP connection; tests point it at a local server while the
	// configured host stays the name TLS and AUTH check against.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
}

var _ mail.Mailer = (*Mailer)(nil)

// New returns a Mailer for cfg, filling in the defaults of zero fields. It
// returns an invalid *kernel.Error if cfg lacks a host, a valid port or a valid
// sender address.
func New(cfg Config) (*Mailer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	from, _ := mail.ParseAddress(cfg.From) // validate parsed it
	dialer := &net.Dialer{Timeout: cfg.DialTimeout}
	return &Mailer{cfg: cfg, envelopeFrom: from.Address, dial: dialer.DialContext}, nil
}

// Send delivers m. It returns:
//   - an invalid *kernel.Error, having sent nothing, if m breaks a rule of
//     mail.Message.Validate;
//   - an unavailable *kernel.Error, worth retrying later, if the server cannot
//     be reached, answers 4xx, or the connection fails or times out, and when
//     ctx ends first (errors.Is then matches ctx's error);
//   - an internal *kernel.Error for what a retry will not fix: a 5xx answer (a
//     refused sender, recipient or message, rejected credentials), a TLS
//     certificate that does not verify, credentials that would travel in plain
//     text, no usable AUTH mechanism.
//
// Server answers are kept as *textproto.Error in the chain, for errors.As.
func (m *Mailer) Send(ctx context.Context, msg mail.Message) error {
	raw, err := mail.BuildMIME(msg, m.cfg.From, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	err = m.send(ctx, msg.To, raw)
	if err != nil {
		if ctxErr := contextError(ctx); ctxErr != nil {
			return kernel.Unavailable("mail server", fmt.Errorf("smtp %s: %w: %w", m.address(), ctxErr, err))
		}
	}
	return err
}

// contextError returns why ctx has ended, or nil. The connection shares ctx's
// deadline, so a read can time out a moment before ctx reports it: a deadline
// already past counts as ended.
func contextError(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (m *Mailer) address() string { return hostPort(m.cfg.Host, m.cfg.Port) }

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// send runs one SMTP session.
func (m *Mailer) send(ctx context.Context, to []string, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := m.dial(ctx, "tcp", m.address())
	if err != nil {
		return m.fail("connect", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline() // Send always sets one
	if err := conn.SetDeadline(deadline); err != nil {
		return m.fail("connect", err)
	}
	// A past deadline wakes any read or write blocked on the connection.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	tlsConfig := m.tlsConfig()
	if m.cfg.ImplicitTLS {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return m.fail("TLS handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, m.cfg.Host) // reads the greeting
	if err != nil {
		return m.fail("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(m.cfg.HelloName); err != nil {
		return m.fail("EHLO", err)
	}
	secure := m.cfg.ImplicitTLS
	if ok, _ := c.Extension("STARTTLS"); ok && !secure {
		if err := c.StartTLS(tlsConfig); err != nil {
			return m.fail("STARTTLS", err)
		}
		secure = true
	}
	if m.cfg.Username != "" {
		if !secure && !isLoopback(m.cfg.Host) {
			return kernel.Internal(fmt.Errorf("smtp %s: refusing to send credentials in plain text: the server did not offer STARTTLS", m.address()))
		}
		auth, err := m.auth(c)
		if err != nil {
			return err
		}
		if err := c.Auth(auth); err != nil {
			return m.fail("AUTH", err)
		}
	}
	if err := c.Mail(m.envelopeFrom); err != nil {
		return m.fail("MAIL FROM", err)
	}
	for i, addr := range to {
		a, _ := mail.ParseAddress(addr) // BuildMIME validated every address
		if err := c.Rcpt(a.Address); err != nil {
			return m.fail(fmt.Sprintf("RCPT TO (recipient %d of %d)", i+1, len(to)), err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return m.fail("DATA", err)
	}
	if _, err := w.Write(raw); err != nil {
		return m.fail("DATA", err)
	}
	if err := w.Close(); err != nil { // reads the server's verdict on the message
		return m.fail("end of DATA", err)
	}
	// The server has taken the message; a failing QUIT changes nothing for it.
	_ = c.Quit()
	return nil
}

func (m *Mailer) tlsConfig() *tls.Config {
	var c *tls.Config
	if m.cfg.TLSConfig != nil {
		c = m.cfg.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = m.cfg.Host
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// auth picks the mechanism: PLAIN when offered, else LOGIN.
func (m *Mailer) auth(c *smtp.Client) (smtp.Auth, error) {
	ok, params := c.Extension("AUTH")
	if !ok {
		return nil, kernel.Internal(fmt.Errorf("smtp %s: a user name is configured but the server offers no AUTH", m.address()))
	}
	mechanisms := strings.Fields(strings.ToUpper(params))
	switch {
	case slices.Contains(mechanisms, "PLAIN"):
		return plainAuth{host: m.cfg.Host, username: m.cfg.Username, password: m.cfg.Password}, nil
	case slices.Contains(mechanisms, "LOGIN"):
		return &loginAuth{host: m.cfg.Host, username: m.cfg.Username, password: m.cfg.Password}, nil
	}
	return nil, kernel.Internal(fmt.Errorf("smtp %s: no supported AUTH mechanism (the server offers %q; supported: PLAIN, LOGIN)", m.address(), params))
}

// fail classifies an error of one step of the session: 4xx answers and
// transport failures may pass, so they are unavailable; 5xx answers and
// certificates that do not verify will not, so they are internal.
func (m *Mailer) fail(step string, err error) error {
	wrapped := fmt.Errorf("smtp %s: %s: %w", m.address(), step, err)
	var reply *textproto.Error
	if errors.As(err, &reply) && reply.Code >= 400 && reply.Code < 500 {
		return kernel.Unavailable("mail server", wrapped)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &reply) || errors.As(err, &certErr) {
		return kernel.Internal(wrapped)
	}
	return kernel.Unavailable("mail server", wrapped)
}
