-- The sandbox payment provider's own state: checkout sessions,
-- subscriptions, invoices, undelivered events and idempotent results. See
-- the PostgreSQL migration of the same number for what each table and
-- column means; all five are tenant tables and get the guard triggers of
-- every tenant table.

CREATE TABLE sandbox_checkout (
    id               TEXT        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id     TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    mode             TEXT        NOT NULL CHECK (mode IN ('subscription', 'setup')),
    plan_key         TEXT        NOT NULL DEFAULT '',
    billing_interval TEXT        NOT NULL DEFAULT '',
    currency         TEXT        NOT NULL DEFAULT '',
    unit_amount      INTEGER     NOT NULL DEFAULT 0 CHECK (unit_amount >= 0),
    trial_end        TIMESTAMP,
    email            TEXT        NOT NULL DEFAULT '',
    success_url      TEXT        NOT NULL,
    cancel_url       TEXT        NOT NULL,
    subscription_id  TEXT        NOT NULL DEFAULT '',
    status           TEXT        NOT NULL CHECK (status IN ('open', 'completed')),
    expires_at       TIMESTAMP   NOT NULL,
    created_at       TIMESTAMP   NOT NULL,
    completed_at     TIMESTAMP
);
CREATE INDEX sandbox_checkout_workspace ON sandbox_checkout (workspace_id, created_at);
CREATE TRIGGER sandbox_checkout_tenant_insert BEFORE INSERT ON sandbox_checkout
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_checkout_tenant_update BEFORE UPDATE ON sandbox_checkout
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_checkout_tenant_delete BEFORE DELETE ON sandbox_checkout
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE sandbox_subscription (
    id                   TEXT        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id         TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    customer_id          TEXT        NOT NULL,
    plan_key             TEXT        NOT NULL CHECK (length(plan_key) BETWEEN 1 AND 40),
    billing_interval     TEXT        NOT NULL CHECK (billing_interval IN ('month', 'year')),
    currency             TEXT        NOT NULL CHECK (length(currency) = 3),
    unit_amount          INTEGER     NOT NULL CHECK (unit_amount >= 0),
    quantity             INTEGER     NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    status               TEXT        NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    billing_anchor       TIMESTAMP   NOT NULL,
    current_period_start TIMESTAMP   NOT NULL,
    current_period_end   TIMESTAMP   NOT NULL,
    cancel_at_period_end INTEGER     NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    pending_plan_key     TEXT        NOT NULL DEFAULT '',
    pending_interval     TEXT        NOT NULL DEFAULT '',
    trial_end            TIMESTAMP,
    card_last4           TEXT        NOT NULL CHECK (length(card_last4) = 4),
    card_behaviour       TEXT        NOT NULL CHECK (card_behaviour IN ('succeeds', 'fails_later')),
    fail_next_charge     INTEGER     NOT NULL DEFAULT 0 CHECK (fail_next_charge IN (0, 1)),
    credit_balance       INTEGER     NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
    version              INTEGER     NOT NULL CHECK (version >= 1),
    canceled_at          TIMESTAMP,
    created_at           TIMESTAMP   NOT NULL,
    updated_at           TIMESTAMP   NOT NULL
);
CREATE INDEX sandbox_subscription_workspace ON sandbox_subscription (workspace_id, created_at);
CREATE UNIQUE INDEX sandbox_subscription_live ON sandbox_subscription (workspace_id) WHERE status <> 'canceled';
CREATE INDEX sandbox_subscription_period_end ON sandbox_subscription (current_period_end) WHERE status <> 'canceled';
CREATE TRIGGER sandbox_subscription_tenant_insert BEFORE INSERT ON sandbox_subscription
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_subscription_tenant_update BEFORE UPDATE ON sandbox_subscription
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_subscription_tenant_delete BEFORE DELETE ON sandbox_subscription
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE sandbox_invoice (
    id              TEXT        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id    TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    subscription_id TEXT        NOT NULL REFERENCES sandbox_subscription (id) ON DELETE CASCADE,
    number          TEXT        NOT NULL,
    billing_reason  TEXT        NOT NULL CHECK (billing_reason IN ('subscription_create', 'subscription_cycle', 'subscription_update')),
    status          TEXT        NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    currency        TEXT        NOT NULL,
    amount_due      INTEGER     NOT NULL CHECK (amount_due >= 0),
    amount_paid     INTEGER     NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    lines           TEXT        NOT NULL DEFAULT '[]',
    period_start    TIMESTAMP   NOT NULL,
    period_end      TIMESTAMP   NOT NULL,
    attempt_count   INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    version         INTEGER     NOT NULL CHECK (version >= 1),
    created_at      TIMESTAMP   NOT NULL,
    paid_at         TIMESTAMP,
    updated_at      TIMESTAMP   NOT NULL
);
CREATE INDEX sandbox_invoice_workspace ON sandbox_invoice (workspace_id, subscription_id, created_at);
CREATE INDEX sandbox_invoice_retry ON sandbox_invoice (next_attempt_at) WHERE status = 'open';
CREATE TRIGGER sandbox_invoice_tenant_insert BEFORE INSERT ON sandbox_invoice
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_invoice_tenant_update BEFORE UPDATE ON sandbox_invoice
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_invoice_tenant_delete BEFORE DELETE ON sandbox_invoice
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE sandbox_event (
    id           TEXT        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    type         TEXT        NOT NULL,
    payload      TEXT        NOT NULL,
    created_at   TIMESTAMP   NOT NULL,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    last_error   TEXT        NOT NULL DEFAULT ''
);
CREATE INDEX sandbox_event_workspace ON sandbox_event (workspace_id, created_at, id);
CREATE INDEX sandbox_event_created ON sandbox_event (created_at, id);
CREATE TRIGGER sandbox_event_tenant_insert BEFORE INSERT ON sandbox_event
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_event_tenant_update BEFORE UPDATE ON sandbox_event
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_event_tenant_delete BEFORE DELETE ON sandbox_event
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;

CREATE TABLE sandbox_idempotency (
    workspace_id TEXT        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    key          TEXT        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  TEXT        NOT NULL,
    result       TEXT        NOT NULL,
    created_at   TIMESTAMP   NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX sandbox_idempotency_created ON sandbox_idempotency (created_at);
CREATE TRIGGER sandbox_idempotency_tenant_insert BEFORE INSERT ON sandbox_idempotency
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND NEW.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_idempotency_tenant_update BEFORE UPDATE ON sandbox_idempotency
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND (OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context) OR NEW.workspace_id IS NOT OLD.workspace_id)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
CREATE TRIGGER sandbox_idempotency_tenant_delete BEFORE DELETE ON sandbox_idempotency
WHEN NOT (SELECT bypass FROM atrium_tenant_context)
 AND OLD.workspace_id IS NOT (SELECT workspace_id FROM atrium_tenant_context)
BEGIN SELECT RAISE(ABORT, 'row belongs to another workspace'); END;
