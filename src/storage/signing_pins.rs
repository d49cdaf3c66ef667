//! Signing PINs as stored: the hash on the account and the count of tries since the last right
//! one (the rules are `crate::auth::signing_pin`'s). Each try is counted before its PIN is
//! checked, in one statement, so parallel guesses cannot get past the limit between a check and
//! its count.

use sqlx::Row;

use super::{Db, StorageError};
use crate::domain::ids::UserId;

/// What a try at a PIN may go on with (`Db::begin_pin_attempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinAttempt {
    /// Counted: check the PIN against `hash`; this is try number `number` since the last right
    /// one. Conclude with `Db::pin_attempt_succeeded` or `Db::pin_attempt_failed`.
    Counted { hash: String, number: i64 },
    /// The account has no PIN (never set, erased after too many wrong ones, or erased by a
    /// password change).
    NoPin,
    /// Every try the limit allows is taken (by parallel tries still being checked).
    Exhausted,
}

impl Db {
    /// Sets the account's signing PIN (a hash), or erases it with `None`; the count of wrong
    /// tries starts again. `NotFound` for no such account.
    pub async fn set_signing_pin(
        &self,
        user: &UserId,
        hash: Option<&str>,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(
            "UPDATE users SET signing_pin_hash = $1, signing_pin_failures = 0 WHERE id = $2",
        )
        .bind(hash)
        .bind(user.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Counts a try at the account's PIN, if fewer than `limit` tries are counted since the
    /// last right one, and answers the hash to check it against.
    pub async fn begin_pin_attempt(
        &self,
        user: &UserId,
        limit: i64,
    ) -> Result<PinAttempt, StorageError> {
        // A write from its first statement (SQLite: BEGIN IMMEDIATE), like the other counters.
        let mut tx = self.begin_write().await?;
        let counted = sqlx::query(
            "UPDATE users SET signing_pin_failures = signing_pin_failures + 1 \
             WHERE id = $1 AND signing_pin_hash IS NOT NULL AND signing_pin_failures < $2",
        )
        .bind(user.as_str())
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row =
            sqlx::query("SELECT signing_pin_hash, signing_pin_failures FROM users WHERE id = $1")
                .bind(user.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StorageError::NotFound)?;
        tx.commit().await?;
        let hash: Option<String> = row.try_get("signing_pin_hash")?;
        let number: i64 = row.try_get("signing_pin_failures")?;
        Ok(match hash {
            None => PinAttempt::NoPin,
            Some(hash) if counted => PinAttempt::Counted { hash, number },
            Some(_) => PinAttempt::Exhausted,
        })
    }

    /// A right PIN: the count starts again (unless the PIN was changed meanwhile).
    pub async fn pin_attempt_succeeded(
        &self,
        user: &UserId,
        hash: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE users SET signing_pin_failures = 0 WHERE id = $1 AND signing_pin_hash = $2",
        )
        .bind(user.as_str())
        .bind(hash)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A wrong PIN, try number `number` of `limit`: the last one erases the PIN (unless it was
    /// changed meanwhile). True when this erased it.
    pub async fn pin_attempt_failed(
        &self,
        user: &UserId,
        hash: &str,
        number: i64,
        limit: i64,
    ) -> Result<bool, StorageError> {
        if number < limit {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE users SET signing_pin_hash = NULL, signing_pin_failures = 0 \
             WHERE id = $1 AND signing_pin_hash = $2",
        )
        .bind(user.as_str())
        .bind(hash)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
