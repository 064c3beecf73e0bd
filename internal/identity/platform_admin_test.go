package identity_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
)

func TestPlatformAdmin(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := kernel.WithActor(context.Background(), kernel.SystemActor)
		ada := signUp(t, b, "ada@example.com")
		isAdmin := func(id uuid.UUID) bool {
			t.Helper()
			ok, err := b.svc.IsPlatformAdmin(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if isAdmin(ada) || isAdmin(kernel.NewID()) {
			t.Fatal("a new account, or an unknown ID, is a platform admin")
		}
		for range 2 { // granting twice audits once
			if err := b.svc.SetPlatformAdmin(ctx, "  ADA@example.com ", true); err != nil {
				t.Fatal(err)
			}
		}
		if !isAdmin(ada) {
			t.Fatal("not an admin after the grant")
		}
		assertAudit(t, b, "platform_admin.granted", 1)
		if err := identity.SetPlatformAdmin(ctx, b.db, "ada@example.com", false); err != nil || isAdmin(ada) {
			t.Fatalf("revoke: %v; still an admin: %v", err, isAdmin(ada))
		}
		assertAudit(t, b, "platform_admin.revoked", 1)

		if err := b.svc.SetPlatformAdmin(ctx, "nobody@example.com", true); !kernel.IsCode(err, kernel.CodeNotFound) {
			t.Fatalf("grant to an unknown address: %v, want not_found", err)
		}
		if err := b.svc.SetPlatformAdmin(ctx, "not an address", true); !kernel.IsCode(err, kernel.CodeInvalid) {
			t.Fatalf("grant to a malformed address: %v, want invalid", err)
		}
		if err := b.svc.SetPlatformAdmin(ctx, "ada@example.com", true); err != nil {
			t.Fatal(err)
		}
		if err := b.svc.DeleteAccount(context.Background(), ada); err != nil {
			t.Fatal(err)
		}
		if isAdmin(ada) {
			t.Fatal("a deleted account is still a platform admin")
		}
	})
}
