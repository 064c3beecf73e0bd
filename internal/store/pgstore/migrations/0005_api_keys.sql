-- API keys and personal access tokens: bearer secrets shown once and stored
-- only as their SHA-256 (hex), like sessions.

-- api_key: a workspace's key, a tenant table like any other. scopes is a
-- comma-separated subset of read and write. The workspace is also written into
-- the secret itself, so authentication reads this table inside that
-- workspace's transaction and row-level security still applies.
CREATE TABLE api_key (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    scopes       text        NOT NULL CHECK (scopes IN ('read', 'write', 'read,write')),
    token_hash   text        NOT NULL UNIQUE,
    prefix       text        NOT NULL,
    created_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);
-- The key list of a workspace, newest first.
CREATE INDEX api_key_workspace_created ON api_key (workspace_id, created_at DESC, id DESC);
ALTER TABLE api_key ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_key FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_key
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- personal_token: a person's access token, a platform table like
-- user_session. only_workspace_id, when set, confines the token to one
-- workspace; it is deliberately not named workspace_id, which marks tenant
-- tables (row-level security, guard triggers) and this row belongs to a person.
CREATE TABLE personal_token (
    id                uuid        PRIMARY KEY,
    user_id           uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name              text        NOT NULL,
    only_workspace_id uuid,
    token_hash        text        NOT NULL UNIQUE,
    prefix            text        NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz,
    last_used_at      timestamptz,
    revoked_at        timestamptz
);
CREATE INDEX personal_token_user_created ON personal_token (user_id, created_at DESC, id DESC);
