package tenancy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

const (
	// InviteTTL is how long an invitation link works; resending starts it again.
	InviteTTL = 7 * 24 * time.Hour
	// inviteExpiresIn is InviteTTL in the words of the email.
	inviteExpiresIn = "7 days"
	// ResendInterval is the least time between two resends of one invitation,
	// so that an inviter's button cannot flood someone's inbox. The first
	// resend may follow creation at once: "they did not get it" is the usual
	// reason to press it.
	ResendInterval = time.Minute
)

// The states of an invitation.
const (
	InvitePending  = "pending"
	InviteAccepted = "accepted"
	InviteRevoked  = "revoked"
	InviteExpired  = "expired"
)

// Invite is an invitation to join a workspace with a role. Its token is shown
// to nobody: it travels only in the emailed link, and only its hash is stored.
type Invite struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	Email       string
	Role        policy.Role
	InvitedBy   uuid.UUID
	CreatedAt   time.Time
	ExpiresAt   time.Time
	ResentAt    *time.Time
	AcceptedAt  *time.Time
	AcceptedBy  *uuid.UUID
	RevokedAt   *time.Time
	// Status is the invitation's state when it was read: one of the Invite*
	// state constants.
	Status string
}

// InvitePosition is where a page of invitations ends: the sort key of its
// last item.
type InvitePosition struct {
	CreatedAt time.Time `json:"t"`
	ID        uuid.UUID `json:"id"`
}

