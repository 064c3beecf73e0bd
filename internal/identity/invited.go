package identity

import (
	"context"
	"fmt"
	"net/url"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

// The identity side of workspace invitations: tenancy owns invitations and
// memberships, this file the accounts they create and the email they send.

// insertVerifiedUserSQL creates an account whose address is already proved:
// the person followed a link sent to it.
const insertVerifiedUserSQL = `INSERT INTO app_user (id, email, name, password_hash, email_verified_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $5, $5)`

// loginInvite is the login method audited when accepting an invitation
// creates the account and its first session.
const loginInvite = "invite"

// InvitedSignup is what SignupInvited creates an account from.
type InvitedSignup struct {
	// WorkspaceID is the workspace the invitation is to: the whole sign-up
	// runs in its transaction, so that the account, the membership and the
	// session exist together or not at all.
	WorkspaceID uuid.UUID
	Email       string // the invited address
	Name        string
	Password    string
	Client      kernel.Client
}

// errInvitedAccountExists is the answer when the invited address already has
// an account. Only the holder of the invitation's token gets this far.
func errInvitedAccountExists() error {
	return &kernel.Error{Code: kernel.CodeConflict,
		Message: "an account with this email address already exists: log in (or ask for a login link), then accept the invitation"}
}

// SignupInvited creates an account for an invited address, already verified
// (the invitation's token, emailed to it, proves the mailbox), runs join in
// the same transaction (tenancy makes the membership and uses up the
// invitation there) and starts a session for client, as a login does. The
// transaction is the workspace's, so the sign-up and login audit entries are
// the workspace's too.
//
// It returns an invalid *kernel.Error naming the field for a bad email, name
// or password (password.Check, as at sign-up), conflict when the address
// already has an account, ctx.Err() if ctx ends while waiting to hash, join's
// error, or the store's error.
func (s *Service) SignupInvited(ctx context.Context, in InvitedSignup, join func(tx store.Tx, u User) error) (LoginResult, error) {
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return LoginResult{}, err
	}
	name, err := validateName(in.Name)
	if err != nil {
		return LoginResult{}, err
	}
	if err := password.Check(in.Password, email); err != nil {
		return LoginResult{}, err
	}
	// Outside the transaction, so the writer is not held during Argon2id.
	hash, err := s.hasher.Hash(ctx, in.Password)
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: invited signup: %w", err)
	}
	var res LoginResult
	err = s.db.InWorkspace(ctx, in.WorkspaceID, func(tx store.Tx) error {
		now := tx.Now()
		u := User{ID: kernel.NewID(), Email: email, Name: name, EmailVerifiedAt: &now, CreatedAt: now, UpdatedAt: now}
		if _, err := tx.Exec(ctx, insertVerifiedUserSQL, u.ID, u.Email, u.Name, hash, now); err != nil {
			if kernel.IsCode(err, kernel.CodeConflict) {
				return errInvitedAccountExists()
			}
			return err
		}
		self := userActor(u.ID)
		if _, err := audit.Record(ctx, tx, audit.Entry{Action: "user.signed_up", TargetType: "user",
			TargetID: apiUserID(u.ID), Actor: &self, Metadata: map[string]any{"method": loginInvite}}); err != nil {
			return err
		}
		if err := join(tx, u); err != nil {
			return err
		}
		res, err = s.openSession(ctx, tx, u, in.Client, loginInvite)
		return err
	})
	if err != nil {
		return LoginResult{}, fmt.Errorf("identity: invited signup: %w", err)
	}
	return res, nil
}

// InviteEmail is what SendInvite puts in an invitation email.
type InviteEmail struct {
	To            string // the invited address
	WorkspaceName string
	InviterName   string
	Role          string
	// Token goes into the link, BASE_URL/invite?token=…, and nowhere else.
	Token     string
	ExpiresIn string // how long the link works, in words ("7 days")
}

// SendInvite emails an invitation with its link. A failure is logged, never
// returned: the invitation exists, and its inviter can resend it. Errors from
// rendering or sending never contain the token.
func (s *Service) SendInvite(ctx context.Context, in InviteEmail) {
	link := s.link("/invite", url.Values{"token": {in.Token}})
	m, err := s.templates.Message(mail.TemplateInvite, []string{in.To}, mail.Invite{WorkspaceName: in.WorkspaceName,
		InviterName: in.InviterName, Role: in.Role, Link: link, ExpiresIn: in.ExpiresIn})
	if err == nil {
		err = s.mailer.Send(context.WithoutCancel(ctx), m)
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "send invitation email", "error", err.Error())
	}
}
