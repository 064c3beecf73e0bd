package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
)

// UserBody is an account as the API shows it. It never carries a password or
// token hash.
type UserBody struct {
	ID              string     `json:"id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"User ID"`
	Email           string     `json:"email" example:"ada@example.com" doc:"Normalised: trimmed and lower-case"`
	Name            string     `json:"name" example:"Ada Lovelace"`
	EmailVerified   bool       `json:"email_verified"`
	EmailVerifiedAt *time.Time `json:"email_verified_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func userBody(u identity.User) UserBody {
	return UserBody{
		ID: kernel.FormatID(kernel.PrefixUser, u.ID), Email: u.Email, Name: u.Name,
		EmailVerified: u.EmailVerified(), EmailVerifiedAt: u.EmailVerifiedAt, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

type signupInput struct {
	Body struct {
		Email    string `json:"email" maxLength:"320" example:"ada@example.com"`
		Password string `json:"password" maxLength:"1024" doc:"At least 8 characters; not a common password and not close to the email"`
		Name     string `json:"name" maxLength:"100" example:"Ada Lovelace"`
	}
}

// AcceptedBody answers a request whose outcome arrives by email.
type AcceptedBody struct {
	Email   string `json:"email,omitempty" example:"ada@example.com"`
	Message string `json:"message"`
}

type acceptedOutput struct {
	Body AcceptedBody
}

type loginInput struct {
	Body struct {
		Email    string `json:"email" maxLength:"320" example:"ada@example.com"`
		Password string `json:"password" maxLength:"1024"`
	}
}

// LoginBody answers a login: the user, with the session cookie set, or, for
// an account with MFA, only mfa_required and a challenge to answer at
// POST /api/v1/auth/login/mfa, with no cookie and no user fields.
type LoginBody struct {
	MFARequired bool   `json:"mfa_required"`
	Challenge   string `json:"challenge,omitempty" doc:"Only when mfa_required: send it with a code to /api/v1/auth/login/mfa within 5 minutes"`
	*UserBody
}

type loginOutput struct {
	SetCookie string `header:"Set-Cookie" doc:"The session cookie"`
	Body      LoginBody
}

type logoutOutput struct {
	SetCookie string `header:"Set-Cookie" doc:"Clears the session cookie"`
}

type verifyInput struct {
	Body struct {
		Token string `json:"token" maxLength:"128" doc:"The token of the link in the verification email"`
	}
}

type userOutput struct {
	Body UserBody
}

// signupMessage is the one answer to every accepted sign-up.
const signupMessage = "Check your inbox: we sent a link to confirm the address. If you already have an account, we sent a reminder instead."

func registerAuth(api huma.API, svc *identity.Service) {
	tags := []string{"Authentication"}
	huma.Register(api, huma.Operation{
		OperationID: "signup", Method: http.MethodPost, Path: authPrefix + "signup", Tags: tags,
		Summary: "Sign up", DefaultStatus: http.StatusAccepted,
		Description: "Creates an unverified account and emails a verification link. An address that already has an account " +
			"gets exactly the same answer (its owner is emailed a notice instead), so sign-up does not reveal who has an account. " +
			"Sign-up does not log in: verify, then log in.",
		Errors: []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *signupInput) (*acceptedOutput, error) {
		res, err := svc.Signup(ctx, in.Body.Email, in.Body.Password, in.Body.Name)
		if err != nil {
			return nil, err
		}
		return &acceptedOutput{Body: AcceptedBody{Email: res.Email, Message: signupMessage}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "login", Method: http.MethodPost, Path: authPrefix + "login", Tags: tags,
		Summary: "Log in",
		Description: "Checks the password and starts a session, set as the `" + SessionCookieName + "` cookie " +
			"(HttpOnly, Secure, SameSite=Lax). An unknown email and a wrong password get the same 401. " +
			"Logging in again from a browser that has a session ends that session. For an account with MFA no " +
			"session starts yet: the answer is `{\"mfa_required\": true, \"challenge\": \"…\"}` with no cookie; " +
			"send the challenge and a code to `POST /api/v1/auth/login/mfa`.",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized},
	}, func(ctx context.Context, in *loginInput) (*loginOutput, error) {
		res, err := svc.Login(ctx, in.Body.Email, in.Body.Password, kernel.ClientFrom(ctx))
		if err != nil {
			return nil, err
		}
		return loginAnswer(ctx, res), nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "logout", Method: http.MethodPost, Path: authPrefix + "logout", Tags: tags,
		Summary: "Log out", DefaultStatus: http.StatusNoContent,
		Description: "Ends the session server-side and clears the cookie. Succeeds without a session, too.",
	}, func(ctx context.Context, _ *struct{}) (*logoutOutput, error) {
		if actor := kernel.ActorFrom(ctx); actor.SessionID != uuid.Nil {
			if err := svc.Logout(ctx, actor.SessionID); err != nil {
				return nil, err
			}
		}
		return &logoutOutput{SetCookie: clearedSessionCookie()}, nil
	})
	registerVerification(api, svc, tags)
	registerPasswordReset(api, svc, tags)
	registerMagicLink(api, svc, tags)
}

