-- mail_queue: messages waiting for the SMTP server. Mailer.Send inserts a row
-- and returns at once, so no request waits on a remote server and no response
-- time tells whether an address has an account; a worker on every node claims
-- due rows, sends them and deletes each on success (a body may hold a
-- single-use link: it must not linger). A platform table: mail is addressed to
-- people, not workspaces.
--
-- attempts counts claims; claimed_until is the lease of the worker sending the
-- row, after which another node may take it over; last_error is the latest
-- failure, never any of the message's content; a row that has failed too often
-- gets dead_at and loses its bodies.
CREATE TABLE mail_queue (
    id              uuid        PRIMARY KEY,
    to_addrs        text        NOT NULL CHECK (jsonb_typeof(to_addrs::jsonb) = 'array'),
    subject         text        NOT NULL,
    text_body       text        NOT NULL,
    html_body       text        NOT NULL,
    tag             text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    claimed_until   timestamptz,
    last_error      text        NOT NULL DEFAULT '',
    dead_at         timestamptz,
    created_at      timestamptz NOT NULL
);
-- The claim query: live rows by due time.
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at, id) WHERE dead_at IS NULL;
