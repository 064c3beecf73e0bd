// Package tenancy owns workspaces, the tenants of Atrium. Memberships, roles and
// invites arrive with the identity issue; for now a workspace can be created,
// read and renamed, with each rename audited and emitted as an event.
package tenancy

import (
	"context"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
)

// Workspace is a tenant.
type Workspace struct {
	ID        uuid.UUID
	Slug      string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Service holds the workspace rules.
type Service struct {
	db store.DB
}

// NewService returns a Service over db.
func NewService(db store.DB) *Service { return &Service{db: db} }

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)

// reservedSlugs would collide with routes or confuse people.
var reservedSlugs = map[string]bool{"admin": true, "api": true, "app": true, "www": true, "settings": true, "new": true, "atrium": true, "billing": true, "login": true, "signup": true}

// ValidateName returns a trimmed name or an invalid *kernel.Error for field.
func ValidateName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", kernel.Invalid(field, "must not be empty")
	case !utf8.ValidString(name):
		return "", kernel.Invalid(field, "must be valid UTF-8")
	case utf8.RuneCountInString(name) > 100:
		return "", kernel.Invalid(field, "must be at most 100 characters")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", kernel.Invalid(field, "must not contain control characters")
	}
	return name, nil
}

// ValidateSlug returns an invalid *kernel.Error for field unless slug is 1-40
// lower-case letters, digits and inner hyphens, and not reserved.
func ValidateSlug(field, slug string) error {
	if !slugPattern.MatchString(slug) {
		return kernel.Invalid(field, "must be 1-40 lower-case letters, digits or inner hyphens")
	}
	if reservedSlugs[slug] {
		return kernel.Invalid(field, "is reserved")
	}
	return nil
}

// Create makes a workspace. It returns invalid for a bad name or slug and
// conflict when the slug is taken.
func (s *Service) Create(ctx context.Context, name, slug string) (Workspace, error) {
	name, err := ValidateName("name", name)
	if err != nil {
		return Workspace{}, err
	}
	if err := ValidateSlug("slug", slug); err != nil {
		return Workspace{}, err
	}
	ws := Workspace{ID: kernel.NewID(), Slug: slug, Name: name}
	err = s.db.InWorkspace(ctx, ws.ID, func(tx store.Tx) error {
		ws.CreatedAt, ws.UpdatedAt = tx.Now(), tx.Now()
		if err := insertWorkspace(ctx, tx, ws); err != nil {
			if kernel.IsCode(err, kernel.CodeConflict) {
				return &kernel.Error{Code: kernel.CodeConflict, Message: "slug is taken", Fields: map[string]string{"slug": "is taken"}, Err: err}
			}
			return err
		}
		if _, err := audit.Record(ctx, tx, audit.Entry{Action: "workspace.created", TargetType: "workspace", TargetID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID)}); err != nil {
			return err
		}
		_, err := events.Append(ctx, tx, events.Event{Type: "workspace.created", Payload: eventPayload(ws)})
		return err
	})
	return ws, err
}

// Get returns the workspace, or not_found. It is one round trip on PostgreSQL.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (Workspace, error) {
	ws, err := scanWorkspace(s.db.WorkspaceRow(ctx, id, selectWorkspace, id))
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return ws, kernel.NotFound("workspace")
	}
	return ws, err
}

// Rename changes the workspace's name, recording an audit entry and a
// workspace.updated event in the same transaction. It returns invalid for a bad
// name and not_found for an unknown workspace.
func (s *Service) Rename(ctx context.Context, id uuid.UUID, name string) (Workspace, error) {
	name, err := ValidateName("name", name)
	if err != nil {
		return Workspace{}, err
	}
	var ws Workspace
	err = s.db.InWorkspace(ctx, id, func(tx store.Tx) error {
		old, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], id))
		if err != nil {
			return err
		}
		ws = old
		if old.Name == name {
			return nil
		}
		ws.Name, ws.UpdatedAt = name, tx.Now()
		if _, err := tx.Exec(ctx, "UPDATE workspace SET name = $2, updated_at = $3 WHERE id = $1", id, ws.Name, ws.UpdatedAt); err != nil {
			return err
		}
		if _, err := audit.Record(ctx, tx, audit.Entry{Action: "workspace.renamed", TargetType: "workspace",
			TargetID: kernel.FormatID(kernel.PrefixWorkspace, id), Metadata: map[string]any{"from": old.Name, "to": ws.Name}}); err != nil {
			return err
		}
		_, err = events.Append(ctx, tx, events.Event{Type: "workspace.updated", Payload: eventPayload(ws)})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return Workspace{}, kernel.NotFound("workspace")
	}
	return ws, err
}

func eventPayload(ws Workspace) map[string]any {
	return map[string]any{"id": kernel.FormatID(kernel.PrefixWorkspace, ws.ID), "slug": ws.Slug, "name": ws.Name}
}

const selectWorkspace = "SELECT id, slug, name, created_at, updated_at FROM workspace WHERE id = $1"

// lockWorkspace reads the row to change. SQLite's BEGIN IMMEDIATE already holds
// the only write lock, and it has no FOR UPDATE.
var lockWorkspace = map[store.Dialect]string{
	store.Postgres: selectWorkspace + " FOR UPDATE",
	store.SQLite:   selectWorkspace,
}

func scanWorkspace(row store.Row) (Workspace, error) {
	var ws Workspace
	err := row.Scan(&ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt, &ws.UpdatedAt)
	return ws, err
}

func insertWorkspace(ctx context.Context, tx store.Tx, ws Workspace) error {
	_, err := tx.Exec(ctx, "INSERT INTO workspace (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
		ws.ID, ws.Slug, ws.Name, ws.CreatedAt, ws.UpdatedAt)
	return err
}
