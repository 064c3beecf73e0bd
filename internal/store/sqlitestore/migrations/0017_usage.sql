-- Metering and quotas. See the PostgreSQL migration of the same number for
-- what each table and column means; usage_counter, usage_warning and
-- usage_overage are tenant tables and get the guard triggers of every tenant
-- table; usage_flush is a platform table.

CREATE TABLE usage_counter (
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    metric       TEXT      NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
    period_start TIMESTAMP NOT NULL,
    period_end   TIMESTAMP NOT NULL CHECK (period_end > period_start),
    value        INTEGER   NOT NULL CHECK (value >= 0),
    updated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, metric, period_start)
);
CREATE TRIGGER usage_counter_tenant_insert BEFORE INSERT ON usage_counter
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER usage_counter_tenant_update BEFORE UPDATE ON usage_counter
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER usage_counter_tenant_delete BEFORE DELETE ON usage_counter
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE usage_warning (
    workspace_id TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    metric       TEXT      NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
    period_start TIMESTAMP NOT NULL,
    threshold    INTEGER   NOT NULL CHECK (threshold IN (80, 90, 95, 100)),
    used         INTEGER   NOT NULL,
    limit_value  INTEGER   NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    mailed_at    TIMESTAMP,
    PRIMARY KEY (workspace_id, metric, period_start, threshold)
);
CREATE TRIGGER usage_warning_tenant_insert BEFORE INSERT ON usage_warning
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER usage_warning_tenant_update BEFORE UPDATE ON usage_warning
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER usage_warning_tenant_delete BEFORE DELETE ON usage_warning
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE usage_overage (
    workspace_id  TEXT      NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    metric        TEXT      NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
    period_start  TIMESTAMP NOT NULL,
    over_since    TIMESTAMP NOT NULL,
    blocked_at    TIMESTAMP,
    without_grace INTEGER   NOT NULL DEFAULT 0 CHECK (without_grace IN (0, 1)),
    updated_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (workspace_id, metric)
);
CREATE TRIGGER usage_overage_tenant_insert BEFORE INSERT ON usage_overage
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER usage_overage_tenant_update BEFORE UPDATE ON usage_overage
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER usage_overage_tenant_delete BEFORE DELETE ON usage_overage
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE usage_flush (
    id         TEXT      PRIMARY KEY,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX usage_flush_created ON usage_flush (created_at);
