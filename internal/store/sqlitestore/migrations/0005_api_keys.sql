-- API keys and personal access tokens. See the PostgreSQL migration of the
-- same number; api_key gets the guard triggers of every tenant table, and
-- personal_token is a platform table like user_session.

CREATE TABLE api_key (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         TEXT      NOT NULL,
    scopes       TEXT      NOT NULL CHECK (scopes IN ('read', 'write', 'read,write')),
    token_hash   TEXT      NOT NULL UNIQUE,
    prefix       TEXT      NOT NULL,
    created_by   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);
CREATE INDEX api_key_workspace_created ON api_key (workspace_id, created_at DESC, id DESC);
CREATE TRIGGER api_key_tenant_insert BEFORE INSERT ON api_key
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER api_key_tenant_update BEFORE UPDATE ON api_key
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER api_key_tenant_delete BEFORE DELETE ON api_key
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE personal_token (
    id                TEXT      PRIMARY KEY,
    user_id           TEXT      NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name              TEXT      NOT NULL,
    only_workspace_id TEXT,
    token_hash        TEXT      NOT NULL UNIQUE,
    prefix            TEXT      NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    expires_at        TIMESTAMP,
    last_used_at      TIMESTAMP,
    revoked_at        TIMESTAMP
);
CREATE INDEX personal_token_user_created ON personal_token (user_id, created_at DESC, id DESC);
