//! [`MfaRepository`] on SQLite. Every write runs on the single writer inside one savepoint, so
//! each conditional update (a TOTP step, a recovery code, a pending sign-in) is decided by one
//! writer and nothing interleaves; writes that change a user's second factors forget the
//! user's cached sessions afterwards (their `User` carries the MFA summary).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{micros, store_error, time, uuid, SqliteStore};
use crate::domain::mfa::{
    MfaRepository, PendingSignin, PendingSigninHash, RecoveryCodeHash, SealedSecret,
    TotpCredential, TotpStep,
};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

#[async_trait]
impl MfaRepository for SqliteStore {
    async fn store_pending_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (id, sealed) = (user.to_string(), sealed.as_bytes().to_vec());
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "INSERT INTO totp_credentials (user_id, sealed_secret, confirmed_at, last_step, created_at)
                     VALUES (?1, ?2, NULL, NULL, ?3)
                     ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
                         created_at = excluded.created_at
                     WHERE totp_credentials.confirmed_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![id, sealed, micros(now)]))
                .map(|changed| changed == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpCredential>, StoreError> {
        let id = user.to_string();
        self.read(move |reader| {
            reader
                .prepare_cached(
                    "SELECT sealed_secret, confirmed_at IS NOT NULL, last_step
                     FROM totp_credentials WHERE user_id = ?",
                )?
                .query_row([id], |row| {
                    Ok(TotpCredential {
                        sealed: SealedSecret::from_bytes(row.get(0)?),
                        confirmed: row.get(1)?,
                        last_step: row.get(2)?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        step: TotpStep,
        codes: &[RecoveryCodeHash],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (id, sealed) = (user.to_string(), sealed.as_bytes().to_vec());
        let codes: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
        let confirmed = self
            .write(move |connection| {
                let changed = connection
                    .prepare_cached(
                        "UPDATE totp_credentials SET confirmed_at = ?3, last_step = ?4
                         WHERE user_id = ?1 AND confirmed_at IS NULL AND sealed_secret = ?2",
                    )
                    .and_then(|mut s| s.execute(params![id, sealed, micros(now), step]))
                    .map_err(store_error)?;
                if changed == 0 {
                    return Ok(false);
                }
                replace_codes(connection, &id, &codes)?;
                connection
                    .prepare_cached(
                        "UPDATE users SET totp_enabled = 1, recovery_codes_left = ?2, updated_at = ?3
                         WHERE id = ?1",
                    )
                    .and_then(|mut s| {
                        s.execute(params![id, i64::try_from(codes.len()).unwrap_or(0), micros(now)])
                    })
                    .map_err(store_error)?;
                Ok(true)
            })
            .await?;
        self.sessions.forget_user(user);
        Ok(confirmed)
    }

    async fn accept_totp_step(&self, user: UserId, step: TotpStep) -> Result<bool, StoreError> {
        let id = user.to_string();
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "UPDATE totp_credentials SET last_step = ?2
                     WHERE user_id = ?1 AND confirmed_at IS NOT NULL
                       AND (last_step IS NULL OR last_step < ?2)",
                )
                .and_then(|mut s| s.execute(params![id, step]))
                .map(|changed| changed == 1)
                .map_err(store_error)
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (id, hash) = (user.to_string(), code.as_str().to_owned());
        let used = self
            .write(move |connection| {
                let deleted = connection
                    .prepare_cached(
                        "DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?",
                    )
                    .and_then(|mut s| s.execute(params![id, hash]))
                    .map_err(store_error)?;
                if deleted == 0 {
                    return Ok(false);
                }
                connection
                    .prepare_cached(
                        "UPDATE users SET recovery_codes_left = max(recovery_codes_left - 1, 0),
                         updated_at = ?2 WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, micros(now)]))
                    .map_err(store_error)?;
                Ok(true)
            })
            .await?;
        if used {
            self.sessions.forget_user(user);
        }
        Ok(used)
    }

    async fn remove_totp(&self, user: UserId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let id = user.to_string();
        let found = self
            .write(move |connection| {
                connection
                    .prepare_cached("DELETE FROM totp_credentials WHERE user_id = ?")
                    .and_then(|mut s| s.execute([&id]))
                    .map_err(store_error)?;
                replace_codes(connection, &id, &[])?;
                connection
                    .prepare_cached(
                        "UPDATE users SET totp_enabled = 0, recovery_codes_left = 0, updated_at = ?2
                         WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, micros(now)]))
                    .map(|changed| changed == 1)
                    .map_err(store_error)
            })
            .await?;
        self.sessions.forget_user(user);
        Ok(found)
    }

    async fn insert_pending_signin(&self, pending: &PendingSignin) -> Result<(), StoreError> {
        let row = (
            pending.hash.as_str().to_owned(),
            pending.user_id.to_string(),
            pending.credential_version,
            micros(pending.created_at),
            micros(pending.expires_at),
        );
        self.write(move |connection| {
            connection
                .prepare_cached("DELETE FROM pending_signins WHERE expires_at <= ?")
                .and_then(|mut s| s.execute([row.3]))
                .map_err(store_error)?;
            connection
                .prepare_cached(
                    "INSERT INTO pending_signins (token_hash, user_id, credential_version, created_at, expires_at)
                     VALUES (?, ?, ?, ?, ?)",
                )
                .and_then(|mut s| s.execute(row))
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn find_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignin>, StoreError> {
        let hash = hash.as_str().to_owned();
        self.read(move |reader| {
            reader
                .prepare_cached(
                    "SELECT token_hash, user_id, credential_version, created_at, expires_at
                     FROM pending_signins WHERE token_hash = ? AND expires_at > ?",
                )?
                .query_row(params![hash, micros(now)], |row| {
                    Ok(PendingSignin {
                        hash: PendingSigninHash::from_hex(row.get(0)?),
                        user_id: UserId::from_uuid(uuid(&row.get::<_, String>(1)?)?),
                        credential_version: row.get(2)?,
                        created_at: time(row.get(3)?)?,
                        expires_at: time(row.get(4)?)?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn take_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let hash = hash.as_str().to_owned();
        self.write(move |connection| {
            connection
                .prepare_cached(
                    "DELETE FROM pending_signins WHERE token_hash = ? AND expires_at > ?",
                )
                .and_then(|mut s| s.execute(params![hash, micros(now)]))
                .map(|changed| changed == 1)
                .map_err(store_error)
        })
        .await
    }
}

/// Replaces the user's recovery codes by `codes`.
fn replace_codes(
    connection: &rusqlite::Connection,
    user_id: &str,
    codes: &[String],
) -> Result<(), StoreError> {
    connection
        .prepare_cached("DELETE FROM recovery_codes WHERE user_id = ?")
        .and_then(|mut s| s.execute([user_id]))
        .map_err(store_error)?;
    let mut insert = connection
        .prepare_cached("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
        .map_err(store_error)?;
    for code in codes {
        insert
            .execute(params![user_id, code])
            .map_err(store_error)?;
    }
    Ok(())
}
