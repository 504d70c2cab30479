-- The audit trail and brute-force counters.

CREATE TABLE audit_events (
    id         uuid PRIMARY KEY,          -- UUID v7: sorts by time
    at         timestamptz NOT NULL,
    event      text NOT NULL,
    user_id    uuid,                      -- no foreign key: the trail outlives its users
    username   text,
    ip         text,
    user_agent text,
    success    boolean NOT NULL,
    detail     text
);

CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
CREATE INDEX audit_events_event_at ON audit_events (event, at);

-- Consecutive failed logins per lower-cased username (known or not).
CREATE TABLE login_throttle (
    login_key    text PRIMARY KEY,
    failures     integer NOT NULL,
    locks        integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
