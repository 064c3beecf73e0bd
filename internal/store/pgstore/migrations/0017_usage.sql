-- Metering and quotas (internal/usage): usage per workspace, metric and
-- period, the warnings sent, and the state of a workspace over a limit.
-- usage_counter, usage_warning and usage_overage are tenant tables;
-- usage_flush is a platform table.

-- usage_counter: one row per workspace, metric and period, kept after the
-- period ends as the history a dispute is settled from. A counter metric
-- (api_calls) grows by the meter's flushes (value = value + delta); a gauge
-- (storage_bytes, members) holds the last value measured in the period.
-- period_end is the exclusive end of the period the row counts.
CREATE TABLE usage_counter (
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    metric       text        NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL CHECK (period_end > period_start),
    value        bigint      NOT NULL CHECK (value >= 0),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, metric, period_start)
);
ALTER TABLE usage_counter ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counter FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_counter
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- usage_warning: a threshold (a percentage of the limit) a workspace reached
-- in a period. The primary key makes it once per period however many nodes
-- notice it: each inserts with ON CONFLICT DO NOTHING, and only the one whose
-- insert took emits the event. used and limit_value are what they were then;
-- mailed_at is set by the node that claimed the notice mail.
CREATE TABLE usage_warning (
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    metric       text        NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
    period_start timestamptz NOT NULL,
    threshold    integer     NOT NULL CHECK (threshold IN (80, 90, 95, 100)),
    used         bigint      NOT NULL,
    limit_value  bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    mailed_at    timestamptz,
    PRIMARY KEY (workspace_id, metric, period_start, threshold)
);
ALTER TABLE usage_warning ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_warning FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_warning
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- usage_overage: a metric of a workspace over its limit. over_since is when
-- usage first exceeded the limit, and the grace period runs from it;
-- period_start is the period that was in then (a counter's row means
-- nothing once its period is over). blocked_at is when growth was first
-- refused; without_grace marks a workspace put straight into blocked
-- (usage.Service.ApplyLimits, after a downgrade). The row goes when usage is
-- back within the limit.
CREATE TABLE usage_overage (
    workspace_id  uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    metric        text        NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
    period_start  timestamptz NOT NULL,
    over_since    timestamptz NOT NULL,
    blocked_at    timestamptz,
    without_grace boolean     NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, metric)
);
ALTER TABLE usage_overage ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_overage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_overage
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- usage_flush: the batches of increments the store meter has applied,
-- written in the same transaction as the batch, so that a batch retried
-- after an error whose outcome was unknown (a commit whose answer was lost)
-- is not counted twice. Rows older than a day are pruned.
CREATE TABLE usage_flush (
    id         uuid        PRIMARY KEY,
    created_at timestamptz NOT NULL
);
CREATE INDEX usage_flush_created ON usage_flush (created_at);
