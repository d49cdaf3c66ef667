//! Clinical records and their state changes as rows. Every version is its own row; the only
//! updates are a draft's body (while it is a draft) and a status change, each guarded by the
//! status it expects, so two pharmacists cannot both move the same prescription.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError};
use crate::domain::ids::{InstitutionId, InviteId, ParticipantId, RecordId, RoomId, UserId};
use crate::domain::record::{RecordKind, RecordStatus};
use crate::domain::webhook::EventKind;

#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub id: RecordId,
    pub room_id: RoomId,
    pub kind: RecordKind,
    /// The record this one corrects.
    pub supersedes: Option<RecordId>,
    pub status: RecordStatus,
    pub body: serde_json::Value,
    pub body_sha256: String,
    /// Participant id (in a room) of the author.
    pub author: String,
    pub author_name: String,
    pub author_role: String,
    pub created_at_ms: i64,
    /// Who signed it as they issued it: `None` while a draft, and for records issued before
    /// signing existed.
    pub signature: Option<Signature>,
    /// The patient it is about (the invitation they came in with); `None` for a note about no
    /// one patient, and for records made before patients were told apart.
    pub subject: Option<InviteId>,
}

/// The clinician account that issued a record, as it stood then: name, title and institution
/// are kept as they were shown, so a later change of the account does not change the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub by: UserId,
    pub name: String,
    pub title: String,
    pub institution: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEvent {
    pub record_id: RecordId,
    pub from_status: RecordStatus,
    pub to_status: RecordStatus,
    /// Participant or user id.
    pub actor: String,
    pub actor_role: String,
    pub note: String,
    pub at_ms: i64,
}

fn corrupt(what: &'static str) -> StorageError {
    StorageError::Corrupt(what)
}

fn record_from_row(row: &AnyRow) -> Result<RecordRow, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    let supersedes: Option<String> = row.try_get("supersedes")?;
    Ok(RecordRow {
        id: RecordId::parse(&s("id")?).ok_or(corrupt("record id"))?,
        room_id: RoomId::parse(&s("room_id")?).ok_or(corrupt("record room"))?,
        kind: RecordKind::parse(&s("kind")?).ok_or(corrupt("record kind"))?,
        supersedes: supersedes
            .map(|v| RecordId::parse(&v).ok_or(corrupt("record supersedes")))
            .transpose()?,
        status: RecordStatus::parse(&s("status")?).ok_or(corrupt("record status"))?,
        body: serde_json::from_str(&s("body")?).map_err(|_| corrupt("record body"))?,
        body_sha256: s("body_sha256")?,
        author: s("author")?,
        author_name: s("author_name")?,
        author_role: s("author_role")?,
        created_at_ms: row.try_get("created_at_ms")?,
        signature: signature_from_row(row)?,
        subject: row
            .try_get::<Option<String>, _>("subject_invite")?
            .map(|v| InviteId::parse(&v).ok_or(corrupt("record subject")))
            .transpose()?,
    })
}

fn signature_from_row(row: &AnyRow) -> Result<Option<Signature>, StorageError> {
    let by: Option<String> = row.try_get("signed_by")?;
    let Some(by) = by else {
        return Ok(None);
    };
    let text = |c: &str| -> Result<String, StorageError> {
        Ok(row.try_get::<Option<String>, _>(c)?.unwrap_or_default())
    };
    Ok(Some(Signature {
        by: UserId::parse(&by).ok_or(corrupt("record signer"))?,
        name: text("signer_name")?,
        title: text("signer_title")?,
        institution: text("signer_institution")?,
        at_ms: row
            .try_get::<Option<i64>, _>("signed_at_ms")?
            .ok_or(corrupt("record signing time"))?,
    }))
}

/// Written by `insert_record` (a new record is never signed yet).
const INSERTED: &str = "id, room_id, kind, supersedes, status, body, body_sha256, author, \
                        author_name, author_role, created_at_ms, subject_invite";
const COLUMNS: &str = "id, room_id, kind, supersedes, status, body, body_sha256, author, \
                       author_name, author_role, created_at_ms, signed_by, signer_name, \
                       signer_title, signer_institution, signed_at_ms, subject_invite";

/// A record concerns an institution (its pharmacy reviews it) when it was written in one of
/// the institution's consultations, or signed by one of its clinicians (a county specialist's
/// prescription in a township clinic's consultation concerns both). `$2` is the institution.
const CONCERNS: &str = "(room_id IN (SELECT id FROM rooms WHERE institution_id = $2) \
     OR signed_by IN (SELECT id FROM users WHERE institution_id = $2))";

