package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// The dunning schedule: how long a subscription may stay unpaid before each
// step. A payment at any step restores everything (the provider's view
// turning active again clears the step; see followDunning).
const (
	DowngradeAfter          = 7 * 24 * time.Hour
	SuspendAfter            = 30 * 24 * time.Hour
	ScheduleDeletionAfter   = 60 * 24 * time.Hour
	trialFirstReminderAhead = 3 * 24 * time.Hour
	trialLastReminderAhead  = 24 * time.Hour
)

// dunningOrder lists the steps in the order they are taken.
var dunningOrder = []string{DunningPastDue, DunningDowngraded, DunningSuspended, DunningDeletionScheduled}

// dueStep is the step a subscription unpaid since since should have reached at now.
func dueStep(since, now time.Time) string {
	switch age := now.Sub(since); {
	case age >= ScheduleDeletionAfter:
		return DunningDeletionScheduled
	case age >= SuspendAfter:
		return DunningSuspended
	case age >= DowngradeAfter:
		return DunningDowngraded
	}
	return DunningPastDue
}

// nextStep is the step after current, or "".
func nextStep(current string) string {
	for i, s := range dunningOrder {
		if s == current && i+1 < len(dunningOrder) {
			return dunningOrder[i+1]
		}
	}
	return ""
}

func stepIndex(step string) int {
	for i, s := range dunningOrder {
		if s == step {
			return i
		}
	}
	return -1
}

// AdvanceDunning takes every unpaid subscription to the step its age calls
// for: after 7 days the default plan's entitlements, after 30 read-only,
// after 60 the workspace is scheduled for deletion. Each step is taken once,
// in order (a node that was down for weeks takes the missed ones one after
// the other), each recorded, audited, announced and mailed. It returns how
// many steps it took. It runs on the scheduler, through the system path for
// the list and a workspace transaction per step.
func (l *Ledger) AdvanceDunning(ctx context.Context, db store.SystemDB) (int, error) {
	due, err := l.sweep(ctx, db, "billing: find unpaid subscriptions", `SELECT workspace_id FROM subscription
        WHERE status = 'past_due' AND past_due_since <= $1 AND dunning_step <> 'deletion_scheduled'
        ORDER BY past_due_since LIMIT 500`, -DowngradeAfter)
	if err != nil {
		return 0, fmt.Errorf("dunning: %w", err)
	}
	ctx = kernel.WithActor(ctx, kernel.SystemActor)
	taken := 0
	for _, ws := range due {
		for {
			_, err := l.changeNamed(ctx, ws, func(tx store.Tx, s *Subscription) (string, error) {
				if s.Status != StatusPastDue || s.PastDueSince == nil {
					return "", errNothingToDo
				}
				target := dueStep(*s.PastDueSince, tx.Now())
				if stepIndex(s.DunningStep) >= stepIndex(target) {
					return "", errNothingToDo
				}
				step := nextStep(s.DunningStep)
				if step == DunningDeletionScheduled && l.hold != nil {
					if err := l.hold.DeleteForNonPayment(ctx, tx); err != nil {
						return "", err
					}
				}
				s.DunningStep = step
				return "dunning_" + step, nil
			})
			if isNothingToDo(err) || kernel.IsCode(err, kernel.CodeNotFound) {
				break
			}
			if err != nil {
				return taken, err
			}
			taken++
		}
	}
	return taken, nil
}

// RemindTrials tells the owners and admins of every trial ending within
// three days, and again within one day, each once per trial (a history row
// and a subscription.changed event of change trial_ending_3d or
// trial_ending_1d record it). It returns how many reminders it sent.
func (l *Ledger) RemindTrials(ctx context.Context, db store.SystemDB) (int, error) {
	due, err := l.sweep(ctx, db, "billing: find trials ending", `SELECT workspace_id FROM subscription
        WHERE status = 'trialing' AND trial_end > $1 AND trial_end <= $2 ORDER BY trial_end LIMIT 500`, 0, trialFirstReminderAhead)
	if err != nil {
		return 0, fmt.Errorf("trial reminders: %w", err)
	}
	ctx = kernel.WithActor(ctx, kernel.SystemActor)
	sent := 0
	for _, ws := range due {
		_, err := l.changeNamed(ctx, ws, func(tx store.Tx, s *Subscription) (string, error) {
			if s.Status != StatusTrialing || s.TrialEnd == nil || !s.TrialEnd.After(tx.Now()) {
				return "", errNothingToDo
			}
			reminder := "trial_ending_3d"
			if s.TrialEnd.Sub(tx.Now()) <= trialLastReminderAhead {
				reminder = "trial_ending_1d"
			}
			var n int
			since := s.CurrentPeriodStart
			if since == nil {
				since = &s.CreatedAt
			}
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscription_history
                WHERE workspace_id = $1 AND change = $2 AND created_at >= $3`, s.WorkspaceID, reminder, *since).Scan(&n); err != nil {
				return "", err
			}
			if n > 0 {
				return "", errNothingToDo
			}
			return reminder, nil
		})
		switch {
		case err == nil:
			sent++
		case isNothingToDo(err) || kernel.IsCode(err, kernel.CodeNotFound):
		default:
			return sent, err
		}
	}
	return sent, nil
}

// sweep lists the workspaces a statement finds through the system path,
// with $1 (and $2) bound to now plus the offsets given.
func (l *Ledger) sweep(ctx context.Context, db store.SystemDB, reason, sql string, offsets ...time.Duration) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := db.System(ctx, reason, func(tx store.Tx) error {
		args := make([]any, len(offsets))
		for i, d := range offsets {
			args[i] = tx.Now().Add(d)
		}
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		ids, err = store.Collect(rows, func(r store.Row) (uuid.UUID, error) {
			var id uuid.UUID
			return id, r.Scan(&id)
		})
		return err
	})
	return ids, err
}
