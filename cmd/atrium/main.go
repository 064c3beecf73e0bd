// Command atrium runs an Atrium deployment.
//
//	atrium [serve] [flags]     serve the API (the default)
//	atrium migrate up|status   apply or list database migrations
//	atrium doctor              check configuration and backends, report risks
//	atrium admin grant EMAIL   make the account at EMAIL a platform admin
//	atrium admin revoke EMAIL  take the platform-admin right back
//	atrium version             print the version
//
// Configuration comes from ATRIUM_* environment variables; flags override them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	code := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Main is the program, as a value tests can run in-process.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Run executes the command in args and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = m.serve(ctx, args)
	case "migrate":
		err = m.migrate(ctx, args)
	case "doctor":
		return m.doctor(ctx, args)
	case "admin":
		err = m.admin(ctx, args)
	case "version":
		fmt.Fprintln(m.Stdout, versionString())
	case "help", "-h", "--help":
		m.usage(m.Stdout)
	default:
		fmt.Fprintf(m.Stderr, "atrium: unknown command %q\n\n", cmd)
		m.usage(m.Stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintf(m.Stderr, "atrium %s: %v\n", cmd, err)
		return 1
	}
	return 0
}
