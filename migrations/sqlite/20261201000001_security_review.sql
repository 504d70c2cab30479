-- The outside security review: credential versions, absolute session lifetimes, sessions
-- started from other sessions, reserved login guesses, and a row for the health probe's write.

-- Bumped by every password change; a login that checked an older version starts no session.
ALTER TABLE users ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 0;

-- No rotation extends a session past not_after. Sessions from before this release get the
-- default absolute lifetime (30 days) counted from the upgrade, so none ends because of it.
ALTER TABLE sessions ADD COLUMN not_after INTEGER;
UPDATE sessions
SET not_after = max(created_at, CAST(strftime('%s', 'now') AS INTEGER) * 1000000) + 2592000000000
WHERE not_after IS NULL;

-- The session a session was started from (POST /auth/refresh-token); revoked with it.
ALTER TABLE sessions ADD COLUMN parent_id TEXT;
CREATE INDEX sessions_parent_id ON sessions (parent_id) WHERE parent_id IS NOT NULL;

-- A user's live sessions, newest first: the per-user cap and "revoke all" read only these.
CREATE INDEX sessions_user_live ON sessions (user_id, created_at) WHERE revoked_at IS NULL;

-- Guesses reserved and still being checked (see the lockout policy).
ALTER TABLE login_throttle ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;

CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY NOT NULL,
    at INTEGER NOT NULL
);
