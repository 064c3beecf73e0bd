package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/events"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
	"atrium/internal/testkit"
	"atrium/internal/webhooks"
)

// The callers of the route × role table: the four roles of a fresh
// workspace, a read-and-write API key bound to it, a revoked key of it, the
// owner of another workspace, an API key of another workspace, and nobody.
// The keys are real ones, created through the identity service.
const (
	asOwner     = "owner"
	asAdmin     = "admin"
	asMember    = "member"
	asViewer    = "viewer"
	asOwnKey    = "own API key"
	asStranger  = "another workspace's owner"
	asOtherKey  = "another workspace's API key"
	asRevoked   = "a revoked key"
	asAnonymous = "no credentials"
)

var callers = []string{asOwner, asAdmin, asMember, asViewer, asOwnKey, asStranger, asOtherKey, asRevoked, asAnonymous}

// roleRoute is one row of the table: how to call a workspace route and what
// each caller gets. Outsiders (asStranger, asOtherKey) always get the 404 of a
// missing workspace and anonymous callers and revoked keys 401, so rows list
// insiders only.
type roleRoute struct {
	body    string
	deleted bool // call it on a deleted workspace
	allowed map[string]int
}

// insiders maps the callers allowed to their success status; every other
// insider must get 403.
func insiders(status int, allowed ...string) map[string]int {
	m := map[string]int{}
	for _, c := range allowed {
		m[c] = status
	}
	return m
}

