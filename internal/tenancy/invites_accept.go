package tenancy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Invitation tokens read <workspace TypeID suffix>_<43 characters of secret>:
// the person accepting is not a member yet, so the token itself names the
// workspace to read the invitation in, and row-level security still applies
// (see migration 0008). The secret is 256 bits from crypto/rand; only the
// SHA-256 of the whole text is stored, so editing the workspace part yields
// a hash that matches nothing.
const (
	inviteWorkspacePart = 26
	inviteSecretLength  = 43
	// InviteTokenLength is the length of an invitation token as text.
	InviteTokenLength = inviteWorkspacePart + 1 + inviteSecretLength
)

var inviteEncoding = base64.RawURLEncoding.Strict()

// newInviteToken returns a fresh token for an invitation to workspaceID and
// the hash to store for it.
func newInviteToken(workspaceID uuid.UUID) (token, hash string) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand does not fail on supported platforms
	token = kernel.FormatID(kernel.PrefixWorkspace, workspaceID)[len(kernel.PrefixWorkspace)+1:] + "_" +
		inviteEncoding.EncodeToString(raw[:])
	return token, hashInviteToken(token)
}

func hashInviteToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// parseInviteToken returns the workspace a token names and the token's hash.
// It reports false for anything not shaped exactly like an issued token.
func parseInviteToken(token string) (uuid.UUID, string, bool) {
	if len(token) != InviteTokenLength || token[inviteWorkspacePart] != '_' {
		return uuid.Nil, "", false
	}
	if _, err := inviteEncoding.DecodeString(token[inviteWorkspacePart+1:]); err != nil {
		return uuid.Nil, "", false
	}
	ws, err := kernel.ParseID(kernel.PrefixWorkspace, kernel.PrefixWorkspace+"_"+token[:inviteWorkspacePart])
	if err != nil || ws == uuid.Nil {
		return uuid.Nil, "", false
	}
	return ws, hashInviteToken(token), true
}

// errBadInvite is the one answer for a token that is malformed, unknown,
// expired, used or revoked, or whose workspace is gone or deleted.
func errBadInvite() error {
	return kernel.Invalid("token", "this invitation link is invalid, expired or already used: ask for a new one")
}

const (
	selectInviteByHashSQL = "SELECT " + inviteColumns + " FROM invite WHERE token_hash = $1 AND workspace_id = $2"
	acceptInviteSQL       = `UPDATE invite SET accepted_at = $3, accepted_by = $4
        WHERE id = $1 AND workspace_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL`
	// previewInviteSQL reads what the accept page shows, in one round trip.
	// The names come from app_user, read-only, as the member list does.
	previewInviteSQL = `SELECT i.email, i.role, i.expires_at, i.accepted_at, i.revoked_at, w.name, w.deleted_at,
          coalesce(u.name, ''), EXISTS (SELECT 1 FROM app_user a WHERE a.email = i.email)
        FROM invite i JOIN workspace w ON w.id = i.workspace_id LEFT JOIN app_user u ON u.id = i.invited_by
        WHERE i.token_hash = $1 AND i.workspace_id = $2`
)

var lockInviteByHash = map[store.Dialect]string{
	store.Postgres: selectInviteByHashSQL + " FOR UPDATE",
	store.SQLite:   selectInviteByHashSQL,
}

// InvitePreview is what the person holding an invitation's link may learn
// before accepting it: enough to choose between logging in and signing up.
type InvitePreview struct {
	WorkspaceName string
	InviterName   string
	Email         string
	Role          policy.Role
	ExpiresAt     time.Time
	// AccountExists tells whether the invited address has an account: then
	// the person logs in and accepts, else they sign up as they accept.
	AccountExists bool
}

