// Package tenancy owns workspaces, the tenants of Atrium, and who belongs to
// them: memberships with a role (owner, admin, member, viewer). Permission
// decisions are the policy subpackage's; this package applies them inside the
// transaction that makes the change, together with the rules of the
// workspace's state (the last owner stays, a deleted workspace takes no
// writes). Every change is audited and emitted as an event in that same
// transaction.
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
	"atrium/internal/identity"
	"atrium/internal/identity/authcache"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Workspace is a tenant.
type Workspace struct {
	ID        uuid.UUID
	Slug      string
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
	// DeletedAt is set while the workspace is deleted and restorable.
	DeletedAt *time.Time
}

// Active reports whether the workspace takes writes.
func (w Workspace) Active() bool { return w.DeletedAt == nil }

// RestorableUntil is when a deleted workspace stops being restorable; the
// zero time for an active one.
func (w Workspace) RestorableUntil() time.Time {
	if w.DeletedAt == nil {
		return time.Time{}
	}
	return w.DeletedAt.Add(RestoreWindow)
}

// UserReader looks up accounts, and for invitations creates them and sends
// the email; identity.Service is one.
type UserReader interface {
	User(ctx context.Context, userID uuid.UUID) (identity.User, error)
	// Profiles looks up at most identity.MaxLookup accounts in one batch,
	// for member lists; an ID with no account is absent from the map.
	Profiles(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]identity.Profile, error)
	// SignupInvited creates a verified account for an invited address and its
	// first session, running join in the same workspace transaction.
	SignupInvited(ctx context.Context, in identity.InvitedSignup, join func(tx store.Tx, u identity.User) error) (identity.LoginResult, error)
	// SendInvite emails an invitation; failures are logged, not returned.
	SendInvite(ctx context.Context, in identity.InviteEmail)
}

// Service holds the workspace and membership rules.
type Service struct {
	db    store.DB
	users UserReader
	cache *authcache.Cache
	seats SeatGate
}

// SeatGate admits a new seat (a member or a pending invitation) against the
// workspace's plan inside the transaction that adds it, serialised so that
// of many racing for the last seat exactly one wins; usage.Service is one.
// It returns quota_exceeded when the seat would be over the plan's limit.
type SeatGate interface {
	Admit(ctx context.Context, tx store.Tx, workspaceID uuid.UUID, metric string, delta int64) error
}

// seatsMetric is the plan limit seats are counted against.
const seatsMetric = "members"

// WithSeats makes invitations count against the plan's members limit.
func (s *Service) WithSeats(g SeatGate) *Service {
	s.seats = g
	return s
}

// admitSeat asks the seat gate, if any, for one more seat.
func (s *Service) admitSeat(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) error {
	if s.seats == nil {
		return nil
	}
	return s.seats.Admit(ctx, tx, workspaceID, seatsMetric, 1)
}

// NewService returns a Service over db. users is asked whether a person
// creating a workspace has verified their email; without it (nil) creating a
// workspace for a person fails.
func NewService(db store.DB, users UserReader) *Service { return &Service{db: db, users: users} }

// WithAuthCache makes RoleOf keep roles in cache for a few seconds (see
// package authcache), so most requests check membership without a store
// read. It returns s, and must be called before s serves anything.
func (s *Service) WithAuthCache(cache *authcache.Cache) *Service {
	s.cache = cache
	return s
}

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

// Create makes a workspace with no members, reachable only by API keys bound
// to it: fixtures, benchmarks and a fork's provisioning use it. People create
// workspaces with CreateOwned. It returns invalid for a bad name or slug and
// conflict when the slug is taken.
func (s *Service) Create(ctx context.Context, name, slug string) (Workspace, error) {
	return s.create(ctx, name, slug, func(store.Tx, Workspace) error { return nil })
}

// create validates, inserts the workspace, runs then in the same transaction
// and records workspace.created. It returns invalid for a bad name or slug,
// conflict naming slug when it is taken, or then's error.
func (s *Service) create(ctx context.Context, name, slug string, then func(store.Tx, Workspace) error) (Workspace, error) {
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
		if err := then(tx, ws); err != nil {
			return err
		}
		return record(ctx, tx, "workspace.created", EventWorkspaceCreated, workspaceTarget(ws.ID), nil, workspaceEvent(ws))
	})
	return ws, err
}

// Get returns the workspace if the actor may read it (policy.WorkspaceRead on
// res). It returns forbidden when the actor may not and not_found for an
// unknown workspace. It is one round trip on PostgreSQL.
func (s *Service) Get(ctx context.Context, res policy.Resource) (Workspace, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WorkspaceRead, res); err != nil {
		return Workspace{}, err
	}
	ws, err := scanWorkspace(s.db.WorkspaceRow(ctx, res.Workspace, selectWorkspace, res.Workspace))
	return ws, notFoundAs("workspace", err)
}