impl Db {
    /// Inserts a record, and queues the audit entries it owes (`audit`, JSON) in the same
    /// transaction; a second correction of the same record is a [`StorageError::Conflict`].
    pub async fn insert_record(
        &self,
        r: &RecordRow,
        audit: Vec<String>,
    ) -> Result<Vec<super::PendingAudit>, StorageError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO records ({INSERTED}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(r.id.as_str())
        .bind(r.room_id.as_str())
        .bind(r.kind.as_str())
        .bind(r.supersedes.as_ref().map(RecordId::as_str))
        .bind(r.status.as_str())
        .bind(r.body.to_string())
        .bind(&r.body_sha256)
        .bind(&r.author)
        .bind(&r.author_name)
        .bind(&r.author_role)
        .bind(r.created_at_ms)
        .bind(r.subject.as_ref().map(InviteId::as_str))
        .execute(&mut *tx)
        .await
        .map_err(super::map_unique)?;
        let owed = super::audit_pending::queue(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(owed)
    }

    /// The patients a room has let in or kept waiting, oldest first: each participant with
    /// the invitation they came with (a reload is a new participant on the same invitation).
    pub async fn patients_in_room(
        &self,
        room: &RoomId,
    ) -> Result<Vec<(ParticipantId, InviteId)>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, invite_id FROM participants WHERE room_id = $1 AND role = 'patient' \
             ORDER BY joined_at, id",
        )
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let invite: String = row.try_get("invite_id")?;
                Ok((
                    ParticipantId::parse(&id).ok_or(corrupt("participant id"))?,
                    InviteId::parse(&invite).ok_or(corrupt("participant invite"))?,
                ))
            })
            .collect()
    }

    pub async fn record(&self, id: &RecordId) -> Result<Option<RecordRow>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM records WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Oldest first.
    pub async fn records_in_room(&self, room: &RoomId) -> Result<Vec<RecordRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM records WHERE room_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Prescriptions in `status` that concern `institution`'s pharmacy, oldest first, at most
    /// `limit`: those after `after` (the last one of the page before, by creation time and id)
    /// if given. Keyset paging: a page does not shift when earlier ones leave the status.
    pub async fn prescriptions_in(
        &self,
        status: RecordStatus,
        institution: &InstitutionId,
        after: Option<(i64, &RecordId)>,
        limit: i64,
    ) -> Result<Vec<RecordRow>, StorageError> {
        let (after_ms, after_id) = after.map_or((i64::MIN, ""), |(ms, id)| (ms, id.as_str()));
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM records WHERE kind = 'prescription' AND status = $1 \
             AND {CONCERNS} AND (created_at_ms > $3 OR (created_at_ms = $3 AND id > $4)) \
             ORDER BY created_at_ms, id LIMIT $5"
        ))
        .bind(status.as_str())
        .bind(institution.as_str())
        .bind(after_ms)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// How many prescriptions in `status` concern `institution`'s pharmacy.
    pub async fn count_prescriptions_in(
        &self,
        status: RecordStatus,
        institution: &InstitutionId,
    ) -> Result<i64, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM records WHERE kind = 'prescription' AND status = $1 \
             AND {CONCERNS}"
        ))
        .bind(status.as_str())
        .bind(institution.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    /// Whether record `id` concerns `institution`'s pharmacy (see [`CONCERNS`]).
    pub async fn record_concerns(
        &self,
        id: &RecordId,
        institution: &InstitutionId,
    ) -> Result<bool, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT id FROM records WHERE id = $1 AND {CONCERNS}"
        ))
        .bind(id.as_str())
        .bind(institution.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }

    /// The record that corrects `id`, if any (there is at most one).
    pub async fn successor_of(&self, id: &RecordId) -> Result<Option<RecordId>, StorageError> {
        let row = sqlx::query("SELECT id FROM records WHERE supersedes = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            RecordId::parse(&r.try_get::<String, _>("id")?).ok_or(corrupt("record successor"))
        })
        .transpose()
    }

    /// Replaces a draft's body; `NotFound` if it is no longer a draft.
    pub async fn update_draft(
        &self,
        id: &RecordId,
        body: &serde_json::Value,
        body_sha256: &str,
    ) -> Result<(), StorageError> {
        let done = sqlx::query(
            "UPDATE records SET body = $1, body_sha256 = $2 WHERE id = $3 AND status = 'draft'",
        )
        .bind(body.to_string())
        .bind(body_sha256)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        if done.rows_affected() != 1 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    /// Moves a record from `event.from_status` to `event.to_status` and records the step, in
    /// one transaction, with the signature when the step is the issuing one; `Conflict` if the
    /// record was not in `from_status` any more, or its body is no longer the one whose digest
    /// is `body_sha256` (a draft edited from another tab between reading and signing: what is
    /// signed is exactly what the signer saw, and what the audit entry names).
    ///
    /// A webhook event (`webhook`: the record's room, the kind and the facts) is queued in
    /// the same transaction for the institutions taking part in the consultation, and so are
    /// the audit entries the step owes (`audit`, JSON); answers those as queued.
    pub async fn change_record_status(
        &self,
        event: &RecordEvent,
        body_sha256: &str,
        signature: Option<&Signature>,
        webhook: Option<(&RoomId, EventKind, serde_json::Value)>,
        audit: Vec<String>,
    ) -> Result<Vec<super::PendingAudit>, StorageError> {
        let mut tx = self.begin_write().await?;
        let done = match signature {
            None => {
                sqlx::query(
                    "UPDATE records SET status = $1 \
                     WHERE id = $2 AND status = $3 AND body_sha256 = $4",
                )
                .bind(event.to_status.as_str())
                .bind(event.record_id.as_str())
                .bind(event.from_status.as_str())
                .bind(body_sha256)
                .execute(&mut *tx)
                .await?
            }
            Some(sig) => {
                sqlx::query(
                    "UPDATE records SET status = $1, signed_by = $4, signer_name = $5, \
                     signer_title = $6, signer_institution = $7, signed_at_ms = $8 \
                     WHERE id = $2 AND status = $3 AND signed_by IS NULL AND body_sha256 = $9",
                )
                .bind(event.to_status.as_str())
                .bind(event.record_id.as_str())
                .bind(event.from_status.as_str())
                .bind(sig.by.as_str())
                .bind(&sig.name)
                .bind(&sig.title)
                .bind(&sig.institution)
                .bind(sig.at_ms)
                .bind(body_sha256)
                .execute(&mut *tx)
                .await?
            }
        };
        if done.rows_affected() != 1 {
            return Err(StorageError::Conflict);
        }
        sqlx::query(
            "INSERT INTO record_events (id, record_id, from_status, to_status, actor, actor_role, \
             note, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(crate::domain::ids::RecordEventId::generate().as_str())
        .bind(event.record_id.as_str())
        .bind(event.from_status.as_str())
        .bind(event.to_status.as_str())
        .bind(&event.actor)
        .bind(&event.actor_role)
        .bind(&event.note)
        .bind(event.at_ms)
        .execute(&mut *tx)
        .await?;
        if let Some((room, kind, data)) = webhook {
            super::webhooks::enqueue_for_room(
                &mut tx,
                room,
                kind,
                data,
                event.at_ms / 1000,
                event.at_ms,
            )
            .await?;
        }
        let owed = super::audit_pending::queue(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(owed)
    }

    /// Every step of every record in `room`, oldest first.
    pub async fn record_events_in_room(
        &self,
        room: &RoomId,
    ) -> Result<Vec<RecordEvent>, StorageError> {
        let rows = sqlx::query(
            "SELECT e.record_id, e.from_status, e.to_status, e.actor, e.actor_role, e.note, \
             e.at_ms FROM record_events e JOIN records r ON r.id = e.record_id \
             WHERE r.room_id = $1 ORDER BY e.at_ms, e.id",
        )
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    pub async fn record_events(&self, id: &RecordId) -> Result<Vec<RecordEvent>, StorageError> {
        let rows = sqlx::query(
            "SELECT record_id, from_status, to_status, actor, actor_role, note, at_ms \
             FROM record_events WHERE record_id = $1 ORDER BY at_ms, id",
        )
        .bind(id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(row: &AnyRow) -> Result<RecordEvent, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    Ok(RecordEvent {
        record_id: RecordId::parse(&s("record_id")?).ok_or(corrupt("event record"))?,
        from_status: RecordStatus::parse(&s("from_status")?).ok_or(corrupt("event from"))?,
        to_status: RecordStatus::parse(&s("to_status")?).ok_or(corrupt("event to"))?,
        actor: s("actor")?,
        actor_role: s("actor_role")?,
        note: s("note")?,
        at_ms: row.try_get("at_ms")?,
    })
}

/// A draft waiting to be issued in a live consultation of a care team (a clinician's day
/// view: what is left to sign).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDraft {
    pub record_id: RecordId,
    pub room_id: RoomId,
    pub room_title: String,
    pub kind: RecordKind,
    pub author_name: String,
    pub created_at_ms: i64,
}

impl Db {
    /// Drafts in the open consultations whose care team `user` is on, oldest first, at most
    /// `limit`.
    pub async fn pending_drafts(
        &self,
        user: &UserId,
        limit: i64,
    ) -> Result<Vec<PendingDraft>, StorageError> {
        let rows = sqlx::query(
            "SELECT r.id, r.room_id, m.title, r.kind, r.author_name, r.created_at_ms \
             FROM records r JOIN rooms m ON m.id = r.room_id \
             JOIN care_team c ON c.room_id = r.room_id \
             WHERE c.user_id = $1 AND r.status = 'draft' AND m.ended_at IS NULL \
             ORDER BY r.created_at_ms, r.id LIMIT $2",
        )
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let room: String = row.try_get("room_id")?;
                let kind: String = row.try_get("kind")?;
                Ok(PendingDraft {
                    record_id: RecordId::parse(&id).ok_or(StorageError::Corrupt("record id"))?,
                    room_id: RoomId::parse(&room).ok_or(StorageError::Corrupt("room id"))?,
                    room_title: row.try_get("title")?,
                    kind: RecordKind::parse(&kind).ok_or(StorageError::Corrupt("record kind"))?,
                    author_name: row.try_get("author_name")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }
}
