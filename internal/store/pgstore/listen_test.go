package pgstore_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/testkit"
)

// sink records what the listener hands on.
type sink struct {
	mu      sync.Mutex
	tags    []string
	live    bool
	changes int
}

func (s *sink) Invalidate(tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags = append(s.tags, tag)
}

func (s *sink) SetLive(live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = live
	s.changes++
}

func (s *sink) state() (tags []string, live bool, changes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tags...), s.live, s.changes
}

// TestAuthListenerSurvivesSilence checks that the listener's heartbeat keeps
// one healthy connection through quiet periods and still delivers what the
// triggers of migration 0012 send afterwards.
func TestAuthListenerSurvivesSilence(t *testing.T) {
	db := testkit.OpenPostgres(t, nil)
	db.SetAuthHeartbeat(20 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s := &sink{}
	go func() {
		defer close(done)
		db.ListenAuth(ctx, s)
	}()
	defer func() {
		cancel()
		<-done
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, live, _ := s.state(); live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener never went live")
		}
	}
	pid := db.AuthListenerPID()
	time.Sleep(200 * time.Millisecond) // about ten heartbeats
	if _, live, changes := s.state(); !live || changes != 1 || db.AuthListenerPID() != pid {
		t.Fatalf("after silence: live %v, %d liveness changes, PID %d then %d", live, changes, pid, db.AuthListenerPID())
	}

	// A rename must send nothing, a password change one notification; a
	// second user's password change, delivered after both (PostgreSQL
	// delivers in commit order), says when to count.
	user, marker := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{user, marker} {
		_, err := db.Pool().Exec(context.Background(), `INSERT INTO app_user (id, email, name, password_hash, created_at, updated_at)
            VALUES ($1, $2, 'Ada', 'x', now(), now())`, id, id.String()+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		sql string
		id  uuid.UUID
	}{
		{"UPDATE app_user SET name = 'Ada L' WHERE id = $1", user},
		{"UPDATE app_user SET password_hash = 'y' WHERE id = $1", user},
		{"UPDATE app_user SET password_hash = 'y' WHERE id = $1", marker},
	} {
		if _, err := db.Pool().Exec(context.Background(), step.sql, step.id); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		tags, _, _ := s.state()
		if !slices.Contains(tags, "user:"+marker.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("no notification for the marker in %v", tags)
			}
			continue
		}
		var mine int
		for _, tag := range tags {
			if tag == "user:"+user.String() {
				mine++
			}
		}
		if mine != 1 {
			t.Fatalf("%d notifications for a rename and a password change, want 1: %v", mine, tags)
		}
		return
	}
}
