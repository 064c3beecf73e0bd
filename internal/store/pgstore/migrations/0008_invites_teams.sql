-- Invitations and teams: three tenant tables, sealed like every other.

-- invite: an invitation to join a workspace with a role, sent by email as a
-- single-use link. Only the SHA-256 (hex) of its token is stored.
--
-- Finding the invite at accept time: the person accepting is not a member
-- yet, so nothing tells the server which workspace to look in, and a request
-- cannot use the system path. Rather than a platform lookup table (a second
-- copy of every invite, kept in step by hand, readable across tenants), the
-- token names its workspace, as an API key's secret does:
-- <workspace TypeID suffix>_<43 characters of secret>. Accepting reads the
-- invite inside that workspace's transaction, so row-level security still
-- applies; the hash covers the whole text, so editing the workspace part
-- yields a hash that matches nothing.
--
-- An invite is pending until accepted_at or revoked_at is set or expires_at
-- passes. Resending issues a new token (the old hash is overwritten, so the
-- old link dies) and a new expiry; resent_at limits resending.
CREATE TABLE invite (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    email        text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash   text        NOT NULL UNIQUE,
    invited_by   uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    resent_at    timestamptz,
    accepted_at  timestamptz,
    accepted_by  uuid,
    revoked_at   timestamptz
);
-- The invite list of a workspace, newest first.
CREATE INDEX invite_workspace_created ON invite (workspace_id, created_at DESC, id DESC);
-- "Is this address already invited here?"
CREATE INDEX invite_workspace_email ON invite (workspace_id, email);
ALTER TABLE invite ENABLE ROW LEVEL SECURITY;
ALTER TABLE invite FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invite
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- team: a named group of members. name_key is the name case-folded by the
-- application (Unicode folding, the same on both engines), so two teams of
-- one workspace cannot differ by case alone.
CREATE TABLE team (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    name_key     text        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (workspace_id, name_key)
);
-- The team list of a workspace, by ID (so, creation order); also the target
-- of team_member's foreign key, which keeps a team's members in its workspace.
CREATE UNIQUE INDEX team_workspace_id ON team (workspace_id, id);
ALTER TABLE team ENABLE ROW LEVEL SECURITY;
ALTER TABLE team FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON team
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- team_member: a member of the workspace in a team. Both foreign keys carry
-- the workspace: a team of one workspace cannot hold a member of another, and
-- ending a membership (removal, leaving, account deletion) or deleting the
-- team removes the rows with it.
CREATE TABLE team_member (
    workspace_id uuid        NOT NULL,
    team_id      uuid        NOT NULL,
    user_id      uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, team_id, user_id),
    FOREIGN KEY (workspace_id, team_id) REFERENCES team (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, user_id) REFERENCES membership (workspace_id, user_id) ON DELETE CASCADE
);
-- Serves the cascade from membership.
CREATE INDEX team_member_user ON team_member (workspace_id, user_id);
ALTER TABLE team_member ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_member FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON team_member
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());
