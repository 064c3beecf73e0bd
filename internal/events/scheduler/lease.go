package scheduler

import (
	"context"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// term is one stretch of this node's leadership.
type term struct {
	// until is when the lease runs out unless renewed; zero while this node
	// does not lead.
	until time.Time
	// renewedAt is when the lease was last taken or renewed.
	renewedAt time.Time
	// ctx ends with the term: the term's runs go under it, so a node that
	// loses the lease stops the task it is running.
	ctx    context.Context
	cancel context.CancelFunc
	// synced says the tasks' rows were recorded during this term.
	synced bool
}

const (
	peekLeaseSQL = `SELECT holder, expires_at FROM scheduler_lease WHERE name = $1`
	// acquireLeaseSQL takes the lease if it is free, expired or already this
	// node's, and affects no row otherwise. PostgreSQL locks a conflicting
	// row before it evaluates the condition, and SQLite has one writer, so of
	// nodes racing for an expired lease exactly one wins.
	acquireLeaseSQL = `INSERT INTO scheduler_lease (name, holder, expires_at) VALUES ($1, $2, $3)
        ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE scheduler_lease.holder = excluded.holder OR scheduler_lease.expires_at <= $4`
	releaseLeaseSQL = `DELETE FROM scheduler_lease WHERE name = $1 AND holder = $2`
)

// keepLease takes the lease when it can and renews it while it leads, once a
// tick, until ctx ends.
func (s *Scheduler) keepLease(ctx context.Context) {
	var failing trouble
	s.every(ctx, func() {
		err := s.tendLease(ctx)
		if ctx.Err() == nil {
			failing.report(s.logger, "scheduler: cannot reach the lease", err)
		}
	})
}

// tendLease does one tick's lease work: it ends the term whose lease has run
// out, renews the lease once a third of its lifetime has passed, or, when
// this node does not lead, takes it if it is free. A new term's context
// derives from ctx. It returns the store's error.
func (s *Scheduler) tendLease(ctx context.Context) error {
	now := s.clock.Now()
	s.mu.Lock()
	leading := !s.term.until.IsZero()
	if leading && !now.Before(s.term.until) {
		s.stopTermLocked()
		leading = false
		s.logger.Warn("scheduler: the lease ran out before it could be renewed; no longer leading")
	}
	fresh := leading && now.Sub(s.term.renewedAt) < s.ttl/3
	s.mu.Unlock()
	if fresh {
		return nil
	}
	if !leading {
		if free, err := s.leaseFree(ctx, now); err != nil || !free {
			return err
		}
	}
	renewedAt, held, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !held && leading:
		s.stopTermLocked()
		s.logger.Warn("scheduler: another node holds the lease; no longer leading")
	case held && !leading:
		s.term.ctx, s.term.cancel = context.WithCancel(ctx)
		s.logger.Info("scheduler: leading", "lease_ttl", s.ttl.String())
		fallthrough
	case held:
		s.term.renewedAt, s.term.until = renewedAt, renewedAt.Add(s.ttl)
	}
	return nil
}

// leaseFree reports whether this node may try to take the lease: nobody
// holds it, it has expired at now, or it is this node's already (a restart
// under the same name). It is a read, so that a follower writes nothing. It
// returns the store's error.
func (s *Scheduler) leaseFree(ctx context.Context, now time.Time) (bool, error) {
	var holder string
	var expiresAt time.Time
	err := s.db.PlatformRow(ctx, peekLeaseSQL, leaseName).Scan(&holder, &expiresAt)
	switch {
	case kernel.IsCode(err, kernel.CodeNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	return holder == s.node || !expiresAt.After(now), nil
}

// acquire takes or renews the lease for Config.LeaseTTL. It returns the time
// it did so, whether this node holds the lease now, and the store's error.
func (s *Scheduler) acquire(ctx context.Context) (time.Time, bool, error) {
	var at time.Time
	var n int64
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		at = tx.Now()
		var err error
		n, err = tx.Exec(ctx, acquireLeaseSQL, leaseName, s.node, at.Add(s.ttl), at)
		return err
	})
	return at, n == 1, err
}

// leading reports whether this node leads at now and, if so, returns the
// term's context and whether its tasks were recorded.
func (s *Scheduler) leading(now time.Time) (context.Context, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term.until.IsZero() || !now.Before(s.term.until) {
		return nil, false, false
	}
	return s.term.ctx, s.term.synced, true
}

// markSynced records that the tasks' rows were written in the term whose
// context is termCtx, if that term still lasts.
func (s *Scheduler) markSynced(termCtx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term.ctx == termCtx {
		s.term.synced = true
	}
}

// endTerm ends this node's term, if it leads.
func (s *Scheduler) endTerm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.term.until.IsZero() {
		s.stopTermLocked()
	}
}

// stopTermLocked cancels the term's context and forgets it; s.mu is held.
func (s *Scheduler) stopTermLocked() {
	s.term.cancel()
	s.term = term{}
}

// release gives the lease back if this node holds it, so that another node
// takes over at its next tick. It runs as the scheduler stops, so it outlives
// ctx by up to bookkeepingTimeout; a failure is logged, and the lease then
// expires on its own.
func (s *Scheduler) release(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		_, err := tx.Exec(ctx, releaseLeaseSQL, leaseName, s.node)
		return err
	})
	if err != nil {
		s.logger.Warn("scheduler: cannot give the lease back; it expires on its own", "error", err.Error())
	}
}
