package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// Why an endpoint is disabled.
const (
	DisabledManually = "manual"  // a person or a key turned it off
	DisabledGone     = "gone"    // the receiver answered 410 Gone
	DisabledFailing  = "failing" // it failed for DisableAfter without a success
)

// Endpoint is a URL a workspace's events are sent to. Its secret is shown
// once, when it is made; only the service reads it again, to sign.
type Endpoint struct {
	ID          uuid.UUID
	WorkspaceID uuid.UUID
	URL         string
	Description string
	// EventTypes filters what is sent: exact types and "prefix.*" patterns;
	// empty means every event.
	EventTypes []string
	// DisabledAt is set while the endpoint is disabled, for DisabledReason.
	DisabledAt     *time.Time
	DisabledReason string
	// FailingSince is when the attempts started failing with no success
	// since; nil while the last attempt succeeded.
	FailingSince *time.Time
	// PreviousSecretExpiresAt is set after a rotation: until then the
	// rotated-out secret signs too.
	PreviousSecretExpiresAt *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
}

// Enabled reports whether events are sent to the endpoint.
func (e Endpoint) Enabled() bool { return e.DisabledAt == nil }

// NewEndpoint is what an endpoint is created from.
type NewEndpoint struct {
	URL         string
	Description string
	EventTypes  []string
	// Disabled creates the endpoint turned off.
	Disabled bool
}

// EndpointChange is a change to an endpoint; nil fields stay as they are.
type EndpointChange struct {
	URL         *string
	Description *string
	EventTypes  *[]string
	Enabled     *bool
}

const (
	endpointColumns = `id, workspace_id, url, description, event_types, secret, previous_secret,
    previous_secret_expires_at, disabled_at, disabled_reason, failing_since, created_at, updated_at`
	// The workspace_id filters repeat what row-level security enforces on
	// PostgreSQL, for SQLite, which has none.
	selectEndpointSQL = "SELECT " + endpointColumns + " FROM webhook_endpoint WHERE id = $1 AND workspace_id = $2"
	insertEndpointSQL = `INSERT INTO webhook_endpoint (id, workspace_id, url, description, event_types, secret,
        disabled_at, disabled_reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)`
	updateEndpointSQL = `UPDATE webhook_endpoint SET url = $3, description = $4, event_types = $5, disabled_at = $6,
        disabled_reason = $7, failing_since = $8, updated_at = $9 WHERE id = $1 AND workspace_id = $2`
	rotateSecretSQL = `UPDATE webhook_endpoint SET secret = $3, previous_secret = $4, previous_secret_expires_at = $5,
        updated_at = $6 WHERE id = $1 AND workspace_id = $2`
	deleteEndpointSQL  = "DELETE FROM webhook_endpoint WHERE id = $1 AND workspace_id = $2"
	countEndpointsSQL  = "SELECT count(*) FROM webhook_endpoint WHERE workspace_id = $1"
	workspaceStatusSQL = "SELECT deleted_at FROM workspace WHERE id = $1"
	// Endpoints by ID (so, creation order), served by webhook_endpoint_workspace.
	listEndpointsFirstSQL = "SELECT " + endpointColumns + " FROM webhook_endpoint WHERE workspace_id = $1 ORDER BY id LIMIT $2"
	listEndpointsAfterSQL = "SELECT " + endpointColumns + ` FROM webhook_endpoint WHERE workspace_id = $1 AND id > $3
        ORDER BY id LIMIT $2`
)

// lockEndpointSQL reads the endpoint to change; SQLite's BEGIN IMMEDIATE
// already holds the only write lock, and it has no FOR UPDATE.
var lockEndpointSQL = map[store.Dialect]string{
	store.Postgres: selectEndpointSQL + " FOR UPDATE",
	store.SQLite:   selectEndpointSQL,
}

