-- TOTP authenticators (the secret sealed with MFA_ENCRYPTION_KEY, bound to the user), their
-- recovery codes (SHA-256 of the canonical code), and the pending second step of the hosted
-- login page. users.totp_enabled and users.recovery_codes_left are kept in step with these in
-- the same commit.
CREATE TABLE totp_credentials (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    sealed_secret BLOB NOT NULL,
    confirmed_at INTEGER,
    last_step INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE pending_signins (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX pending_signins_expires_at ON pending_signins (expires_at);
CREATE INDEX pending_signins_user_id ON pending_signins (user_id);
