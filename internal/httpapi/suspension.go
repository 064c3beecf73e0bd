package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"atrium/internal/kernel"
)

// Suspensions says whether a workspace is read-only for non-payment;
// billing.Entitlements is one (from its in-process cache).
type Suspensions interface {
	Suspended(ctx context.Context, workspaceID uuid.UUID) (bool, error)
}

// readOnlyWhenSuspended refuses every change to a workspace suspended for
// non-payment (30 days unpaid) with workspace_inactive, except its billing
// routes: reading goes on, and paying must stay possible. It needs the
// workspace the tenant middleware resolved.
func readOnlyWhenSuspended(s Suspensions) func(http.Handler) http.Handler {
	if s == nil {
		return nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws := stateFrom(r.Context()).workspace
			if ws == uuid.Nil || safeMethod(r.Method) || billingPath(r.URL.Path) {
				next.ServeHTTP(w, r)
				return
			}
			suspended, err := s.Suspended(r.Context(), ws)
			if err != nil {
				WriteError(w, r, err)
				return
			}
			if suspended {
				WriteError(w, r, &kernel.Error{Code: kernel.CodeWorkspaceInactive,
					Message: "the workspace is read-only until its overdue payment goes through: pay to restore it"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// billingPath reports whether a workspace path is one of its billing
// routes (subscription, invoices), which stay open during a suspension.
func billingPath(path string) bool {
	rest, ok := strings.CutPrefix(path, workspacePrefix)
	if !ok {
		return false
	}
	_, sub, _ := strings.Cut(rest, "/")
	return sub == "subscription" || strings.HasPrefix(sub, "subscription/") || sub == "invoices"
}
