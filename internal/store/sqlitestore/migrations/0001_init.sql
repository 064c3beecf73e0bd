-- SQLite has no row-level security. Writes are guarded instead: every write
-- transaction first records its workspace (or the system path's bypass) in
-- atrium_tenant_context, a one-row table that only the single writer connection
-- changes, and triggers on every tenant table refuse a row of any other
-- workspace. Reads rest on each statement's workspace_id filter, checked by the
-- shared store suite, which runs the same isolation tests against PostgreSQL's
-- policies. Columns and names match the PostgreSQL migration exactly (but for
-- atrium_tenant_context); a test compares them.

CREATE TABLE atrium_tenant_context (
    singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
    workspace_id TEXT,
    bypass       INTEGER NOT NULL
);
INSERT INTO atrium_tenant_context (singleton, workspace_id, bypass) VALUES (1, NULL, 0);

CREATE TABLE workspace (
    id          TEXT      PRIMARY KEY,
    slug        TEXT      NOT NULL UNIQUE,
    name        TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE TRIGGER workspace_tenant_insert BEFORE INSERT ON workspace
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER workspace_tenant_update BEFORE UPDATE ON workspace
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.id IS NOT OLD.id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER workspace_tenant_delete BEFORE DELETE ON workspace
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE audit_log (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      REFERENCES workspace (id) ON DELETE RESTRICT,
    actor_type   TEXT      NOT NULL,
    actor_id     TEXT      NOT NULL,
    action       TEXT      NOT NULL,
    target_type  TEXT      NOT NULL,
    target_id    TEXT      NOT NULL,
    metadata     TEXT      NOT NULL CHECK (json_valid(metadata)),
    ip           TEXT      NOT NULL,
    user_agent   TEXT      NOT NULL,
    request_id   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_workspace_created ON audit_log (workspace_id, created_at DESC, id DESC);
CREATE TRIGGER audit_log_tenant_insert BEFORE INSERT ON audit_log
WHEN NOT (SELECT bypass FROM atrium_tenant_context) AND NEW.workspace_id IS NOT NULL
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE outbox (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    event_type   TEXT      NOT NULL,
    payload      TEXT      NOT NULL CHECK (json_valid(payload)),
    created_at   TIMESTAMP NOT NULL,
    sent_at      TIMESTAMP
);
CREATE INDEX outbox_workspace_created ON outbox (workspace_id, created_at, id);
CREATE INDEX outbox_unsent ON outbox (created_at, id) WHERE sent_at IS NULL;
CREATE TRIGGER outbox_tenant_insert BEFORE INSERT ON outbox
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER outbox_tenant_update BEFORE UPDATE ON outbox
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER outbox_tenant_delete BEFORE DELETE ON outbox
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE idempotency_key (
    scope           TEXT      NOT NULL,
    key             TEXT      NOT NULL,
    fingerprint     TEXT      NOT NULL,
    status          TEXT      NOT NULL CHECK (status IN ('running', 'done')),
    claim           TEXT      NOT NULL,
    response_status INTEGER   NOT NULL,
    response_type   TEXT      NOT NULL,
    response_body   BLOB      NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    locked_until    TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_key_expires ON idempotency_key (expires_at);
