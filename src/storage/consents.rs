//! Patients' consents as rows: written through the audit writer (`Change::ConsentGiven`,
//! `Change::ConsentWithdrawn`, committed with their audit entries), read here.

use sqlx::Row;

use super::{Db, StorageError};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::RoomId;

/// One consent, given and perhaps withdrawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub participant_id: String,
    pub purpose: ConsentPurpose,
    pub wording_version: String,
    pub given_at: i64,
    pub withdrawn_at: Option<i64>,
}

impl Db {
    /// Whether a patient of `room` has a consent for `purpose` in force now.
    pub async fn consent_in_force(
        &self,
        room: &RoomId,
        purpose: ConsentPurpose,
    ) -> Result<bool, StorageError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM consents \
             WHERE room_id = $1 AND purpose = $2 AND withdrawn_at IS NULL",
        )
        .bind(room.as_str())
        .bind(purpose.as_str())
        .fetch_one(self.pool())
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }

    /// Every consent of `room`, oldest first.
    pub async fn consents(&self, room: &RoomId) -> Result<Vec<ConsentRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT participant_id, purpose, wording_version, given_at, withdrawn_at \
             FROM consents WHERE room_id = $1 ORDER BY given_at, id",
        )
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let purpose: String = r.try_get("purpose")?;
                Ok(ConsentRecord {
                    participant_id: r.try_get("participant_id")?,
                    purpose: ConsentPurpose::parse(&purpose)
                        .ok_or(StorageError::Corrupt("consent purpose"))?,
                    wording_version: r.try_get("wording_version")?,
                    given_at: r.try_get("given_at")?,
                    withdrawn_at: r.try_get("withdrawn_at")?,
                })
            })
            .collect()
    }
}
