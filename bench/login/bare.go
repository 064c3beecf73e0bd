package main

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"

	"atrium/internal/identity/password"
)

// hashRun is what a bare loop did.
type hashRun struct {
	hashes     int64
	elapsed    time.Duration
	goroutines int
}

func (r *hashRun) add(o hashRun) {
	r.hashes += o.hashes
	r.elapsed += o.elapsed
	r.goroutines = o.goroutines
}

func (r hashRun) perSecond() float64 { return float64(r.hashes) / r.elapsed.Seconds() }

// meanMillis is the mean time of one hash, as one goroutine saw it.
func (r hashRun) meanMillis() float64 {
	return float64(r.goroutines) * r.elapsed.Seconds() * 1000 / float64(r.hashes)
}

// bareLoop runs argon2.IDKey with params in n goroutines for d (each
// finishes the hash it is in) and counts the hashes: the password, salt and
// parameters are those of one login, with nothing around them.
func bareLoop(ctx context.Context, params password.Params, n int, d time.Duration) hashRun {
	pw := []byte("correct horse battery staple")
	var count atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Go(func() {
			salt := make([]byte, params.SaltLength)
			_, _ = rand.Read(salt)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				argon2.IDKey(pw, salt, params.Iterations, params.Memory, params.Parallelism, params.KeyLength)
				count.Add(1)
			}
		})
	}
	wg.Wait()
	return hashRun{hashes: count.Load(), elapsed: time.Since(start), goroutines: n}
}
