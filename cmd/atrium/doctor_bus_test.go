package main

import (
	"testing"

	"atrium/internal/testkit"
)

func TestDoctorChecksTheEventBus(t *testing.T) {
	env := newEnv(t)
	if r := runMain(t, env, "migrate", "up"); r.code != 0 {
		t.Fatalf("migrate up: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Run("embedded", func(t *testing.T) {
		r := runMain(t, env, "doctor")
		if r.code != 0 {
			t.Fatalf("doctor exit %d:\n%s", r.code, r.stdout)
		}
		mustLine(t, r.stdout, `ok\s+event bus\s+embedded NATS JetStream in \S+ \(at most 1024 MiB on disk\)`)
	})
	t.Run("a NATS server that answers", func(t *testing.T) {
		bus := testkit.StartNATS(t)
		r := runMain(t, with(env, "ATRIUM_NATS_URL", bus.URL()), "doctor")
		if r.code != 0 {
			t.Fatalf("doctor exit %d:\n%s", r.code, r.stdout)
		}
		mustLine(t, r.stdout, `ok\s+event bus\s+NATS JetStream answers`)
	})
	t.Run("one that does not", func(t *testing.T) {
		r := runMain(t, with(env, "ATRIUM_NATS_URL", "nats://"+freeAddr(t)), "doctor")
		if r.code != 1 {
			t.Fatalf("doctor exit %d, want 1:\n%s", r.code, r.stdout)
		}
		mustLine(t, r.stdout, `FAIL\s+event bus\s+NATS \(ATRIUM_NATS_URL\): connect: `)
	})
}
