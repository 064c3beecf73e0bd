// Package catalog documents every event type Atrium emits: its name, what it
// means and the JSON schema of its data. The OpenAPI document publishes it (a
// webhook per type) and the outbox enforces it: once the app has installed
// Atrium (events.UseCatalogue), appending an event that is not documented
// here, or whose data has a field its payload type does not name, fails.
//
// To add an event type, declare its name as a constant and its data as an
// exported struct with json tags and doc tags in the package that emits it
// (see tenancy/event_payloads.go), then add a Type to that domain's list in
// this package (tenancy.go, identity.go, webhooks.go) or a new list, joined
// in Atrium below.
package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Type is one documented event type.
type Type struct {
	// Name is the event's type, "noun.verb_past": "member.invited".
	Name string
	// Description says when the event happens, in a sentence or two.
	Description string
	// Payload is a value of the struct the event's data is: its type, not
	// its value, documents the schema.
	Payload any
}

// Catalog is a set of documented event types. It is immutable and safe for
// concurrent use.
type Catalog struct {
	types  []Type
	byName map[string]entry
}

// entry is a type with what Check needs, worked out once.
type entry struct {
	payload  reflect.Type
	fields   map[string]bool // JSON field name → required
	nullable bool            // the struct has no fields: null data is fine
}

var typeName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// New builds a catalogue of types, sorted by name. It panics, as a
// programming error, on a malformed or repeated name, a missing description
// or a payload that is not a struct of plain JSON fields.
func New(types ...Type) *Catalog {
	c := &Catalog{byName: make(map[string]entry, len(types))}
	for _, t := range types {
		if !typeName.MatchString(t.Name) {
			panic(fmt.Sprintf("catalog: malformed event type %q", t.Name))
		}
		if _, dup := c.byName[t.Name]; dup {
			panic(fmt.Sprintf("catalog: event type %q documented twice", t.Name))
		}
		if strings.TrimSpace(t.Description) == "" {
			panic(fmt.Sprintf("catalog: event type %q has no description", t.Name))
		}
		e, err := newEntry(t.Payload)
		if err != nil {
			panic(fmt.Sprintf("catalog: event type %q: %v", t.Name, err))
		}
		c.byName[t.Name] = e
		c.types = append(c.types, t)
	}
	slices.SortFunc(c.types, func(a, b Type) int { return strings.Compare(a.Name, b.Name) })
	return c
}

// newEntry reads the JSON fields of a payload struct. It returns an error for
// anything but a struct (or a pointer to one) whose exported fields all have
// a JSON name: embedded structs would hide fields from the documentation.
func newEntry(payload any) (entry, error) {
	t := reflect.TypeOf(payload)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return entry{}, fmt.Errorf("payload %T is not a struct", payload)
	}
	e := entry{payload: t, fields: map[string]bool{}}
	for f := range t.Fields() {
		if f.Anonymous { // encoding/json promotes its fields, exported or not
			return entry{}, fmt.Errorf("payload %s embeds %s: name its fields instead", t, f.Type)
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			return entry{}, fmt.Errorf("payload %s: field %s has no json name", t, f.Name)
		}
		flags := strings.Split(opts, ",")
		e.fields[name] = !slices.Contains(flags, "omitempty") && !slices.Contains(flags, "omitzero")
	}
	e.nullable = len(e.fields) == 0
	return e, nil
}

// Types returns every documented type, sorted by name.
func (c *Catalog) Types() []Type { return slices.Clone(c.types) }

// Lookup returns the documented type called name, and whether there is one.
func (c *Catalog) Lookup(name string) (Type, bool) {
	i, ok := slices.BinarySearchFunc(c.types, name, func(t Type, name string) int { return strings.Compare(t.Name, name) })
	if !ok {
		return Type{}, false
	}
	return c.types[i], true
}

// Check returns an error unless eventType is documented and data is a JSON
// object that has every required field of its payload type, no other field,
// and values of the documented JSON types. It implements events.Catalogue.
func (c *Catalog) Check(eventType string, data json.RawMessage) error {
	e, ok := c.byName[eventType]
	if !ok {
		return fmt.Errorf("event type %q is not in the event catalogue: document it in internal/events/catalog", eventType)
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		if e.nullable {
			return nil
		}
		return fmt.Errorf("event %s: data is null, want a %s", eventType, e.payload.Name())
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(reflect.New(e.payload).Interface()); err != nil {
		return fmt.Errorf("event %s: data does not match the catalogue's %s: %w", eventType, e.payload.Name(), err)
	}
	var present map[string]json.RawMessage
	if err := json.Unmarshal(data, &present); err != nil {
		return fmt.Errorf("event %s: data is not a JSON object: %w", eventType, err)
	}
	for name, required := range e.fields {
		if _, ok := present[name]; required && !ok {
			return fmt.Errorf("event %s: data lacks %q, which the catalogue's %s requires", eventType, name, e.payload.Name())
		}
	}
	return nil
}

// Atrium is the catalogue of every event Atrium emits. A fork adds its own
// domain's list here.
var Atrium = New(slices.Concat(workspaceTypes, memberTypes, teamTypes, apiKeyTypes, webhookEndpointTypes, billingTypes, usageTypes)...)
