package pgstore

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"atrium/internal/kernel"
)

// NewForTest wraps a pool the test configured itself (to count its round
// trips, say) in a DB.
func NewForTest(pool *pgxpool.Pool, clock kernel.Clock) *DB {
	if clock == nil {
		clock = kernel.SystemClock{}
	}
	return &DB{pool: pool, clock: clock, logger: slog.New(slog.DiscardHandler)}
}

// SetAuthHeartbeat makes ListenAuth check its connection after d of silence,
// so a test sees several checks; call it before ListenAuth.
func (db *DB) SetAuthHeartbeat(d time.Duration) { db.authHeartbeat = d }
