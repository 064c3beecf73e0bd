package identity_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
)

func TestProfilesInOneBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		ada := verifiedUser(t, b, "ada@example.com")
		eve := signUp(t, b, "eve@example.com")
		got, err := b.svc.Profiles(ctx, []uuid.UUID{eve, ada, kernel.NewID(), ada})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d profiles, want 2 (an unknown ID is absent): %v", len(got), got)
		}
		want := map[uuid.UUID]identity.Profile{
			ada: {ID: ada, Name: "Ada", Email: "ada@example.com", EmailVerified: true},
			eve: {ID: eve, Name: "Ada", Email: "eve@example.com", EmailVerified: false},
		}
		for id, p := range want {
			if got[id] != p {
				t.Errorf("profile %s = %+v, want %+v", id, got[id], p)
			}
		}
		if none, err := b.svc.Profiles(ctx, nil); err != nil || len(none) != 0 {
			t.Fatalf("no IDs: %v, %v", none, err)
		}
		tooMany := make([]uuid.UUID, identity.MaxLookup+1)
		for i := range tooMany {
			tooMany[i] = kernel.NewID()
		}
		if _, err := b.svc.Profiles(ctx, tooMany); !kernel.IsCode(err, kernel.CodeInternal) {
			t.Fatalf("%d IDs: %v, want internal", len(tooMany), err)
		}
		if _, err := b.svc.Profiles(ctx, tooMany[:identity.MaxLookup]); err != nil {
			t.Fatalf("%d IDs: %v", identity.MaxLookup, err)
		}
	})
}

func TestAPIKeyNamesStayInTheirWorkspace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		workspaces := tenancy.NewService(b.db, b.svc)
		acme, err := workspaces.Create(ctx, "Acme", "acme")
		if err != nil {
			t.Fatal(err)
		}
		globex, err := workspaces.Create(ctx, "Globex", "globex")
		if err != nil {
			t.Fatal(err)
		}
		acmeKey, globexKey := insertKey(t, b, acme.ID, "deploy"), insertKey(t, b, globex.ID, "theirs")
		got, err := b.svc.APIKeyNames(ctx, acme.ID, []uuid.UUID{acmeKey, globexKey, kernel.NewID()})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[acmeKey] != "deploy" {
			t.Fatalf("names %v, want only acme's key", got)
		}
	})
}

// insertKey stores an API key row directly and returns its ID.
func insertKey(t *testing.T, b bundle, workspaceID uuid.UUID, name string) uuid.UUID {
	t.Helper()
	id := kernel.NewID()
	err := b.db.InWorkspace(context.Background(), workspaceID, func(tx store.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO api_key (id, workspace_id, name, scopes, token_hash, prefix, created_by, created_at)
            VALUES ($1, $2, $3, 'read', $4, 'atr_test', $5, $6)`, id, workspaceID, name, id.String(), kernel.NewID(), tx.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}
