-- The sandbox payment provider (internal/billing/sandboxpay): the default
-- provider's own state, kept apart from Atrium's ledger exactly as Stripe's
-- is: its checkout sessions, subscriptions and invoices, the events it owes
-- the ledger, and the results of its idempotent calls. All five are tenant
-- tables. Object IDs are text in the provider's own form (cs_sbx_…,
-- sub_sbx_…, in_sbx_…, evt_sbx_…); see the package documentation.

-- sandbox_checkout: a session of the sandbox's checkout page. Its id is the
-- page's capability (it carries 128 random bits). mode 'subscription'
-- subscribes to plan_key at unit_amount (minor units of currency) per
-- billing_interval, trialing until trial_end when set; mode 'setup' is the
-- portal's page for subscription_id, where the card is changed. An open
-- session past expires_at is expired; a completed subscription session
-- names the subscription it created.
CREATE TABLE sandbox_checkout (
    id               text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id     uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    mode             text        NOT NULL CHECK (mode IN ('subscription', 'setup')),
    plan_key         text        NOT NULL DEFAULT '',
    billing_interval text        NOT NULL DEFAULT '',
    currency         text        NOT NULL DEFAULT '',
    unit_amount      bigint      NOT NULL DEFAULT 0 CHECK (unit_amount >= 0),
    trial_end        timestamptz,
    email            text        NOT NULL DEFAULT '',
    success_url      text        NOT NULL,
    cancel_url       text        NOT NULL,
    subscription_id  text        NOT NULL DEFAULT '',
    status           text        NOT NULL CHECK (status IN ('open', 'completed')),
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz
);
CREATE INDEX sandbox_checkout_workspace ON sandbox_checkout (workspace_id, created_at);
ALTER TABLE sandbox_checkout ENABLE ROW LEVEL SECURITY;
ALTER TABLE sandbox_checkout FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sandbox_checkout
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- sandbox_subscription: a subscription as the sandbox keeps it. unit_amount
-- is the price it was bought at (a catalogue change does not reprice it);
-- billing_anchor is the instant periods are counted from (the day of the
-- month a monthly period ends on). pending_plan_key and pending_interval
-- are a change waiting for the period end. card_last4 and card_behaviour
-- are what is left of the test card (never its number); fail_next_charge
-- makes the next charge fail once (simulated failures); credit_balance is
-- what downgrades left to the customer's credit, spent by the next charges.
-- version grows by one with every change and orders the views the ledger
-- receives. At most one subscription per workspace is not canceled.
CREATE TABLE sandbox_subscription (
    id                   text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id         uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    customer_id          text        NOT NULL,
    plan_key             text        NOT NULL CHECK (length(plan_key) BETWEEN 1 AND 40),
    billing_interval     text        NOT NULL CHECK (billing_interval IN ('month', 'year')),
    currency             text        NOT NULL CHECK (length(currency) = 3),
    unit_amount          bigint      NOT NULL CHECK (unit_amount >= 0),
    quantity             integer     NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    status               text        NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    billing_anchor       timestamptz NOT NULL,
    current_period_start timestamptz NOT NULL,
    current_period_end   timestamptz NOT NULL,
    cancel_at_period_end boolean     NOT NULL DEFAULT false,
    pending_plan_key     text        NOT NULL DEFAULT '',
    pending_interval     text        NOT NULL DEFAULT '',
    trial_end            timestamptz,
    card_last4           text        NOT NULL CHECK (length(card_last4) = 4),
    card_behaviour       text        NOT NULL CHECK (card_behaviour IN ('succeeds', 'fails_later')),
    fail_next_charge     boolean     NOT NULL DEFAULT false,
    credit_balance       bigint      NOT NULL DEFAULT 0 CHECK (credit_balance >= 0),
    version              bigint      NOT NULL CHECK (version >= 1),
    canceled_at          timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX sandbox_subscription_workspace ON sandbox_subscription (workspace_id, created_at);
CREATE UNIQUE INDEX sandbox_subscription_live ON sandbox_subscription (workspace_id) WHERE status <> 'canceled';
-- The renewal sweep: periods that ended.
CREATE INDEX sandbox_subscription_period_end ON sandbox_subscription (current_period_end) WHERE status <> 'canceled';
ALTER TABLE sandbox_subscription ENABLE ROW LEVEL SECURITY;
ALTER TABLE sandbox_subscription FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sandbox_subscription
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- sandbox_invoice: what the sandbox charged or tried to charge. lines is a
-- JSON array of {description, amount, proration, period_start, period_end};
-- amount_due is what the card is asked for (after credit). An open invoice
-- is retried at next_attempt_at; attempt_count counts the charges tried.
CREATE TABLE sandbox_invoice (
    id              text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id    uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    subscription_id text        NOT NULL REFERENCES sandbox_subscription (id) ON DELETE CASCADE,
    number          text        NOT NULL,
    billing_reason  text        NOT NULL CHECK (billing_reason IN ('subscription_create', 'subscription_cycle', 'subscription_update')),
    status          text        NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    currency        text        NOT NULL,
    amount_due      bigint      NOT NULL CHECK (amount_due >= 0),
    amount_paid     bigint      NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
    lines           text        NOT NULL DEFAULT '[]',
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    attempt_count   integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    version         bigint      NOT NULL CHECK (version >= 1),
    created_at      timestamptz NOT NULL,
    paid_at         timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX sandbox_invoice_workspace ON sandbox_invoice (workspace_id, subscription_id, created_at);
-- The retry sweep: open invoices whose next attempt is due.
CREATE INDEX sandbox_invoice_retry ON sandbox_invoice (next_attempt_at) WHERE status = 'open';
ALTER TABLE sandbox_invoice ENABLE ROW LEVEL SECURITY;
ALTER TABLE sandbox_invoice FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sandbox_invoice
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- sandbox_event: the events the sandbox owes the ledger, written in the
-- transaction of the change they report and deleted once the ledger has
-- them: a row is an event not yet delivered. payload is the event as the
-- ledger stores it (its raw form). attempts and last_error tell why one is
-- still here.
CREATE TABLE sandbox_event (
    id           text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 100),
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    type         text        NOT NULL,
    payload      text        NOT NULL,
    created_at   timestamptz NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text        NOT NULL DEFAULT ''
);
CREATE INDEX sandbox_event_workspace ON sandbox_event (workspace_id, created_at, id);
CREATE INDEX sandbox_event_created ON sandbox_event (created_at, id);
ALTER TABLE sandbox_event ENABLE ROW LEVEL SECURITY;
ALTER TABLE sandbox_event FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sandbox_event
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- sandbox_idempotency: the first result of each idempotency key a caller
-- sent, per workspace, for a day: a repeated key replays result (an
-- object's view, or the error it answered) without a second effect.
-- fingerprint is a hash of the operation and its parameters: the same key
-- with other parameters is refused.
CREATE TABLE sandbox_idempotency (
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  text        NOT NULL,
    result       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX sandbox_idempotency_created ON sandbox_idempotency (created_at);
ALTER TABLE sandbox_idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE sandbox_idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sandbox_idempotency
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());
