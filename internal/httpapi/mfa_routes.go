package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/tenancy/policy"
)

// MFAStatusBody is a person's second factor as they see it: never the secret.
type MFAStatusBody struct {
	Enabled              bool       `json:"enabled" doc:"Whether logins ask for a code"`
	Pending              bool       `json:"pending" doc:"An enrolment was started and waits for its first code"`
	EnrolledAt           *time.Time `json:"enrolled_at,omitempty" doc:"When MFA was turned on"`
	BackupCodesRemaining int        `json:"backup_codes_remaining" doc:"Unused backup codes"`
}

type mfaStatusOutput struct {
	Body MFAStatusBody
}

// TOTPEnrolmentBody is a started enrolment: the secret, shown this once.
type TOTPEnrolmentBody struct {
	Secret string `json:"secret" doc:"The TOTP secret, base32, for typing into an authenticator app. Shown only once."`
	URI    string `json:"uri" doc:"The otpauth:// URI of the secret, for a QR code. Shown only once."`
}

type totpEnrolmentOutput struct {
	Body TOTPEnrolmentBody
}

// BackupCodesBody carries new backup codes, shown this once.
type BackupCodesBody struct {
	BackupCodes []string `json:"backup_codes" doc:"Ten single-use codes (xxxx-xxxx-xx), each accepted once instead of a TOTP code. Shown only once."`
}

type backupCodesOutput struct {
	Body BackupCodesBody
}

type mfaCodeInput struct {
	Body struct {
		Code string `json:"code" maxLength:"64" example:"123456" doc:"A code from the authenticator app"`
	}
}

type loginMFAInput struct {
	Body struct {
		Challenge string `json:"challenge" maxLength:"128" doc:"The challenge answered by POST /api/v1/auth/login"`
		Code      string `json:"code" maxLength:"64" example:"123456" doc:"A TOTP code, or one of the backup codes"`
	}
}

type reauthInput struct {
	Body struct {
		Password string `json:"password,omitempty" maxLength:"1024" doc:"The account's password; omit for an account without one"`
		Code     string `json:"code,omitempty" maxLength:"64" doc:"With MFA on: a TOTP code or a backup code"`
	}
}

// ReauthBody answers a re-authentication.
type ReauthBody struct {
	ReauthenticatedAt time.Time `json:"reauthenticated_at"`
	RecentUntil       time.Time `json:"recent_until" doc:"Privileged actions are allowed until then without asking again"`
}

type reauthOutput struct {
	SetCookie string `header:"Set-Cookie" doc:"The session cookie with its new token"`
	Body      ReauthBody
}

// loginAnswer renders a login: with a session, its cookie and the user; for
// an account with MFA, only the challenge and no cookie.
func loginAnswer(ctx context.Context, res identity.LoginResult) *loginOutput {
	if res.MFAChallenge != "" {
		showOnce(ctx)
		return &loginOutput{Body: LoginBody{MFARequired: true, Challenge: res.MFAChallenge}}
	}
	user := userBody(res.User)
	maxAge := res.Session.ExpiresAt.Sub(res.Session.CreatedAt)
	return &loginOutput{SetCookie: sessionCookie(res.Token, maxAge), Body: LoginBody{UserBody: &user}}
}

// recentAuthNote is the line every route that needs a recent proof adds.
const recentAuthNote = " Needs a recent authentication (15 minutes; `POST /api/v1/auth/reauthenticate`), " +
	"else 403 `reauthentication_required`; tokens never qualify."

