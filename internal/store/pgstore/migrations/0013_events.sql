-- Events and jobs. The outbox already carries events; a job is enqueued the
-- same way (a row written in the transaction that causes it, published by the
-- relay), so a job commits with the data that caused it or not at all. kind
-- tells the relay which stream a row goes to.
ALTER TABLE outbox ADD COLUMN kind text NOT NULL DEFAULT 'event' CHECK (kind IN ('event', 'job'));

-- job: the record of one job, which its workspace's people may read and
-- cancel. status moves queued → running → succeeded, or through retrying back
-- to running, and ends at succeeded, failed (attempts exhausted or a
-- permanent error; the message went to the dead-letter stream) or canceled.
-- The worker skips a job whose record is already final: that is what makes a
-- redelivered message (after a crash between the work and the ack) harmless.
CREATE TABLE job (
    id               uuid        PRIMARY KEY,
    workspace_id     uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    kind             text        NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    status           text        NOT NULL CHECK (status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled')),
    payload          jsonb       NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    progress         integer     NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    result           jsonb,
    error            text        NOT NULL DEFAULT '',
    cancel_requested_at timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX job_workspace_created ON job (workspace_id, created_at DESC, id DESC);
CREATE INDEX job_finished ON job (finished_at) WHERE finished_at IS NOT NULL;
ALTER TABLE job ENABLE ROW LEVEL SECURITY;
ALTER TABLE job FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());
