//! Clinicians' sessions: one row per sign-in (migrations/0003_sessions.sql).
//!
//! Whether a session may be used is decided in `crate::sessions`; what must not race is decided
//! here, each in one conditional statement or one transaction: a renewal happens only if the
//! token renewed is still the current one, a revocation only once, and a password change bumps
//! the account's password version and revokes its other sessions together.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::users::{self, JOINED_COLUMNS as USER_COLUMNS, User};
use super::{Db, StorageError};
use crate::domain::ids::{SessionId, UserId};

/// Why a session ended before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// Its holder signed out.
    SignedOut,
    /// An administrator (the API or `huizhen user revoke-sessions`) ended every session of the
    /// account.
    Revoked,
    /// The account's password changed.
    PasswordChanged,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::SignedOut => "signed_out",
            RevokeReason::Revoked => "revoked",
            RevokeReason::PasswordChanged => "password_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signed_out" => RevokeReason::SignedOut,
            "revoked" => RevokeReason::Revoked,
            "password_changed" => RevokeReason::PasswordChanged,
            _ => return None,
        })
    }
}

/// When and why a session was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub at: i64,
    pub reason: RevokeReason,
}

/// One sign-in. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: i64,
    pub renewed_at: i64,
    /// The session ends here unless renewed first (its current token's expiry).
    pub idle_expires_at: i64,
    /// The absolute end, fixed at sign-in.
    pub expires_at: i64,
    /// The renewal count: only the token carrying the current epoch is honoured.
    pub epoch: i64,
    /// The account's password version the session was opened (or kept) under.
    pub password_version: i64,
    /// A keyed pseudonym of the client address that signed in.
    pub client: String,
    pub revoked: Option<Revoked>,
}

const COLUMNS: &str = "s.id AS s_id, s.user_id AS s_user_id, s.created_at AS s_created_at, \
     s.renewed_at AS s_renewed_at, s.idle_expires_at AS s_idle_expires_at, \
     s.expires_at AS s_expires_at, s.epoch AS s_epoch, s.password_version AS s_password_version, \
     s.client AS s_client, s.revoked_at AS s_revoked_at, s.revoked_reason AS s_revoked_reason";

fn from_row(row: &AnyRow) -> Result<SessionRow, StorageError> {
    let corrupt = StorageError::Corrupt;
    let id: String = row.try_get("s_id")?;
    let user: String = row.try_get("s_user_id")?;
    let revoked_at: Option<i64> = row.try_get("s_revoked_at")?;
    let reason: Option<String> = row.try_get("s_revoked_reason")?;
    let revoked = match (revoked_at, reason) {
        (None, _) => None,
        (Some(at), Some(reason)) => Some(Revoked {
            at,
            reason: RevokeReason::parse(&reason).ok_or(corrupt("session revoke reason"))?,
        }),
        (Some(_), None) => return Err(corrupt("session revoke reason")),
    };
    Ok(SessionRow {
        id: SessionId::parse(&id).ok_or(corrupt("session id"))?,
        user_id: UserId::parse(&user).ok_or(corrupt("session user"))?,
        created_at: row.try_get("s_created_at")?,
        renewed_at: row.try_get("s_renewed_at")?,
        idle_expires_at: row.try_get("s_idle_expires_at")?,
        expires_at: row.try_get("s_expires_at")?,
        epoch: row.try_get("s_epoch")?,
        password_version: row.try_get("s_password_version")?,
        client: row.try_get("s_client")?,
        revoked,
    })
}

/// Revokes the live sessions of `user` (but `except`); the statement is shared by
/// [`Db::revoke_sessions`] and [`Db::change_password`].
const REVOKE_LIVE: &str = "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
     WHERE user_id = $3 AND id <> $4 AND revoked_at IS NULL \
     AND expires_at > $5 AND idle_expires_at > $6";