// Rename changes the workspace's name, recording an audit entry and a
// workspace.updated event in the same transaction, if the actor may
// (policy.WorkspaceUpdate on res). It returns invalid for a bad name,
// forbidden when the actor may not, workspace_inactive for a deleted
// workspace and not_found for an unknown one.
func (s *Service) Rename(ctx context.Context, res policy.Resource, name string) (Workspace, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WorkspaceUpdate, res); err != nil {
		return Workspace{}, err
	}
	name, err := ValidateName("name", name)
	if err != nil {
		return Workspace{}, err
	}
	var ws Workspace
	err = s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		old, err := lockActive(ctx, tx, res.Workspace)
		if err != nil {
			return err
		}
		ws = old
		if old.Name == name {
			return nil
		}
		ws.Name, ws.UpdatedAt = name, tx.Now()
		if _, err := tx.Exec(ctx, "UPDATE workspace SET name = $2, updated_at = $3 WHERE id = $1", ws.ID, ws.Name, ws.UpdatedAt); err != nil {
			return err
		}
		return record(ctx, tx, "workspace.renamed", EventWorkspaceUpdated, workspaceTarget(ws.ID),
			map[string]any{"from": old.Name, "to": ws.Name}, workspaceEvent(ws))
	})
	return ws, notFoundAs("workspace", err)
}

const (
	workspaceColumns = "id, slug, name, created_at, updated_at, deleted_at"
	selectWorkspace  = "SELECT " + workspaceColumns + " FROM workspace WHERE id = $1"
)

// lockWorkspace reads the row to change. SQLite's BEGIN IMMEDIATE already holds
// the only write lock, and it has no FOR UPDATE.
var lockWorkspace = map[store.Dialect]string{
	store.Postgres: selectWorkspace + " FOR UPDATE",
	store.SQLite:   selectWorkspace,
}

// scanWorkspace reads workspaceColumns, then extra, in UTC.
func scanWorkspace(row store.Row, extra ...any) (Workspace, error) {
	var ws Workspace
	err := row.Scan(append([]any{&ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt, &ws.UpdatedAt, &ws.DeletedAt}, extra...)...)
	ws.CreatedAt, ws.UpdatedAt = ws.CreatedAt.UTC(), ws.UpdatedAt.UTC()
	if ws.DeletedAt != nil {
		t := ws.DeletedAt.UTC()
		ws.DeletedAt = &t
	}
	return ws, err
}

// lockActive locks the workspace row for the rest of tx, which serialises
// every membership change of one workspace. It returns not_found, or
// workspace_inactive when the workspace is deleted.
func lockActive(ctx context.Context, tx store.Tx, id uuid.UUID) (Workspace, error) {
	ws, err := scanWorkspace(tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], id))
	if err != nil {
		return ws, err
	}
	if !ws.Active() {
		return ws, errInactive()
	}
	return ws, nil
}

func errInactive() error {
	return &kernel.Error{Code: kernel.CodeWorkspaceInactive, Message: "the workspace is deleted: restore it to make changes"}
}

// record writes the audit entry and the outbox event of one change.
func record(ctx context.Context, tx store.Tx, action, event string, target audit.Entry, meta map[string]any, payload any) error {
	target.Action, target.Metadata = action, meta
	if _, err := audit.Record(ctx, tx, target); err != nil {
		return err
	}
	_, err := events.Append(ctx, tx, events.Event{Type: event, Payload: payload})
	return err
}

func workspaceTarget(id uuid.UUID) audit.Entry {
	return audit.Entry{TargetType: "workspace", TargetID: kernel.FormatID(kernel.PrefixWorkspace, id)}
}

// notFoundAs turns a store not_found into "<what> not found", the same words
// whether the row is missing or hidden.
func notFoundAs(what string, err error) error {
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.NotFound(what)
	}
	return err
}

func insertWorkspace(ctx context.Context, tx store.Tx, ws Workspace) error {
	_, err := tx.Exec(ctx, "INSERT INTO workspace (id, slug, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
		ws.ID, ws.Slug, ws.Name, ws.CreatedAt, ws.UpdatedAt)
	return err
}

// forgetUser drops the person's cached roles (and sessions) on this node at
// once, after a membership change; the database's triggers tell every node a
// moment later (see identity's forget).
func (s *Service) forgetUser(id uuid.UUID) {
	if s.cache != nil && id != uuid.Nil {
		s.cache.Invalidate(authcache.UserTag(id))
	}
}
