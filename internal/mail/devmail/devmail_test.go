package devmail_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/mail/devmail"
	"atrium/internal/mail/mailtest"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func setup(t *testing.T, dialect store.Dialect) (*devmail.Mailbox, *testkit.Clock) {
	t.Helper()
	clock := testkit.NewClock()
	return devmail.New(testkit.OpenStore(t, dialect, clock)), clock
}

func message(subject string) mail.Message {
	return mail.Message{
		To:      []string{"ada@example.com", "Grace Hopper <grace@example.org>"},
		Subject: subject,
		Text:    "Hello\n",
		HTML:    "<p>Hello</p>\n",
		Tag:     "verify_email",
	}
}

func TestMailbox(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			t.Run("Conformance", func(t *testing.T) {
				mailtest.Run(t, func(t *testing.T) (mail.Mailer, mailtest.Inbox) {
					box, _ := setup(t, d)
					return box, func(t *testing.T) []mail.Message {
						stored, err := box.List(context.Background(), devmail.MaxList)
						if err != nil {
							t.Fatalf("List: %v", err)
						}
						out := make([]mail.Message, len(stored))
						for i, s := range stored {
							out[i] = mail.Message{To: s.To, Subject: s.Subject, Text: s.Text, HTML: s.HTML, Tag: s.Tag}
						}
						return out
					}
				})
			})
			t.Run("SendListGet", func(t *testing.T) { t.Parallel(); testSendListGet(t, d) })
			t.Run("NewestFirst", func(t *testing.T) { t.Parallel(); testNewestFirst(t, d) })
			t.Run("Limits", func(t *testing.T) { t.Parallel(); testLimits(t, d) })
			t.Run("GetMissing", func(t *testing.T) { t.Parallel(); testGetMissing(t, d) })
		})
	}
}

func testSendListGet(t *testing.T, d store.Dialect) {
	box, clock := setup(t, d)
	ctx := context.Background()
	sent := message("Verify your email address ✓")
	if err := box.Send(ctx, sent); err != nil {
		t.Fatalf("Send: %v", err)
	}
	list, err := box.List(ctx, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %d messages, %v; want 1", len(list), err)
	}
	got := list[0]
	if !slices.Equal(got.To, sent.To) || got.Subject != sent.Subject || got.Text != sent.Text ||
		got.HTML != sent.HTML || got.Tag != sent.Tag {
		t.Errorf("stored %+v, want %+v", got, sent)
	}
	if !got.CreatedAt.Equal(clock.Now()) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt %v, want %v in UTC", got.CreatedAt, clock.Now())
	}
	if got.ID == [16]byte{} || got.ID.Version() != 7 {
		t.Errorf("ID %v, want a UUIDv7", got.ID)
	}
	one, err := box.Get(ctx, got.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if one.ID != got.ID || !slices.Equal(one.To, got.To) || one.Subject != got.Subject || one.Text != got.Text ||
		one.HTML != got.HTML || one.Tag != got.Tag || !one.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("Get: %+v, want %+v", one, got)
	}
}

func testNewestFirst(t *testing.T, d store.Dialect) {
	box, clock := setup(t, d)
	ctx := context.Background()
	// Two messages share a timestamp: the time-ordered ID breaks the tie.
	for i, step := range []time.Duration{0, time.Minute, 0, time.Second} {
		clock.Advance(step)
		if err := box.Send(ctx, message(fmt.Sprintf("Message %d", i))); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	list, err := box.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, s := range list {
		subjects = append(subjects, s.Subject)
	}
	if want := []string{"Message 3", "Message 2", "Message 1", "Message 0"}; !slices.Equal(subjects, want) {
		t.Fatalf("List order %q, want %q", subjects, want)
	}
	top, err := box.List(ctx, 2)
	if err != nil || len(top) != 2 || top[0].Subject != "Message 3" || top[1].Subject != "Message 2" {
		t.Fatalf("List(2): %+v, %v; want the two newest", top, err)
	}
}

func testLimits(t *testing.T, d store.Dialect) {
	box, _ := setup(t, d)
	ctx := context.Background()
	for _, limit := range []int{0, -1} {
		if _, err := box.List(ctx, limit); !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Errorf("List(%d): %v, want invalid", limit, err)
		}
	}
	for i := range devmail.MaxList + 1 {
		if err := box.Send(ctx, message(fmt.Sprintf("Message %d", i))); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	list, err := box.List(ctx, devmail.MaxList+50)
	if err != nil || len(list) != devmail.MaxList {
		t.Fatalf("List(%d): %d messages, %v; want %d", devmail.MaxList+50, len(list), err, devmail.MaxList)
	}
}

func testGetMissing(t *testing.T, d store.Dialect) {
	box, _ := setup(t, d)
	ctx := context.Background()
	if err := box.Send(ctx, message("Hello")); err != nil {
		t.Fatal(err)
	}
	_, err := box.Get(ctx, kernel.NewID())
	if !kernel.IsCode(err, kernel.CodeNotFound) {
		t.Fatalf("Get of a missing ID: %v, want not_found", err)
	}
	if msg := kernel.As(err).Message; msg != "message not found" {
		t.Errorf("message %q", msg)
	}
}