// LookupInvite returns what the holder of token may know about its
// invitation. It returns invalid naming token for a token that
// is malformed, unknown, expired, used or revoked, or whose workspace is
// deleted, or the store's error.
func (s *Service) LookupInvite(ctx context.Context, token string) (InvitePreview, error) {
	workspaceID, hash, ok := parseInviteToken(token)
	if !ok {
		return InvitePreview{}, errBadInvite()
	}
	var p InvitePreview
	var role string
	var acceptedAt, revokedAt, deletedAt *time.Time
	var now time.Time
	err := s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		now = tx.Now()
		return tx.QueryRow(ctx, previewInviteSQL, hash, workspaceID).Scan(&p.Email, &role, &p.ExpiresAt,
			&acceptedAt, &revokedAt, &p.WorkspaceName, &deletedAt, &p.InviterName, &p.AccountExists)
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return InvitePreview{}, errBadInvite()
	}
	if err != nil {
		return InvitePreview{}, fmt.Errorf("tenancy: look up invite: %w", err)
	}
	p.Role, p.ExpiresAt = policy.Role(role), p.ExpiresAt.UTC()
	if acceptedAt != nil || revokedAt != nil || deletedAt != nil || !now.Before(p.ExpiresAt) {
		return InvitePreview{}, errBadInvite()
	}
	return p, nil
}

// AcceptInvite makes the signed-in person of ctx a member with the
// invitation's role and uses the invitation up, audited as invite.accepted
// and member.added in one transaction. Two accepts of one token race for the
// workspace's lock; the second finds the invitation used.
//
// It returns invalid naming token for a bad, expired, used or revoked token
// or a deleted workspace; email_unverified when the person has not verified
// their address; forbidden when their address is not the invited one;
// conflict when they are already a member; or the store's error.
func (s *Service) AcceptInvite(ctx context.Context, token string) (Membership, error) {
	workspaceID, hash, ok := parseInviteToken(token)
	if !ok {
		return Membership{}, errBadInvite()
	}
	actor := kernel.ActorFrom(ctx)
	if actor.Kind != kernel.ActorUser {
		return Membership{}, &kernel.Error{Code: kernel.CodeForbidden, Message: "only a signed-in person can accept an invitation"}
	}
	if s.users == nil {
		return Membership{}, kernel.Internal(errors.New("tenancy: invitations need a UserReader"))
	}
	u, err := s.users.User(ctx, actor.ID)
	if err != nil {
		return Membership{}, fmt.Errorf("tenancy: accept invite: %w", err)
	}
	var m Membership
	err = s.db.InWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		inv, err := usableInvite(ctx, tx, workspaceID, hash)
		if err != nil {
			return err
		}
		if !u.EmailVerified() {
			return &kernel.Error{Code: kernel.CodeEmailUnverified, Message: "verify your email address before accepting an invitation"}
		}
		if u.Email != inv.Email {
			return &kernel.Error{Code: kernel.CodeForbidden,
				Message: "this invitation is for another email address: log in with the account of the invited address to accept it"}
		}
		m, err = acceptIn(ctx, tx, inv, u.ID)
		return err
	})
	if err != nil {
		return Membership{}, fmt.Errorf("tenancy: accept invite: %w", err)
	}
	return m, nil
}

