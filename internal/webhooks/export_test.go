package webhooks

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"atrium/internal/events"
)

// FanOut and Deliver run the subscriber and the job handler directly, so
// tests drive deliveries one attempt at a time without a bus.
func (s *Service) FanOut(ctx context.Context, e events.Envelope) error { return s.fanOut(ctx, e) }

func (s *Service) Deliver(ctx context.Context, job *events.Job) (any, error) {
	return s.deliver(ctx, job)
}

// FakeResolver answers lookups from a table the test changes as it goes;
// an unknown name does not exist.
type FakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	errs    map[string]error
}

func NewFakeResolver() *FakeResolver {
	return &FakeResolver{answers: map[string][]netip.Addr{}, errs: map[string]error{}}
}

// Set makes host resolve to addrs from now on.
func (f *FakeResolver) Set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[host] = nil
	for _, a := range addrs {
		f.answers[host] = append(f.answers[host], netip.MustParseAddr(a))
	}
}

// Fail makes looking host up fail with err.
func (f *FakeResolver) Fail(host string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[host] = err
}

func (f *FakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.errs[host]; ok {
		return nil, err
	}
	if addrs, ok := f.answers[host]; ok {
		return addrs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
