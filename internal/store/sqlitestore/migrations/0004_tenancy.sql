-- Tenancy: who belongs to which workspace, with which role, and soft deletion
-- of workspaces. See the PostgreSQL migration of the same number; SQLite has
-- no row-level security, so membership gets the same guard triggers as every
-- tenant table, and reads rest on each statement's filter (workspace_id, or
-- user_id for "my workspaces").

ALTER TABLE workspace ADD COLUMN deleted_at TIMESTAMP;

CREATE TABLE membership (
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    user_id      TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    role         TEXT      NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) WITHOUT ROWID;
CREATE INDEX membership_user ON membership (user_id, workspace_id);
CREATE TRIGGER membership_tenant_insert BEFORE INSERT ON membership
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER membership_tenant_update BEFORE UPDATE ON membership
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER membership_tenant_delete BEFORE DELETE ON membership
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
