package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
)

// createKey creates an API key through the API as p and returns the answer.
func createKey(t *testing.T, f fixture, p testkit.Person, wsID, body string) response {
	t.Helper()
	r := call(t, f.url, "POST", "/api/v1/workspaces/"+wsID+"/api-keys", p.Headers(), body)
	if r.status != http.StatusCreated {
		t.Fatalf("create key: %d %s", r.status, r.raw)
	}
	return r
}

// countAction counts the audit entries of a page with the given action.
func countAction(r response, action string) int {
	n := 0
	for _, e := range items(r) {
		if e["action"] == action {
			n++
		}
	}
	return n
}

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret}
}

func TestAPIKeyLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		wsID := createWorkspace(t, f, ada, "ada")
		reader := createKey(t, f, ada, wsID, `{"name": "dashboards", "scopes": ["read"]}`)
		secret, _ := reader.body["secret"].(string)
		if !strings.HasPrefix(secret, "atr_"+strings.TrimPrefix(wsID, "ws_")+"_") || len(secret) != 74 {
			t.Fatalf("secret %q", secret)
		}
		keyID := reader.body["id"].(string)
		if !strings.HasPrefix(keyID, "key_") || !strings.HasPrefix(secret, reader.body["prefix"].(string)) {
			t.Fatalf("created key: %s", reader.raw)
		}

		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID, bearer(secret), ""); r.status != 200 || r.body["id"] != wsID {
			t.Fatalf("read with key: %d %s", r.status, r.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID+"/audit-log", bearer(secret), ""); r.status != 200 || countAction(r, "api_key.created") != 1 {
			t.Fatalf("audit log with key: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "PATCH", "/api/v1/workspaces/"+wsID, bearer(secret), `{"name": "Nope"}`), 403, kernel.CodeForbidden)
		// A key manages no keys, whatever its scopes.
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/workspaces/"+wsID+"/api-keys", bearer(secret), `{"name": "x", "scopes": ["read"]}`),
			403, kernel.CodeForbidden)

		writer := createKey(t, f, ada, wsID, `{"name": "deploys", "scopes": ["write", "read"]}`)
		if r := call(t, f.url, "PATCH", "/api/v1/workspaces/"+wsID, bearer(writer.body["secret"].(string)), `{"name": "Renamed"}`); r.status != 200 {
			t.Fatalf("write with key: %d %s", r.status, r.raw)
		}

		list := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID+"/api-keys", ada.Headers(), "")
		if list.status != 200 || len(items(list)) != 2 || items(list)[1]["last_used_at"] == nil {
			t.Fatalf("list: %d %s", list.status, list.raw)
		}
		for _, s := range []string{secret, writer.body["secret"].(string), "token_hash", `"secret"`} {
			if strings.Contains(list.raw, s) {
				t.Fatalf("list shows %q: %s", s, list.raw)
			}
		}

		if r := call(t, f.url, "DELETE", "/api/v1/workspaces/"+wsID+"/api-keys/"+keyID, ada.Headers(), ""); r.status != 204 {
			t.Fatalf("revoke: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+wsID, bearer(secret), ""), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/workspaces/"+wsID+"/api-keys/"+keyID, ada.Headers(), ""), 404, kernel.CodeNotFound)
		audit := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID+"/audit-log", ada.Headers(), "")
		if countAction(audit, "api_key.revoked") != 1 {
			t.Fatalf("revocation not audited: %s", audit.raw)
		}
		for _, s := range []string{secret, writer.body["secret"].(string)} {
			if strings.Contains(f.app.Logs(), s) || strings.Contains(f.app.Logs(), s[20:]) {
				t.Fatal("a secret reached the log")
			}
		}
	})
}

func TestAPIKeyCreationRules(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, bob := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "bob@example.com")
		wsID := createWorkspace(t, f, ada, "ada")
		addMember(t, f, wsID, bob, policy.Member)
		base := "/api/v1/workspaces/" + wsID + "/api-keys"
		assertEnvelope(t, call(t, f.url, "POST", base, bob.Headers(), `{"name": "k", "scopes": ["read"]}`), 403, kernel.CodeForbidden)
		assertEnvelope(t, call(t, f.url, "POST", base, ada.Headers(), `{"name": "k", "scopes": ["admin"]}`), 400, kernel.CodeInvalid)
		assertEnvelope(t, call(t, f.url, "POST", base, ada.Headers(), `{"name": "k", "scopes": []}`), 400, kernel.CodeInvalid)
		assertEnvelope(t, call(t, f.url, "POST", base, ada.Headers(), `{"name": "k", "scopes": ["read"], "workspace_id": "`+wsID+`"}`),
			400, kernel.CodeInvalid)
		past := f.app.Clock.Now().Add(-time.Hour).Format(time.RFC3339)
		assertEnvelope(t, call(t, f.url, "POST", base, ada.Headers(), `{"name": "k", "scopes": ["read"], "expires_at": "`+past+`"}`),
			400, kernel.CodeInvalid, "expires_at")
	})
}

func TestAPIKeyMisuseIsRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		wsID, evesID := createWorkspace(t, f, ada, "ada"), createWorkspace(t, f, eve, "eve")
		soon := f.app.Clock.Now().Add(time.Hour).Format(time.RFC3339Nano)
		secret := createKey(t, f, ada, wsID, `{"name": "k", "scopes": ["read"], "expires_at": "`+soon+`"}`).body["secret"].(string)
		evesKey := createKey(t, f, eve, evesID, `{"name": "k", "scopes": ["read"]}`).body["secret"].(string)

		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+evesID, bearer(secret), ""), 404, kernel.CodeNotFound)
		// Eve's workspace written into Ada's key: a valid secret, a forged binding.
		forged := "atr_" + strings.TrimPrefix(evesID, "ws_") + secret[30:]
		random := secret[31:]
		refused := map[string]map[string]string{
			"forged workspace":  bearer(forged),
			"truncated":         bearer(secret[:len(secret)-1]),
			"extended":          bearer(secret + "A"),
			"unknown":           bearer("atr_" + strings.TrimPrefix(wsID, "ws_") + "_" + strings.Repeat("A", 43)),
			"token only":        bearer("atp_" + random),
			"other scheme":      {"Authorization": "Basic " + secret},
			"garbage":           bearer("nonsense"),
			"another's key too": bearer(evesKey + " " + secret),
		}
		for name, h := range refused {
			r := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID, h, "")
			if r.status != 401 || r.body["error"].(map[string]any)["message"] != "invalid credentials" {
				t.Fatalf("%s: %d %s", name, r.status, r.raw)
			}
		}
		for _, q := range []string{"?token=", "?api_key=", "?access_token="} {
			r := call(t, f.url, "GET", "/api/v1/workspaces/"+wsID+q+secret, nil, "")
			if r.status == 200 {
				t.Fatalf("secret accepted in the query string %s: %s", q, r.raw)
			}
		}
		f.app.Clock.Advance(time.Hour)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+wsID, bearer(secret), ""), 401, kernel.CodeUnauthenticated)
	})
}
