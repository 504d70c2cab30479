-- Mail and account recovery: the single-use tokens of e-mail verification and password reset,
-- and the outbox the mail worker sends from. Additive only.

-- A token is stored only as its lowercase hex SHA-256 (256 random bits: a plain hash suffices).
-- `email` is the address it was issued for: a verification counts only while the user still
-- has it. A newer token of the same purpose replaces the user's unused ones.
CREATE TABLE mail_tokens (
    token_hash text PRIMARY KEY,
    purpose    text NOT NULL,               -- 'email_verification' or 'password_reset'
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX mail_tokens_user ON mail_tokens (user_id, purpose);
CREATE INDEX mail_tokens_expires_at ON mail_tokens (expires_at);

-- The outbox: a mail is inserted in the same commit as the token it carries, claimed by one
-- worker at a time (`locked_until`, a lease), retried with backoff until sent, never deleted
-- unsent (the purge removes sent mails after the retention). The bodies are emptied once sent:
-- they carry a token in clear.
CREATE TABLE mail_outbox (
    id              uuid PRIMARY KEY,       -- also the Message-ID's local part
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient       text NOT NULL,
    recipient_key   text NOT NULL,          -- lower-case address, for the per-address limit
    kind            text NOT NULL,          -- 'email_verification' or 'password_reset'
    subject         text NOT NULL,
    body_text       text NOT NULL,
    body_html       text NOT NULL,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    locked_until    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    sent_at         timestamptz
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX mail_outbox_recipient ON mail_outbox (recipient_key, created_at);
CREATE INDEX mail_outbox_sent_at ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
