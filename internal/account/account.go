// Package account serves a person's own account as a whole: their profile,
// email address and password, their data export, and the deletion of the
// account. Most of it belongs to identity; what also touches workspaces
// (which identity must not know about) is orchestrated here, calling the two
// services and never their stores.
package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
)

// Service holds the account rules that span identity and tenancy. It is safe
// for concurrent use.
type Service struct {
	identity *identity.Service
	tenancy  *tenancy.Service
	clock    kernel.Clock
}

// New returns a Service over the two domain services. clock decides whether
// an authentication is recent; it must be the store's clock, so that tests
// move both together (kernel.SystemClock when nil).
func New(ids *identity.Service, workspaces *tenancy.Service, clock kernel.Clock) *Service {
	if clock == nil {
		clock = kernel.SystemClock{}
	}
	return &Service{identity: ids, tenancy: workspaces, clock: clock}
}

// Profile is a change to the acting person's profile; nil leaves a field as it is.
type Profile struct {
	Name  *string
	Email *string
}

// UpdateProfile applies p for the acting person and returns their account. A
// new name applies at once. A new email address needs a recent
// authentication and does not apply yet: a confirmation link goes to the new
// address and a notice to the current one (identity.RequestEmailChange).
// Everything is validated, and the recent authentication checked, before
// anything changes.
//
// It returns reauthentication_required for an address change without a
// recent authentication; invalid for a bad name or address; rate_limited
// after too many address changes; or identity's errors.
func (s *Service) UpdateProfile(ctx context.Context, p Profile) (identity.User, error) {
	actor := kernel.ActorFrom(ctx)
	u, err := s.identity.User(ctx, actor.ID)
	if err != nil {
		return identity.User{}, err
	}
	newEmail := ""
	if p.Email != nil {
		normalized, err := identity.NormalizeEmail(*p.Email)
		if err != nil {
			return identity.User{}, err
		}
		if normalized != u.Email {
			if err := policy.RequireRecentAuth(actor, s.clock.Now()); err != nil {
				return identity.User{}, err
			}
			newEmail = normalized
		}
	}
	if p.Name != nil {
		if u, err = s.identity.UpdateName(ctx, actor.ID, *p.Name); err != nil {
			return identity.User{}, err
		}
	}
	if newEmail != "" {
		if err := s.identity.RequestEmailChange(ctx, actor.ID, newEmail); err != nil {
			return identity.User{}, err
		}
	}
	return u, nil
}

// ChangePassword replaces the acting person's password (see
// identity.ChangePassword): current must match, except for an account
// without a password, which may set one with a recent authentication. The
// session asking stays signed in; the others end.
func (s *Service) ChangePassword(ctx context.Context, current, next string) error {
	actor := kernel.ActorFrom(ctx)
	return s.identity.ChangePassword(ctx, identity.PasswordChange{
		UserID: actor.ID, KeepSession: actor.SessionID, Current: current, New: next,
		RecentAuth: policy.RequireRecentAuth(actor, s.clock.Now()),
	})
}

// Export is everything Atrium holds about a person that is theirs to see.
type Export struct {
	ExportedAt time.Time
	identity.AccountData
	Memberships []tenancy.Joined
}

// Export returns the acting person's data: their account, sessions, personal
// access tokens, whether MFA is on, and their memberships. It holds no
// secret, hash or other person's data. It returns identity's or tenancy's
// error.
func (s *Service) Export(ctx context.Context) (Export, error) {
	actor := kernel.ActorFrom(ctx)
	data, err := s.identity.AccountData(ctx, actor.ID)
	if err != nil {
		return Export{}, err
	}
	joined, err := s.tenancy.Memberships(ctx, actor.ID)
	if err != nil {
		return Export{}, err
	}
	return Export{ExportedAt: s.clock.Now().UTC(), AccountData: data, Memberships: joined}, nil
}

// Delete deletes the acting person's account, which needs a recent
// authentication. confirm, when not empty, must be the account's address:
// a guard a client may add against a slip.
//
// The steps run in an order that makes an interrupted deletion safe to run
// again: first the check that refuses it (the person is the only owner of an
// active workspace with other members), then the memberships
// (tenancy.LeaveAll, one workspace at a time, skipping those already left;
// workspaces where they were alone are soft-deleted), and last, in one
// transaction, the account itself (identity.DeleteAccount: sessions, tokens,
// links and MFA ended, personal data anonymised). Until that last step the
// person can still sign in and try again.
//
// It returns reauthentication_required without a recent authentication;
// invalid on field "confirm" when it does not match; conflict naming the
// workspaces to hand over or delete first; or the services' errors.
func (s *Service) Delete(ctx context.Context, confirm string) error {
	actor := kernel.ActorFrom(ctx)
	if err := policy.RequireRecentAuth(actor, s.clock.Now()); err != nil {
		return err
	}
	if confirm != "" {
		u, err := s.identity.User(ctx, actor.ID)
		if err != nil {
			return err
		}
		if normalized, err := identity.NormalizeEmail(confirm); err != nil || normalized != u.Email {
			return kernel.Invalid("confirm", "must be your email address")
		}
	}
	conflicts, err := s.tenancy.SoleOwnerConflicts(ctx, actor.ID)
	if err != nil {
		return err
	}
	if len(conflicts) > 0 {
		return soleOwnerError(conflicts)
	}
	if _, err := s.tenancy.LeaveAll(ctx, actor.ID); err != nil {
		return err
	}
	if err := s.identity.DeleteAccount(ctx, actor.ID); err != nil {
		return fmt.Errorf("account: delete: %w", err)
	}
	return nil
}

// soleOwnerError is the conflict naming the workspaces that would be left
// without an owner.
func soleOwnerError(workspaces []tenancy.Workspace) error {
	names := make([]string, len(workspaces))
	fields := map[string]string{}
	for i, ws := range workspaces {
		id := kernel.FormatID(kernel.PrefixWorkspace, ws.ID)
		names[i] = fmt.Sprintf("%q (%s)", ws.Name, id)
		fields["workspaces."+id] = "you are its only owner"
	}
	return &kernel.Error{Code: kernel.CodeConflict, Fields: fields, Err: errors.New("account: sole owner"),
		Message: "you are the only owner of " + strings.Join(names, ", ") +
			": transfer ownership to another member, or delete the workspace, first"}
}
