package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

const (
	// claimMailSQL takes the mailing of one warning, so that an event the
	// bus delivers twice is mailed once.
	claimMailSQL = `UPDATE usage_warning SET mailed_at = $5
        WHERE workspace_id = $1 AND metric = $2 AND period_start = $3 AND threshold = $4 AND mailed_at IS NULL`
	// unclaimMailSQL gives the mailing back after it failed, for the retry.
	unclaimMailSQL = `UPDATE usage_warning SET mailed_at = NULL
        WHERE workspace_id = $1 AND metric = $2 AND period_start = $3 AND threshold = $4`
)

// mailWarning is the subscriber of usage.warning: it mails the workspace's
// owners and admins, once per warning (the warning's row is claimed first).
// It fails, for the bus to retry, when no recipient could be mailed; then
// the claim is given back. A node dying between the claim and the sending
// loses that one mail.
func (s *Service) mailWarning(ctx context.Context, e events.Envelope) error {
	if s.mailer == nil || s.templates == nil || s.directory == nil {
		return nil
	}
	workspaceID, err := e.WorkspaceUUID()
	if err != nil {
		return events.Permanent(fmt.Errorf("usage: warning mail: %w", err))
	}
	var w WarningEvent
	if err := json.Unmarshal(e.Data, &w); err != nil {
		return events.Permanent(fmt.Errorf("usage: warning mail: %w", err))
	}
	m, ok := lookupMetric(w.Metric)
	if !ok {
		return events.Permanent(fmt.Errorf("usage: warning mail: unknown metric %q", w.Metric))
	}
	args := []any{workspaceID, w.Metric, w.PeriodStart.UTC(), w.Threshold}
	claimed := false
	err = s.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		n, err := tx.Exec(ctx, claimMailSQL, append(args, tx.Now())...)
		claimed = n == 1
		return err
	})
	if err != nil || !claimed {
		return err
	}
	if err := s.sendWarning(ctx, workspaceID, m, w); err != nil {
		// The claim goes back, so that the retry mails it.
		uctx := context.WithoutCancel(ctx)
		uerr := s.db.InWorkspace(uctx, workspaceID, func(tx store.Tx) error {
			_, err := tx.Exec(uctx, unclaimMailSQL, args...)
			return err
		})
		return errors.Join(err, uerr)
	}
	return nil
}

// sendWarning mails one warning to the workspace's owners and admins. It
// returns an error when there were recipients and none could be mailed;
// other failures are logged.
func (s *Service) sendWarning(ctx context.Context, workspaceID uuid.UUID, m metric, w WarningEvent) error {
	ws, admins, err := s.directory.Admins(ctx, workspaceID)
	if err != nil {
		return fmt.Errorf("usage: warning mail: whom to tell: %w", err)
	}
	sent, failed := 0, []error{}
	for _, a := range admins {
		if a.Email == "" {
			continue
		}
		msg, err := s.templates.Message(mail.TemplateUsageWarning, []string{a.Email}, mail.UsageWarning{
			Name: a.Name, WorkspaceName: ws.Name, Metric: m.Words, Threshold: w.Threshold,
			Used: amount(m, w.Used), Limit: amount(m, w.Limit), PeriodEnd: w.PeriodEnd.UTC().Format("2 Jan 2006 15:04 UTC"),
			AtLimit: w.Threshold >= 100, BufferPercent: BufferPercent, GraceDays: int(GracePeriod / (24 * time.Hour))})
		if err == nil {
			err = s.mailer.Send(ctx, msg)
		}
		if err != nil {
			failed = append(failed, err)
			s.logger.ErrorContext(ctx, "usage: send a warning mail", "workspace_id", kernel.FormatID(kernel.PrefixWorkspace, workspaceID),
				"metric", m.Name, "threshold", w.Threshold, "error", err.Error())
			continue
		}
		sent++
	}
	if sent == 0 && len(failed) > 0 {
		return errors.Join(failed...)
	}
	return nil
}

// amount formats a usage or a limit of m for a person: bytes in decimal
// units ("1.5 GB"), anything else with thousands separators.
func amount(m metric, n int64) string {
	if m.Name == StorageBytes {
		units := []string{"bytes", "kB", "MB", "GB", "TB", "PB", "EB"}
		v, i := float64(n), 0
		for v >= 1000 && i < len(units)-1 {
			v, i = v/1000, i+1
		}
		if i == 0 {
			return strconv.FormatInt(n, 10) + " bytes"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
	}
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
