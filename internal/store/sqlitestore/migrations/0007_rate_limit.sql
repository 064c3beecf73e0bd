-- rate_limit: one row per rate-limit key (login attempts per address and per
-- account, lockouts; later request limits), kept by the storelimit backend.
-- tat is the key's "theoretical arrival time" in microseconds since the Unix
-- epoch (see internal/ratelimit): once it is past, the row means nothing and
-- is pruned. A platform table: keys that concern a workspace carry its ID in
-- the key, and no request reads another caller's row.
CREATE TABLE rate_limit (
    key  TEXT    PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 200),
    tat  INTEGER NOT NULL
);
CREATE INDEX rate_limit_tat ON rate_limit (tat);
