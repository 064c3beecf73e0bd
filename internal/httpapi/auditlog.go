package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/httpapi/cursor"
	"atrium/internal/identity"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy/policy"
)

// AuditEntryBody is an audit entry as the API shows it.
type AuditEntryBody struct {
	ID        string `json:"id" example:"aud_01h455vb4pex5vsknk084sn02q"`
	Action    string `json:"action" example:"workspace.renamed"`
	ActorType string `json:"actor_type" example:"user" enum:"user,api_key,system,anonymous"`
	ActorID   string `json:"actor_id" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"Empty for the system and for anonymous actors"`
	ActorName string `json:"actor_name" example:"Ada Lovelace" doc:"The person's current name (\"Deleted user\" once the account is deleted), the API key's name, or \"System\""`
	// The rest is as recorded.
	TargetType string          `json:"target_type" example:"workspace"`
	TargetID   string          `json:"target_id"`
	Metadata   json.RawMessage `json:"metadata"`
	IP         string          `json:"ip"`
	UserAgent  string          `json:"user_agent"`
	RequestID  string          `json:"request_id"`
	CreatedAt  time.Time       `json:"created_at"`
}

type listAuditInput struct {
	workspacePath
	Limit  string `query:"limit" doc:"Entries per page, 1-100 (default 20; larger values are capped at 100)"`
	Cursor string `query:"cursor" doc:"The next_cursor of the previous page, asked for with the same filters"`
	Action string `query:"action" example:"member.*" doc:"An action (member.removed), or a prefix ending in .* (member.*)"`
	Actor  string `query:"actor" example:"usr_01h455vb4pex5vsknk084sn02q" doc:"Entries by this user (usr_…) or API key (key_…)"`
	Since  string `query:"since" example:"2026-01-01T00:00:00Z" doc:"RFC 3339: entries at or after this time"`
	Until  string `query:"until" example:"2026-02-01T00:00:00Z" doc:"RFC 3339: entries before this time; not before since"`
}

type listAuditOutput struct {
	Body Page[AuditEntryBody]
}

// actorDirectory names the actors of audit entries, a page at a time;
// identity.Service is one.
type actorDirectory interface {
	Profiles(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]identity.Profile, error)
	APIKeyNames(ctx context.Context, workspaceID uuid.UUID, ids []uuid.UUID) (map[uuid.UUID]string, error)
}

// Names shown for actors that have none of their own.
const (
	systemActorName    = "System"
	anonymousActorName = "Anonymous"
	deletedUserName    = "Deleted user"
	unknownAPIKeyName  = "Unknown API key"
)

func registerAuditLog(api huma.API, db store.DB, names actorDirectory, cursors *cursor.Signer) {
	huma.Register(api, huma.Operation{
		OperationID: "list-audit-log", Method: http.MethodGet, Path: "/api/v1/workspaces/{workspace_id}/audit-log",
		Summary: "List the audit log", Tags: []string{"Audit log"}, Security: bearerOrSession,
		Description: "Owners and admins (and the workspace's API keys). Newest first, paged with opaque cursors. " +
			"Filters combine with AND. A cursor is bound to this workspace's log and to the filters it was " +
			"served with; a tampered or foreign one, or one used with other filters, is 400.",
		Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound},
	}, func(ctx context.Context, in *listAuditInput) (*listAuditOutput, error) {
		workspaceID, err := workspaceFrom(ctx)
		if err != nil {
			return nil, err
		}
		if err := policy.Check(kernel.ActorFrom(ctx), policy.AuditRead, policy.In(ctx, workspaceID)); err != nil {
			return nil, err
		}
		filter, filterKey, err := parseAuditFilter(in)
		if err != nil {
			return nil, err
		}
		scope := "audit_log:" + kernel.FormatID(kernel.PrefixWorkspace, workspaceID) + "?" + filterKey
		page, err := listPage(cursors, scope, in.Limit, in.Cursor,
			func(after *audit.Position, limit int) ([]audit.StoredEntry, error) {
				return audit.List(ctx, db, workspaceID, filter, after, limit)
			},
			auditEntryBody,
			func(e audit.StoredEntry) audit.Position { return audit.Position{CreatedAt: e.CreatedAt, ID: e.ID} })
		if err != nil {
			return nil, err
		}
		if err := nameActors(ctx, names, workspaceID, page.Items); err != nil {
			return nil, err
		}
		return &listAuditOutput{Body: page}, nil
	})
}

