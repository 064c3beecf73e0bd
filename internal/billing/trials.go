package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
)

// StartTrial starts the catalogue's trial for a workspace on the default
// plan, without a card: the workspace gets the trial plan's features and
// limits until the trial ends. It returns conflict if the workspace has had
// its trial already or is on a paid plan, and invalid if the catalogue
// offers no trial.
func (l *Ledger) StartTrial(ctx context.Context, workspaceID uuid.UUID) (Subscription, error) {
	trial := l.catalog.Trial
	if trial.Plan == "" {
		return Subscription{}, kernel.Errorf(kernel.CodeConflict, "this deployment offers no trial")
	}
	return l.change(ctx, workspaceID, "trial_started", func(tx store.Tx, s *Subscription) error {
		switch {
		case s.TrialUsed:
			return kernel.Errorf(kernel.CodeConflict, "this workspace has had its trial already")
		case s.PlanKey != l.catalog.DefaultPlan || s.Status != StatusActive:
			return kernel.Errorf(kernel.CodeConflict, "a trial is for workspaces on the %s plan", l.catalog.Default().Name)
		}
		end := tx.Now().Add(time.Duration(trial.Days) * 24 * time.Hour)
		s.PlanKey, s.PlanVersionID = trial.Plan, l.versions[trial.Plan]
		s.Status, s.Interval = StatusTrialing, Monthly
		s.TrialEnd, s.TrialUsed = &end, true
		s.CurrentPeriodStart, s.CurrentPeriodEnd = timePtr(tx.Now()), &end
		s.CanceledAt = nil
		return nil
	})
}

// ExtendTrial adds the catalogue's extension to a running trial, once per
// workspace. It returns conflict when the workspace is not trialing or has
// had its extension.
func (l *Ledger) ExtendTrial(ctx context.Context, workspaceID uuid.UUID) (Subscription, error) {
	days := l.catalog.Trial.ExtensionDays
	return l.change(ctx, workspaceID, "trial_extended", func(tx store.Tx, s *Subscription) error {
		switch {
		case days == 0:
			return kernel.Errorf(kernel.CodeConflict, "this deployment offers no trial extension")
		case s.Status != StatusTrialing || s.TrialEnd == nil:
			return kernel.Errorf(kernel.CodeConflict, "only a running trial can be extended")
		case s.TrialExtended:
			return kernel.Errorf(kernel.CodeConflict, "this workspace's trial has been extended already")
		}
		end := s.TrialEnd.Add(time.Duration(days) * 24 * time.Hour)
		s.TrialEnd, s.TrialExtended = &end, true
		if s.Provider == ProviderNone {
			s.CurrentPeriodEnd = &end
		}
		return nil
	})
}

// EndTrial ends a card-less trial now: the workspace goes back to the
// default plan with its data kept. It returns conflict when the workspace is
// not on such a trial (a trial with a provider subscription ends through
// the provider).
func (l *Ledger) EndTrial(ctx context.Context, workspaceID uuid.UUID) (Subscription, error) {
	return l.change(ctx, workspaceID, "trial_ended", func(tx store.Tx, s *Subscription) error {
		if s.Status != StatusTrialing || s.Provider != ProviderNone {
			return kernel.Errorf(kernel.CodeConflict, "the workspace is not on a trial without a payment method")
		}
		l.toDefaultPlan(s, nil, tx.Now())
		return nil
	})
}

// change applies fn to the workspace's subscription in one transaction and
// records it as change, by the actor in ctx.
func (l *Ledger) change(ctx context.Context, workspaceID uuid.UUID, change string, fn func(tx store.Tx, s *Subscription) error) (Subscription, error) {
	return l.changeNamed(ctx, workspaceID, func(tx store.Tx, s *Subscription) (string, error) { return change, fn(tx, s) })
}

// changeNamed is change for a function that decides what the change is (or
// returns errNothingToDo).
func (l *Ledger) changeNamed(ctx context.Context, workspaceID uuid.UUID, fn func(tx store.Tx, s *Subscription) (string, error)) (Subscription, error) {
	var after Subscription
	var change string
	err := l.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		if err := lockSubscription(ctx, tx); err != nil {
			return err
		}
		before, err := l.readSubscription(ctx, tx)
		if err != nil {
			return err
		}
		after = before
		if change, err = fn(tx, &after); err != nil {
			return err
		}
		return l.record(ctx, tx, before, &after, change, kernel.ActorFrom(ctx), "")
	})
	if err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", change, err)
	}
	l.after(ctx, workspaceID, change, after)
	return after, nil
}

// lockSubscription serialises changes of one workspace's subscription on
// PostgreSQL (its workspace row is locked until the transaction ends), so two
// concurrent trial starts cannot both read "no trial yet". SQLite's single
// writer serialises them already.
func lockSubscription(ctx context.Context, tx store.Tx) error {
	if tx.Dialect() != store.Postgres {
		return nil
	}
	_, err := tx.Exec(ctx, `SELECT id FROM workspace WHERE id = $1 FOR UPDATE`, tx.WorkspaceID())
	return err
}

// EndExpiredTrials ends every card-less trial whose end has passed, sending
// the workspace back to the default plan with its data kept, and returns how
// many it ended. It runs on the scheduler, through the system path for the
// list and one workspace transaction per trial.
func (l *Ledger) EndExpiredTrials(ctx context.Context, db store.SystemDB) (int, error) {
	due, err := l.sweep(ctx, db, "billing: find expired trials", `SELECT workspace_id FROM subscription
        WHERE status = 'trialing' AND provider = 'none' AND trial_end <= $1 ORDER BY trial_end LIMIT 500`, 0)
	if err != nil {
		return 0, fmt.Errorf("expired trials: %w", err)
	}
	ctx = kernel.WithActor(ctx, kernel.SystemActor)
	ended := 0
	for _, ws := range due {
		_, err := l.change(ctx, ws, "trial_ended", func(tx store.Tx, s *Subscription) error {
			if s.Status != StatusTrialing || s.Provider != ProviderNone || s.TrialEnd == nil || s.TrialEnd.After(tx.Now()) {
				return errNothingToDo
			}
			l.toDefaultPlan(s, nil, tx.Now())
			return nil
		})
		switch {
		case err == nil:
			ended++
		case kernel.IsCode(err, kernel.CodeNotFound) || isNothingToDo(err):
		default:
			return ended, err
		}
	}
	return ended, nil
}

// errNothingToDo ends a sweep's transaction for a workspace whose state
// changed since the sweep listed it.
var errNothingToDo = &kernel.Error{Code: kernel.CodeConflict, Message: "nothing to do"}

func isNothingToDo(err error) bool { return errors.Is(err, errNothingToDo) }
