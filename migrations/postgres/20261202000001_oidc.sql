-- OpenID Connect: browser sign-ins and authorization codes. Additive only.

-- A browser sign-in (the hosted login page) is a session with no refresh token, found by the
-- hash of its cookie's token (lowercase hex SHA-256). NULL for every other session.
ALTER TABLE sessions ADD COLUMN signin_hash text;
CREATE UNIQUE INDEX sessions_signin_hash ON sessions (signin_hash) WHERE signin_hash IS NOT NULL;

-- One-time codes of the authorization code flow, kept after their redemption (and expiry) until
-- the purge, so that a late replay still names the session the first redemption started.
CREATE TABLE authorization_codes (
    code_hash      text PRIMARY KEY,          -- lowercase hex SHA-256 of the code
    client_id      uuid NOT NULL,             -- no foreign key, as sessions.client_id
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    signin_id      uuid NOT NULL,             -- the sign-in's session (no foreign key: it may be purged first)
    redirect_uri   text NOT NULL,             -- exactly as the authorization request sent it
    code_challenge text,                      -- PKCE S256; NULL only for a confidential client that sent none
    scope          text NOT NULL,             -- OpenID values, then role names, space-separated
    nonce          text,
    auth_time      timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    redeemed_by    uuid,                      -- the session its redemption started; NULL while unused
    replayed_at    timestamptz                -- when it was first presented again after its redemption
);

-- The purge deletes codes by expiry.
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
