package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/testkit"
)

func TestPersonalAccessTokens(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada, eve := f.app.SignUp(t, "ada@example.com"), f.app.SignUp(t, "eve@example.com")
		first, second := createWorkspace(t, f, ada, "ada-one"), createWorkspace(t, f, ada, "ada-two")
		evesID := createWorkspace(t, f, eve, "eve")

		all := call(t, f.url, "POST", "/api/v1/me/tokens", ada.Headers(), `{"name": "scripts"}`)
		only := call(t, f.url, "POST", "/api/v1/me/tokens", ada.Headers(), `{"name": "ci", "workspace_id": "`+second+`"}`)
		if all.status != 201 || only.status != 201 || only.body["workspace_id"] != second {
			t.Fatalf("create: %d %s / %d %s", all.status, all.raw, only.status, only.raw)
		}
		allSecret, onlySecret := all.body["secret"].(string), only.body["secret"].(string)
		if !strings.HasPrefix(allSecret, "atp_") || len(allSecret) != 47 || !strings.HasPrefix(all.body["id"].(string), "pat_") {
			t.Fatalf("token: %s", all.raw)
		}

		if r := call(t, f.url, "GET", "/api/v1/me", bearer(allSecret), ""); r.status != 200 || r.body["id"] != ada.UserID() {
			t.Fatalf("me with token: %d %s", r.status, r.raw)
		}
		for _, ws := range []string{first, second} {
			if r := call(t, f.url, "GET", "/api/v1/workspaces/"+ws, bearer(allSecret), ""); r.status != 200 || r.body["role"] != "owner" {
				t.Fatalf("workspace %s with token: %d %s", ws, r.status, r.raw)
			}
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/workspaces/"+evesID, bearer(allSecret), ""), 404, kernel.CodeNotFound)
		if r := call(t, f.url, "GET", "/api/v1/workspaces/"+second, bearer(onlySecret), ""); r.status != 200 {
			t.Fatalf("restricted token in its workspace: %d %s", r.status, r.raw)
		}
		// Confined to one workspace: the other looks missing, byte for byte.
		a := call(t, f.url, "GET", "/api/v1/workspaces/"+first, bearer(onlySecret), "")
		b := call(t, f.url, "GET", "/api/v1/workspaces/"+kernel.FormatID(kernel.PrefixWorkspace, kernel.NewID()), bearer(onlySecret), "")
		assertEnvelope(t, a, 404, kernel.CodeNotFound)
		if withoutRequestID(a) != withoutRequestID(b) {
			t.Fatalf("a restricted token tells a real workspace from a missing one:\n%s\n%s", a.raw, b.raw)
		}

		// A token mints no tokens.
		assertEnvelope(t, call(t, f.url, "POST", "/api/v1/me/tokens", bearer(allSecret), `{"name": "more"}`), 403, kernel.CodeForbidden)
		list := call(t, f.url, "GET", "/api/v1/me/tokens", ada.Headers(), "")
		if list.status != 200 || len(items(list)) != 2 || strings.Contains(list.raw, allSecret) || strings.Contains(list.raw, onlySecret) {
			t.Fatalf("list: %d %s", list.status, list.raw)
		}
		if r := call(t, f.url, "GET", "/api/v1/me/tokens", eve.Headers(), ""); len(items(r)) != 0 {
			t.Fatalf("eve sees ada's tokens: %s", r.raw)
		}
		assertEnvelope(t, call(t, f.url, "DELETE", "/api/v1/me/tokens/"+all.body["id"].(string), eve.Headers(), ""), 404, kernel.CodeNotFound)
		if r := call(t, f.url, "DELETE", "/api/v1/me/tokens/"+all.body["id"].(string), ada.Headers(), ""); r.status != 204 {
			t.Fatalf("revoke: %d %s", r.status, r.raw)
		}
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", bearer(allSecret), ""), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", bearer(allSecret[:30]), ""), 401, kernel.CodeUnauthenticated)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me?token="+onlySecret, nil, ""), 400, kernel.CodeInvalid, "query.token")

		soon := f.app.Clock.Now().Add(time.Minute).Format(time.RFC3339Nano)
		expiring := call(t, f.url, "POST", "/api/v1/me/tokens", ada.Headers(), `{"name": "brief", "expires_at": "`+soon+`"}`)
		f.app.Clock.Advance(time.Minute)
		assertEnvelope(t, call(t, f.url, "GET", "/api/v1/me", bearer(expiring.body["secret"].(string)), ""), 401, kernel.CodeUnauthenticated)
		for _, s := range []string{allSecret, onlySecret, allSecret[4:]} {
			if strings.Contains(f.app.Logs(), s) {
				t.Fatal("a token reached the log")
			}
		}
	})
}

func TestAPIKeyEventsReachTheOutbox(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		f := setup(t, d, testkit.AppOptions{})
		ada := f.app.SignUp(t, "ada@example.com")
		wsID := createWorkspace(t, f, ada, "ada")
		keyID := createKey(t, f, ada, wsID, `{"name": "k", "scopes": ["read"]}`).body["id"].(string)
		if r := call(t, f.url, "DELETE", "/api/v1/workspaces/"+wsID+"/api-keys/"+keyID, ada.Headers(), ""); r.status != 204 {
			t.Fatalf("revoke: %d %s", r.status, r.raw)
		}
		ws, _ := kernel.ParseID(kernel.PrefixWorkspace, wsID)
		var n int
		err := f.app.DB.ReadWorkspace(context.Background(), ws, func(tx store.Tx) error {
			return tx.QueryRow(context.Background(), `SELECT count(*) FROM outbox WHERE workspace_id = $1
				AND event_type IN ('api_key.created', 'api_key.revoked') AND CAST(payload AS text) LIKE '%' || $2 || '%'`, ws, keyID).Scan(&n)
		})
		if err != nil || n != 2 {
			t.Fatalf("outbox has %d key events: %v", n, err)
		}
	})
}
