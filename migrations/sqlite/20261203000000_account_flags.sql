-- What the user object shows of the account's second factors and e-mail, kept on the user row
-- so that reading a user (every authenticated request) needs no other table. The tables of the
-- second factors and of e-mail verification keep these in step in the same commit.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN passkey_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN recovery_codes_left INTEGER NOT NULL DEFAULT 0;
