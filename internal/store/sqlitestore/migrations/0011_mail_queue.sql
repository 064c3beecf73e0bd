-- mail_queue: messages waiting for the SMTP server. See the PostgreSQL
-- migration of the same number; a platform table, so no guard triggers.
CREATE TABLE mail_queue (
    id              TEXT      PRIMARY KEY,
    to_addrs        TEXT      NOT NULL CHECK (json_valid(to_addrs) AND json_type(to_addrs) = 'array'),
    subject         TEXT      NOT NULL,
    text_body       TEXT      NOT NULL,
    html_body       TEXT      NOT NULL,
    tag             TEXT      NOT NULL,
    attempts        INTEGER   NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP NOT NULL,
    claimed_until   TIMESTAMP,
    last_error      TEXT      NOT NULL DEFAULT '',
    dead_at         TIMESTAMP,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at, id) WHERE dead_at IS NULL;
