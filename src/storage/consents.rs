//! Patients' consents as rows: written through the audit writer (`Change::ConsentGiven`,
//! `Change::ConsentWithdrawn`, committed with their audit entries), read here; and what they
//! decide of a room's documents for the clinicians of other institutions
//! ([`Db::withheld_documents`]).

use std::collections::HashSet;

use sqlx::Row;

use super::{Db, StorageError};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{DocumentId, RoomId};

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
    /// The documents of `room` that the clinicians of another institution than the room's may
    /// not read now, while no patient of the room has their `external_sharing` consent in
    /// force there:
    /// - copies of the room's consultation request's attachments, when the request went to
    ///   another institution and its own consent (attested on the request) is not in force;
    /// - every other document shared in the room by its own side (its institution's
    ///   clinicians, its patients and guests): only what another institution's clinician
    ///   shared themselves is theirs without consent.
    ///
    /// Read at each use (HTTP reads, the summary, the room's state), so a care team that
    /// comes to span institutions, an upload, a copy and a withdrawal all take effect
    /// whatever order they come in.
    pub async fn withheld_documents(
        &self,
        room: &RoomId,
    ) -> Result<HashSet<DocumentId>, StorageError> {
        let rows = sqlx::query(
            "SELECT d.id FROM documents d JOIN rooms m ON m.id = d.room_id \
             WHERE d.room_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.room_id = $1 \
             AND k.purpose = $2 AND k.withdrawn_at IS NULL) \
             AND ( \
               EXISTS (SELECT 1 FROM referral_documents a \
               JOIN referrals r ON r.id = a.referral_id \
               JOIN departments t ON t.id = r.target_department \
               WHERE a.room_document = d.id AND t.institution_id <> r.requester_institution \
               AND NOT EXISTS (SELECT 1 FROM referral_consents c WHERE c.referral_id = r.id \
               AND c.purpose = $2 AND c.withdrawn_at IS NULL)) \
             OR ( \
               NOT EXISTS (SELECT 1 FROM referral_documents a WHERE a.room_document = d.id) \
               AND NOT EXISTS (SELECT 1 FROM participants p \
               JOIN invites i ON i.id = p.invite_id \
               JOIN users u ON u.id = i.account_id \
               WHERE p.id = d.shared_by AND u.institution_id <> m.institution_id)))",
        )
        .bind(room.as_str())
        .bind(ConsentPurpose::ExternalSharing.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                DocumentId::parse(&id).ok_or(StorageError::Corrupt("withheld document id"))
            })
            .collect()
    }

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
