-- Invitations and teams. See the PostgreSQL migration of the same number
-- (why an invite token names its workspace, what name_key is); all three are
-- tenant tables and get the guard triggers of every tenant table.

CREATE TABLE invite (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    email        TEXT      NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role         TEXT      NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash   TEXT      NOT NULL UNIQUE,
    invited_by   TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    resent_at    TIMESTAMP,
    accepted_at  TIMESTAMP,
    accepted_by  TEXT,
    revoked_at   TIMESTAMP
);
CREATE INDEX invite_workspace_created ON invite (workspace_id, created_at DESC, id DESC);
CREATE INDEX invite_workspace_email ON invite (workspace_id, email);
CREATE TRIGGER invite_tenant_insert BEFORE INSERT ON invite
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER invite_tenant_update BEFORE UPDATE ON invite
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER invite_tenant_delete BEFORE DELETE ON invite
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE team (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         TEXT      NOT NULL,
    name_key     TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (workspace_id, name_key)
);
CREATE UNIQUE INDEX team_workspace_id ON team (workspace_id, id);
CREATE TRIGGER team_tenant_insert BEFORE INSERT ON team
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER team_tenant_update BEFORE UPDATE ON team
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER team_tenant_delete BEFORE DELETE ON team
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE team_member (
    workspace_id TEXT      NOT NULL,
    team_id      TEXT      NOT NULL,
    user_id      TEXT      NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, team_id, user_id),
    FOREIGN KEY (workspace_id, team_id) REFERENCES team (workspace_id, id) ON DELETE CASCADE,
    FOREIGN KEY (workspace_id, user_id) REFERENCES membership (workspace_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX team_member_user ON team_member (workspace_id, user_id);
CREATE TRIGGER team_member_tenant_insert BEFORE INSERT ON team_member
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER team_member_tenant_update BEFORE UPDATE ON team_member
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER team_member_tenant_delete BEFORE DELETE ON team_member
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
