-- The scheduler, platform admins, the cleanups' indexes, and a workspace's
-- audit log going with the workspace. See the PostgreSQL migration of the
-- same number; the scheduler tables are platform tables, so no guard
-- triggers apply to them.
CREATE TABLE scheduler_lease (
    name       TEXT      PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    holder     TEXT      NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    expires_at TIMESTAMP NOT NULL
);

CREATE TABLE scheduler_task (
    name        TEXT      PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    every_ms    INTEGER   NOT NULL CHECK (every_ms > 0),
    next_run_at TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE scheduler_run (
    id           TEXT      PRIMARY KEY,
    task         TEXT      NOT NULL REFERENCES scheduler_task (name) ON DELETE CASCADE,
    node         TEXT      NOT NULL,
    scheduled_at TIMESTAMP NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    duration_ms  INTEGER   CHECK (duration_ms >= 0),
    error        TEXT      NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX scheduler_run_task_scheduled ON scheduler_run (task, scheduled_at);
CREATE INDEX scheduler_run_task_started ON scheduler_run (task, started_at DESC, id DESC);
CREATE INDEX scheduler_run_started ON scheduler_run (started_at DESC, id DESC);

ALTER TABLE app_user ADD COLUMN platform_admin_at TIMESTAMP;

CREATE INDEX workspace_deleted ON workspace (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX app_user_deleted ON app_user (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX user_session_expires ON user_session (expires_at);
CREATE INDEX user_token_expires ON user_token (expires_at);
CREATE INDEX email_change_expires ON email_change (expires_at);
CREATE INDEX mfa_challenge_expires ON mfa_challenge (expires_at);
CREATE INDEX invite_expires ON invite (expires_at) WHERE accepted_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- SQLite cannot alter a foreign key, so audit_log is rebuilt with ON DELETE
-- CASCADE: same columns in the same order, its rows copied, its indexes and
-- triggers made again. Dropping the old table fires no trigger and checks no
-- key (nothing references audit_log). The delete guard lets through only
-- the cascade of a workspace's deletion, recognised by the workspace being
-- gone; no other DELETE, and no UPDATE, passes.
CREATE TABLE audit_log_rebuilt (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      REFERENCES workspace (id) ON DELETE CASCADE,
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
INSERT INTO audit_log_rebuilt (id, workspace_id, actor_type, actor_id, action, target_type, target_id, metadata,
    ip, user_agent, request_id, created_at)
SELECT id, workspace_id, actor_type, actor_id, action, target_type, target_id, metadata,
    ip, user_agent, request_id, created_at FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_rebuilt RENAME TO audit_log;

CREATE INDEX audit_log_workspace_created ON audit_log (workspace_id, created_at DESC, id DESC);
CREATE INDEX audit_log_workspace_action ON audit_log (workspace_id, action, created_at DESC, id DESC);
CREATE INDEX audit_log_workspace_actor ON audit_log (workspace_id, actor_id, created_at DESC, id DESC);
CREATE TRIGGER audit_log_tenant_insert BEFORE INSERT ON audit_log
WHEN NOT (SELECT bypass FROM atrium_tenant_context) AND NEW.workspace_id IS NOT NULL
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.workspace_id IS NULL OR EXISTS (SELECT 1 FROM workspace WHERE id = OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
