-- The sessions a user can see (issue 14): where each was started and when it was last used.
-- Additive only; sessions from before this release show their start as their last use and no
-- IP or user agent.

-- The session's start, then its last refresh-token rotation.
ALTER TABLE sessions ADD COLUMN last_used_at timestamptz;
-- The client address and User-Agent (at most 256 characters) of the request that started it.
ALTER TABLE sessions ADD COLUMN ip text;
ALTER TABLE sessions ADD COLUMN user_agent text;

-- Deleting an account scrubs its username from the events that name it without a user id
-- (failed logins and lockouts); only such events pay for this index.
CREATE INDEX audit_events_anonymous_username ON audit_events (lower(username)) WHERE user_id IS NULL;