// roleTable has a row for every workspace-scoped route of the router; a route
// added without one fails TestRouteRoleTable.
var roleTable = map[string]roleRoute{
	"GET /api/v1/workspaces/{workspace_id}": {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"PATCH /api/v1/workspaces/{workspace_id}": {body: `{"name": "Renamed"}`,
		allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"DELETE /api/v1/workspaces/{workspace_id}":                  {allowed: insiders(200, asOwner)},
	"POST /api/v1/workspaces/{workspace_id}/restore":            {deleted: true, allowed: insiders(200, asOwner)},
	"POST /api/v1/workspaces/{workspace_id}/transfer-ownership": {body: `{"user_id": "{target}"}`, allowed: insiders(204, asOwner)},
	"GET /api/v1/workspaces/{workspace_id}/members":             {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"PATCH /api/v1/workspaces/{workspace_id}/members/{user_id}": {body: `{"role": "viewer"}`,
		allowed: insiders(200, asOwner, asAdmin)},
	"DELETE /api/v1/workspaces/{workspace_id}/members/{user_id}": {allowed: insiders(204, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/audit-log":            {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/api-keys":             {allowed: insiders(200, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/api-keys": {body: `{"name": "deploys", "scopes": ["read"]}`,
		allowed: insiders(201, asOwner, asAdmin)},
	"DELETE /api/v1/workspaces/{workspace_id}/api-keys/{key_id}": {allowed: insiders(204, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/invites":              {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/invites": {body: `{"email": "newcomer@example.com", "role": "member"}`,
		allowed: insiders(201, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/invites/{invite_id}/resend": {allowed: insiders(200, asOwner, asAdmin)},
	"DELETE /api/v1/workspaces/{workspace_id}/invites/{invite_id}":      {allowed: insiders(204, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/teams":                       {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/teams": {body: `{"name": "New team"}`,
		allowed: insiders(201, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/teams/{team_id}": {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"PATCH /api/v1/workspaces/{workspace_id}/teams/{team_id}": {body: `{"name": "Renamed"}`,
		allowed: insiders(200, asOwner, asAdmin)},
	"DELETE /api/v1/workspaces/{workspace_id}/teams/{team_id}": {allowed: insiders(204, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/teams/{team_id}/members": {
		allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/teams/{team_id}/members": {body: `{"user_id": "{viewer}"}`,
		allowed: insiders(201, asOwner, asAdmin)},
	"DELETE /api/v1/workspaces/{workspace_id}/teams/{team_id}/members/{user_id}": {allowed: insiders(204, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/jobs/{job_id}":                        {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/jobs/{job_id}/cancel":                {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/events/stream":                        {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/usage":                                {allowed: insiders(200, asOwner, asAdmin, asMember, asViewer, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/webhook-endpoints":                    {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/webhook-endpoints": {body: `{"url": "{hook}"}`,
		allowed: insiders(201, asOwner, asAdmin, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}": {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"PATCH /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}": {body: `{"description": "Renamed"}`,
		allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"DELETE /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}":             {allowed: insiders(204, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/rotate-secret": {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/test":          {allowed: insiders(202, asOwner, asAdmin, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/deliveries":     {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}": {
		allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay": {
		allowed: insiders(202, asOwner, asAdmin, asOwnKey)},
	"GET /api/v1/workspaces/{workspace_id}/subscription":               {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/trial":        {allowed: insiders(409, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/trial/extend": {allowed: insiders(200, asOwner, asAdmin)},
	"GET /api/v1/workspaces/{workspace_id}/invoices":                   {allowed: insiders(200, asOwner, asAdmin, asOwnKey)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/checkout": {body: `{"plan": "pro", "interval": "month"}`,
		allowed: insiders(200, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/change": {body: `{"plan": "enterprise"}`,
		allowed: insiders(409, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/cancel": {allowed: insiders(200, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/resume": {allowed: insiders(409, asOwner, asAdmin)},
	"POST /api/v1/workspaces/{workspace_id}/subscription/portal": {allowed: insiders(409, asOwner, asAdmin)},
}

// roleWorld is the cast: people signed up through the API, and another
// workspace with its owner.
type roleWorld struct {
	f                                              fixture
	owner, admin, member, viewer, target, stranger testkit.Person
	strangers                                      uuid.UUID
	strangersKey                                   string
	n                                              int
	// hook receives the webhooks of the table's endpoints.
	hook *httptest.Server
}

// roleWorkspace is a fresh workspace of the table with its keys: one to call
// with, one revoked, and one for the revoke route to act on; a pending
// invitation; a team holding the target member; a queued job; and, for the
// routes that need one, a webhook endpoint with a delivery.
type roleWorkspace struct {
	id                   uuid.UUID
	key, revoked, target string
	invite, team         string
	job                  string
	endpoint, delivery   string
}

// newKey creates a read-and-write key in workspaceID as its owner and
// returns its API ID and secret.
func (w *roleWorld) newKey(t *testing.T, owner, workspaceID uuid.UUID) (string, string) {
	t.Helper()
	ctx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorUser, ID: owner, Via: kernel.ViaCookie,
		AuthenticatedAt: w.f.app.Clock.Now()})
	key, secret, err := w.f.app.Services.Identity.CreateAPIKey(ctx, policy.Resource{Workspace: workspaceID, Role: policy.Owner},
		identity.NewAPIKey{Name: "role table", Scopes: []string{"read", "write"}})
	if err != nil {
		t.Fatal(err)
	}
	return kernel.FormatID(kernel.PrefixAPIKey, key.ID), secret
}

func newRoleWorld(t *testing.T, d store.Dialect) *roleWorld {
	f := setup(t, d, testkit.AppOptions{Env: map[string]string{"ATRIUM_WEBHOOK_ALLOW_PRIVATE": "true"}})
	w := &roleWorld{f: f, hook: httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))}
	t.Cleanup(w.hook.Close)
	for _, p := range []*testkit.Person{&w.owner, &w.admin, &w.member, &w.viewer, &w.target, &w.stranger} {
		*p = f.app.SignUp(t, fmt.Sprintf("person%d@example.com", w.n))
		w.n++
	}
	ws, err := f.app.Services.Workspaces.CreateOwned(context.Background(), w.stranger.ID, "Stranger", "stranger")
	if err != nil {
		t.Fatal(err)
	}
	w.strangers = ws.ID
	_, w.strangersKey = w.newKey(t, w.stranger.ID, ws.ID)
	return w
}

// workspace creates a fresh workspace with the owner, one member of each other
// role and target (a member), and its keys, deleted when asked.
func (w *roleWorld) workspace(t *testing.T, deleted bool) roleWorkspace {
	t.Helper()
	ctx := context.Background()
	svc := w.f.app.Services.Workspaces
	w.n++
	ws, err := svc.CreateOwned(ctx, w.owner.ID, "Workspace", fmt.Sprintf("ws-%d", w.n))
	if err != nil {
		t.Fatal(err)
	}
	// A trial's seats: the owner, four members and an invitation are more
	// than the free plan's five.
	if _, err := w.f.app.Services.Billing.Ledger.StartTrial(ctx, ws.ID); err != nil {
		t.Fatal(err)
	}
	for p, role := range map[*testkit.Person]policy.Role{&w.admin: policy.Admin, &w.member: policy.Member, &w.viewer: policy.Viewer, &w.target: policy.Member} {
		if _, err := svc.AddMember(ctx, ws.ID, p.ID, role); err != nil {
			t.Fatal(err)
		}
	}
	out := roleWorkspace{id: ws.ID}
	_, out.key = w.newKey(t, w.owner.ID, ws.ID)
	out.target, _ = w.newKey(t, w.owner.ID, ws.ID)
	revokedID, revoked := w.newKey(t, w.owner.ID, ws.ID)
	ownerCtx := kernel.WithActor(ctx, kernel.Actor{Kind: kernel.ActorUser, ID: w.owner.ID, Via: kernel.ViaCookie,
		AuthenticatedAt: w.f.app.Clock.Now()}) // deleting a workspace needs a recent authentication
	owner := policy.Resource{Workspace: ws.ID, Role: policy.Owner}
	keyID, _ := kernel.ParseID(kernel.PrefixAPIKey, revokedID)
	if err := w.f.app.Services.Identity.RevokeAPIKey(ownerCtx, owner, keyID); err != nil {
		t.Fatal(err)
	}
	out.revoked = revoked
	out.invite, out.team = w.inviteAndTeam(t, ownerCtx, owner)
	out.job = w.queuedJob(t, ws.ID)
	if deleted {
		if _, err := svc.Delete(ownerCtx, owner); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (w *roleWorld) headers(caller string, ws roleWorkspace) map[string]string {
	switch caller {
	case asOwner:
		return w.owner.Headers()
	case asAdmin:
		return w.admin.Headers()
	case asMember:
		return w.member.Headers()
	case asViewer:
		return w.viewer.Headers()
	case asOwnKey:
		return map[string]string{"Authorization": "Bearer " + ws.key}
	case asRevoked:
		return map[string]string{"Authorization": "Bearer " + ws.revoked}
	case asStranger:
		return w.stranger.Headers()
	case asOtherKey:
		return map[string]string{"Authorization": "Bearer " + w.strangersKey}
	}
	return nil
}

// workspaceRoutes lists "METHOD path" of every workspace-scoped operation in
// the served OpenAPI document.
func workspaceRoutes(t *testing.T, f fixture) []string {
	t.Helper()
	r := call(t, f.url, "GET", "/api/openapi.json", nil, "")
	paths, _ := r.body["paths"].(map[string]any)
	var out []string
	for path, item := range paths {
		if !strings.HasPrefix(path, "/api/v1/workspaces/{workspace_id}") {
			continue
		}
		for method := range item.(map[string]any) {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		t.Fatalf("no workspace routes in the OpenAPI document: %.300s", r.raw)
	}
	return out
}

func TestRouteRoleTable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		w := newRoleWorld(t, d)
		routes := workspaceRoutes(t, w.f)
		for route := range roleTable {
			if !slices.Contains(routes, route) {
				t.Errorf("the table has a row for %s, which the router does not serve", route)
			}
		}
		for _, route := range routes {
			row, ok := roleTable[route]
			if !ok {
				t.Errorf("workspace route %s has no row in roleTable", route)
				continue
			}
			for _, caller := range callers {
				t.Run(route+" as "+caller, func(t *testing.T) { w.check(t, route, row, caller) })
			}
		}
	})
}

// check calls route as caller on a fresh workspace and asserts the answer.
func (w *roleWorld) check(t *testing.T, route string, row roleRoute, caller string) {
	rw := w.workspace(t, row.deleted)
	method, pattern, _ := strings.Cut(route, " ")
	if strings.Contains(pattern, "{endpoint_id}") {
		rw.endpoint, rw.delivery = w.webhookEndpoint(t, rw.id)
	}
	path := func(ws uuid.UUID) string {
		return strings.NewReplacer("{workspace_id}", kernel.FormatID(kernel.PrefixWorkspace, ws),
			"{user_id}", w.target.UserID(), "{key_id}", rw.target, "{invite_id}", rw.invite, "{team_id}", rw.team,
			"{job_id}", rw.job, "{endpoint_id}", rw.endpoint, "{delivery_id}", rw.delivery).Replace(pattern)
	}
	body := strings.NewReplacer("{target}", w.target.UserID(), "{viewer}", w.viewer.UserID(), "{hook}", w.hook.URL).Replace(row.body)
	r := call(t, w.f.url, method, path(rw.id), w.headers(caller, rw), body)
	switch caller {
	case asAnonymous, asRevoked:
		assertEnvelope(t, r, 401, kernel.CodeUnauthenticated)
	case asStranger, asOtherKey:
		assertEnvelope(t, r, 404, kernel.CodeNotFound)
		missing := call(t, w.f.url, method, path(kernel.NewID()), w.headers(caller, rw), body)
		if a, b := withoutRequestID(r), withoutRequestID(missing); a != b {
			t.Fatalf("an outsider tells a real workspace from a missing one:\n%s\n%s", a, b)
		}
	default:
		want, ok := row.allowed[caller]
		if !ok {
			assertEnvelope(t, r, 403, kernel.CodeForbidden)
			return
		}
		if r.status != want {
			t.Fatalf("status %d, want %d: %s", r.status, want, r.raw)
		}
	}
}

// inviteAndTeam creates, as the owner, a pending invitation and a team
// holding the target member, and returns their API IDs.
func (w *roleWorld) inviteAndTeam(t *testing.T, ownerCtx context.Context, owner policy.Resource) (string, string) {
	t.Helper()
	svc := w.f.app.Services.Workspaces
	inv, err := svc.CreateInvite(ownerCtx, owner, "invited@example.com", policy.Member)
	if err != nil {
		t.Fatal(err)
	}
	team, err := svc.CreateTeam(ownerCtx, owner, "Team")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddTeamMember(ownerCtx, owner, team.ID, w.target.ID); err != nil {
		t.Fatal(err)
	}
	return kernel.FormatID(kernel.PrefixInvite, inv.ID), kernel.FormatID(kernel.PrefixTeam, team.ID)
}

// queuedJob enqueues a job of a kind no node handles, so it stays queued
// (cancelable), and returns its API ID.
func (w *roleWorld) queuedJob(t *testing.T, workspaceID uuid.UUID) string {
	t.Helper()
	var id uuid.UUID
	err := w.f.app.DB.InWorkspace(context.Background(), workspaceID, func(tx store.Tx) error {
		var err error
		id, err = events.Enqueue(context.Background(), tx, "test.role_table", map[string]string{"for": "the role table"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return kernel.FormatID(kernel.PrefixJob, id)
}

// webhookEndpoint creates, as the owner, an endpoint on the table's receiver
// with a test delivery, and returns their API IDs. Only the routes that act
// on one ask for it: each endpoint draws the workspace's events.
func (w *roleWorld) webhookEndpoint(t *testing.T, workspaceID uuid.UUID) (string, string) {
	t.Helper()
	ownerCtx := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorUser, ID: w.owner.ID, Via: kernel.ViaCookie})
	owner := policy.Resource{Workspace: workspaceID, Role: policy.Owner}
	svc := w.f.app.Services.Webhooks
	ep, _, err := svc.Create(ownerCtx, owner, webhooks.NewEndpoint{URL: w.hook.URL})
	if err != nil {
		t.Fatal(err)
	}
	d, err := svc.SendTest(ownerCtx, owner, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	return kernel.FormatID(kernel.PrefixWebhookEndpoint, ep.ID), kernel.FormatID(kernel.PrefixDelivery, d.ID)
}
