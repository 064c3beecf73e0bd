-- Billing: plan versions, the subscription ledger, its history, the invoice
-- mirror and the providers' events. See the PostgreSQL migration of the same
-- number for what each table and column means; subscription,
-- subscription_history and invoice are tenant tables and get the guard
-- triggers of every tenant table.

CREATE TABLE plan_version (
    id         TEXT        PRIMARY KEY,
    plan_key   TEXT        NOT NULL CHECK (length(plan_key) BETWEEN 1 AND 40),
    version    INTEGER     NOT NULL CHECK (version >= 1),
    definition TEXT        NOT NULL,
    created_at TIMESTAMP   NOT NULL
);
CREATE UNIQUE INDEX plan_version_key ON plan_version (plan_key, version);

CREATE TABLE subscription (
    workspace_id             TEXT        PRIMARY KEY REFERENCES workspace (id) ON DELETE CASCADE,
    id                       TEXT        NOT NULL UNIQUE,
    plan_key                 TEXT        NOT NULL CHECK (length(plan_key) BETWEEN 1 AND 40),
    plan_version_id          TEXT        NOT NULL REFERENCES plan_version (id),
    billing_interval         TEXT        NOT NULL CHECK (billing_interval IN ('month', 'year')),
    status                   TEXT        NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    provider                 TEXT        NOT NULL CHECK (provider IN ('none', 'sandbox', 'stripe')),
    provider_customer_id     TEXT        NOT NULL DEFAULT '',
    provider_subscription_id TEXT        NOT NULL DEFAULT '',
    provider_version         INTEGER     NOT NULL DEFAULT 0,
    currency                 TEXT        NOT NULL DEFAULT '',
    quantity                 INTEGER     NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    amount                   INTEGER     NOT NULL DEFAULT 0 CHECK (amount >= 0),
    current_period_start     TIMESTAMP,
    current_period_end       TIMESTAMP,
    cancel_at_period_end     INTEGER     NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    scheduled_plan_key       TEXT        NOT NULL DEFAULT '',
    scheduled_interval       TEXT        NOT NULL DEFAULT '',
    trial_end                TIMESTAMP,
    trial_used               INTEGER     NOT NULL DEFAULT 0 CHECK (trial_used IN (0, 1)),
    trial_extended           INTEGER     NOT NULL DEFAULT 0 CHECK (trial_extended IN (0, 1)),
    has_payment_method       INTEGER     NOT NULL DEFAULT 0 CHECK (has_payment_method IN (0, 1)),
    past_due_since           TIMESTAMP,
    dunning_step             TEXT        NOT NULL DEFAULT '' CHECK (dunning_step IN ('', 'past_due', 'downgraded', 'suspended', 'deletion_scheduled')),
    canceled_at              TIMESTAMP,
    created_at               TIMESTAMP   NOT NULL,
    updated_at               TIMESTAMP   NOT NULL
);
CREATE UNIQUE INDEX subscription_provider ON subscription (provider, provider_subscription_id) WHERE provider_subscription_id <> '';
CREATE INDEX subscription_trial_end ON subscription (trial_end) WHERE status = 'trialing';
CREATE INDEX subscription_period_end ON subscription (current_period_end) WHERE status IN ('active', 'past_due');
CREATE TRIGGER subscription_tenant_insert BEFORE INSERT ON subscription
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER subscription_tenant_update BEFORE UPDATE ON subscription
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER subscription_tenant_delete BEFORE DELETE ON subscription
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE subscription_history (
    id           TEXT        PRIMARY KEY,
    workspace_id TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    change       TEXT        NOT NULL CHECK (length(change) BETWEEN 1 AND 60),
    from_plan    TEXT        NOT NULL DEFAULT '',
    to_plan      TEXT        NOT NULL DEFAULT '',
    from_status  TEXT        NOT NULL DEFAULT '',
    to_status    TEXT        NOT NULL DEFAULT '',
    currency     TEXT        NOT NULL DEFAULT '',
    mrr_before   INTEGER     NOT NULL DEFAULT 0,
    mrr_after    INTEGER     NOT NULL DEFAULT 0,
    actor        TEXT        NOT NULL DEFAULT '',
    detail       TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMP   NOT NULL
);
CREATE INDEX subscription_history_workspace ON subscription_history (workspace_id, created_at DESC, id DESC);
CREATE INDEX subscription_history_created ON subscription_history (created_at, id);
CREATE TRIGGER subscription_history_tenant_insert BEFORE INSERT ON subscription_history
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER subscription_history_tenant_update BEFORE UPDATE ON subscription_history
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER subscription_history_tenant_delete BEFORE DELETE ON subscription_history
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE invoice (
    id                  TEXT        PRIMARY KEY,
    workspace_id        TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    provider            TEXT        NOT NULL CHECK (provider IN ('sandbox', 'stripe')),
    provider_invoice_id TEXT        NOT NULL CHECK (length(provider_invoice_id) BETWEEN 1 AND 255),
    number              TEXT        NOT NULL DEFAULT '',
    status              TEXT        NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency            TEXT        NOT NULL,
    amount_due          INTEGER     NOT NULL DEFAULT 0,
    amount_paid         INTEGER     NOT NULL DEFAULT 0,
    period_start        TIMESTAMP,
    period_end          TIMESTAMP,
    hosted_url          TEXT        NOT NULL DEFAULT '',
    lines               TEXT        NOT NULL DEFAULT '[]',
    attempt_count       INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at     TIMESTAMP,
    provider_version    INTEGER     NOT NULL DEFAULT 0,
    created_at          TIMESTAMP   NOT NULL,
    paid_at             TIMESTAMP,
    updated_at          TIMESTAMP   NOT NULL
);
CREATE UNIQUE INDEX invoice_provider ON invoice (provider, provider_invoice_id);
CREATE INDEX invoice_workspace ON invoice (workspace_id, created_at DESC, id DESC);
CREATE TRIGGER invoice_tenant_insert BEFORE INSERT ON invoice
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER invoice_tenant_update BEFORE UPDATE ON invoice
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER invoice_tenant_delete BEFORE DELETE ON invoice
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE billing_event (
    provider      TEXT        NOT NULL,
    event_id      TEXT        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    type          TEXT        NOT NULL,
    provider_type TEXT        NOT NULL DEFAULT '',
    subject_workspace_id TEXT,
    created_at    TIMESTAMP   NOT NULL,
    received_at   TIMESTAMP   NOT NULL,
    outcome       TEXT        NOT NULL DEFAULT '',
    payload       TEXT        NOT NULL DEFAULT '',
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX billing_event_workspace ON billing_event (subject_workspace_id, received_at DESC) WHERE subject_workspace_id IS NOT NULL;

CREATE TABLE acquisition_spend (
    month      TEXT        NOT NULL,
    currency   TEXT        NOT NULL CHECK (length(currency) = 3),
    amount     INTEGER     NOT NULL CHECK (amount >= 0),
    updated_at TIMESTAMP   NOT NULL,
    PRIMARY KEY (month, currency)
);
