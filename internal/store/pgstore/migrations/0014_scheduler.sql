-- The scheduler: periodic tasks (hard deletes, cleanups; later trial ends,
-- dunning steps, usage recalculation) run by one node at a time, and a record
-- of every run. The three scheduler tables are platform tables: the scheduler
-- works across workspaces and belongs to none, so no row-level security
-- applies, and nothing in them names a workspace.

-- scheduler_lease: who leads. A node takes the row when it is free, expired
-- or already its own (one conditional upsert), and renews it every third of
-- its lifetime; a leader that cannot renew stops running tasks. holder is
-- the node's name (ATRIUM_NODE_ID). Expiry is judged by the nodes' clocks, so
-- the lease lifetime must dwarf their skew.
CREATE TABLE scheduler_lease (
    name       text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    holder     text        NOT NULL CHECK (length(holder) BETWEEN 1 AND 200),
    expires_at timestamptz NOT NULL
);

-- scheduler_task: one row per registered task. next_run_at is its next tick.
-- A run is claimed by moving next_run_at from the value the claimer read to
-- the following tick (compare and set), so of any number of nodes that
-- believe they lead, exactly one claims each tick. A task is due at once when
-- a leader first records it; ticks then advance from the scheduled time,
-- skipping the ones missed while no node led. every_ms is the interval
-- next_run_at was computed with: when a release changes a task's interval,
-- the leader makes it due at once and counts the new interval from there.
CREATE TABLE scheduler_task (
    name        text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    every_ms    bigint      NOT NULL CHECK (every_ms > 0),
    next_run_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- scheduler_run: one row per run, inserted in the transaction that claims
-- the tick and completed when the task returns. finished_at and duration_ms
-- stay NULL while it runs (or for good, if its node died meanwhile); error is
-- empty on success. scheduled_at is the tick the run is for, unique per task:
-- a second guard against running one tick twice.
CREATE TABLE scheduler_run (
    id           uuid        PRIMARY KEY,
    task         text        NOT NULL REFERENCES scheduler_task (name) ON DELETE CASCADE,
    node         text        NOT NULL,
    scheduled_at timestamptz NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    duration_ms  bigint      CHECK (duration_ms >= 0),
    error        text        NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX scheduler_run_task_scheduled ON scheduler_run (task, scheduled_at);
-- The run lists, newest first: one task's, and everyone's.
CREATE INDEX scheduler_run_task_started ON scheduler_run (task, started_at DESC, id DESC);
CREATE INDEX scheduler_run_started ON scheduler_run (started_at DESC, id DESC);

-- Platform admins run the deployment itself: they read the scheduler's runs
-- and the relay's lag now, and the admin console later. platform_admin_at is
-- when the right was granted, NULL for everyone else; only the operator's
-- command line (atrium admin grant|revoke) changes it, never the API.
ALTER TABLE app_user ADD COLUMN platform_admin_at timestamptz;

-- The scheduled cleanups find their rows through these. None serves a
-- tenant's list, so none starts with workspace_id: each serves one sweep
-- across workspaces (or across people) through the system path.
CREATE INDEX workspace_deleted ON workspace (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX app_user_deleted ON app_user (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX user_session_expires ON user_session (expires_at);
CREATE INDEX user_token_expires ON user_token (expires_at);
CREATE INDEX email_change_expires ON email_change (expires_at);
CREATE INDEX mfa_challenge_expires ON mfa_challenge (expires_at);
CREATE INDEX invite_expires ON invite (expires_at) WHERE accepted_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- A workspace's audit log goes with the workspace. The scheduler deletes a
-- workspace for good 30 days after its owner deleted it, and its tenant rows
-- follow by ON DELETE CASCADE; the audit log, which refused that (RESTRICT),
-- now follows too, and the purge leaves a platform entry (workspace_id NULL)
-- in its place. Otherwise the log stays append-only: its guard refuses every
-- UPDATE, and every DELETE but the cascade, recognised by its workspace
-- being gone. The application role holds no DELETE on the table anyway
-- (pgstore.grantApp); the cascade runs as the table's owner.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_workspace_id_fkey;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_workspace_id_fkey
    FOREIGN KEY (workspace_id) REFERENCES workspace (id) ON DELETE CASCADE;

CREATE FUNCTION atrium_audit_log_guard() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.workspace_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM workspace WHERE id = OLD.workspace_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

DROP TRIGGER audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION atrium_audit_log_guard();
