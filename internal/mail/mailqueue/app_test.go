package mailqueue_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"atrium/internal/mail/mailtest"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

// TestAppSendsThroughSMTP boots Atrium with ATRIUM_SMTP_URL pointing at a
// local SMTP server: sign-up answers at once, and the verification email
// arrives there, delivered by the app's own worker.
func TestAppSendsThroughSMTP(t *testing.T) {
	for _, d := range testkit.Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			server := (&mailtest.SMTPServer{User: "mailer", Pass: "s3cret-pass"}).Start(t) // plain-text AUTH: loopback only
			a := testkit.Boot(t, d, testkit.AppOptions{Env: map[string]string{
				"ATRIUM_SMTP_URL": "smtp://mailer:s3cret-pass@127.0.0.1:" + strconv.Itoa(server.Port()) + "?from=no-reply@example.com",
			}})
			if a.Services.Mailbox != nil {
				t.Fatal("the dev mailbox is wired although SMTP is configured")
			}
			body := `{"email": "ada@example.com", "password": "correct horse battery staple", "name": "Ada"}`
			resp, err := http.Post(a.URL()+"/api/v1/auth/signup", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("signup: %d", resp.StatusCode)
			}
			deadline := time.Now().Add(15 * time.Second)
			for len(server.Messages()) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("no verification email reached the SMTP server within 15s")
				}
				time.Sleep(20 * time.Millisecond)
			}
			got := server.Messages()
			inbox := server.Inbox(t)
			if len(got) != 1 || got[0].AuthUser != "mailer" || got[0].From != "no-reply@example.com" || len(got[0].To) != 1 || got[0].To[0] != "ada@example.com" ||
				!strings.Contains(inbox[0].Text, a.Config.BaseURL+"/verify-email?token=") {
				t.Fatalf("received %d messages; first: envelope %s -> %v, text %q", len(got), got[0].From, got[0].To, inbox[0].Text)
			}
			// The server has the message before the worker hears back and
			// deletes the row: wait for the delete.
			for left := -1; left != 0; time.Sleep(20 * time.Millisecond) {
				if err := a.DB.ReadTx(t.Context(), func(tx store.Tx) error {
					return tx.QueryRow(t.Context(), "SELECT count(*) FROM mail_queue").Scan(&left)
				}); err != nil || time.Now().After(deadline) {
					t.Fatalf("mail_queue holds %d rows after delivery (%v), want none", left, err)
				}
			}
			if strings.Contains(a.Logs(), "s3cret-pass") {
				t.Fatal("the log shows the SMTP password")
			}
			resp, err = http.Get(a.URL() + "/dev/mailbox")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("/dev/mailbox with SMTP configured: %d, want 404", resp.StatusCode)
			}
		})
	}
}