func registerVerification(api huma.API, svc *identity.Service, tags []string) {
	huma.Register(api, huma.Operation{
		OperationID: "verify-email", Method: http.MethodPost, Path: authPrefix + "email/verify", Tags: tags,
		Summary:     "Verify an email address",
		Description: "Uses up the token of a verification link (single use, valid 24 hours) and answers the account.",
		Errors:      []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *verifyInput) (*userOutput, error) {
		u, err := svc.VerifyEmail(ctx, in.Body.Token)
		if err != nil {
			return nil, err
		}
		return &userOutput{Body: userBody(u)}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "resend-verification", Method: http.MethodPost, Path: authPrefix + "email/resend", Tags: tags,
		Summary: "Send a new verification link", DefaultStatus: http.StatusAccepted, Security: userSecurity,
		Description: "Replaces any earlier link. At most one a minute and five an hour; 429 with Retry-After beyond that.",
		Errors:      []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusTooManyRequests},
	}, func(ctx context.Context, _ *struct{}) (*acceptedOutput, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		if err := svc.ResendVerification(ctx, actor.ID); err != nil {
			return nil, err
		}
		return &acceptedOutput{Body: AcceptedBody{Message: "A new verification link is on its way."}}, nil
	})
}

type emailInput struct {
	Body struct {
		Email string `json:"email" maxLength:"320" example:"ada@example.com"`
	}
}

type resetInput struct {
	Body struct {
		Token    string `json:"token" maxLength:"128" doc:"The token of the link in the password-reset email"`
		Password string `json:"password" maxLength:"1024" doc:"The new password: at least 8 characters; not a common password and not close to the email"`
	}
}

type resetOutput struct {
	SetCookie string `header:"Set-Cookie" doc:"Clears the session cookie when the browser was signed in to the account"`
}

// Answers to requests for emailed links: the same whether or not the address
// has an account, and without the address, so that the bodies for any two
// addresses are identical.
const (
	forgotMessage    = "If an account with a verified address matches, we sent it a link to reset the password. The link works once, for 1 hour."
	magicLinkMessage = "If an account matches, we sent it a link to log in. The link works once, for 15 minutes."
)

