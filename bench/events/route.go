package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"atrium/internal/audit"
	"atrium/internal/events"
	"atrium/internal/httpapi"
	"atrium/internal/kernel"
	"atrium/internal/store"
	"atrium/internal/tenancy"
	"atrium/internal/tenancy/policy"
)

// renamePath is the benchmark's own write route, registered as a fork
// registers its routes (app.Options.Routes). variant is "plain" or "event":
// one operation answers both, so routing, binding and rendering cost the
// same and the event is the only difference.
const renamePath = "/api/v1/workspaces/{workspace_id}/bench-rename/{variant}"

type renameInput struct {
	WorkspaceID string `path:"workspace_id"`
	Variant     string `path:"variant" enum:"plain,event"`
	Body        struct {
		Name string `json:"name" minLength:"1" maxLength:"100"`
	}
}

type renameOutput struct {
	Body httpapi.WorkspaceBody
}

// txTimes keeps how long each transaction of the route took, from asking
// for it (on SQLite, waiting for the one writer connection) to its commit:
// the event's own cost, apart from what its relay and consumers cost the
// rest of the process.
var txTimes struct {
	sync.Mutex
	d []time.Duration
}

// takeTxTimes returns the transaction times kept since the last call and
// forgets them.
func takeTxTimes() []time.Duration {
	txTimes.Lock()
	defer txTimes.Unlock()
	d := txTimes.d
	txTimes.d = nil
	return d
}

// renameRoute registers renamePath. The store is not known until the app is
// built, after its routes are registered; db is read at the first request.
func renameRoute(db *store.DB) func(huma.API) {
	return func(api huma.API) {
		huma.Register(api, huma.Operation{
			OperationID: "bench-rename-workspace", Method: http.MethodPatch, Path: renamePath, Hidden: true,
			Summary: "Benchmark: rename a workspace with or without its event",
		}, func(ctx context.Context, in *renameInput) (*renameOutput, error) {
			ws, err := rename(ctx, *db, in.Variant == "event", in.Body.Name)
			if err != nil {
				return nil, err
			}
			return &renameOutput{Body: httpapi.WorkspaceBody{ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID),
				Slug: ws.Slug, Name: ws.Name, CreatedAt: ws.CreatedAt, UpdatedAt: ws.UpdatedAt}}, nil
		})
	}
}

// lockWorkspace is tenancy's: SQLite's BEGIN IMMEDIATE already holds the only
// write lock and has no FOR UPDATE.
var lockWorkspace = map[store.Dialect]string{
	store.Postgres: "SELECT id, slug, name, created_at, updated_at, deleted_at FROM workspace WHERE id = $1 FOR UPDATE",
	store.SQLite:   "SELECT id, slug, name, created_at, updated_at, deleted_at FROM workspace WHERE id = $1",
}

// rename is tenancy.Service.Rename statement for statement: the policy check,
// the name check, and in one workspace transaction the locked read, the
// UPDATE and the audit entry, then, with withEvent, the workspace.updated
// event through events.Append. It returns what Rename returns.
func rename(ctx context.Context, db store.DB, withEvent bool, name string) (tenancy.Workspace, error) {
	id, ok := kernel.WorkspaceFrom(ctx)
	if !ok {
		return tenancy.Workspace{}, kernel.NotFound("workspace")
	}
	res := policy.In(ctx, id)
	if err := policy.Check(kernel.ActorFrom(ctx), policy.WorkspaceUpdate, res); err != nil {
		return tenancy.Workspace{}, err
	}
	name, err := tenancy.ValidateName("name", name)
	if err != nil {
		return tenancy.Workspace{}, err
	}
	var ws tenancy.Workspace
	begin := time.Now()
	defer func() {
		d := time.Since(begin)
		txTimes.Lock()
		txTimes.d = append(txTimes.d, d)
		txTimes.Unlock()
	}()
	err = db.InWorkspace(ctx, id, func(tx store.Tx) error {
		old, err := lockActive(ctx, tx, id)
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
		if _, err := audit.Record(ctx, tx, audit.Entry{Action: "workspace.renamed", TargetType: "workspace",
			TargetID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Metadata: map[string]any{"from": old.Name, "to": ws.Name}}); err != nil {
			return err
		}
		if !withEvent {
			return nil
		}
		_, err = events.Append(ctx, tx, events.Event{Type: tenancy.EventWorkspaceUpdated, Payload: tenancy.WorkspaceEvent{
			ID: kernel.FormatID(kernel.PrefixWorkspace, ws.ID), Slug: ws.Slug, Name: ws.Name}})
		return err
	})
	if kernel.IsCode(err, kernel.CodeNotFound) {
		return tenancy.Workspace{}, kernel.NotFound("workspace")
	}
	return ws, err
}

func lockActive(ctx context.Context, tx store.Tx, id uuid.UUID) (tenancy.Workspace, error) {
	var ws tenancy.Workspace
	err := tx.QueryRow(ctx, lockWorkspace[tx.Dialect()], id).Scan(&ws.ID, &ws.Slug, &ws.Name, &ws.CreatedAt, &ws.UpdatedAt, &ws.DeletedAt)
	if err != nil {
		return ws, err
	}
	ws.CreatedAt, ws.UpdatedAt = ws.CreatedAt.UTC(), ws.UpdatedAt.UTC()
	if !ws.Active() {
		return ws, &kernel.Error{Code: kernel.CodeWorkspaceInactive, Message: "the workspace is deleted: restore it to make changes"}
	}
	return ws, nil
}
