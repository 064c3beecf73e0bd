package testkit

import (
	"net"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"atrium/internal/events/natsbus"
)

// NATSServer is an embedded NATS server with JetStream on a random loopback
// port, for tests that run several nodes against one server or take the
// server away for a while.
type NATSServer struct {
	mu   sync.Mutex
	srv  *server.Server
	dir  string
	port int
}

// StartNATS starts a NATS server with JetStream in a temporary directory and
// stops it when the test ends.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	n := &NATSServer{dir: t.TempDir(), port: -1}
	n.Start(t)
	t.Cleanup(n.Stop)
	return n
}

// URL is the server's client URL.
func (n *NATSServer) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv.ClientURL()
}

// Stop shuts the server down, as an outage would; Start brings it back on the
// same port with the same store.
func (n *NATSServer) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

// Start starts the server (again).
func (n *NATSServer) Start(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, err := natsbus.StartServer(natsbus.ServerOptions{Dir: n.dir, Port: n.port})
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	n.port = srv.Addr().(*net.TCPAddr).Port
}