// parseAuditFilter reads the filter query parameters. It returns the filter
// and its canonical spelling, which binds a cursor to the filters it was
// served with, or invalid naming the malformed parameter.
func parseAuditFilter(in *listAuditInput) (audit.Filter, string, error) {
	var f audit.Filter
	key := url.Values{}
	if in.Action != "" {
		if !audit.ValidActionFilter(in.Action) {
			return f, "", kernel.Invalid("query.action", "must be an action such as member.removed, or a prefix such as member.*")
		}
		f.Action = in.Action
		key.Set("action", f.Action)
	}
	if in.Actor != "" {
		actorID, err := parseActorID(in.Actor)
		if err != nil {
			return f, "", err
		}
		f.ActorID = actorID
		key.Set("actor", f.ActorID)
	}
	for _, t := range []struct {
		name, raw string
		dest      *time.Time
	}{{"since", in.Since, &f.Since}, {"until", in.Until, &f.Until}} {
		if t.raw == "" {
			continue
		}
		parsed, err := time.Parse(time.RFC3339, t.raw)
		if err != nil {
			return f, "", kernel.Invalid("query."+t.name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		*t.dest = parsed.UTC()
		key.Set(t.name, t.dest.Format(time.RFC3339Nano))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Since.After(f.Until) {
		return f, "", kernel.Invalid("query.since", "must not be after until")
	}
	return f, key.Encode(), nil
}

// parseActorID returns the canonical API form of a user or API key ID, as
// audit entries store it, or invalid naming query.actor.
func parseActorID(raw string) (string, error) {
	for _, prefix := range []string{kernel.PrefixUser, kernel.PrefixAPIKey} {
		if !strings.HasPrefix(raw, prefix+"_") {
			continue
		}
		if id, err := kernel.ParseID(prefix, raw); err == nil {
			return kernel.FormatID(prefix, id), nil
		}
	}
	return "", kernel.Invalid("query.actor", "must be a user ID (usr_…) or an API key ID (key_…)")
}

// nameActors sets the actor_name of a page of entries, asking the directory
// once for the people and once for the keys among them, never per entry. A
// person with no account left reads "Deleted user". It returns the
// directory's error.
func nameActors(ctx context.Context, names actorDirectory, workspaceID uuid.UUID, entries []AuditEntryBody) error {
	var users, keys []uuid.UUID
	for _, e := range entries {
		switch e.ActorType {
		case string(kernel.ActorUser):
			if id, err := kernel.ParseID(kernel.PrefixUser, e.ActorID); err == nil {
				users = append(users, id)
			}
		case string(kernel.ActorAPIKey):
			if id, err := kernel.ParseID(kernel.PrefixAPIKey, e.ActorID); err == nil {
				keys = append(keys, id)
			}
		}
	}
	profiles, err := names.Profiles(ctx, users)
	if err != nil {
		return err
	}
	keyNames, err := names.APIKeyNames(ctx, workspaceID, keys)
	if err != nil {
		return err
	}
	for i, e := range entries {
		entries[i].ActorName = actorName(e, profiles, keyNames)
	}
	return nil
}

// actorName is the name shown for an entry's actor, given the page's
// profiles and key names.
func actorName(e AuditEntryBody, profiles map[uuid.UUID]identity.Profile, keyNames map[uuid.UUID]string) string {
	switch e.ActorType {
	case string(kernel.ActorUser):
		if id, err := kernel.ParseID(kernel.PrefixUser, e.ActorID); err == nil && profiles[id].Name != "" {
			return profiles[id].Name
		}
		return deletedUserName
	case string(kernel.ActorAPIKey):
		if id, err := kernel.ParseID(kernel.PrefixAPIKey, e.ActorID); err == nil && keyNames[id] != "" {
			return keyNames[id]
		}
		return unknownAPIKeyName
	case string(kernel.ActorSystem):
		return systemActorName
	}
	return anonymousActorName
}

func auditEntryBody(e audit.StoredEntry) AuditEntryBody {
	return AuditEntryBody{
		ID: kernel.FormatID(kernel.PrefixAudit, e.ID), Action: e.Action, ActorType: e.ActorType, ActorID: e.ActorID,
		TargetType: e.TargetType, TargetID: e.TargetID, Metadata: e.Metadata, IP: e.IP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, CreatedAt: e.CreatedAt,
	}
}
