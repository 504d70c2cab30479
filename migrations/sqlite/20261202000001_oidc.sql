-- OpenID Connect: browser sign-ins and authorization codes. Additive only.

-- A browser sign-in (the hosted login page) is a session with no refresh token, found by the
-- hash of its cookie's token (lowercase hex SHA-256). NULL for every other session.
ALTER TABLE sessions ADD COLUMN signin_hash TEXT;
CREATE UNIQUE INDEX sessions_signin_hash ON sessions (signin_hash) WHERE signin_hash IS NOT NULL;

-- One-time codes of the authorization code flow, kept after their redemption (and expiry) until
-- the purge, so that a late replay still names the session the first redemption started.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,  -- lowercase hex SHA-256 of the code
    client_id      TEXT NOT NULL,              -- no foreign key, as sessions.client_id
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    signin_id      TEXT NOT NULL,              -- the sign-in's session (no foreign key: it may be purged first)
    redirect_uri   TEXT NOT NULL,              -- exactly as the authorization request sent it
    code_challenge TEXT,                       -- PKCE S256; NULL only for a confidential client that sent none
    scope          TEXT NOT NULL,              -- OpenID values, then role names, space-separated
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    redeemed_by    TEXT,                       -- the session its redemption started; NULL while unused
    replayed_at    INTEGER                     -- when it was first presented again after its redemption
);

-- The purge deletes codes by expiry.
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
