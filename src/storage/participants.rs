//! Who took part in a consultation and when: written on join and leave, read by the summary.

use sqlx::Row;

use super::{Change, Db, StorageError};
use crate::domain::ids::{InviteId, ParticipantId, RoomId};
use crate::domain::role::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub id: ParticipantId,
    pub invite_id: InviteId,
    pub role: Role,
    pub name: String,
    pub joined_at: i64,
    pub left_at: Option<i64>,
}

impl Db {
    pub async fn participant_joined(
        &self,
        room: &RoomId,
        id: &ParticipantId,
        invite: &InviteId,
        role: Role,
        name: &str,
    ) -> Result<(), StorageError> {
        Change::participant_joined(room, id, invite, role, name)
            .apply(self.pool())
            .await
    }

    pub async fn participant_left(&self, id: &ParticipantId) -> Result<(), StorageError> {
        Change::participant_left(id).apply(self.pool()).await
    }

    /// The invitation (a link, or a clinician's care-team seat) `id` came to `room` through.
    pub async fn participant_invite(
        &self,
        room: &RoomId,
        id: &ParticipantId,
    ) -> Result<Option<InviteId>, StorageError> {
        let invite: Option<String> =
            sqlx::query_scalar("SELECT invite_id FROM participants WHERE room_id = $1 AND id = $2")
                .bind(room.as_str())
                .bind(id.as_str())
                .fetch_optional(self.pool())
                .await?;
        invite
            .map(|i| InviteId::parse(&i).ok_or(StorageError::Corrupt("participant invite")))
            .transpose()
    }

    /// How many times each invitation brought someone into `room` (the room's join caps start
    /// from these: `rooms::joins`).
    pub async fn joins_by_invite(
        &self,
        room: &RoomId,
    ) -> Result<Vec<(InviteId, u32)>, StorageError> {
        let rows = sqlx::query(
            "SELECT invite_id, COUNT(*) AS joins FROM participants WHERE room_id = $1 \
             GROUP BY invite_id",
        )
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let invite: String = row.try_get("invite_id")?;
                let joins: i64 = row.try_get("joins")?;
                Ok((
                    InviteId::parse(&invite).ok_or(StorageError::Corrupt("participant invite"))?,
                    u32::try_from(joins).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    }

    /// In order of joining; as many as the room's join caps let in (`rooms::joins`).
    pub async fn participants_of(
        &self,
        room: &RoomId,
    ) -> Result<Vec<ParticipantRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, invite_id, role, name, joined_at, left_at FROM participants \
             WHERE room_id = $1 ORDER BY joined_at, id",
        )
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let s = |c: &str| row.try_get::<String, _>(c);
                Ok(ParticipantRecord {
                    id: ParticipantId::parse(&s("id")?)
                        .ok_or(StorageError::Corrupt("participant id"))?,
                    invite_id: InviteId::parse(&s("invite_id")?)
                        .ok_or(StorageError::Corrupt("participant invite"))?,
                    role: Role::parse(&s("role")?)
                        .ok_or(StorageError::Corrupt("participant role"))?,
                    name: s("name")?,
                    joined_at: row.try_get("joined_at")?,
                    left_at: row.try_get("left_at")?,
                })
            })
            .collect()
    }
}
