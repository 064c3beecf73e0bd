-- Outgoing webhooks. See the PostgreSQL migration of the same number; the
-- three tables are tenant tables and get the guard triggers of every tenant
-- table.

CREATE TABLE webhook_endpoint (
    id                         TEXT      PRIMARY KEY,
    workspace_id               TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    url                        TEXT      NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                TEXT      NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types                TEXT      NOT NULL CHECK (json_valid(event_types)),
    secret                     TEXT      NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMP,
    disabled_at                TIMESTAMP,
    disabled_reason            TEXT      NOT NULL DEFAULT '' CHECK (disabled_reason IN ('', 'manual', 'gone', 'failing')),
    failing_since              TIMESTAMP,
    created_at                 TIMESTAMP NOT NULL,
    updated_at                 TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoint_workspace ON webhook_endpoint (workspace_id, id);
CREATE TRIGGER webhook_endpoint_tenant_insert BEFORE INSERT ON webhook_endpoint
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER webhook_endpoint_tenant_update BEFORE UPDATE ON webhook_endpoint
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER webhook_endpoint_tenant_delete BEFORE DELETE ON webhook_endpoint
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE webhook_delivery (
    id               TEXT      PRIMARY KEY,
    workspace_id     TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    endpoint_id      TEXT      NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_id         TEXT      NOT NULL,
    event_type       TEXT      NOT NULL CHECK (length(event_type) BETWEEN 1 AND 200),
    body             TEXT      NOT NULL,
    replay_of        TEXT,
    status           TEXT      NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER   NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code INTEGER,
    last_error       TEXT      NOT NULL DEFAULT '',
    last_attempt_at  TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhook_delivery_event ON webhook_delivery (endpoint_id, event_id) WHERE replay_of IS NULL;
CREATE INDEX webhook_delivery_endpoint ON webhook_delivery (workspace_id, endpoint_id, id DESC);
-- Settled deliveries by age, for the retention cleanup (webhooks.DeleteOldDeliveries).
CREATE INDEX webhook_delivery_settled ON webhook_delivery (updated_at) WHERE status <> 'pending';
CREATE TRIGGER webhook_delivery_tenant_insert BEFORE INSERT ON webhook_delivery
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER webhook_delivery_tenant_update BEFORE UPDATE ON webhook_delivery
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER webhook_delivery_tenant_delete BEFORE DELETE ON webhook_delivery
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE webhook_attempt (
    id            TEXT      PRIMARY KEY,
    workspace_id  TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    delivery_id   TEXT      NOT NULL REFERENCES webhook_delivery (id) ON DELETE CASCADE,
    attempt       INTEGER   NOT NULL CHECK (attempt >= 1),
    status_code   INTEGER,
    duration_ms   INTEGER   NOT NULL CHECK (duration_ms >= 0),
    error         TEXT      NOT NULL DEFAULT '',
    response_body TEXT      NOT NULL DEFAULT '',
    created_at    TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhook_attempt_delivery ON webhook_attempt (workspace_id, delivery_id, attempt);
CREATE TRIGGER webhook_attempt_tenant_insert BEFORE INSERT ON webhook_attempt
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER webhook_attempt_tenant_update BEFORE UPDATE ON webhook_attempt
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER webhook_attempt_tenant_delete BEFORE DELETE ON webhook_attempt
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