// AcceptInviteAsNewUser signs up the invited address and makes the account a
// member, in one transaction: the account is created verified (the emailed
// token proves the mailbox), the membership with the invitation's role, and
// a session for client, which the caller hands to the browser.
//
// It returns invalid naming token as AcceptInvite does, invalid naming name
// or password for a bad one (the sign-up rules), conflict when the invited
// address already has an account (log in and accept instead), or the
// store's error.
func (s *Service) AcceptInviteAsNewUser(ctx context.Context, token, name, password string, client kernel.Client) (identity.LoginResult, Membership, error) {
	workspaceID, hash, ok := parseInviteToken(token)
	if !ok {
		return identity.LoginResult{}, Membership{}, errBadInvite()
	}
	if s.users == nil {
		return identity.LoginResult{}, Membership{}, kernel.Internal(errors.New("tenancy: invitations need a UserReader"))
	}
	// Read first: a dead token costs no password hashing, and the invitation
	// says which address to sign up.
	var inv Invite
	err := s.db.ReadWorkspace(ctx, workspaceID, func(tx store.Tx) error {
		var err error
		inv, err = scanInvite(tx.QueryRow(ctx, selectInviteByHashSQL, hash, workspaceID), tx.Now())
		return err
	})
	if err != nil || inv.Status != InvitePending {
		if err == nil || kernel.IsCode(err, kernel.CodeNotFound) {
			err = errBadInvite()
		}
		return identity.LoginResult{}, Membership{}, err
	}
	var m Membership
	res, err := s.users.SignupInvited(ctx, identity.InvitedSignup{WorkspaceID: workspaceID, Email: inv.Email, Name: name,
		Password: password, Client: client}, func(tx store.Tx, u identity.User) error {
		// The new account is the actor of what follows.
		ctx := kernel.WithActor(ctx, kernel.Actor{Kind: kernel.ActorUser, ID: u.ID})
		locked, err := usableInvite(ctx, tx, workspaceID, hash)
		if err != nil {
			return err
		}
		m, err = acceptIn(ctx, tx, locked, u.ID)
		return err
	})
	if err != nil {
		return identity.LoginResult{}, Membership{}, fmt.Errorf("tenancy: accept invite: %w", err)
	}
	return res, m, nil
}

// usableInvite locks the workspace and the invitation token's hash names,
// and returns the invitation if it can still be accepted; otherwise, and
// for a missing or deleted workspace, errBadInvite.
func usableInvite(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, hash string) (Invite, error) {
	if _, err := lockActive(ctx, tx, workspaceID); err != nil {
		if kernel.IsCode(err, kernel.CodeNotFound) || kernel.IsCode(err, kernel.CodeWorkspaceInactive) {
			return Invite{}, errBadInvite()
		}
		return Invite{}, err
	}
	inv, err := scanInvite(tx.QueryRow(ctx, lockInviteByHash[tx.Dialect()], hash, workspaceID), tx.Now())
	if kernel.IsCode(err, kernel.CodeNotFound) || (err == nil && inv.Status != InvitePending) {
		return Invite{}, errBadInvite()
	}
	return inv, err
}

// acceptIn makes userID a member with inv's role and marks inv accepted,
// inside tx, which holds the workspace's lock. It returns conflict when the
// person is already a member, errBadInvite when the invitation was used in
// the meantime, or the store's error.
func acceptIn(ctx context.Context, tx store.Tx, inv Invite, userID uuid.UUID) (Membership, error) {
	now := tx.Now()
	m := Membership{WorkspaceID: inv.WorkspaceID, UserID: userID, Role: inv.Role, CreatedAt: now, UpdatedAt: now}
	if err := insertMembership(ctx, tx, m); err != nil {
		if kernel.IsCode(err, kernel.CodeConflict) {
			return Membership{}, &kernel.Error{Code: kernel.CodeConflict, Message: "you are already a member of this workspace", Err: err}
		}
		return Membership{}, err
	}
	n, err := tx.Exec(ctx, acceptInviteSQL, inv.ID, inv.WorkspaceID, now, userID)
	if err != nil {
		return Membership{}, err
	}
	if n != 1 {
		return Membership{}, errBadInvite()
	}
	inv.AcceptedAt, inv.AcceptedBy, inv.Status = &now, &userID, InviteAccepted
	if err := record(ctx, tx, "invite.accepted", EventInviteAccepted, inviteTarget(inv.ID),
		inviteAudit(inv), inviteEvent(inv)); err != nil {
		return Membership{}, err
	}
	if err := record(ctx, tx, "member.added", EventMemberJoined, memberTarget(userID),
		map[string]any{"role": m.Role, "invite_id": kernel.FormatID(kernel.PrefixInvite, inv.ID)}, memberJoinedEvent(m, inv.ID)); err != nil {
		return Membership{}, err
	}
	return m, nil
}
