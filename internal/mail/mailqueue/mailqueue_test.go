package mailqueue_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"atrium/internal/mail"
	"atrium/internal/mail/mailqueue"
	"atrium/internal/mail/mailtest"
	"atrium/internal/mail/smtpmail"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// bundle is one queue on a fresh store, its worker and the SMTP server it
// delivers to.
type bundle struct {
	db     store.SystemDB
	clock  *testkit.Clock
	queue  *mailqueue.Queue
	worker *mailqueue.Worker
	smtp   *smtpmail.Mailer
	server *mailtest.SMTPServer
	logs   *testkit.SyncBuffer
}

func setup(t *testing.T, dialect store.Dialect, opts mailqueue.Options) bundle {
	t.Helper()
	clock := testkit.NewClock()
	db := testkit.OpenStore(t, dialect, clock)
	server := (&mailtest.SMTPServer{}).Start(t)
	backend, err := smtpmail.New(smtpmail.Config{Host: "127.0.0.1", Port: server.Port(), From: "Atrium <no-reply@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.SyncBuffer{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	q := mailqueue.New(db)
	return bundle{db: db, clock: clock, queue: q, worker: mailqueue.NewWorker(q, backend, opts), smtp: backend, server: server, logs: logs}
}

func message(subject string) mail.Message {
	return mail.Message{To: []string{"ada@example.com"}, Subject: subject,
		Text: "Your link: https://example.com/reset?token=SECRET-TOKEN\n", HTML: "<p>SECRET-TOKEN</p>\n", Tag: "password_reset"}
}

// queued is a mail_queue row as a test checks it.
type queued struct {
	Attempts      int
	NextAttemptAt time.Time
	Claimed, Dead bool
	LastError     string
	Text, HTML    string
}

func rows(t *testing.T, db store.DB) []queued {
	t.Helper()
	var out []queued
	err := db.ReadTx(context.Background(), func(tx store.Tx) error {
		r, err := tx.Query(context.Background(), `SELECT attempts, next_attempt_at, claimed_until IS NOT NULL, dead_at IS NOT NULL,
			last_error, text_body, html_body FROM mail_queue ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		out, err = store.Collect(r, func(row store.Row) (queued, error) {
			var q queued
			err := row.Scan(&q.Attempts, &q.NextAttemptAt, &q.Claimed, &q.Dead, &q.LastError, &q.Text, &q.HTML)
			q.NextAttemptAt = q.NextAttemptAt.UTC()
			return q, err
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func deliverDue(t *testing.T, b bundle, want int) {
	t.Helper()
	n, err := b.worker.DeliverDue(context.Background())
	if err != nil || n != want {
		t.Fatalf("DeliverDue: %d, %v; want %d delivered", n, err, want)
	}
}

func TestQueue(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			t.Run("Conformance", func(t *testing.T) {
				mailtest.Run(t, func(t *testing.T) (mail.Mailer, mailtest.Inbox) {
					b := setup(t, d, mailqueue.Options{})
					return b.queue, func(t *testing.T) []mail.Message {
						if _, err := b.worker.DeliverDue(context.Background()); err != nil {
							t.Fatal(err)
						}
						return b.server.Inbox(t)
					}
				})
			})
			for name, test := range map[string]func(*testing.T, store.Dialect){
				"DeliversAndDeletes":       testDeliversAndDeletes,
				"RetriesWithBackoff":       testRetriesWithBackoff,
				"DeadAfterMaxAttempts":     testDeadAfterMaxAttempts,
				"TwoWorkersSendOnce":       testTwoWorkersSendOnce,
				"ExpiredClaimIsTakenOver":  testExpiredClaimIsTakenOver,
				"ShutdownHandsBackTheSend": testShutdownHandsBackTheSend,
				"RunWakesOnSend":           testRunWakesOnSend,
			} {
				t.Run(name, func(t *testing.T) { t.Parallel(); test(t, d) })
			}
		})
	}
}

func testDeliversAndDeletes(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{})
	m := message("Reset your password")
	if err := b.queue.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, b.db); len(got) != 1 || got[0].Attempts != 0 || got[0].Claimed {
		t.Fatalf("queue after Send: %+v, want one fresh row", got)
	}
	if len(b.server.Messages()) != 0 {
		t.Fatal("Send reached the server: it must only queue")
	}
	deliverDue(t, b, 1)
	inbox := b.server.Inbox(t)
	if len(inbox) != 1 {
		t.Fatalf("server received %d messages, want 1", len(inbox))
	}
	mailtest.Equal(t, inbox[0], m)
	if got := rows(t, b.db); len(got) != 0 {
		t.Fatalf("queue after delivery: %+v, want no row (the body holds a single-use link)", got)
	}
	deliverDue(t, b, 0)
	if n := len(b.server.Messages()); n != 1 {
		t.Fatalf("server received %d messages after a second run, want still 1", n)
	}
}

func testRetriesWithBackoff(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{})
	b.server.SetDown(true)
	if err := b.queue.Send(context.Background(), message("Hello")); err != nil {
		t.Fatal(err)
	}
	start := b.clock.Now()
	deliverDue(t, b, 0)
	got := rows(t, b.db)
	if len(got) != 1 || got[0].Attempts != 1 || got[0].Claimed || !got[0].NextAttemptAt.Equal(start.Add(30*time.Second)) ||
		!strings.Contains(got[0].LastError, "421") {
		t.Fatalf("after a failed attempt: %+v, want attempt 1, retry in 30s, the server's 421 as last error", got)
	}
	if strings.Contains(got[0].LastError, "SECRET-TOKEN") || strings.Contains(b.logs.String(), "SECRET-TOKEN") {
		t.Fatal("the message body reached last_error or the log")
	}
	b.clock.Advance(29 * time.Second)
	deliverDue(t, b, 0)
	if got := rows(t, b.db); got[0].Attempts != 1 {
		t.Fatalf("retried before its time: %+v", got)
	}
	b.clock.Advance(time.Second)
	deliverDue(t, b, 0)
	if got := rows(t, b.db); got[0].Attempts != 2 || !got[0].NextAttemptAt.Equal(b.clock.Now().Add(time.Minute)) {
		t.Fatalf("second attempt: %+v, want attempt 2 and the wait doubled to 1m", got)
	}
	b.server.SetDown(false)
	b.clock.Advance(time.Minute)
	deliverDue(t, b, 1)
	if len(b.server.Messages()) != 1 || len(rows(t, b.db)) != 0 {
		t.Fatalf("server has %d messages, queue %+v; want delivered and deleted", len(b.server.Messages()), rows(t, b.db))
	}
}

func testDeadAfterMaxAttempts(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{MaxAttempts: 3})
	b.server.SetDown(true)
	if err := b.queue.Send(context.Background(), message("Hello")); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		deliverDue(t, b, 0)
		b.clock.Advance(time.Hour)
	}
	got := rows(t, b.db)
	if len(got) != 1 || !got[0].Dead || got[0].Attempts != 3 || got[0].Text != "" || got[0].HTML != "" || got[0].LastError == "" {
		t.Fatalf("after 5 rounds with 3 attempts allowed: %+v, want dead after 3, bodies gone, last error kept", got)
	}
	if n := strings.Count(b.logs.String(), "mail delivery abandoned"); n != 1 {
		t.Fatalf("abandonment logged %d times, want once:\n%s", n, b.logs.String())
	}
	b.server.SetDown(false)
	deliverDue(t, b, 0)
	if n := len(b.server.Messages()); n != 0 {
		t.Fatalf("a dead message was sent (%d)", n)
	}
}

func testTwoWorkersSendOnce(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{BatchSize: 3})
	other := mailqueue.NewWorker(b.queue, b.smtp, mailqueue.Options{BatchSize: 3, Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
	const n = 30
	for i := range n {
		if err := b.queue.Send(context.Background(), message(fmt.Sprintf("Message %02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, w := range []*mailqueue.Worker{b.worker, other} {
		wg.Go(func() {
			c, err := w.DeliverDue(context.Background())
			if err != nil {
				t.Error(err)
			}
			counts[i] = c
		})
	}
	wg.Wait()
	var subjects []string
	for _, m := range b.server.Inbox(t) {
		subjects = append(subjects, m.Subject)
	}
	slices.Sort(subjects)
	if len(subjects) != n || len(slices.Compact(slices.Clone(subjects))) != n || counts[0]+counts[1] != n {
		t.Fatalf("server received %d messages (%d distinct), workers counted %v; want each of %d once", len(subjects),
			len(slices.Compact(slices.Clone(subjects))), counts, n)
	}
	if got := rows(t, b.db); len(got) != 0 {
		t.Fatalf("queue after delivery: %d rows, want none", len(got))
	}
}

// blockingMailer holds every Send until released (or its context ends).
type blockingMailer struct {
	started chan struct{}
	release chan error
}

func (m *blockingMailer) Send(ctx context.Context, _ mail.Message) error {
	m.started <- struct{}{}
	select {
	case err := <-m.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func testExpiredClaimIsTakenOver(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{})
	stuck := &blockingMailer{started: make(chan struct{}, 1), release: make(chan error, 1)}
	crashed := mailqueue.NewWorker(b.queue, stuck, mailqueue.Options{ClaimTTL: time.Minute, SendTimeout: time.Hour,
		Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
	if err := b.queue.Send(context.Background(), message("Hello")); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _, _ = crashed.DeliverDue(context.Background()) }()
	<-stuck.started // the row is claimed; its node now "hangs"
	deliverDue(t, b, 0)
	b.clock.Advance(time.Minute)
	deliverDue(t, b, 1) // the lease ran out: this node takes the message over
	if n := len(b.server.Messages()); n != 1 {
		t.Fatalf("server received %d messages, want 1", n)
	}
	stuck.release <- fmt.Errorf("connection reset")
	<-done
	if got := rows(t, b.db); len(got) != 0 {
		t.Fatalf("the stale worker's failure brought the row back: %+v", got)
	}
}

func testShutdownHandsBackTheSend(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{})
	stuck := &blockingMailer{started: make(chan struct{}, 1), release: make(chan error, 1)}
	w := mailqueue.NewWorker(b.queue, stuck, mailqueue.Options{Logger: slog.New(slog.NewJSONHandler(b.logs, nil))})
	if err := b.queue.Send(context.Background(), message("Hello")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	<-stuck.started
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if got := rows(t, b.db); len(got) != 1 || got[0].Attempts != 0 || got[0].Claimed {
		t.Fatalf("after shutdown: %+v, want the message back in the queue, unclaimed, no attempt counted", got)
	}
	deliverDue(t, b, 1) // another worker sends it at once
}

func testRunWakesOnSend(t *testing.T, d store.Dialect) {
	b := setup(t, d, mailqueue.Options{PollInterval: time.Hour}) // only a wake-up can deliver in time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.worker.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := b.queue.Send(context.Background(), message("Hello")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(b.server.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message was not delivered within 10s of Send")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := mailqueue.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}
