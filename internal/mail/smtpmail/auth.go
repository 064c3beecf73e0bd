package smtpmail

import (
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strings"
)

// net/smtp's PlainAuth has its own idea of which hosts may get credentials in
// plain text (only "localhost", "127.0.0.1" and "::1"); these two mechanisms
// share the rule Send applies, so the check and the reason are the same.

// authAllowed returns an error unless credentials may go to server: over TLS,
// or in plain text to a loopback host, and only to the host configured.
func authAllowed(server *smtp.ServerInfo, host string) error {
	if server.Name != host {
		return fmt.Errorf("smtp: server name %q is not the configured host", server.Name)
	}
	if !server.TLS && !isLoopback(host) {
		return errors.New("smtp: refusing to send credentials over an unencrypted connection")
	}
	return nil
}

// isLoopback reports whether host names this machine, where plain text does not
// leave it.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainAuth is AUTH PLAIN (RFC 4616) with no authorization identity.
type plainAuth struct {
	host, username, password string
}

func (a plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if err := authAllowed(server, a.host); err != nil {
		return "", nil, err
	}
	return "PLAIN", []byte("\x00" + a.username + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("smtp: AUTH PLAIN: unexpected challenge from the server")
	}
	return nil, nil
}

// loginAuth is AUTH LOGIN, the obsolete mechanism some providers still require:
// the server prompts for the user name, then the password.
type loginAuth struct {
	host, username, password string
	step                     int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if err := authAllowed(server, a.host); err != nil {
		return "", nil, err
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(_ []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	// The prompts ("Username:", "Password:") vary in wording between servers,
	// never in order.
	a.step++
	switch a.step {
	case 1:
		return []byte(a.username), nil
	case 2:
		return []byte(a.password), nil
	}
	return nil, errors.New("smtp: AUTH LOGIN: unexpected third challenge from the server")
}
