-- Issue 15: every change that can end a live session, or change what is known of its user, is
-- published on the channel `auth_sessions` in the same transaction (PostgreSQL delivers a
-- notification at commit, and never for a rolled-back transaction). Each replica's listener
-- invalidates its live-session cache on receipt. Payloads: `s:<session uuid>`, `u:<user uuid>`,
-- `*` (forget everything). Triggers rather than calls in the application, so that every path
-- publishes, an operator's manual SQL included.

-- A session revoked, shortened, or moved to another user. Plain refresh rotation (expires_at
-- pushed later, last_used_at) does not match the WHEN clause: no function call, no notification.
CREATE FUNCTION auth_notify_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auth_sessions', 's:' || OLD.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_update
    AFTER UPDATE ON sessions
    FOR EACH ROW
    WHEN ((OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL)
          OR NEW.expires_at < OLD.expires_at
          OR NEW.user_id IS DISTINCT FROM OLD.user_id
          OR NEW.id IS DISTINCT FROM OLD.id)
    EXECUTE FUNCTION auth_notify_session_changed();

-- Sessions deleted (a user's deletion cascades here; the purge deletes only expired or revoked
-- ones, which no cache answers for, so it publishes nothing). One statement-level call: at most
-- 1,000 live sessions are named one by one, more turn into `*`.
CREATE FUNCTION auth_notify_sessions_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    live bigint;
BEGIN
    SELECT count(*) INTO live FROM deleted_sessions
     WHERE revoked_at IS NULL AND expires_at > now();
    IF live > 1000 THEN
        PERFORM pg_notify('auth_sessions', '*');
    ELSIF live > 0 THEN
        PERFORM pg_notify('auth_sessions', 's:' || id::text) FROM deleted_sessions
         WHERE revoked_at IS NULL AND expires_at > now();
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_delete
    AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS deleted_sessions
    FOR EACH STATEMENT
    EXECUTE FUNCTION auth_notify_sessions_deleted();

-- Any change of a user row (the cache holds the whole row: disabled, password, roles, e-mail,
-- second factors...) and its deletion.
CREATE FUNCTION auth_notify_user_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auth_sessions', 'u:' || OLD.id::text);
    IF TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id THEN
        PERFORM pg_notify('auth_sessions', 'u:' || NEW.id::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_update
    AFTER UPDATE ON users
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION auth_notify_user_changed();

CREATE TRIGGER users_notify_delete
    AFTER DELETE ON users
    FOR EACH ROW
    EXECUTE FUNCTION auth_notify_user_changed();

-- TRUNCATE fires no row trigger: forget everything.
CREATE FUNCTION auth_notify_everything() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('auth_sessions', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_truncate
    AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT
    EXECUTE FUNCTION auth_notify_everything();

CREATE TRIGGER users_notify_truncate
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT
    EXECUTE FUNCTION auth_notify_everything();
