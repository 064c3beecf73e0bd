-- Billing: the plan versions, Atrium's own subscription ledger, its history,
-- the invoice mirror and the payment providers' events.

-- plan_version: every plan of the catalogue as it was when a workspace
-- subscribed. At start the catalogue is compared with each plan's latest
-- version (definition is the plan's canonical JSON, kept as text so that the
-- comparison is byte for byte) and a changed plan gets a new version. A
-- subscription keeps the version it was bought at, so a price change never
-- silently changes what an existing subscriber pays. A platform table.
CREATE TABLE plan_version (
    id         uuid        PRIMARY KEY,
    plan_key   text        NOT NULL CHECK (length(plan_key) BETWEEN 1 AND 40),
    version    integer     NOT NULL CHECK (version >= 1),
    definition text        NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX plan_version_key ON plan_version (plan_key, version);

-- subscription: the one current subscription of a workspace (a workspace
-- without a row is on the default plan). plan_key and plan_version_id say
-- what it is on now; amount is what it pays per interval (minor units of
-- currency), for revenue metrics. currency is fixed at the first paid
-- subscription and kept after a cancellation. scheduled_plan_key is a
-- downgrade waiting for the period end. dunning_step records how far an
-- unpaid subscription has gone (past_due → downgraded → suspended →
-- deletion_scheduled), each step taken once. provider_version is the
-- Version of the provider's view applied last: an older view is ignored.
CREATE TABLE subscription (
    workspace_id             uuid        PRIMARY KEY REFERENCES workspace (id) ON DELETE CASCADE,
    id                       uuid        NOT NULL UNIQUE,
    plan_key                 text        NOT NULL CHECK (length(plan_key) BETWEEN 1 AND 40),
    plan_version_id          uuid        NOT NULL REFERENCES plan_version (id),
    billing_interval         text        NOT NULL CHECK (billing_interval IN ('month', 'year')),
    status                   text        NOT NULL CHECK (status IN ('trialing', 'active', 'past_due', 'canceled')),
    provider                 text        NOT NULL CHECK (provider IN ('none', 'sandbox', 'stripe')),
    provider_customer_id     text        NOT NULL DEFAULT '',
    provider_subscription_id text        NOT NULL DEFAULT '',
    provider_version         bigint      NOT NULL DEFAULT 0,
    currency                 text        NOT NULL DEFAULT '',
    quantity                 integer     NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    amount                   bigint      NOT NULL DEFAULT 0 CHECK (amount >= 0),
    current_period_start     timestamptz,
    current_period_end       timestamptz,
    cancel_at_period_end     boolean     NOT NULL DEFAULT false,
    scheduled_plan_key       text        NOT NULL DEFAULT '',
    scheduled_interval       text        NOT NULL DEFAULT '',
    trial_end                timestamptz,
    trial_used               boolean     NOT NULL DEFAULT false,
    trial_extended           boolean     NOT NULL DEFAULT false,
    has_payment_method       boolean     NOT NULL DEFAULT false,
    past_due_since           timestamptz,
    dunning_step             text        NOT NULL DEFAULT '' CHECK (dunning_step IN ('', 'past_due', 'downgraded', 'suspended', 'deletion_scheduled')),
    canceled_at              timestamptz,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);
CREATE UNIQUE INDEX subscription_provider ON subscription (provider, provider_subscription_id) WHERE provider_subscription_id <> '';
-- The sweeps: trials ending, periods ending, unpaid subscriptions.
CREATE INDEX subscription_trial_end ON subscription (trial_end) WHERE status = 'trialing';
CREATE INDEX subscription_period_end ON subscription (current_period_end) WHERE status IN ('active', 'past_due');
ALTER TABLE subscription ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscription FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscription
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- subscription_history: one row per change of a subscription, with the
-- recurring revenue before and after it (normalised to a month, minor units),
-- from which the revenue metrics are computed. change names what happened
-- (trial_started, upgraded, canceled, …); actor is who did it ("system",
-- "provider:stripe", a usr_… ID).
CREATE TABLE subscription_history (
    id           uuid        PRIMARY KEY,
    workspace_id uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    change       text        NOT NULL CHECK (length(change) BETWEEN 1 AND 60),
    from_plan    text        NOT NULL DEFAULT '',
    to_plan      text        NOT NULL DEFAULT '',
    from_status  text        NOT NULL DEFAULT '',
    to_status    text        NOT NULL DEFAULT '',
    currency     text        NOT NULL DEFAULT '',
    mrr_before   bigint      NOT NULL DEFAULT 0,
    mrr_after    bigint      NOT NULL DEFAULT 0,
    actor        text        NOT NULL DEFAULT '',
    detail       text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL
);
CREATE INDEX subscription_history_workspace ON subscription_history (workspace_id, created_at DESC, id DESC);
CREATE INDEX subscription_history_created ON subscription_history (created_at, id);
ALTER TABLE subscription_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscription_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subscription_history
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- invoice: the provider's invoices, mirrored. lines is a JSON array of
-- {description, amount, proration, period_start, period_end}.
CREATE TABLE invoice (
    id                  uuid        PRIMARY KEY,
    workspace_id        uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    provider            text        NOT NULL CHECK (provider IN ('sandbox', 'stripe')),
    provider_invoice_id text        NOT NULL CHECK (length(provider_invoice_id) BETWEEN 1 AND 255),
    number              text        NOT NULL DEFAULT '',
    status              text        NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    currency            text        NOT NULL,
    amount_due          bigint      NOT NULL DEFAULT 0,
    amount_paid         bigint      NOT NULL DEFAULT 0,
    period_start        timestamptz,
    period_end          timestamptz,
    hosted_url          text        NOT NULL DEFAULT '',
    lines               text        NOT NULL DEFAULT '[]',
    attempt_count       integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    provider_version    bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    paid_at             timestamptz,
    updated_at          timestamptz NOT NULL
);
CREATE UNIQUE INDEX invoice_provider ON invoice (provider, provider_invoice_id);
CREATE INDEX invoice_workspace ON invoice (workspace_id, created_at DESC, id DESC);
ALTER TABLE invoice ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invoice
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- billing_event: every event a payment provider sent, stored in the
-- transaction that applies it: the primary key is what makes an event
-- delivered twice, even concurrently, apply once. Kept for disputes. A
-- platform table: an event may name no workspace (ignored types), and
-- subject_workspace_id (the workspace the event is about) has no foreign key
-- so the record outlives a purge, and is not named workspace_id: this is not
-- a tenant table, and the webhook that stores it runs outside any workspace.
CREATE TABLE billing_event (
    provider      text        NOT NULL,
    event_id      text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
    type          text        NOT NULL,
    provider_type text        NOT NULL DEFAULT '',
    subject_workspace_id uuid,
    created_at    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    outcome       text        NOT NULL DEFAULT '',
    payload       text        NOT NULL DEFAULT '',
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX billing_event_workspace ON billing_event (subject_workspace_id, received_at DESC) WHERE subject_workspace_id IS NOT NULL;

-- acquisition_spend: what operators spent to acquire customers in a month
-- (minor units of currency), for CAC. A platform table.
CREATE TABLE acquisition_spend (
    month      date        NOT NULL,
    currency   text        NOT NULL CHECK (length(currency) = 3),
    amount     bigint      NOT NULL CHECK (amount >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (month, currency)
);
