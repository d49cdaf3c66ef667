//! Chat messages of a consultation, kept with it.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError};
use crate::domain::ids::{ChatMessageId, ParticipantId, RoomId};
use crate::domain::role::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRecord {
    pub id: ChatMessageId,
    pub participant_id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub text: String,
    pub at_ms: i64,
    /// Written by a clinician while the clinicians conferred privately (a huddle): for the
    /// clinicians only, then and afterwards.
    pub huddle: bool,
}

fn from_row(row: &AnyRow) -> Result<ChatRecord, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    Ok(ChatRecord {
        id: ChatMessageId::parse(&s("id")?).ok_or(StorageError::Corrupt("chat id"))?,
        participant_id: ParticipantId::parse(&s("participant_id")?)
            .ok_or(StorageError::Corrupt("chat author"))?,
        name: s("name")?,
        role: Role::parse(&s("role")?).ok_or(StorageError::Corrupt("chat role"))?,
        text: s("body")?,
        at_ms: row.try_get("created_at_ms")?,
        huddle: row.try_get::<i64, _>("huddle")? != 0,
    })
}

impl Db {
    pub async fn insert_chat(&self, room: &RoomId, m: &ChatRecord) -> Result<(), StorageError> {
        super::Change::chat(room, m).apply(self.pool()).await
    }

    /// The newest `limit` messages, oldest first.
    pub async fn recent_chat(
        &self,
        room: &RoomId,
        limit: i64,
    ) -> Result<Vec<ChatRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, participant_id, name, role, body, created_at_ms, huddle FROM chat_messages \
             WHERE room_id = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(room.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}
