-- Registered OAuth clients, and the client each session's tokens were issued to. Additive only.

CREATE TABLE clients (
    id                        uuid PRIMARY KEY,           -- UUID v7 (client_id)
    name                      text NOT NULL,
    client_type               text NOT NULL,              -- public | confidential
    redirect_uris             text NOT NULL,              -- space-separated (a valid URI has no space)
    post_logout_redirect_uris text NOT NULL,
    grant_types               text NOT NULL,              -- space-separated grant names
    scope                     text NOT NULL,              -- space-separated allowed scope values
    is_active                 boolean NOT NULL DEFAULT true,
    secret_hash               text,                       -- lowercase hex SHA-256; NULL for public clients
    created_at                timestamptz NOT NULL,
    updated_at                timestamptz NOT NULL
);

-- No foreign key: a deleted client's revoked sessions keep its id until they are purged.
ALTER TABLE sessions ADD COLUMN client_id uuid;
CREATE INDEX sessions_client_live ON sessions (client_id) WHERE client_id IS NOT NULL AND revoked_at IS NULL;
