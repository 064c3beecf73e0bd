-- Outgoing webhooks: a workspace's endpoints, the deliveries of events to
-- them and every attempt of each delivery. All three are tenant tables.

-- webhook_endpoint: where a workspace's events go. secret and
-- previous_secret are sealed (AES-GCM under a key derived from the app
-- secret, bound to the endpoint's ID); the previous secret still signs until
-- previous_secret_expires_at, so a receiver can switch over. event_types is a
-- JSON array of exact types and "prefix.*" patterns; empty means every type.
-- An endpoint is enabled while disabled_at is NULL; disabled_reason says who
-- disabled it: a person (manual), the receiver answering 410 (gone), or
-- Atrium after it kept failing since failing_since (failing).
CREATE TABLE webhook_endpoint (
    id                         uuid        PRIMARY KEY,
    workspace_id               uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    url                        text        NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                text        NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types                jsonb       NOT NULL,
    secret                     text        NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    disabled_at                timestamptz,
    disabled_reason            text        NOT NULL DEFAULT '' CHECK (disabled_reason IN ('', 'manual', 'gone', 'failing')),
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL
);
CREATE INDEX webhook_endpoint_workspace ON webhook_endpoint (workspace_id, id);
ALTER TABLE webhook_endpoint ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoint FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoint
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- webhook_delivery: one event on its way to one endpoint. body is the exact
-- JSON sent (signed afresh at every attempt). An event is delivered at most
-- once per endpoint, however often the bus hands it over: the unique index
-- makes the fan-out's INSERT … ON CONFLICT DO NOTHING a no-op the second
-- time. A replay is a new delivery of the same event (replay_of names the
-- original, with no foreign key: deliveries go only with their endpoint).
-- status moves pending → succeeded or failed.
CREATE TABLE webhook_delivery (
    id               uuid        PRIMARY KEY,
    workspace_id     uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 200),
    body             text        NOT NULL,
    replay_of        uuid,
    status           text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status_code integer,
    last_error       text        NOT NULL DEFAULT '',
    last_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX webhook_delivery_event ON webhook_delivery (endpoint_id, event_id) WHERE replay_of IS NULL;
CREATE INDEX webhook_delivery_endpoint ON webhook_delivery (workspace_id, endpoint_id, id DESC);
-- Settled deliveries by age, for the retention cleanup (webhooks.DeleteOldDeliveries).
CREATE INDEX webhook_delivery_settled ON webhook_delivery (updated_at) WHERE status <> 'pending';
ALTER TABLE webhook_delivery ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_delivery FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_delivery
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());

-- webhook_attempt: one HTTP request of a delivery and what came of it.
-- status_code is NULL when no response arrived (refused address, timeout);
-- response_body keeps at most the first KiB of the answer.
CREATE TABLE webhook_attempt (
    id            uuid        PRIMARY KEY,
    workspace_id  uuid        NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    delivery_id   uuid        NOT NULL REFERENCES webhook_delivery (id) ON DELETE CASCADE,
    attempt       integer     NOT NULL CHECK (attempt >= 1),
    status_code   integer,
    duration_ms   integer     NOT NULL CHECK (duration_ms >= 0),
    error         text        NOT NULL DEFAULT '',
    response_body text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX webhook_attempt_delivery ON webhook_attempt (workspace_id, delivery_id, attempt);
ALTER TABLE webhook_attempt ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_attempt FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_attempt
    USING (workspace_id = atrium_workspace_id() OR atrium_bypass_rls())
    WITH CHECK (workspace_id = atrium_workspace_id() OR atrium_bypass_rls());