// Create registers an endpoint with a new secret, returned this once,
// audited and emitted as webhook_endpoint.created. It returns forbidden
// unless the actor may (policy.WebhookManage), what Guard.CheckURL returns
// for a URL that is malformed or reaches inside, invalid for a bad
// description or event type, conflict when the workspace has MaxEndpoints,
// workspace_inactive for a deleted workspace, or the store's error.
func (s *Service) Create(ctx context.Context, res policy.Resource, in NewEndpoint) (Endpoint, string, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookManage, res); err != nil {
		return Endpoint{}, "", err
	}
	if err := s.requirePlan(ctx, res.Workspace); err != nil {
		return Endpoint{}, "", err
	}
	description, err := validDescription(in.Description)
	if err != nil {
		return Endpoint{}, "", err
	}
	types, err := validEventTypes(in.EventTypes)
	if err != nil {
		return Endpoint{}, "", err
	}
	rawURL, err := s.guard.CheckURL(ctx, in.URL)
	if err != nil {
		return Endpoint{}, "", err
	}
	ep := Endpoint{ID: kernel.NewID(), WorkspaceID: res.Workspace, URL: rawURL, Description: description, EventTypes: types}
	secret := NewSecret()
	err = s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if err := requireActive(ctx, tx, res.Workspace); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, countEndpointsSQL, res.Workspace).Scan(&n); err != nil {
			return err
		}
		if n >= MaxEndpoints {
			return &kernel.Error{Code: kernel.CodeConflict, Message: fmt.Sprintf("a workspace can have at most %d webhook endpoints", MaxEndpoints)}
		}
		now := tx.Now()
		ep.CreatedAt, ep.UpdatedAt = now, now
		if in.Disabled {
			ep.DisabledAt, ep.DisabledReason = &now, DisabledManually
		}
		if _, err := tx.Exec(ctx, insertEndpointSQL, ep.ID, ep.WorkspaceID, ep.URL, ep.Description, typesJSON(ep.EventTypes),
			s.sealer.seal(ep.ID, secret), ep.DisabledAt, ep.DisabledReason, ep.CreatedAt); err != nil {
			return err
		}
		return record(ctx, tx, "webhook_endpoint.created", EventEndpointCreated, ep,
			map[string]any{"host": urlHost(ep.URL), "event_types": ep.EventTypes, "enabled": ep.Enabled()})
	})
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhooks: create endpoint: %w", err)
	}
	return ep, secret, nil
}

// Get returns one endpoint. It returns forbidden unless the actor may
// (policy.WebhookRead), not_found for an unknown endpoint, or the store's
// error.
func (s *Service) Get(ctx context.Context, res policy.Resource, id uuid.UUID) (Endpoint, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookRead, res); err != nil {
		return Endpoint{}, err
	}
	row, err := scanEndpoint(s.db.WorkspaceRow(ctx, res.Workspace, selectEndpointSQL, id, res.Workspace))
	if err != nil {
		return Endpoint{}, notFoundAs("webhook endpoint", err)
	}
	return row.Endpoint, nil
}

// List returns up to limit of the workspace's endpoints in creation order,
// after the endpoint ID after (uuid.Nil for the first page). It returns
// forbidden unless the actor may (policy.WebhookRead), or the store's error.
func (s *Service) List(ctx context.Context, res policy.Resource, after uuid.UUID, limit int) ([]Endpoint, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookRead, res); err != nil {
		return nil, err
	}
	var out []Endpoint
	err := s.db.ReadWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		var rows store.Rows
		var err error
		if after == uuid.Nil {
			rows, err = tx.Query(ctx, listEndpointsFirstSQL, res.Workspace, limit)
		} else {
			rows, err = tx.Query(ctx, listEndpointsAfterSQL, res.Workspace, limit, after)
		}
		if err != nil {
			return err
		}
		out, err = store.Collect(rows, func(row store.Row) (Endpoint, error) {
			r, err := scanEndpoint(row)
			return r.Endpoint, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: list endpoints: %w", err)
	}
	return out, nil
}

// Update applies a change to an endpoint, audited and emitted as
// webhook_endpoint.updated when anything changed. Enabling an endpoint
// forgets its failures; disabling it stops its pending deliveries. It
// returns forbidden unless the actor may (policy.WebhookManage), what Create
// returns for a bad URL, description or event type, not_found for an
// unknown endpoint, workspace_inactive for a deleted workspace, or the
// store's error.
func (s *Service) Update(ctx context.Context, res policy.Resource, id uuid.UUID, change EndpointChange) (Endpoint, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookManage, res); err != nil {
		return Endpoint{}, err
	}
	if !(change.Enabled != nil && !*change.Enabled && change.URL == nil && change.EventTypes == nil) {
		// Anything but switching an endpoint off needs the plan.
		if err := s.requirePlan(ctx, res.Workspace); err != nil {
			return Endpoint{}, err
		}
	}
	change, err := s.validChange(ctx, change)
	if err != nil {
		return Endpoint{}, err
	}
	var out Endpoint
	err = s.changeEndpoint(ctx, res, id, func(tx store.Tx, ep endpointRow) error {
		next, changed := applyChange(ep.Endpoint, change, tx.Now())
		out = next
		if len(changed) == 0 {
			return nil
		}
		out.UpdatedAt = tx.Now()
		if _, err := tx.Exec(ctx, updateEndpointSQL, out.ID, out.WorkspaceID, out.URL, out.Description, typesJSON(out.EventTypes),
			out.DisabledAt, out.DisabledReason, out.FailingSince, out.UpdatedAt); err != nil {
			return err
		}
		return record(ctx, tx, "webhook_endpoint.updated", EventEndpointUpdated, out,
			map[string]any{"changed": changed, "host": urlHost(out.URL), "enabled": out.Enabled()})
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: update endpoint: %w", err)
	}
	return out, nil
}

