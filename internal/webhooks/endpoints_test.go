package webhooks_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
	"atrium/internal/webhooks"
)

func TestEndpoints(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{})
		ep, secret, err := b.svc.Create(b.ctx, b.res, webhooks.NewEndpoint{URL: " https://hooks.example.com/atrium ",
			Description: " Billing sync ", EventTypes: []string{"member.*", "workspace.updated", "member.*"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, webhooks.SecretPrefix) || ep.URL != "https://hooks.example.com/atrium" ||
			ep.Description != "Billing sync" || !slices.Equal(ep.EventTypes, []string{"member.*", "workspace.updated"}) || !ep.Enabled() {
			t.Fatalf("created %+v with secret %q", ep, secret)
		}
		got := b.endpoint(t, ep.ID)
		if got.URL != ep.URL || !slices.Equal(got.EventTypes, ep.EventTypes) || !got.CreatedAt.Equal(b.clock.Now()) {
			t.Fatalf("get %+v, want %+v", got, ep)
		}

		off, on := false, true
		url, types := "https://93.184.215.14/other", []string{}
		changed, err := b.svc.Update(b.ctx, b.res, ep.ID, webhooks.EndpointChange{URL: &url, EventTypes: &types, Enabled: &off})
		if err != nil || changed.URL != url || len(changed.EventTypes) != 0 || changed.Enabled() || changed.DisabledReason != webhooks.DisabledManually {
			t.Fatalf("update: %+v %v", changed, err)
		}
		changed, err = b.svc.Update(b.ctx, b.res, ep.ID, webhooks.EndpointChange{Enabled: &on})
		if err != nil || !changed.Enabled() || changed.DisabledReason != "" {
			t.Fatalf("enable: %+v %v", changed, err)
		}
		if _, err := b.svc.Update(b.ctx, b.res, ep.ID, webhooks.EndpointChange{Enabled: &on, URL: &url}); err != nil {
			t.Fatalf("a change that changes nothing: %v", err)
		}

		b.clock.Advance(time.Minute)
		rotated, newSecret, err := b.svc.RotateSecret(b.ctx, b.res, ep.ID)
		if err != nil || newSecret == secret || rotated.PreviousSecretExpiresAt == nil ||
			!rotated.PreviousSecretExpiresAt.Equal(b.clock.Now().Add(24*time.Hour)) {
			t.Fatalf("rotate: %+v %q %v", rotated, newSecret, err)
		}

		second, _ := b.create(t, "https://hooks.example.com/second")
		list, err := b.svc.List(b.ctx, b.res, uuid.Nil, 1)
		if err != nil || len(list) != 1 || list[0].ID != ep.ID {
			t.Fatalf("first page: %+v %v", list, err)
		}
		list, err = b.svc.List(b.ctx, b.res, list[0].ID, 10)
		if err != nil || len(list) != 1 || list[0].ID != second.ID {
			t.Fatalf("second page: %+v %v", list, err)
		}

		if err := b.svc.Delete(b.ctx, b.res, ep.ID); err != nil {
			t.Fatal(err)
		}
		_, err = b.svc.Get(b.ctx, b.res, ep.ID)
		wantCode(t, err, kernel.CodeNotFound)
		wantCode(t, b.svc.Delete(b.ctx, b.res, ep.ID), kernel.CodeNotFound)

		wantActions := []string{"workspace.created", "webhook_endpoint.created", "webhook_endpoint.updated", "webhook_endpoint.updated",
			"webhook_endpoint.secret_rotated", "webhook_endpoint.created", "webhook_endpoint.deleted"}
		if got := b.auditActions(t); !slices.Equal(got, wantActions) {
			t.Errorf("audit log %v, want %v", got, wantActions)
		}
		if got := b.eventTypes(t); !slices.Equal(got, wantActions) {
			t.Errorf("events %v", got)
		}
	})
}

func TestEndpointsRefuseBadInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{})
		b.resolver.Set("rebind.example.com", "10.1.2.3")
		for name, tc := range map[string]struct {
			in   webhooks.NewEndpoint
			code kernel.Code
		}{
			"a loopback URL":          {webhooks.NewEndpoint{URL: "http://127.0.0.1:8080/"}, kernel.CodeUnprocessable},
			"a decimal loopback":      {webhooks.NewEndpoint{URL: "http://2130706433/"}, kernel.CodeUnprocessable},
			"a name resolving inside": {webhooks.NewEndpoint{URL: "https://rebind.example.com/"}, kernel.CodeUnprocessable},
			"an ftp URL":              {webhooks.NewEndpoint{URL: "ftp://hooks.example.com/"}, kernel.CodeInvalid},
			"a bad event type":        {webhooks.NewEndpoint{URL: "https://hooks.example.com/", EventTypes: []string{"Member Invited"}}, kernel.CodeInvalid},
			"a bare wildcard":         {webhooks.NewEndpoint{URL: "https://hooks.example.com/", EventTypes: []string{"*"}}, kernel.CodeInvalid},
			"a control character":     {webhooks.NewEndpoint{URL: "https://hooks.example.com/", Description: "a\x07b"}, kernel.CodeInvalid},
			"a long description":      {webhooks.NewEndpoint{URL: "https://hooks.example.com/", Description: strings.Repeat("é", 501)}, kernel.CodeInvalid},
		} {
			_, _, err := b.svc.Create(b.ctx, b.res, tc.in)
			if !kernel.IsCode(err, tc.code) {
				t.Errorf("%s: %v, want %s", name, err, tc.code)
			}
		}
		ep, _ := b.create(t, "https://hooks.example.com/")
		bad := "http://[::ffff:169.254.169.254]/"
		_, err := b.svc.Update(b.ctx, b.res, ep.ID, webhooks.EndpointChange{URL: &bad})
		wantCode(t, err, kernel.CodeUnprocessable)
		if got := b.endpoint(t, ep.ID); got.URL != "https://hooks.example.com/" {
			t.Fatalf("a refused change changed the URL to %q", got.URL)
		}
		_, err = b.svc.Update(b.ctx, b.res, kernel.NewID(), webhooks.EndpointChange{})
		wantCode(t, err, kernel.CodeNotFound)
	})
}

func TestEndpointsPolicyAndIsolation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{})
		ep, _ := b.create(t, "https://hooks.example.com/")
		member := policy.Resource{Workspace: b.ws, Role: policy.Member}
		_, err := b.svc.List(b.ctx, member, uuid.Nil, 10)
		wantCode(t, err, kernel.CodeForbidden)
		_, _, err = b.svc.Create(b.ctx, member, webhooks.NewEndpoint{URL: "https://hooks.example.com/"})
		wantCode(t, err, kernel.CodeForbidden)

		readKey := kernel.WithActor(context.Background(), kernel.Actor{Kind: kernel.ActorAPIKey, ID: kernel.NewID(),
			WorkspaceID: b.ws, Scopes: kernel.ScopeRead})
		keyRes := policy.Resource{Workspace: b.ws}
		if _, err := b.svc.Get(readKey, keyRes, ep.ID); err != nil {
			t.Fatalf("a read key reads endpoints: %v", err)
		}
		_, _, err = b.svc.RotateSecret(readKey, keyRes, ep.ID)
		wantCode(t, err, kernel.CodeForbidden)

		other, err := tenancy.NewService(b.db, nil).Create(context.Background(), "Globex", "globex")
		if err != nil {
			t.Fatal(err)
		}
		theirs := policy.Resource{Workspace: other.ID, Role: policy.Owner}
		_, err = b.svc.Get(b.ctx, theirs, ep.ID)
		wantCode(t, err, kernel.CodeNotFound)
		wantCode(t, b.svc.Delete(b.ctx, theirs, ep.ID), kernel.CodeNotFound)
		_, err = b.svc.ListDeliveries(b.ctx, theirs, ep.ID, uuid.Nil, 10)
		wantCode(t, err, kernel.CodeNotFound)
		if list, err := b.svc.List(b.ctx, theirs, uuid.Nil, 10); err != nil || len(list) != 0 {
			t.Fatalf("another workspace lists %+v %v", list, err)
		}
	})
}

func TestEndpointLimitAndDeletedWorkspace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d store.Dialect) {
		b := setup(t, d, options{})
		for i := range webhooks.MaxEndpoints {
			b.create(t, fmt.Sprintf("https://hooks.example.com/%d", i))
		}
		_, _, err := b.svc.Create(b.ctx, b.res, webhooks.NewEndpoint{URL: "https://hooks.example.com/one-more"})
		wantCode(t, err, kernel.CodeConflict)

		list, err := b.svc.List(b.ctx, b.res, uuid.Nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		err = b.db.InWorkspace(context.Background(), b.ws, func(tx store.Tx) error {
			_, err := tx.Exec(context.Background(), "UPDATE workspace SET deleted_at = $2 WHERE id = $1", b.ws, tx.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = b.svc.RotateSecret(b.ctx, b.res, list[0].ID)
		wantCode(t, err, kernel.CodeWorkspaceInactive)
		if _, err := b.svc.Get(b.ctx, b.res, list[0].ID); err != nil {
			t.Fatalf("a deleted workspace's endpoints stay readable: %v", err)
		}
	})
}
