-- Events and jobs. See the PostgreSQL migration of the same number; job is a
-- tenant table and gets the guard triggers of every tenant table.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'event' CHECK (kind IN ('event', 'job'));

CREATE TABLE job (
    id               TEXT      PRIMARY KEY,
    workspace_id     TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    kind             TEXT      NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    status           TEXT      NOT NULL CHECK (status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled')),
    payload          TEXT      NOT NULL CHECK (json_valid(payload)),
    attempts         INTEGER   NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    progress         INTEGER   NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    result           TEXT      CHECK (result IS NULL OR json_valid(result)),
    error            TEXT      NOT NULL DEFAULT '',
    cancel_requested_at TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    started_at       TIMESTAMP,
    finished_at      TIMESTAMP
);
CREATE INDEX job_workspace_created ON job (workspace_id, created_at DESC, id DESC);
CREATE INDEX job_finished ON job (finished_at) WHERE finished_at IS NOT NULL;
CREATE TRIGGER job_tenant_insert BEFORE INSERT ON job
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER job_tenant_update BEFORE UPDATE ON job
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER job_tenant_delete BEFORE DELETE ON job
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
