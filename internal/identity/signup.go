package identity

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/identity/password"
	"atrium/internal/kernel"
	"atrium/internal/mail"
	"atrium/internal/store"
)

// SignupResult is Signup's answer. It is the same for a new address and for
// one that already has an account, so that it reveals nothing.
type SignupResult struct {
	Email string // the address as normalised
}

// errEmailTaken marks the insert that found the address registered.
var errEmailTaken = errors.New("identity: email already registered")

// Signup creates an unverified account and emails a verification link to it.
//
// When the address already has an account, nothing is changed: its owner is
// sent a notice that someone tried to sign up with it, and the caller gets the
// very answer a new address gets, after the same work (one password hash, one
// write, one email). Nothing is told to a caller who may not own the address;
// the owner, who reads the mail, learns everything. The existing account's
// password is never replaced and no verification link is sent for it, so
// signing up again cannot take over an account, verified or not.
//
// Signup returns an invalid *kernel.Error naming the field for a bad email,
// name or password (password.Check, which also refuses one too close to the
// email), ctx.Err() if ctx ends while waiting to hash, or the store's error.
// A failure to send the email is logged, not returned: the account exists and
// the user can ask for another link after logging in.
func (s *Service) Signup(ctx context.Context, email, pw, name string) (SignupResult, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return SignupResult{}, err
	}
	name, err = validateName(name)
	if err != nil {
		return SignupResult{}, err
	}
	if err := password.Check(pw, email); err != nil {
		return SignupResult{}, err
	}
	// Hashed before anything is looked up, so a registered address costs the
	// same time as a new one; and outside the transaction, so the writer is not
	// held during Argon2id.
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return SignupResult{}, fmt.Errorf("identity: signup: %w", err)
	}
	user := User{ID: kernel.NewID(), Email: email, Name: name}
	token, tokenHash := newToken()
	err = s.db.Tx(ctx, func(tx store.Tx) error {
		user.CreatedAt, user.UpdatedAt = tx.Now(), tx.Now()
		if _, err := tx.Exec(ctx, insertUserSQL, user.ID, user.Email, user.Name, hash, user.CreatedAt); err != nil {
			if kernel.IsCode(err, kernel.CodeConflict) {
				return errEmailTaken
			}
			return err
		}
		if err := insertToken(ctx, tx, user, purposeVerifyEmail, tokenHash, verifyEmailTTL); err != nil {
			return err
		}
		self := userActor(user.ID)
		_, err := audit.Record(ctx, tx, audit.Entry{Action: "user.signed_up", TargetType: "user",
			TargetID: apiUserID(user.ID), Actor: &self})
		return err
	})
	send := context.WithoutCancel(ctx) // the account exists now: tell its owner even if the caller hung up
	switch {
	case errors.Is(err, errEmailTaken):
		if err := s.signupRepeated(ctx, email); err != nil {
			return SignupResult{}, err
		}
	case err != nil:
		return SignupResult{}, fmt.Errorf("identity: signup: %w", err)
	default:
		if err := s.sendVerification(send, user, token); err != nil {
			s.logger.ErrorContext(ctx, "send verification email", "user_id", apiUserID(user.ID), "error", err.Error())
		}
	}
	return SignupResult{Email: email}, nil
}

// signupRepeated records a sign-up attempt with a registered address and
// sends its owner a notice. It returns the store's error; a failure to send
// is logged.
func (s *Service) signupRepeated(ctx context.Context, email string) error {
	var existing User
	err := s.db.Tx(ctx, func(tx store.Tx) error {
		var err error
		if existing, _, err = userByEmail(ctx, tx, email); err != nil {
			return err
		}
		_, err = audit.Record(ctx, tx, audit.Entry{Action: "user.signup_repeated", TargetType: "user", TargetID: apiUserID(existing.ID)})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return nil // deleted in the meantime: there is nobody to tell
	}
	if err != nil {
		return fmt.Errorf("identity: signup: %w", err)
	}
	m, err := s.templates.Message(mail.TemplateAccountExists, []string{existing.Email},
		mail.AccountExists{Name: existing.Name, LoginLink: s.link("/login", nil)})
	if err == nil {
		err = s.mailer.Send(context.WithoutCancel(ctx), m)
	}
	if err != nil {
		s.logger.ErrorContext(ctx, "send account-exists notice", "user_id", apiUserID(existing.ID), "error", err.Error())
	}
	return nil
}

// sendVerification emails u a link carrying token. The token appears in the
// link inside the message and nowhere else: errors from rendering or sending
// never contain it.
func (s *Service) sendVerification(ctx context.Context, u User, token string) error {
	link := s.link("/verify-email", map[string][]string{"token": {token}})
	m, err := s.templates.Message(mail.TemplateVerifyEmail, []string{u.Email},
		mail.VerifyEmail{Name: u.Name, Link: link, ExpiresIn: "24 hours"})
	if err != nil {
		return err
	}
	return s.mailer.Send(ctx, m)
}

// apiUserID is the API form of a user's ID, for audit entries and logs.
func apiUserID(id uuid.UUID) string { return kernel.FormatID(kernel.PrefixUser, id) }

// userActor is the actor of a user acting for themselves before the request
// carries them (at sign-up and login).
func userActor(id uuid.UUID) kernel.Actor {
	return kernel.Actor{Kind: kernel.ActorUser, ID: id}
}
