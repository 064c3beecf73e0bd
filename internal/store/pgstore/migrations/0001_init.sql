-- Row-level security is bound to two transaction-local settings:
--   app.workspace_id  the workspace a transaction may see (empty or unset: none)
--   app.bypass_rls    'on' only inside the store's logged system path
-- After a transaction-local set, a pooled connection shows '' rather than NULL,
-- so both functions treat '' as unset.
CREATE FUNCTION atrium_workspace_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.workspace_id', true), '')::uuid $$;

CREATE FUNCTION atrium_bypass_rls() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('app.bypass_rls', true), '') = 'on' $$;

CREATE FUNCTION atrium_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$;

-- workspace is the tenant itself: its own id is its tenant key.
CREATE TABLE workspace (
    id          uuid        PRIMARY KEY,
    slug        text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
ALTER TABLE workspace ENABLE ROW LEVEL SECURITY;
ALTER TABLE workspace FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON workspace
    USING (id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (id = atrium_workspace_id() OR atrium_bypass_rls());

-- audit_log: workspace entries are visible to their workspace; platform entries
-- (workspace_id NULL) only through the system path. Nobody updates or deletes.
CREATE TABLE audit_log (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        REFERENCES workspace (id) ON DELETE RESTRICT,
    actor_type   text        NOT NULL,
    actor_id     text        NOT NULL,
    action       text        NOT NULL,
    target_type  text        NOT NULL,
    target_id    text        NOT NULL,
    metadata     jsonb       NOT NULL,
    ip           text        NOT NULL,
    user_agent   text        NOT NULL,
    request_id   text        NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX audit_log_workspace_created ON audit_log (workspace_id, created_at DESC, id DESC);
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_log FOR SELECT
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());
CREATE POLICY tenant_append ON audit_log FOR INSERT
    WITH CHECK (workspace_id IS NULL OR workspace_id = atrium_workspace_id() OR atrium_bypass_rls());
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION atrium_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION atrium_append_only();

-- outbox: events written in the same transaction as the change that caused them;
-- the relay publishes them through the system path.
CREATE TABLE outbox (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    event_type   text        NOT NULL,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL,
    sent_at      timestamptz
);
CREATE INDEX outbox_workspace_created ON outbox (workspace_id, created_at, id);
CREATE INDEX outbox_unsent ON outbox (created_at, id) WHERE sent_at IS NULL;
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- idempotency_key: a platform table, scoped by the caller (actor and workspace).
CREATE TABLE idempotency_key (
    scope           text        NOT NULL,
    key             text        NOT NULL,
    fingerprint     text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('running', 'done')),
    claim           text        NOT NULL,
    response_status integer     NOT NULL,
    response_type   text        NOT NULL,
    response_body   bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    locked_until    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_key_expires ON idempotency_key (expires_at);