// validChange checks the fields a change sets. It returns what Create
// returns for bad values.
func (s *Service) validChange(ctx context.Context, change EndpointChange) (EndpointChange, error) {
	if change.Description != nil {
		d, err := validDescription(*change.Description)
		if err != nil {
			return change, err
		}
		change.Description = &d
	}
	if change.EventTypes != nil {
		types, err := validEventTypes(*change.EventTypes)
		if err != nil {
			return change, err
		}
		change.EventTypes = &types
	}
	if change.URL != nil {
		u, err := s.guard.CheckURL(ctx, *change.URL)
		if err != nil {
			return change, err
		}
		change.URL = &u
	}
	return change, nil
}

// applyChange returns ep with change applied at now, and the names of the
// fields that changed.
func applyChange(ep Endpoint, change EndpointChange, now time.Time) (Endpoint, []string) {
	var changed []string
	if change.URL != nil && *change.URL != ep.URL {
		ep.URL, changed = *change.URL, append(changed, "url")
	}
	if change.Description != nil && *change.Description != ep.Description {
		ep.Description, changed = *change.Description, append(changed, "description")
	}
	if change.EventTypes != nil && !slices.Equal(*change.EventTypes, ep.EventTypes) {
		ep.EventTypes, changed = *change.EventTypes, append(changed, "event_types")
	}
	if change.Enabled != nil && *change.Enabled != ep.Enabled() {
		changed = append(changed, "enabled")
		if *change.Enabled {
			ep.DisabledAt, ep.DisabledReason, ep.FailingSince = nil, "", nil
		} else {
			ep.DisabledAt, ep.DisabledReason = &now, DisabledManually
		}
	}
	return ep, changed
}

// Delete deletes an endpoint with its deliveries and their attempts,
// audited and emitted as webhook_endpoint.deleted; its pending deliveries
// stop. It returns forbidden unless the actor may (policy.WebhookManage),
// not_found for an unknown endpoint, workspace_inactive for a deleted
// workspace, or the store's error.
func (s *Service) Delete(ctx context.Context, res policy.Resource, id uuid.UUID) error {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookManage, res); err != nil {
		return err
	}
	err := s.changeEndpoint(ctx, res, id, func(tx store.Tx, ep endpointRow) error {
		if _, err := tx.Exec(ctx, deleteEndpointSQL, ep.ID, ep.WorkspaceID); err != nil {
			return err
		}
		return record(ctx, tx, "webhook_endpoint.deleted", EventEndpointDeleted, ep.Endpoint,
			map[string]any{"host": urlHost(ep.URL)})
	})
	if err != nil {
		return fmt.Errorf("webhooks: delete endpoint: %w", err)
	}
	return nil
}

// RotateSecret gives an endpoint a new secret, returned this once. The
// previous secret keeps signing beside it for 24 hours (a second rotation
// meanwhile drops the oldest), so a receiver can switch without losing a
// delivery. It is audited and emitted as webhook_endpoint.secret_rotated.
// It returns forbidden unless the actor may (policy.WebhookManage),
// not_found for an unknown endpoint, workspace_inactive for a deleted
// workspace, or the store's error.
func (s *Service) RotateSecret(ctx context.Context, res policy.Resource, id uuid.UUID) (Endpoint, string, error) {
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WebhookManage, res); err != nil {
		return Endpoint{}, "", err
	}
	secret := NewSecret()
	var out Endpoint
	err := s.changeEndpoint(ctx, res, id, func(tx store.Tx, ep endpointRow) error {
		out = ep.Endpoint
		expires := tx.Now().Add(previousSecretGrace)
		out.PreviousSecretExpiresAt, out.UpdatedAt = &expires, tx.Now()
		if _, err := tx.Exec(ctx, rotateSecretSQL, ep.ID, ep.WorkspaceID, s.sealer.seal(ep.ID, secret), ep.secret,
			expires, out.UpdatedAt); err != nil {
			return err
		}
		return record(ctx, tx, "webhook_endpoint.secret_rotated", EventEndpointSecretRotated, out,
			map[string]any{"previous_secret_expires_at": expires})
	})
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhooks: rotate secret: %w", err)
	}
	return out, secret, nil
}

