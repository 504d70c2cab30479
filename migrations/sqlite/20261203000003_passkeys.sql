-- Passkeys (WebAuthn credentials) and the ceremonies that register and use them. Additive only.
-- users.passkey_count (20261203000000) is kept in step with this table in the same commit.

CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,      -- WebAuthn credential id, base64url without padding
    credential    TEXT NOT NULL,             -- the credential as webauthn-rs serialises it (JSON)
    sign_count    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,          -- microseconds since the epoch, as elsewhere
    last_used_at  INTEGER
);
CREATE INDEX passkeys_user_id ON passkeys (user_id, created_at);

-- A ceremony's state, taken (deleted) once by the request that finishes it, from any replica.
CREATE TABLE webauthn_ceremonies (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,  -- NULL: a usernameless sign-in
    kind       TEXT NOT NULL,                                 -- registration, discoverable, second_factor
    state      TEXT NOT NULL,                                 -- webauthn-rs state (JSON, holds the challenge)
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
