package catalog_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"atrium/internal/events"
	"atrium/internal/events/catalog"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/testkit"
)

type thing struct {
	ID    string   `json:"id"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
	note  string
}

func TestCheck(t *testing.T) {
	c := catalog.New(catalog.Type{Name: "thing.happened", Description: "A thing happened.", Payload: thing{}})
	for _, tc := range []struct {
		name, eventType, data string
		ok                    bool
	}{
		{"documented", "thing.happened", `{"id":"a","count":1}`, true},
		{"optional field", "thing.happened", `{"id":"a","count":1,"tags":["x"]}`, true},
		{"undocumented type", "thing.vanished", `{"id":"a","count":1}`, false},
		{"undocumented field", "thing.happened", `{"id":"a","count":1,"secret":"s"}`, false},
		{"missing field", "thing.happened", `{"id":"a"}`, false},
		{"wrong type", "thing.happened", `{"id":"a","count":"one"}`, false},
		{"null data", "thing.happened", `null`, false},
		{"not an object", "thing.happened", `[1]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Check(tc.eventType, json.RawMessage(tc.data))
			if (err == nil) != tc.ok {
				t.Fatalf("Check(%s, %s) = %v, want ok %v", tc.eventType, tc.data, err, tc.ok)
			}
		})
	}
}

func TestNewRefusesBadEntries(t *testing.T) {
	type embedded struct{ thing }
	type unnamed struct{ ID string }
	for name, types := range map[string][]catalog.Type{
		"malformed name":    {{Name: "Thing", Description: "x", Payload: thing{}}},
		"twice":             {{Name: "a.b", Description: "x", Payload: thing{}}, {Name: "a.b", Description: "y", Payload: thing{}}},
		"no description":    {{Name: "a.b", Payload: thing{}}},
		"not a struct":      {{Name: "a.b", Description: "x", Payload: map[string]any{}}},
		"embedded struct":   {{Name: "a.b", Description: "x", Payload: embedded{}}},
		"field without tag": {{Name: "a.b", Description: "x", Payload: unnamed{}}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("New accepted it")
				}
			}()
			catalog.New(types...)
		})
	}
}

// TestAtriumCatalogue checks every documented type reads well and that the
// issue's names are there.
func TestAtriumCatalogue(t *testing.T) {
	types := catalog.Atrium.Types()
	for _, want := range []string{"member.invited", "member.joined", "workspace.deleted", "api_key.created"} {
		if _, ok := catalog.Atrium.Lookup(want); !ok {
			t.Errorf("%s is not documented", want)
		}
	}
	for _, typ := range types {
		if d := typ.Description; !unicode.IsUpper(rune(d[0])) || !strings.HasSuffix(d, ".") {
			t.Errorf("%s: description %q is not a sentence", typ.Name, d)
		}
		data, err := json.Marshal(typ.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"token", "secret", "password", "hash", "url"} {
			if strings.Contains(strings.ToLower(string(data)), `"`+secret) {
				t.Errorf("%s: the payload has a %s field: %s", typ.Name, secret, data)
			}
		}
	}
}

// TestTheAppRefusesUndocumentedEvents checks that the booted app holds the
// outbox to the catalogue: the test that makes a code path emit an
// undocumented event, or one whose data the catalogue does not describe,
// fails there.
func TestTheAppRefusesUndocumentedEvents(t *testing.T) {
	a := testkit.Boot(t, store.SQLite, testkit.AppOptions{})
	ctx := context.Background()
	ws, err := a.Services.Workspaces.Create(ctx, "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	appendEvent := func(e events.Event) error {
		return a.DB.InWorkspace(ctx, ws.ID, func(tx store.Tx) error {
			_, err := events.Append(ctx, tx, e)
			return err
		})
	}
	documented := tenancy.WorkspaceEvent{ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: "acme", Name: "Acme"}
	if err := appendEvent(events.Event{Type: tenancy.EventWorkspaceUpdated, Payload: documented}); err != nil {
		t.Fatalf("a documented event: %v", err)
	}
	for name, e := range map[string]events.Event{
		"undocumented type":  {Type: "workspace.teleported", Payload: documented},
		"undocumented field": {Type: tenancy.EventWorkspaceUpdated, Payload: map[string]any{"id": "ws_1", "slug": "a", "name": "A", "token": "t"}},
		"missing field":      {Type: tenancy.EventWorkspaceUpdated, Payload: map[string]any{"id": "ws_1"}},
	} {
		if err := appendEvent(e); !kernel.IsCode(err, kernel.CodeInternal) || !strings.Contains(err.Error(), "catalogue") {
			t.Errorf("%s: Append returned %v, want an internal error naming the catalogue", name, err)
		}
	}
}
