//! Invites: each link a clinician hands out is recorded, so it can be listed and revoked.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InviteId, RoomId, UserId};
use crate::domain::role::Role;

#[derive(Debug, Clone)]
pub struct Invite {
    pub id: InviteId,
    pub room_id: RoomId,
    pub role: Role,
    pub created_by: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// A care-team seat: the account it belongs to. `None` for a link handed out.
    pub account: Option<UserId>,
}

fn from_row(row: &AnyRow) -> Result<Invite, StorageError> {
    let id: String = row.try_get("id")?;
    let room: String = row.try_get("room_id")?;
    let role: String = row.try_get("role")?;
    let by: String = row.try_get("created_by")?;
    let account: Option<String> = row.try_get("account_id")?;
    Ok(Invite {
        id: InviteId::parse(&id).ok_or(StorageError::Corrupt("invite id"))?,
        room_id: RoomId::parse(&room).ok_or(StorageError::Corrupt("invite room"))?,
        role: Role::parse(&role).ok_or(StorageError::Corrupt("invite role"))?,
        created_by: UserId::parse(&by).ok_or(StorageError::Corrupt("invite creator"))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        account: account
            .map(|a| UserId::parse(&a).ok_or(StorageError::Corrupt("invite account")))
            .transpose()?,
    })
}

impl Db {
    pub async fn create_invite(
        &self,
        room_id: &RoomId,
        role: Role,
        created_by: &UserId,
        expires_at: i64,
    ) -> Result<Invite, StorageError> {
        let invite = Invite {
            id: InviteId::generate(),
            room_id: room_id.clone(),
            role,
            created_by: created_by.clone(),
            created_at: now_unix(),
            expires_at,
            revoked_at: None,
            account: None,
        };
        sqlx::query(
            "INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(invite.id.as_str())
        .bind(room_id.as_str())
        .bind(role.as_str())
        .bind(created_by.as_str())
        .bind(invite.created_at)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(invite)
    }

    pub async fn invite(&self, id: &InviteId) -> Result<Option<Invite>, StorageError> {
        let row = sqlx::query(
            "SELECT id, room_id, role, created_by, created_at, expires_at, revoked_at, account_id \
             FROM invites WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The revoked invites of a room (a live room refuses them, and removes their holders).
    pub async fn revoked_invites(&self, room_id: &RoomId) -> Result<Vec<InviteId>, StorageError> {
        let rows =
            sqlx::query("SELECT id FROM invites WHERE room_id = $1 AND revoked_at IS NOT NULL")
                .bind(room_id.as_str())
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                InviteId::parse(&id).ok_or(StorageError::Corrupt("invite id"))
            })
            .collect()
    }

    /// Revokes a link invite of `room_id`; an invite of another room, or a care-team seat
    /// (taken away by removing its holder from the care team), is `NotFound`.
    pub async fn revoke_invite(&self, room_id: &RoomId, id: &InviteId) -> Result<(), StorageError> {
        let done = sqlx::query(
            "UPDATE invites SET revoked_at = $1 \
             WHERE id = $2 AND room_id = $3 AND revoked_at IS NULL AND account_id IS NULL",
        )
        .bind(now_unix())
        .bind(id.as_str())
        .bind(room_id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }
}