impl Db {
    pub async fn create_session(&self, session: &SessionRow) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, renewed_at, idle_expires_at, \
             expires_at, epoch, password_version, client) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(session.id.as_str())
        .bind(session.user_id.as_str())
        .bind(session.created_at)
        .bind(session.renewed_at)
        .bind(session.idle_expires_at)
        .bind(session.expires_at)
        .bind(session.epoch)
        .bind(session.password_version)
        .bind(&session.client)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The session and its account, in one lookup by primary key: what every authenticated
    /// request reads.
    pub async fn session_with_user(
        &self,
        id: &SessionId,
    ) -> Result<Option<(SessionRow, User)>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((from_row(&r)?, users::from_row(&r)?)))
            .transpose()
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM sessions s WHERE s.id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every session of `user` still stored, oldest first.
    pub async fn sessions_of(&self, user: &UserId) -> Result<Vec<SessionRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sessions s WHERE s.user_id = $1 ORDER BY s.created_at, s.id"
        ))
        .bind(user.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves the session from `epoch` to `epoch + 1`, idle until `idle_expires_at`, if at `now`
    /// it is still at `epoch`, not revoked, not expired, and opened under the account's current
    /// password. One conditional statement: of any number of renewals of one token, one wins.
    pub async fn renew_session(
        &self,
        id: &SessionId,
        epoch: i64,
        now: i64,
        idle_expires_at: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE sessions SET epoch = epoch + 1, renewed_at = $1, idle_expires_at = $2 \
             WHERE id = $3 AND epoch = $4 AND revoked_at IS NULL \
             AND idle_expires_at > $5 AND expires_at > $6 \
             AND password_version = \
                 (SELECT u.password_version FROM users u WHERE u.id = sessions.user_id)",
        )
        .bind(now)
        .bind(idle_expires_at)
        .bind(id.as_str())
        .bind(epoch)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes one session; `false` if it was revoked already.
    pub async fn revoke_session(
        &self,
        id: &SessionId,
        now: i64,
        reason: RevokeReason,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
             WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The sessions revoked at or after `since` (Unix seconds), however they were: what
    /// `rooms::seat_sessions` looks for, so that a clinician's seat ends with their sign-in
    /// even when another process (the command line) ended it.
    pub async fn sessions_revoked_since(&self, since: i64) -> Result<Vec<SessionId>, StorageError> {
        let rows = sqlx::query("SELECT id FROM sessions WHERE revoked_at >= $1")
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                SessionId::parse(&id).ok_or(StorageError::Corrupt("session id"))
            })
            .collect()
    }

    /// Revokes every live session of `user` but `except`; returns how many.
    pub async fn revoke_sessions(
        &self,
        user: &UserId,
        except: Option<&SessionId>,
        now: i64,
        reason: RevokeReason,
    ) -> Result<u64, StorageError> {
        let done = sqlx::query(REVOKE_LIVE)
            .bind(now)
            .bind(reason.as_str())
            .bind(user.as_str())
            .bind(except.map_or("", SessionId::as_str))
            .bind(now)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Sets the password (erasing the signing PIN, which was set under the old one) and, in the
    /// same transaction, bumps the account's password version, keeps `keep` (the session that
    /// changed it, if any) under the new version and revokes every other live session. With `expected_version`, only if the account is still at that
    /// version (`Conflict` otherwise: the password changed meanwhile). Returns how many sessions
    /// were revoked; `NotFound` for no such user.
    pub async fn change_password(
        &self,
        user: &UserId,
        password_hash: &str,
        expected_version: Option<i64>,
        keep: Option<&SessionId>,
        now: i64,
    ) -> Result<u64, StorageError> {
        let mut tx = self.pool().begin().await?;
        let done = match expected_version {
            None => sqlx::query(
                "UPDATE users SET password_hash = $1, password_version = password_version + 1, \
                 signing_pin_hash = NULL, signing_pin_failures = 0 WHERE id = $2",
            )
            .bind(password_hash)
            .bind(user.as_str()),
            Some(version) => sqlx::query(
                "UPDATE users SET password_hash = $1, password_version = password_version + 1, \
                 signing_pin_hash = NULL, signing_pin_failures = 0 \
                 WHERE id = $2 AND password_version = $3",
            )
            .bind(password_hash)
            .bind(user.as_str())
            .bind(version),
        }
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
                .bind(user.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StorageError::Conflict
            } else {
                StorageError::NotFound
            });
        }
        if let Some(keep) = keep {
            sqlx::query(
                "UPDATE sessions SET password_version = \
                     (SELECT u.password_version FROM users u WHERE u.id = $1) \
                 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(user.as_str())
            .bind(keep.as_str())
            .bind(user.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let revoked = sqlx::query(REVOKE_LIVE)
            .bind(now)
            .bind(RevokeReason::PasswordChanged.as_str())
            .bind(user.as_str())
            .bind(keep.map_or("", SessionId::as_str))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(revoked)
    }

    /// Deletes sessions whose absolute end is before `before` (revoked or not: either way no
    /// token of theirs can be honoured any more; the audit trail keeps what happened).
    pub async fn purge_sessions(&self, before: i64) -> Result<u64, StorageError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
