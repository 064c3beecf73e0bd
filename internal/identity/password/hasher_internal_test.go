package password

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

var cheapParams = Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	const limit, callers = 2, 20
	h := New(cheapParams, limit)
	var inFlight, peak atomic.Int32
	h.held = func() {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		// Hold the slot long enough that an unbounded Hasher would overlap.
		time.Sleep(5 * time.Millisecond)
		inFlight.Add(-1)
	}
	encoded, err := h.Hash(t.Context(), "violet harbour lamp")
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = h.Hash(t.Context(), "violet harbour lamp")
			case 1:
				_, _, err = h.Verify(t.Context(), "violet harbour lamp", encoded)
			case 2:
				_, err = h.DummyVerify(t.Context())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := peak.Load(); got != limit {
		t.Errorf("peak hashes in flight = %d, want exactly %d (more breaks the bound; fewer means the test did not exercise it)", got, limit)
	}
}

func TestWaitingForASlotHonoursContext(t *testing.T) {
	t.Parallel()
	h := New(cheapParams, 1)
	encoded, err := h.Hash(t.Context(), "violet harbour lamp")
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // occupy the only slot, as a long-running hash would
	t.Cleanup(func() { <-h.slots })

	calls := map[string]func(context.Context) error{
		"Hash": func(ctx context.Context) error { _, err := h.Hash(ctx, "violet harbour lamp"); return err },
		"Verify": func(ctx context.Context) error {
			_, _, err := h.Verify(ctx, "violet harbour lamp", encoded)
			return err
		},
		"DummyVerify": func(ctx context.Context) error { _, err := h.DummyVerify(ctx); return err },
	}
	for name, call := range calls {
		t.Run(name+" canceled", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- call(ctx) }()
			select {
			case err := <-done:
				t.Fatalf("returned %v while the slot was taken", err)
			case <-time.After(20 * time.Millisecond):
			}
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting 5s after cancel")
			}
		})
		t.Run(name+" deadline", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
			defer cancel()
			if err := call(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestDefaultConcurrency(t *testing.T) {
	t.Parallel()
	want := max(1, runtime.GOMAXPROCS(0)/2)
	for _, n := range []int{0, -1} {
		if got := cap(New(cheapParams, n).slots); got != want {
			t.Errorf("New(params, %d) allows %d hashes at once, want %d", n, got, want)
		}
	}
	if got := cap(New(cheapParams, 3).slots); got != 3 {
		t.Errorf("New(params, 3) allows %d hashes at once, want 3", got)
	}
}

func TestDummyHashIsWellFormed(t *testing.T) {
	t.Parallel()
	h := New(DefaultParams(), 1)
	p, salt, key, err := decode(h.dummy)
	if err != nil {
		t.Fatalf("decode(dummy) = %v", err)
	}
	if p != h.params || len(salt) != int(p.SaltLength) || len(key) != int(p.KeyLength) {
		t.Errorf("dummy hash has params %+v, want %+v", p, h.params)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	p := Params{Memory: maxMemoryKiB, Iterations: maxIterations, Parallelism: maxParallelism, SaltLength: maxSaltLength, KeyLength: maxKeyLength}
	salt, key := []byte(strings.Repeat("s", maxSaltLength)), []byte(strings.Repeat("k", maxKeyLength))
	encoded := encode(p, salt, key)
	if len(encoded) > maxEncodedLength {
		t.Fatalf("widest hash is %d bytes, over maxEncodedLength %d", len(encoded), maxEncodedLength)
	}
	got, gotSalt, gotKey, err := decode(encoded)
	if err != nil || got != p || string(gotSalt) != string(salt) || string(gotKey) != string(key) {
		t.Errorf("decode(encode(...)) = %+v, %q, %q, %v", got, gotSalt, gotKey, err)
	}
}

func TestBundledList(t *testing.T) {
	t.Parallel()
	if lines := strings.Count(commonPasswordsFile, "\n"); lines != 10000 {
		t.Errorf("bundled file has %d lines, want 10000", lines)
	}
	set := commonPasswords()
	if len(set) != 3309 {
		t.Errorf("%d entries of at least %d characters, want 3309", len(set), MinLength)
	}
	for entry := range set {
		if utf8.RuneCountInString(entry) < MinLength || entry != strings.ToLower(entry) {
			t.Errorf("entry %q should have been skipped or lower-cased", entry)
		}
	}
	for _, entry := range []string{"password", "12345678", "password123", "sunshine", "trustno1"} {
		if !isCommon(entry) {
			t.Errorf("isCommon(%q) = false", entry)
		}
	}
}
