-- SQLite has no row-level security: tenant isolation on this dialect rests on
-- the store's workspace transactions, whose statements every one filter by
-- workspace_id, and on the shared store suite, which runs the same isolation
-- tests against PostgreSQL's policies. Columns and names match the PostgreSQL
-- migration exactly; a test compares them.

CREATE TABLE workspace (
    id          TEXT      PRIMARY KEY,
    slug        TEXT      NOT NULL UNIQUE,
    name        TEXT      NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

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

CREATE TABLE idempotency_key (
    scope           TEXT      NOT NULL,
    key             TEXT      NOT NULL,
    fingerprint     TEXT      NOT NULL,
    status          TEXT      NOT NULL CHECK (status IN ('running', 'done')),
    response_status INTEGER   NOT NULL,
    response_type   TEXT      NOT NULL,
    response_body   BLOB      NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    locked_until    TIMESTAMP NOT NULL,
    expires_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_key_expires ON idempotency_key (expires_at);
