//! [`MfaRepository`] on PostgreSQL. Each decision is one conditional statement: under READ
//! COMMITTED, concurrent updates of one row (from any replica) queue on its row lock and each
//! later one re-checks its condition against the committed row, so of two logins with one TOTP
//! step or one recovery code exactly one matches.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{store_error, PgStore};
use crate::domain::mfa::{
    MfaRepository, PendingSignin, PendingSigninHash, RecoveryCodeHash, SealedSecret,
    TotpCredential, TotpStep,
};
use crate::domain::ports::StoreError;
use crate::domain::user::UserId;

/// Replaces the user's recovery codes by `codes` inside `tx`.
async fn replace_codes(
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    codes: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    if !codes.is_empty() {
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::text[])",
        )
        .bind(user)
        .bind(codes)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
    }
    Ok(())
}

#[async_trait]
impl MfaRepository for PgStore {
    async fn store_pending_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO totp_credentials (user_id, sealed_secret, confirmed_at, last_step, created_at)
             VALUES ($1, $2, NULL, NULL, $3)
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
                 created_at = excluded.created_at
             WHERE totp_credentials.confirmed_at IS NULL",
        )
        .bind(user.as_uuid())
        .bind(sealed.as_bytes())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn find_totp(&self, user: UserId) -> Result<Option<TotpCredential>, StoreError> {
        let row: Option<(Vec<u8>, bool, Option<i64>)> = sqlx::query_as(
            "SELECT sealed_secret, confirmed_at IS NOT NULL, last_step
             FROM totp_credentials WHERE user_id = $1",
        )
        .bind(user.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(|(sealed, confirmed, last_step)| TotpCredential {
            sealed: SealedSecret::from_bytes(sealed),
            confirmed,
            last_step,
        }))
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        sealed: &SealedSecret,
        step: TotpStep,
        codes: &[RecoveryCodeHash],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let codes: Vec<String> = codes.iter().map(|c| c.as_str().to_owned()).collect();
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let changed = sqlx::query(
            "UPDATE totp_credentials SET confirmed_at = $3, last_step = $4
             WHERE user_id = $1 AND confirmed_at IS NULL AND sealed_secret = $2",
        )
        .bind(user.as_uuid())
        .bind(sealed.as_bytes())
        .bind(now)
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        replace_codes(&mut tx, user.as_uuid(), &codes).await?;
        sqlx::query(
            "UPDATE users SET totp_enabled = TRUE, recovery_codes_left = $2, updated_at = $3
             WHERE id = $1",
        )
        .bind(user.as_uuid())
        .bind(i32::try_from(codes.len()).unwrap_or(0))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(user);
        Ok(true)
    }

    async fn accept_totp_step(&self, user: UserId, step: TotpStep) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE totp_credentials SET last_step = $2
             WHERE user_id = $1 AND confirmed_at IS NOT NULL
               AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user.as_uuid())
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &RecoveryCodeHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        let deleted =
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1 AND code_hash = $2")
                .bind(user.as_uuid())
                .bind(code.as_str())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?
                .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        // A decrement, not a recount: concurrent uses of different codes each take one off,
        // whatever their snapshots saw.
        sqlx::query(
            "UPDATE users SET recovery_codes_left = GREATEST(recovery_codes_left - 1, 0),
             updated_at = $2 WHERE id = $1",
        )
        .bind(user.as_uuid())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(user);
        Ok(true)
    }

    async fn remove_totp(&self, user: UserId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1")
            .bind(user.as_uuid())
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        replace_codes(&mut tx, user.as_uuid(), &[]).await?;
        let found = sqlx::query(
            "UPDATE users SET totp_enabled = FALSE, recovery_codes_left = 0, updated_at = $2
             WHERE id = $1",
        )
        .bind(user.as_uuid())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected()
            == 1;
        tx.commit().await.map_err(store_error)?;
        self.sessions.forget_user(user);
        Ok(found)
    }

    async fn insert_pending_signin(&self, pending: &PendingSignin) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_signins WHERE expires_at <= $1")
            .bind(pending.created_at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO pending_signins (token_hash, user_id, credential_version, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(pending.hash.as_str())
        .bind(pending.user_id.as_uuid())
        .bind(pending.credential_version)
        .bind(pending.created_at)
        .bind(pending.expires_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn find_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<Option<PendingSignin>, StoreError> {
        let row: Option<(String, Uuid, i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT token_hash, user_id, credential_version, created_at, expires_at
             FROM pending_signins WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(hash.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(row.map(
            |(hash, user_id, credential_version, created_at, expires_at)| PendingSignin {
                hash: PendingSigninHash::from_hex(hash),
                user_id: UserId::from_uuid(user_id),
                credential_version,
                created_at,
                expires_at,
            },
        ))
    }

    async fn take_pending_signin(
        &self,
        hash: &PendingSigninHash,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result =
            sqlx::query("DELETE FROM pending_signins WHERE token_hash = $1 AND expires_at > $2")
                .bind(hash.as_str())
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }
}