func registerPasswordReset(api huma.API, svc *identity.Service, tags []string) {
	huma.Register(api, huma.Operation{
		OperationID: "forgot-password", Method: http.MethodPost, Path: authPrefix + "password/forgot", Tags: tags,
		Summary: "Ask for a password-reset link", DefaultStatus: http.StatusAccepted,
		Description: "Emails a link (`BASE_URL/reset-password?token=…`, single use, valid 1 hour) to the account's address, " +
			"only if it is verified. Every well-formed address gets the same answer, whether it has an account or not, " +
			"and whether or not a link was sent; at most 3 links an account an hour are sent.",
		Errors: []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *emailInput) (*acceptedOutput, error) {
		if err := svc.RequestPasswordReset(ctx, in.Body.Email); err != nil {
			return nil, err
		}
		return &acceptedOutput{Body: AcceptedBody{Message: forgotMessage}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "reset-password", Method: http.MethodPost, Path: authPrefix + "password/reset", Tags: tags,
		Summary: "Set a new password with a reset link", DefaultStatus: http.StatusNoContent,
		Description: "Uses up the token, sets the password and ends every session of the account, this browser's " +
			"included: log in afterwards. A bad, used or expired token answers 400 on `token`.",
		Errors: []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *resetInput) (*resetOutput, error) {
		u, err := svc.ResetPassword(ctx, in.Body.Token, in.Body.Password)
		if err != nil {
			return nil, err
		}
		out := &resetOutput{}
		if actor := kernel.ActorFrom(ctx); actor.SessionID != uuid.Nil && actor.ID == u.ID {
			out.SetCookie = clearedSessionCookie()
		}
		return out, nil
	})
}

func registerMagicLink(api huma.API, svc *identity.Service, tags []string) {
	huma.Register(api, huma.Operation{
		OperationID: "request-magic-link", Method: http.MethodPost, Path: authPrefix + "magic-link", Tags: tags,
		Summary: "Ask for a login link", DefaultStatus: http.StatusAccepted,
		Description: "Emails a login link (`BASE_URL/magic-link?token=…`, single use, valid 15 minutes) to the account " +
			"with the address. Every well-formed address gets the same answer, whether it has an account or not; " +
			"at most 3 links an account an hour are sent.",
		Errors: []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *emailInput) (*acceptedOutput, error) {
		if err := svc.RequestMagicLink(ctx, in.Body.Email); err != nil {
			return nil, err
		}
		return &acceptedOutput{Body: AcceptedBody{Message: magicLinkMessage}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "verify-magic-link", Method: http.MethodPost, Path: authPrefix + "magic-link/verify", Tags: tags,
		Summary: "Log in with a login link",
		Description: "Uses up the token and starts a session exactly as a password login does. The link proves the " +
			"address, so an unverified one becomes verified; an account whose address nobody had proved loses the " +
			"password chosen at sign-up, any MFA and its other sessions. An account with MFA gets an MFA challenge " +
			"instead of a session, as at `POST /api/v1/auth/login`. A bad, used or expired token answers 400 on `token`.",
		Errors: []int{http.StatusBadRequest},
	}, func(ctx context.Context, in *verifyInput) (*loginOutput, error) {
		res, err := svc.LoginWithMagicLink(ctx, in.Body.Token, kernel.ClientFrom(ctx))
		if err != nil {
			return nil, err
		}
		return loginAnswer(ctx, res), nil
	})
}

// userSecurity documents the routes that act for a signed-in person.
var userSecurity = []map[string][]string{{"session": {}}}

// personFrom returns the acting person. It returns unauthenticated for an
// anonymous caller and forbidden for an actor that is not a person, such as
// a workspace API key.
func personFrom(ctx context.Context) (kernel.Actor, error) {
	actor := kernel.ActorFrom(ctx)
	switch {
	case !actor.IsAuthenticated():
		return actor, errNoActor
	case actor.Kind != kernel.ActorUser:
		return actor, &kernel.Error{Code: kernel.CodeForbidden, Message: "only a signed-in person can do this"}
	}
	return actor, nil
}

// sessionPersonFrom is personFrom for the routes that change how a person
// signs in (password, second factor, re-authentication, account deletion):
// only a browser session may use them. A personal access token acts for its
// person elsewhere, but one that leaked must not be able to change the
// credentials that would let the owner take the account back.
func sessionPersonFrom(ctx context.Context) (kernel.Actor, error) {
	actor, err := personFrom(ctx)
	if err == nil && actor.Via != kernel.ViaCookie {
		err = &kernel.Error{Code: kernel.CodeForbidden, Message: "only a signed-in browser session can change how you sign in; tokens cannot"}
	}
	return actor, err
}