const (
	inviteColumns   = "id, workspace_id, email, role, invited_by, created_at, expires_at, resent_at, accepted_at, accepted_by, revoked_at"
	insertInviteSQL = `INSERT INTO invite (id, workspace_id, email, role, token_hash, invited_by, created_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	// The workspace_id filters repeat what row-level security enforces on
	// PostgreSQL, for SQLite, which has none.
	selectInviteSQL   = "SELECT " + inviteColumns + " FROM invite WHERE id = $1 AND workspace_id = $2"
	pendingInvitesSQL = `SELECT count(*) FROM invite WHERE workspace_id = $1 AND email = $2
          AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3`
	membersWithEmailSQL = `SELECT count(*) FROM membership m JOIN app_user u ON u.id = m.user_id
        WHERE m.workspace_id = $1 AND u.email = $2`
	listInvitesFirstSQL = "SELECT " + inviteColumns + ` FROM invite WHERE workspace_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2`
	listInvitesAfterSQL = "SELECT " + inviteColumns + ` FROM invite WHERE workspace_id = $1
          AND (created_at, id) < ($3, $4)
        ORDER BY created_at DESC, id DESC LIMIT $2`
	resendInviteSQL = "UPDATE invite SET token_hash = $3, expires_at = $4, resent_at = $5 WHERE id = $1 AND workspace_id = $2"
	revokeInviteSQL = "UPDATE invite SET revoked_at = $3 WHERE id = $1 AND workspace_id = $2"
)

// lockInvite reads an invitation to change. SQLite's BEGIN IMMEDIATE already
// holds the only write lock, and it has no FOR UPDATE.
var lockInvite = map[store.Dialect]string{
	store.Postgres: selectInviteSQL + " FOR UPDATE",
	store.SQLite:   selectInviteSQL,
}

// CreateInvite invites email to the workspace of res with role and emails
// the link, audited as invite.created and emitted in the same transaction.
// It returns invalid for a bad email or role, forbidden unless the actor may
// (policy.InviteManage: owners and admins, and only owners invite owners),
// email_unverified when the inviter has not verified their own address,
// conflict when the address is already a member's or has a pending
// invitation (resend that one instead), workspace_inactive for a deleted
// workspace, or the store's error.
func (s *Service) CreateInvite(ctx context.Context, res policy.Resource, email string, role policy.Role) (Invite, error) {
	role, err := policy.ParseRole("role", string(role))
	if err != nil {
		return Invite{}, err
	}
	if email, err = identity.NormalizeEmail(email); err != nil {
		return Invite{}, err
	}
	actor := kernel.ActorFrom(ctx)
	res.Grant = role
	if err := policy.Check(actor, policy.InviteManage, res); err != nil {
		return Invite{}, err
	}
	inviter, err := s.verifiedInviter(ctx, actor.ID)
	if err != nil {
		return Invite{}, err
	}
	token, hash := newInviteToken(res.Workspace)
	inv := Invite{ID: kernel.NewID(), WorkspaceID: res.Workspace, Email: email, Role: role, InvitedBy: actor.ID, Status: InvitePending}
	var ws Workspace
	err = s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var err error
		if ws, err = lockActive(ctx, tx, res.Workspace); err != nil {
			return err
		}
		if err := notInvitedYet(ctx, tx, inv); err != nil {
			return err
		}
		if err := s.admitSeat(ctx, tx, res.Workspace); err != nil {
			return err
		}
		inv.CreatedAt, inv.ExpiresAt = tx.Now(), tx.Now().Add(InviteTTL)
		if _, err := tx.Exec(ctx, insertInviteSQL, inv.ID, inv.WorkspaceID, inv.Email, string(inv.Role), hash,
			inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt); err != nil {
			return err
		}
		return record(ctx, tx, "invite.created", EventMemberInvited, inviteTarget(inv.ID),
			inviteAudit(inv), inviteEvent(inv))
	})
	if err != nil {
		return Invite{}, fmt.Errorf("tenancy: invite: %w", notFoundAs("workspace", err))
	}
	s.sendInvite(ctx, inv, ws, inviter, token)
	return inv, nil
}

// notInvitedYet returns conflict when inv's address belongs to a member of
// its workspace or has a pending invitation there. The caller holds the
// workspace's lock, so two invitations cannot race past it.
func notInvitedYet(ctx context.Context, tx store.Tx, inv Invite) error {
	var n int
	if err := tx.QueryRow(ctx, membersWithEmailSQL, inv.WorkspaceID, inv.Email).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &kernel.Error{Code: kernel.CodeConflict, Message: "this person is already a member of the workspace",
			Fields: map[string]string{"email": "is already a member"}}
	}
	if err := tx.QueryRow(ctx, pendingInvitesSQL, inv.WorkspaceID, inv.Email, tx.Now()).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return &kernel.Error{Code: kernel.CodeConflict, Message: "this address already has a pending invitation: resend or revoke it",
			Fields: map[string]string{"email": "already has a pending invitation"}}
	}
	return nil
}

// verifiedInviter returns the acting person's account. It returns
// email_unverified when they have not verified their address: an
// invitation is email sent in their name.
func (s *Service) verifiedInviter(ctx context.Context, userID uuid.UUID) (identity.User, error) {
	if s.users == nil {
		return identity.User{}, kernel.Internal(errors.New("tenancy: invitations need a UserReader"))
	}
	u, err := s.users.User(ctx, userID)
	if err != nil {
		return identity.User{}, fmt.Errorf("tenancy: inviter: %w", err)
	}
	if !u.EmailVerified() {
		return identity.User{}, &kernel.Error{Code: kernel.CodeEmailUnverified, Message: "verify your email address before inviting people"}
	}
	return u, nil
}

// sendInvite emails inv's link, carrying token, after the transaction that
// stored its hash has committed.
func (s *Service) sendInvite(ctx context.Context, inv Invite, ws Workspace, inviter identity.User, token string) {
	s.users.SendInvite(ctx, identity.InviteEmail{To: inv.Email, WorkspaceName: ws.Name, InviterName: inviter.Name,
		Role: string(inv.Role), Token: token, ExpiresIn: inviteExpiresIn})
}

// ListInvites returns up to limit of the workspace's invitations in every
// state, newest first, after position (nil for the first page). It returns
// forbidden unless the actor may (policy.InviteList), or the store's error.
func (s *Service) ListInvites(ctx context.Context, res policy.Resource, after *InvitePosition, limit int) ([]Invite, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.InviteList, res); err != nil {
		return nil, err
	}
	var out []Invite
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == nil {
			rows, err = tx.Query(ctx, listInvitesFirstSQL, res.Workspace, limit)
		} else {
			rows, err = tx.Query(ctx, listInvitesAfterSQL, res.Workspace, limit, after.CreatedAt, after.ID)
		}
		if err != nil {
			return err
		}
		now := tx.Now()
		out, err = store.Collect(rows, func(row store.Row) (Invite, error) { return scanInvite(row, now) })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tenancy: list invites: %w", err)
	}
	return out, nil
}

// ResendInvite emails the invitation again with a new link and a new
// expiry; the old link stops working. It is audited as invite.resent. It
// returns not_found for an unknown invitation, forbidden unless the actor
// may (policy.InviteManage on the invitation's role), email_unverified for an
// unverified actor, conflict when the invitation was accepted or revoked,
// rate_limited within ResendInterval of the last resend, workspace_inactive
// for a deleted workspace, or the store's error.
func (s *Service) ResendInvite(ctx context.Context, res policy.Resource, id uuid.UUID) (Invite, error) {
	actor := kernel.ActorFrom(ctx)
	// An invitation's role never changes, so this read decides the permission.
	inv, err := scanInvite(s.db.WorkspaceRow(ctx, res.Workspace, selectInviteSQL, id, res.Workspace), time.Time{})
	if err != nil {
		return Invite{}, notFoundAs("invite", err)
	}
	res.Grant = inv.Role
	if err := policy.Check(actor, policy.InviteManage, res); err != nil {
		return Invite{}, err
	}
	inviter, err := s.verifiedInviter(ctx, actor.ID)
	if err != nil {
		return Invite{}, err
	}
	token, hash := newInviteToken(res.Workspace)
	var ws Workspace
	err = s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var err error
		if ws, err = lockActive(ctx, tx, res.Workspace); err != nil {
			return notFoundAs("workspace", err)
		}
		if inv, err = scanInvite(tx.QueryRow(ctx, lockInvite[tx.Dialect()], id, res.Workspace), tx.Now()); err != nil {
			return notFoundAs("invite", err)
		}
		if err := resendable(inv, tx.Now()); err != nil {
			return err
		}
		if !inv.ExpiresAt.After(tx.Now()) {
			// An expired invitation held no seat: sending it again takes one.
			if err := s.admitSeat(ctx, tx, res.Workspace); err != nil {
				return err
			}
		}
		now := tx.Now()
		inv.ExpiresAt, inv.ResentAt, inv.Status = now.Add(InviteTTL), &now, InvitePending
		if _, err := tx.Exec(ctx, resendInviteSQL, inv.ID, inv.WorkspaceID, hash, inv.ExpiresAt, now); err != nil {
			return err
		}
		return record(ctx, tx, "invite.resent", EventInviteResent, inviteTarget(inv.ID),
			inviteAudit(inv), inviteEvent(inv))
	})
	if err != nil {
		return Invite{}, fmt.Errorf("tenancy: resend invite: %w", err)
	}
	s.sendInvite(ctx, inv, ws, inviter, token)
	return inv, nil
}

// resendable returns conflict for an accepted or revoked invitation, and
// rate_limited, with RetryAfter set, within ResendInterval of its last resend.
func resendable(inv Invite, now time.Time) error {
	switch inv.Status {
	case InviteAccepted, InviteRevoked:
		return kernel.Errorf(kernel.CodeConflict, "the invitation was %s: it cannot be resent", inv.Status)
	}
	if inv.ResentAt != nil && now.Before(inv.ResentAt.Add(ResendInterval)) {
		return &kernel.Error{Code: kernel.CodeRateLimited, Message: "the invitation was resent moments ago; try again in a minute",
			RetryAfter: inv.ResentAt.Add(ResendInterval).Sub(now)}
	}
	return nil
}

// RevokeInvite ends an invitation: its link stops working. It is audited as
// invite.revoked. It returns not_found for an unknown invitation, forbidden
// unless the actor may (policy.InviteManage on the invitation's role),
// conflict when it was already accepted or revoked, workspace_inactive for a
// deleted workspace, or the store's error.
func (s *Service) RevokeInvite(ctx context.Context, res policy.Resource, id uuid.UUID) error {
	err := s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		ws, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], res.Workspace))
		if err != nil {
			return notFoundAs("workspace", err)
		}
		inv, err := scanInvite(tx.QueryRow(ctx, lockInvite[tx.Dialect()], id, res.Workspace), tx.Now())
		if err != nil {
			return notFoundAs("invite", err)
		}
		res.Grant = inv.Role
		if err := policy.Check(kernel.ActorFrom(ctx), policy.InviteManage, res); err != nil {
			return err
		}
		if !ws.Active() {
			return errInactive()
		}
		if inv.Status == InviteAccepted || inv.Status == InviteRevoked {
			return kernel.Errorf(kernel.CodeConflict, "the invitation was already %s", inv.Status)
		}
		if _, err := tx.Exec(ctx, revokeInviteSQL, inv.ID, inv.WorkspaceID, tx.Now()); err != nil {
			return err
		}
		now := tx.Now()
		inv.RevokedAt, inv.Status = &now, InviteRevoked
		return record(ctx, tx, "invite.revoked", EventInviteRevoked, inviteTarget(inv.ID),
			inviteAudit(inv), inviteEvent(inv))
	})
	if err != nil {
		return fmt.Errorf("tenancy: revoke invite: %w", err)
	}
	return nil
}

// scanInvite reads inviteColumns in UTC and sets the status as of now (the
// zero time leaves expiry out of it).
func scanInvite(row store.Row, now time.Time) (Invite, error) {
	var inv Invite
	var role string
	err := row.Scan(&inv.ID, &inv.WorkspaceID, &inv.Email, &role, &inv.InvitedBy, &inv.CreatedAt, &inv.ExpiresAt,
		&inv.ResentAt, &inv.AcceptedAt, &inv.AcceptedBy, &inv.RevokedAt)
	if err != nil {
		return Invite{}, err
	}
	inv.Role, inv.CreatedAt, inv.ExpiresAt = policy.Role(role), inv.CreatedAt.UTC(), inv.ExpiresAt.UTC()
	inv.ResentAt, inv.AcceptedAt, inv.RevokedAt = inUTC(inv.ResentAt), inUTC(inv.AcceptedAt), inUTC(inv.RevokedAt)
	switch {
	case inv.AcceptedAt != nil:
		inv.Status = InviteAccepted
	case inv.RevokedAt != nil:
		inv.Status = InviteRevoked
	case !now.IsZero() && !now.Before(inv.ExpiresAt):
		inv.Status = InviteExpired
	default:
		inv.Status = InvitePending
	}
	return inv, nil
}

// inUTC returns t in UTC, or nil for nil.
func inUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// inviteAudit is an invitation's audit metadata. The audit log is
// append-only and outlives accounts, so it keeps the invited address masked
// ("a***@example.com"), as identity does for address changes: enough to
// recognise, not to collect. The invitation row keeps the address.
func inviteAudit(inv Invite) map[string]any {
	masked := "***"
	if local, domain, ok := strings.Cut(inv.Email, "@"); ok && local != "" {
		masked = string([]rune(local)[0]) + "***@" + domain
	}
	return map[string]any{"email": masked, "role": inv.Role}
}

func inviteTarget(id uuid.UUID) audit.Entry {
	return audit.Entry{TargetType: "invite", TargetID: kernel.FormatID(kernel.PrefixInvite, id)}
}