// changeEndpoint runs change in a workspace transaction after the checks
// every endpoint change shares: the workspace exists and is active
// (workspace_inactive), the endpoint exists (not_found), locked.
func (s *Service) changeEndpoint(ctx context.Context, res policy.Resource, id uuid.UUID, change func(store.Tx, endpointRow) error) error {
	return s.db.InWorkspace(ctx, res.Workspace, func(tx store.Tx) error {
		if err := requireActive(ctx, tx, res.Workspace); err != nil {
			return err
		}
		ep, err := scanEndpoint(tx.QueryRow(ctx, lockEndpointSQL[tx.Dialect()], id, res.Workspace))
		if err != nil {
			return notFoundAs("webhook endpoint", err)
		}
		return change(tx, ep)
	})
}

// endpointRow is an endpoint with its secrets, still sealed.
type endpointRow struct {
	Endpoint
	secret         string
	previousSecret *string
}

// scanEndpoint reads endpointColumns in UTC.
func scanEndpoint(row store.Row) (endpointRow, error) {
	var r endpointRow
	var types string
	err := row.Scan(&r.ID, &r.WorkspaceID, &r.URL, &r.Description, &types, &r.secret, &r.previousSecret,
		&r.PreviousSecretExpiresAt, &r.DisabledAt, &r.DisabledReason, &r.FailingSince, &r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return endpointRow{}, err
	}
	if err := json.Unmarshal([]byte(types), &r.EventTypes); err != nil {
		return endpointRow{}, kernel.Internal(fmt.Errorf("webhooks: event types of %s: %w", endpointAPIID(r.ID), err))
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	r.PreviousSecretExpiresAt, r.DisabledAt, r.FailingSince = utc(r.PreviousSecretExpiresAt), utc(r.DisabledAt), utc(r.FailingSince)
	return r, nil
}

// requireActive returns workspace_inactive when the workspace is deleted,
// not_found when it does not exist, or the store's error. (identity's API
// keys ask the same question the same way.)
func requireActive(ctx context.Context, tx store.Tx, workspaceID uuid.UUID) error {
	var deletedAt *time.Time
	if err := tx.QueryRow(ctx, workspaceStatusSQL, workspaceID).Scan(&deletedAt); err != nil {
		return notFoundAs("workspace", err)
	}
	if deletedAt != nil {
		return &kernel.Error{Code: kernel.CodeWorkspaceInactive, Message: "the workspace is deleted: restore it to make changes"}
	}
	return nil
}

// record writes the audit entry and the outbox event of one change.
func record(ctx context.Context, tx store.Tx, action, event string, ep Endpoint, meta map[string]any) error {
	if _, err := audit.Record(ctx, tx, audit.Entry{Action: action, TargetType: "webhook_endpoint",
		TargetID: endpointAPIID(ep.ID), Metadata: meta}); err != nil {
		return err
	}
	_, err := events.Append(ctx, tx, events.Event{Type: event, Payload: endpointEvent(ep)})
	return err
}

// urlHost is the host of a checked URL, what audit entries name: the path
// and query may hold a credential.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// validDescription returns the trimmed description or an invalid
// *kernel.Error naming description.
func validDescription(d string) (string, error) {
	d = strings.TrimSpace(d)
	switch {
	case !utf8.ValidString(d):
		return "", kernel.Invalid("description", "must be valid UTF-8")
	case utf8.RuneCountInString(d) > 500:
		return "", kernel.Invalid("description", "must be at most 500 characters")
	case containsControl(d):
		return "", kernel.Invalid("description", "must not contain control characters")
	}
	return d, nil
}

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

func notFoundAs(what string, err error) error {
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return kernel.NotFound(what)
	}
	return err
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
