-- The audit trail and brute-force counters.

CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY NOT NULL,  -- UUID v7: sorts by time
    at         INTEGER NOT NULL,           -- microseconds since the Unix epoch
    event      TEXT NOT NULL,
    user_id    TEXT,                       -- no foreign key: the trail outlives its users
    username   TEXT,
    ip         TEXT,
    user_agent TEXT,
    success    INTEGER NOT NULL,
    detail     TEXT
);

CREATE INDEX audit_events_at ON audit_events (at, id);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
CREATE INDEX audit_events_event_at ON audit_events (event, at);

-- Consecutive failed logins per lower-cased username (known or not).
CREATE TABLE login_throttle (
    login_key    TEXT PRIMARY KEY NOT NULL,
    failures     INTEGER NOT NULL,
    locks        INTEGER NOT NULL,
    locked_until INTEGER,
    updated_at   INTEGER NOT NULL
);

CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
