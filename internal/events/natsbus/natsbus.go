// Package natsbus connects Atrium to NATS JetStream: an embedded server inside
// the process by default, a NATS server or cluster when ATRIUM_NATS_URL names
// one. It also declares the three streams Atrium uses, so every node agrees on
// their subjects and retention.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The streams. Subjects: events are ws.<workspace id>.<event type>; jobs are
// jobs.<kind>; dead letters are dead.jobs.<kind> and dead.events.<consumer>.
const (
	EventsStream = "ATRIUM_EVENTS"
	JobsStream   = "ATRIUM_JOBS"
	DeadStream   = "ATRIUM_DEAD"
)

// Retention of each stream. Events are kept a week, long enough for a
// subscriber that was down for days and for SSE clients resuming with
// Last-Event-ID; jobs until they are acknowledged (a webhook's retries span
// about three days); dead letters a month, for someone to look at.
const (
	EventsMaxAge = 7 * 24 * time.Hour
	JobsMaxAge   = 14 * 24 * time.Hour
	DeadMaxAge   = 30 * 24 * time.Hour
	// DuplicateWindow is how long JetStream remembers a message ID: a relay
	// that crashed after publishing and before marking the row sent publishes
	// it again within this window, and JetStream drops the copy.
	DuplicateWindow = 10 * time.Minute
)

// Options say which NATS to use.
type Options struct {
	// URL is a comma-separated list of nats:// or tls:// servers; empty runs an
	// embedded server.
	URL string
	// Dir, MaxStore and MaxMemory configure the embedded server's JetStream.
	Dir       string
	MaxStore  int64
	MaxMemory int64
	// Name identifies this node's connection in the server's monitoring.
	Name   string
	Logger *slog.Logger
}

// Bus is a connection to NATS with JetStream, and the embedded server when
// this process runs one.
type Bus struct {
	Conn *nats.Conn
	JS   jetstream.JetStream
	// Embedded is the in-process server, nil with an external one.
	Embedded *server.Server
	logger   *slog.Logger
}

// Open connects to the configured NATS, starting the embedded server first
// when no URL is set. An external server that does not answer yet is not an
// error: the connection keeps retrying in the background, and EnsureStreams
// says when it is usable. It returns an error if the embedded server cannot
// start (its directory unwritable, say).
func Open(opts Options) (*Bus, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b := &Bus{logger: logger}
	connOpts := []nats.Option{
		nats.Name(opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		// No buffering while disconnected: a publish then fails at once and
		// its outbox row waits, rather than sit in memory a crash would lose.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("nats reconnected", "server", c.ConnectedUrlRedacted()) }),
	}
	url := opts.URL
	if url == "" {
		srv, err := StartServer(ServerOptions{Dir: opts.Dir, MaxStore: opts.MaxStore, MaxMemory: opts.MaxMemory, Port: NoListen})
		if err != nil {
			return nil, err
		}
		b.Embedded = srv
		connOpts = append(connOpts, nats.InProcessServer(srv))
	}
	conn, err := nats.Connect(url, connOpts...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("nats: connect: %w", err)
	}
	b.Conn = conn
	js, err := jetstream.New(conn)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	b.JS = js
	return b, nil
}

// NoListen is the ServerOptions.Port of a server reachable only in process.
const NoListen = 0

// ServerOptions configure an embedded NATS server.
type ServerOptions struct {
	Dir       string
	MaxStore  int64
	MaxMemory int64
	// Port is NoListen (in process only), a TCP port on 127.0.0.1, or -1 for a
	// random free one (tests that run several nodes against one server).
	Port int
}

// StartServer starts a NATS server with JetStream in this process and waits
// until it accepts connections. It installs no signal handlers: the process's
// own shutdown stops it. It returns an error if it does not start within 10 s.
func StartServer(o ServerOptions) (*server.Server, error) {
	if o.MaxStore == 0 {
		o.MaxStore = 1 << 30
	}
	if o.MaxMemory == 0 {
		o.MaxMemory = 64 << 20
	}
	sopts := &server.Options{
		ServerName:         "atrium-embedded",
		JetStream:          true,
		StoreDir:           o.Dir,
		JetStreamMaxStore:  o.MaxStore,
		JetStreamMaxMemory: o.MaxMemory,
		NoSigs:             true,
		NoLog:              true,
		Host:               "127.0.0.1",
		Port:               o.Port,
		DontListen:         o.Port == NoListen,
		MaxPayload:         1 << 20,
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats: the embedded server did not start within 10s")
	}
	return srv, nil
}

// EnsureStreams creates Atrium's streams, or updates them to the settings
// above. It returns the server's error when JetStream cannot be reached.
func (b *Bus) EnsureStreams(ctx context.Context) error {
	replicas := 1
	if b.Embedded == nil {
		// A cluster keeps three copies; a single server can only keep one.
		if info, err := b.JS.AccountInfo(ctx); err == nil && info != nil {
			replicas = b.clusterReplicas()
		}
	}
	storage := jetstream.FileStorage
	streams := []jetstream.StreamConfig{
		{Name: EventsStream, Subjects: []string{"ws.>"}, Retention: jetstream.LimitsPolicy, MaxAge: EventsMaxAge,
			Storage: storage, Duplicates: DuplicateWindow, Replicas: replicas, Discard: jetstream.DiscardOld,
			Description: "Atrium domain events: ws.<workspace id>.<event type>"},
		{Name: JobsStream, Subjects: []string{"jobs.>"}, Retention: jetstream.WorkQueuePolicy, MaxAge: JobsMaxAge,
			Storage: storage, Duplicates: DuplicateWindow, Replicas: replicas,
			Description: "Atrium background jobs: jobs.<kind>, removed when acknowledged"},
		{Name: DeadStream, Subjects: []string{"dead.>"}, Retention: jetstream.LimitsPolicy, MaxAge: DeadMaxAge,
			Storage: storage, Replicas: replicas, Discard: jetstream.DiscardOld,
			Description: "Jobs and event deliveries that failed for good, with the reason in headers"},
	}
	for _, cfg := range streams {
		if _, err := b.JS.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("nats: stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// clusterReplicas is 3 when the connected server is part of a cluster of at
// least three, else 1.
func (b *Bus) clusterReplicas() int {
	if len(b.Conn.DiscoveredServers())+1 >= 3 {
		return 3
	}
	return 1
}

// Ping reports whether the connection is up, for /readyz.
func (b *Bus) Ping(ctx context.Context) error {
	if !b.Conn.IsConnected() {
		return fmt.Errorf("nats: %s", strings.ToLower(b.Conn.Status().String()))
	}
	return b.Conn.FlushWithContext(ctx)
}

// Close drains the connection, so published messages are flushed and
// subscriptions finish their current message, then stops the embedded server.
func (b *Bus) Close() error {
	var err error
	if b.Conn != nil {
		err = b.Conn.Drain()
		deadline := time.Now().Add(5 * time.Second)
		for !b.Conn.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		b.Conn.Close()
	}
	if b.Embedded != nil {
		b.Embedded.Shutdown()
		b.Embedded.WaitForShutdown()
	}
	return err
}

// Check connects once to the servers at url, without retrying, and asks
// JetStream for the account's limits: what `atrium doctor` reports. It
// returns an error naming what failed: the connection, or JetStream (not
// enabled on the server, say).
func Check(ctx context.Context, url string) (*jetstream.AccountInfo, error) {
	conn, err := nats.Connect(url, nats.Name("atrium doctor"), nats.Timeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	js, err := jetstream.New(conn)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream (is it enabled on the server, with -js?): %w", err)
	}
	return info, nil
}
