-- Registered OAuth clients, and the client each session's tokens were issued to. Additive only.

CREATE TABLE clients (
    id                        TEXT PRIMARY KEY NOT NULL,  -- hyphenated UUID v7 (client_id)
    name                      TEXT NOT NULL,
    client_type               TEXT NOT NULL,              -- public | confidential
    redirect_uris             TEXT NOT NULL,              -- space-separated (a valid URI has no space)
    post_logout_redirect_uris TEXT NOT NULL,
    grant_types               TEXT NOT NULL,              -- space-separated grant names
    scope                     TEXT NOT NULL,              -- space-separated allowed scope values
    is_active                 INTEGER NOT NULL DEFAULT 1,
    secret_hash               TEXT,                       -- lowercase hex SHA-256; NULL for public clients
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

-- No foreign key: a deleted client's revoked sessions keep its id until they are purged.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
CREATE INDEX sessions_client_live ON sessions (client_id) WHERE client_id IS NOT NULL AND revoked_at IS NULL;
