package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// AuthSink receives what the auth invalidation listener hears;
// authcache.Cache is one.
type AuthSink interface {
	// Invalidate drops what one payload of migration 0012's triggers names.
	Invalidate(tag string)
	// SetLive says whether the listener is listening: false from the moment
	// a notification may have been missed until LISTEN succeeds again.
	SetLive(live bool)
}

const (
	// authChannel is the channel migration 0012's triggers notify.
	authChannel = "atrium_auth"
	// defaultAuthHeartbeat is how long the listener waits in silence before it
	// checks its connection with a query. It bounds how long a connection
	// that died without a word (a dropped route, no reset) can go unnoticed,
	// and with it how long the cache might miss a revocation; it is shorter
	// than the cache's TTL so that this case is no worse than having no
	// notifications at all.
	defaultAuthHeartbeat = 5 * time.Second
	// authRetryMax caps the wait between reconnection attempts.
	authRetryMax = 5 * time.Second
)

// ListenAuth holds a dedicated connection (outside the pool) listening on
// the auth invalidation channel and hands every payload to sink, until ctx
// ends. Whenever the connection is lost it tells sink it is not live,
// reconnects with backoff, and says live again only once LISTEN succeeded,
// so nothing sent in between can be missed unnoticed.
func (db *DB) ListenAuth(ctx context.Context, sink AuthSink) {
	retry := 100 * time.Millisecond
	for {
		listened, err := db.listenAuth(ctx, sink)
		sink.SetLive(false)
		db.listenerPID.Store(0)
		if ctx.Err() != nil {
			return
		}
		db.logger.Warn("auth invalidation listener lost: the auth cache is bypassed until it is back", "error", err.Error())
		if listened {
			retry = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, authRetryMax)
	}
}

// listenAuth runs one connection until it fails. It reports whether LISTEN
// succeeded, and returns why it stopped.
func (db *DB) listenAuth(ctx context.Context, sink AuthSink) (bool, error) {
	cfg := db.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "atrium auth listener"
	// A wait that times out must leave the connection usable: a deadline,
	// not a cancel request, interrupts it.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+authChannel); err != nil {
		return false, err
	}
	db.listenerPID.Store(conn.PgConn().PID())
	sink.SetLive(true)
	for {
		waitCtx, cancel := context.WithTimeout(ctx, db.heartbeat())
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			sink.Invalidate(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
			pingCtx, cancel := context.WithTimeout(ctx, defaultAuthHeartbeat)
			_, err := conn.Exec(pingCtx, "SELECT 1")
			cancel()
			if err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

func (db *DB) heartbeat() time.Duration {
	if db.authHeartbeat > 0 {
		return db.authHeartbeat
	}
	return defaultAuthHeartbeat
}

// AuthListenerPID is the PostgreSQL backend PID of the auth listener's
// connection, or 0 while it has none: tests terminate it to check that a
// lost listener never leaves a revoked secret usable.
func (db *DB) AuthListenerPID() uint32 { return db.listenerPID.Load() }
