-- Tenancy: who belongs to which workspace, with which role, and soft deletion
-- of workspaces.

-- A workspace with deleted_at set is deleted but restorable for 30 days; the
-- scheduler removes it for good after that. Until then it answers writes with
-- workspace_inactive.
ALTER TABLE workspace ADD COLUMN deleted_at timestamptz;

-- membership: a person's place in a workspace. A tenant table like any other:
-- a workspace transaction sees and writes only its own workspace's members.
CREATE TABLE membership (
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
-- "My workspaces": a person's memberships, oldest first.
CREATE INDEX membership_user ON membership (user_id, workspace_id);
ALTER TABLE membership ENABLE ROW LEVEL SECURITY;
ALTER TABLE membership FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON membership
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- Listing "my workspaces" crosses tenants, but only along one person's own
-- memberships. A third transaction-local setting, app.user_id, is set only by
-- the store's read-only user transaction (ReadAsUser) to the authenticated
-- person, and never together with app.workspace_id. These two SELECT-only
-- policies let such a transaction read that person's membership rows and the
-- workspaces those rows point at, and nothing else: no other person's
-- memberships, no other workspace, no outbox or audit row, and no write.
-- Unset (or '') matches nothing, as for app.workspace_id.
CREATE FUNCTION atrium_user_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

CREATE POLICY own_memberships ON membership FOR SELECT
    USING (user_id = atrium_user_id());
-- The IS NOT NULL test comes first so that ordinary workspace transactions,
-- where app.user_id is unset, skip the membership probe.
CREATE POLICY member_workspaces ON workspace FOR SELECT
    USING (atrium_user_id() IS NOT NULL AND EXISTS (
        SELECT 1 FROM membership m WHERE m.workspace_id = workspace.id AND m.user_id = atrium_user_id()));