func registerMFA(api huma.API, svc *identity.Service) {
	registerSecondStep(api, svc)
	tags := []string{"MFA"}
	errs := []int{http.StatusUnauthorized, http.StatusForbidden}
	huma.Register(api, huma.Operation{
		OperationID: "get-my-mfa", Method: http.MethodGet, Path: "/api/v1/me/mfa", Tags: tags,
		Summary: "Get my MFA status", Security: userSecurity, Errors: errs,
		Description: "Whether TOTP MFA is on, since when, and how many backup codes are left. Never the secret.",
	}, func(ctx context.Context, _ *struct{}) (*mfaStatusOutput, error) {
		actor, err := personFrom(ctx)
		if err != nil {
			return nil, err
		}
		st, err := svc.MFA(ctx, actor.ID)
		if err != nil {
			return nil, err
		}
		return &mfaStatusOutput{Body: MFAStatusBody{Enabled: st.Enabled, Pending: st.Pending, EnrolledAt: st.EnrolledAt,
			BackupCodesRemaining: st.BackupCodesRemaining}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "start-totp", Method: http.MethodPost, Path: "/api/v1/me/mfa/totp", Tags: tags,
		Summary: "Start a TOTP enrolment", Security: userSecurity, DefaultStatus: http.StatusCreated,
		Description: "Creates a TOTP secret and answers it, once, as base32 and as an otpauth:// URI. It is not active " +
			"until confirmed with a code at `POST /api/v1/me/mfa/totp/confirm`; starting again replaces it. " +
			"409 when MFA is already on." + recentAuthNote,
		Errors: append(errs, http.StatusConflict),
	}, func(ctx context.Context, _ *struct{}) (*totpEnrolmentOutput, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		e, err := svc.StartTOTP(ctx)
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &totpEnrolmentOutput{Body: TOTPEnrolmentBody{Secret: e.Secret, URI: e.URI}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "confirm-totp", Method: http.MethodPost, Path: "/api/v1/me/mfa/totp/confirm", Tags: tags,
		Summary: "Turn TOTP MFA on", Security: userSecurity,
		Description: "Confirms the pending enrolment with a code from the authenticator app, turns MFA on, ends " +
			"every other session and answers ten backup codes, once. A wrong code answers 400 on `code`; " +
			"409 when no enrolment is pending.",
		Errors: append(errs, http.StatusBadRequest, http.StatusConflict),
	}, func(ctx context.Context, in *mfaCodeInput) (*backupCodesOutput, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		codes, err := svc.ConfirmTOTP(ctx, in.Body.Code)
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &backupCodesOutput{Body: BackupCodesBody{BackupCodes: codes}}, nil
	})
	registerMFAChanges(api, svc, tags, errs)
}

func registerMFAChanges(api huma.API, svc *identity.Service, tags []string, errs []int) {
	huma.Register(api, huma.Operation{
		OperationID: "disable-totp", Method: http.MethodDelete, Path: "/api/v1/me/mfa/totp", Tags: tags,
		Summary: "Turn TOTP MFA off", Security: userSecurity, DefaultStatus: http.StatusNoContent,
		Description: "Deletes the secret and the backup codes (or drops a pending enrolment) and ends every other " +
			"session. 404 when there is neither." + recentAuthNote,
		Errors: append(errs, http.StatusNotFound),
	}, func(ctx context.Context, _ *struct{}) (*struct{}, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		return nil, svc.DisableTOTP(ctx)
	})
	huma.Register(api, huma.Operation{
		OperationID: "regenerate-backup-codes", Method: http.MethodPost, Path: "/api/v1/me/mfa/backup-codes", Tags: tags,
		Summary: "Replace my backup codes", Security: userSecurity,
		Description: "Answers ten new backup codes, once; the old ones stop working. Ends every other session. " +
			"409 when MFA is off." + recentAuthNote,
		Errors: append(errs, http.StatusConflict),
	}, func(ctx context.Context, _ *struct{}) (*backupCodesOutput, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		codes, err := svc.RegenerateBackupCodes(ctx)
		if err != nil {
			return nil, err
		}
		showOnce(ctx)
		return &backupCodesOutput{Body: BackupCodesBody{BackupCodes: codes}}, nil
	})
}

// registerSecondStep registers the routes that take a second factor: the
// second step of a login, and re-authentication.
func registerSecondStep(api huma.API, svc *identity.Service) {
	tags := []string{"Authentication"}
	huma.Register(api, huma.Operation{
		OperationID: "login-mfa", Method: http.MethodPost, Path: authPrefix + "login/mfa", Tags: tags,
		Summary: "Finish a login with a second factor",
		Description: "Answers the challenge of `POST /api/v1/auth/login` (or of a login link) with a TOTP code or " +
			"a backup code and starts the session, set as the `" + SessionCookieName + "` cookie, exactly as a " +
			"password login does. A challenge works once, for 5 minutes and at most 5 codes. A wrong code and an " +
			"expired, used or unknown challenge get the same 401.",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized},
	}, func(ctx context.Context, in *loginMFAInput) (*loginOutput, error) {
		res, err := svc.LoginMFA(ctx, in.Body.Challenge, in.Body.Code, kernel.ClientFrom(ctx))
		if err != nil {
			return nil, err
		}
		return loginAnswer(ctx, res), nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "reauthenticate", Method: http.MethodPost, Path: authPrefix + "reauthenticate", Tags: tags,
		Summary: "Confirm it is you", Security: userSecurity,
		Description: "Checks the password, and with MFA on a TOTP or backup code as well (an account without a " +
			"password gives only the code; with neither, 403: log in again with a login link). The session then " +
			"counts as recently authenticated for 15 minutes, which email and MFA changes, key and token creation " +
			"and workspace deletion require, and gets a new token in a new cookie: the old one stops working. " +
			"A wrong password or code gets one 401.",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden},
	}, func(ctx context.Context, in *reauthInput) (*reauthOutput, error) {
		if _, err := sessionPersonFrom(ctx); err != nil {
			return nil, err
		}
		sess, token, err := svc.Reauthenticate(ctx, in.Body.Password, in.Body.Code)
		if err != nil {
			return nil, err
		}
		return &reauthOutput{SetCookie: sessionCookie(token, sess.ExpiresAt.Sub(sess.ReauthenticatedAt)),
			Body: ReauthBody{ReauthenticatedAt: sess.ReauthenticatedAt,
				RecentUntil: sess.ReauthenticatedAt.Add(policy.RecentAuthWindow)}}, nil
	})
}
