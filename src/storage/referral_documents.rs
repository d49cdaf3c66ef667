//! Documents attached to consultation requests, as rows (migrations/0013). The bytes are in
//! the blob store, as for a room's documents.
//!
//! A request's limits (how many attachments, how many bytes) are counters on the request's
//! row, taken by one conditional `UPDATE` in the transaction that inserts the attachment, so
//! that requests racing for the last place cannot both get it ([`Db::attach_referral_document`]).
//! The same `UPDATE` refuses a request that is no longer open.
//!
//! An attachment becomes a clinicians-only document of the request's room: all of them in the
//! transaction that opens the room ([`copy_into_room`], called by the referral step), and one
//! attached later in its own transaction. Both take the row lock of the request first (the
//! step's version check, the attachment's counter), so whichever commits second sees the
//! other's work: no attachment is left out of the room, none is copied twice. A request to
//! another institution copies only while the patient's consent to sharing is in force
//! (`referral_consents::may_share`, read in the same transaction).

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::documents::insert_document;
use super::{Db, DocumentRecord, StorageError, map_unique};
use crate::domain::clock::now_unix_ms;
use crate::domain::document::DocumentKind;
use crate::domain::ids::{
    DocumentId, ParticipantId, ReferralDocumentId, ReferralId, RoomId, UserId,
};
use crate::domain::role::{Role, Visibility};

/// Where an attachment came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentSource {
    /// Uploaded with the request.
    Upload,
    /// Taken from a document of one of the patient's earlier consultations.
    Consultation { room: RoomId, document: DocumentId },
}

impl AttachmentSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            AttachmentSource::Upload => "upload",
            AttachmentSource::Consultation { .. } => "consultation",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralDocumentRow {
    pub id: ReferralDocumentId,
    pub referral_id: ReferralId,
    pub sha256: String,
    pub size: i64,
    pub kind: DocumentKind,
    pub name: String,
    pub source: AttachmentSource,
    pub attached_by: UserId,
    pub attached_at: i64,
    /// The document it became in the request's room, once the request has one.
    pub room_document: Option<DocumentId>,
}

/// A request's attachment limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachLimits {
    pub documents: i64,
    pub bytes: i64,
    /// The room's own document limit, for an attachment copied into an open room.
    pub room_documents: i64,
    /// The requester's own limits in the room (their seat), likewise.
    pub person_documents: i64,
    pub person_bytes: i64,
}

/// Why an attachment was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachRefusal {
    /// The request was declined, closed or cancelled.
    NotOpen,
    TooMany,
    /// `used`: the bytes attached already.
    TooManyBytes {
        used: i64,
    },
    /// The request's room holds as many documents as it may.
    RoomFull,
    /// The requester's seat in the room has shared as much as it may.
    PersonFull,
}

/// Why an attachment could not be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetachRefusal {
    NotFound,
    /// It is a document of the consultation's room already.
    InRoom,
}

/// A document of one of the patient's consultations that a clinician may attach.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientDocument {
    pub document: DocumentRecord,
    pub room_title: String,
    pub room_created_at: i64,
}

const COLUMNS: &str = "id, referral_id, sha256, size, kind, name, source, source_room, \
                       source_document, attached_by, attached_at, room_document";

fn corrupt(what: &'static str) -> StorageError {
    StorageError::Corrupt(what)
}

fn from_row(row: &AnyRow) -> Result<ReferralDocumentRow, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    let o = |c: &str| row.try_get::<Option<String>, _>(c);
    let source = match s("source")?.as_str() {
        "upload" => AttachmentSource::Upload,
        "consultation" => AttachmentSource::Consultation {
            room: o("source_room")?
                .and_then(|r| RoomId::parse(&r))
                .ok_or(corrupt("attachment source room"))?,
            document: o("source_document")?
                .and_then(|d| DocumentId::parse(&d))
                .ok_or(corrupt("attachment source document"))?,
        },
        _ => return Err(corrupt("attachment source")),
    };
    Ok(ReferralDocumentRow {
        id: ReferralDocumentId::parse(&s("id")?).ok_or(corrupt("attachment id"))?,
        referral_id: ReferralId::parse(&s("referral_id")?).ok_or(corrupt("attachment request"))?,
        sha256: s("sha256")?,
        size: row.try_get("size")?,
        kind: DocumentKind::parse(&s("kind")?).ok_or(corrupt("attachment kind"))?,
        name: s("name")?,
        source,
        attached_by: UserId::parse(&s("attached_by")?).ok_or(corrupt("attachment author"))?,
        attached_at: row.try_get("attached_at")?,
        room_document: o("room_document")?
            .map(|d| DocumentId::parse(&d).ok_or(corrupt("attachment room document")))
            .transpose()?,
    })
}

/// The room document an attachment becomes: clinicians only (a referral's documents are for
/// the care team; a clinician may show one to the patient on screen), shared by the
/// requester's seat in the role they hold on the care team.
fn room_document(a: &ReferralDocumentRow, room: &RoomId, role: Role) -> DocumentRecord {
    DocumentRecord {
        id: DocumentId::generate(),
        room_id: room.clone(),
        sha256: a.sha256.clone(),
        size: a.size,
        kind: a.kind,
        name: a.name.clone(),
        visibility: Visibility::Clinicians,
        // Nobody was in the room to share it: an id of its own, which no participant has.
        shared_by: ParticipantId::generate(),
        shared_by_role: role,
        created_at_ms: now_unix_ms(),
    }
}

/// The requester's seat and role in `room`, if they are on its care team.
async fn seat_of(
    tx: &mut Transaction<'static, Any>,
    room: &RoomId,
    user: &UserId,
) -> Result<Option<(String, Role)>, StorageError> {
    let row = sqlx::query("SELECT seat, role FROM care_team WHERE room_id = $1 AND user_id = $2")
        .bind(room.as_str())
        .bind(user.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| {
        let role: String = r.try_get("role")?;
        Ok((
            r.try_get("seat")?,
            Role::parse(&role).ok_or(corrupt("care team role"))?,
        ))
    })
    .transpose()
}

/// Copies every attachment of `referral` that is not in a room yet into `room`, whose care
/// team `requester` is on, in the caller's transaction (the step that opens the room), and
/// answers them as they are now (each naming its room document). The
/// places are taken in the quota counters without a limit: a request holds at most
/// `documents.max_referral_documents` attachments and bytes, which configuration keeps within
/// a room's and a person's limits, and the room and the requester's seat are new.
pub(super) async fn copy_into_room(
    tx: &mut Transaction<'static, Any>,
    referral: &ReferralId,
    room: &RoomId,
    requester: &UserId,
) -> Result<Vec<ReferralDocumentRow>, StorageError> {
    let Some((seat, role)) = seat_of(tx, room, requester).await? else {
        return Ok(Vec::new());
    };
    // A request to another institution brings its documents only with the patient's consent
    // in force; those left out stay on the request.
    if !super::referral_consents::may_share(tx, referral).await? {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM referral_documents \
         WHERE referral_id = $1 AND room_document IS NULL ORDER BY attached_at, id"
    ))
    .bind(referral.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut attachments = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    if attachments.is_empty() {
        return Ok(attachments);
    }
    let mut bytes = 0;
    for a in &mut attachments {
        let doc = room_document(a, room, role);
        insert_document(tx, &doc).await?;
        mark_in_room(tx, &a.id, &doc.id).await?;
        a.room_document = Some(doc.id);
        bytes += a.size;
    }
    let n = attachments.len() as i64;
    take_places(tx, &seat, room, n, bytes, role).await?;
    Ok(attachments)
}

async fn mark_in_room(
    tx: &mut Transaction<'static, Any>,
    attachment: &ReferralDocumentId,
    doc: &DocumentId,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE referral_documents SET room_document = $1 WHERE id = $2")
        .bind(doc.as_str())
        .bind(attachment.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes `n` documents and `bytes` in the seat's and the room's quota counters, unconditionally.
async fn take_places(
    tx: &mut Transaction<'static, Any>,
    seat: &str,
    room: &RoomId,
    n: i64,
    bytes: i64,
    role: Role,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO document_quota_invites (invite_id) VALUES ($1) \
         ON CONFLICT (invite_id) DO NOTHING",
    )
    .bind(seat)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE document_quota_invites SET documents = documents + $1, bytes = bytes + $2 \
         WHERE invite_id = $3",
    )
    .bind(n)
    .bind(bytes)
    .bind(seat)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO document_quota_rooms (room_id) VALUES ($1) ON CONFLICT (room_id) DO NOTHING",
    )
    .bind(room.as_str())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE document_quota_rooms SET documents = documents + $1, \
         non_clinician_documents = non_clinician_documents + $2 WHERE room_id = $3",
    )
    .bind(n)
    .bind(if role.is_clinician() { 0 } else { n })
    .bind(room.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Attaches `a` to its request if the request is open and within `limits`, taking its
    /// places in the request's counters in the same transaction. If the request's room is
    /// open and the requester on its care team, the attachment also becomes a document of the
    /// room (within the room's and the seat's limits), which is answered so that the room can
    /// be told. `Ok(Err(_))`: refused, nothing changed; `Conflict`: that document of an
    /// earlier consultation is attached to the request already.
    pub async fn attach_referral_document(
        &self,
        a: &ReferralDocumentRow,
        limits: &AttachLimits,
    ) -> Result<Result<Option<DocumentRecord>, AttachRefusal>, StorageError> {
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "UPDATE referrals SET attachments = attachments + 1, \
             attachment_bytes = attachment_bytes + $1 \
             WHERE id = $2 AND is_open = 1 AND attachments < $3 AND attachment_bytes + $4 <= $5",
        )
        .bind(a.size)
        .bind(a.referral_id.as_str())
        .bind(limits.documents)
        .bind(a.size)
        .bind(limits.bytes)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() != 1 {
            let row = sqlx::query(
                "SELECT is_open, attachments, attachment_bytes FROM referrals WHERE id = $1",
            )
            .bind(a.referral_id.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StorageError::NotFound)?;
            tx.rollback().await?;
            let (open, n, used): (i64, i64, i64) = (
                row.try_get("is_open")?,
                row.try_get("attachments")?,
                row.try_get("attachment_bytes")?,
            );
            return Ok(Err(if open == 0 {
                AttachRefusal::NotOpen
            } else if n >= limits.documents {
                AttachRefusal::TooMany
            } else {
                AttachRefusal::TooManyBytes { used }
            }));
        }
        // Read after the counter's UPDATE, which waited for any step holding the request's
        // row: a room opened by a step that committed first is seen here.
        // An ended room takes no more documents.
        let room: Option<(String, String)> = sqlx::query(
            "SELECT m.id, r.requester_id FROM referrals r \
             JOIN rooms m ON m.id = r.room_id WHERE r.id = $1 AND m.ended_at IS NULL",
        )
        .bind(a.referral_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| -> Result<_, StorageError> { Ok((r.try_get("id")?, r.try_get("requester_id")?)) })
        .transpose()?;
        let mut copied = None;
        let mut row = a.clone();
        // The patient's consent is checked before (`referrals::documents`), and again here: a
        // withdrawal committed meanwhile keeps the document out of the room (it stays on the
        // request, which the receiving side then cannot read either).
        let room = match room {
            Some(room) if super::referral_consents::may_share(&mut tx, &a.referral_id).await? => {
                Some(room)
            }
            _ => None,
        };
        if let Some((room, requester)) = room {
            let room = RoomId::parse(&room).ok_or(corrupt("referral room"))?;
            let requester = UserId::parse(&requester).ok_or(corrupt("referral requester"))?;
            if let Some((seat, role)) = seat_of(&mut tx, &room, &requester).await? {
                if let Some(refusal) =
                    take_place_within(&mut tx, &seat, &room, a.size, role, limits).await?
                {
                    tx.rollback().await?;
                    return Ok(Err(refusal));
                }
                let doc = room_document(a, &room, role);
                insert_document(&mut tx, &doc).await?;
                row.room_document = Some(doc.id.clone());
                copied = Some(doc);
            }
        }
        insert(&mut tx, &row).await?;
        tx.commit().await?;
        Ok(Ok(copied))
    }

    /// A request's attachments, oldest first.
    pub async fn referral_documents(
        &self,
        referral: &ReferralId,
    ) -> Result<Vec<ReferralDocumentRow>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM referral_documents WHERE referral_id = $1 \
             ORDER BY attached_at, id"
        ))
        .bind(referral.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// One attachment, only if it belongs to `referral`.
    pub async fn referral_document(
        &self,
        referral: &ReferralId,
        id: &ReferralDocumentId,
    ) -> Result<Option<ReferralDocumentRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM referral_documents WHERE id = $1 AND referral_id = $2"
        ))
        .bind(id.as_str())
        .bind(referral.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Copies into the request's open room the attachments kept out of it while the patient's
    /// consent to sharing was not in force, now that it may share again: in one transaction
    /// that first takes the request's row, as a step and an attachment do, so that none is
    /// copied twice. Only while the room is open and the requester on its care team; each
    /// within the room's and the seat's limits, oldest first, stopping at the first that does
    /// not fit (it and those after stay on the request, where both sides read them). Answers
    /// the room documents made, each with the attachment it copies.
    pub async fn copy_kept_out_attachments(
        &self,
        referral: &ReferralId,
        limits: &AttachLimits,
    ) -> Result<Vec<(ReferralDocumentRow, DocumentRecord)>, StorageError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE referrals SET attachments = attachments WHERE id = $1")
            .bind(referral.as_str())
            .execute(&mut *tx)
            .await?;
        let room: Option<(String, String)> = sqlx::query(
            "SELECT m.id, r.requester_id FROM referrals r \
             JOIN rooms m ON m.id = r.room_id WHERE r.id = $1 AND m.ended_at IS NULL",
        )
        .bind(referral.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| -> Result<_, StorageError> { Ok((r.try_get("id")?, r.try_get("requester_id")?)) })
        .transpose()?;
        let Some((room, requester)) = room else {
            return Ok(Vec::new());
        };
        if !super::referral_consents::may_share(&mut tx, referral).await? {
            return Ok(Vec::new());
        }
        let room = RoomId::parse(&room).ok_or(corrupt("referral room"))?;
        let requester = UserId::parse(&requester).ok_or(corrupt("referral requester"))?;
        let Some((seat, role)) = seat_of(&mut tx, &room, &requester).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM referral_documents \
             WHERE referral_id = $1 AND room_document IS NULL ORDER BY attached_at, id"
        ))
        .bind(referral.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut copied = Vec::new();
        for row in &rows {
            let mut a = from_row(row)?;
            match take_place_within(&mut tx, &seat, &room, a.size, role, limits).await? {
                None => {}
                Some(AttachRefusal::RoomFull) => {
                    // The seat's place was taken before the room's refused: given back.
                    sqlx::query(
                        "UPDATE document_quota_invites SET documents = documents - 1, \
                         bytes = bytes - $1 WHERE invite_id = $2",
                    )
                    .bind(a.size)
                    .bind(&seat)
                    .execute(&mut *tx)
                    .await?;
                    break;
                }
                Some(_) => break,
            }
            let doc = room_document(&a, &room, role);
            insert_document(&mut tx, &doc).await?;
            mark_in_room(&mut tx, &a.id, &doc.id).await?;
            a.room_document = Some(doc.id.clone());
            copied.push((a, doc));
        }
        tx.commit().await?;
        Ok(copied)
    }

    /// Removes an attachment that is not in a room yet, giving its places back.
    pub async fn detach_referral_document(
        &self,
        referral: &ReferralId,
        id: &ReferralDocumentId,
    ) -> Result<Result<ReferralDocumentRow, DetachRefusal>, StorageError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(&format!(
            "DELETE FROM referral_documents \
             WHERE id = $1 AND referral_id = $2 AND room_document IS NULL RETURNING {COLUMNS}"
        ))
        .bind(id.as_str())
        .bind(referral.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = deleted else {
            let exists =
                sqlx::query("SELECT id FROM referral_documents WHERE id = $1 AND referral_id = $2")
                    .bind(id.as_str())
                    .bind(referral.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            tx.rollback().await?;
            return Ok(Err(if exists {
                DetachRefusal::InRoom
            } else {
                DetachRefusal::NotFound
            }));
        };
        let row = from_row(&row)?;
        sqlx::query(
            "UPDATE referrals SET attachments = attachments - 1, \
             attachment_bytes = attachment_bytes - $1 WHERE id = $2",
        )
        .bind(row.size)
        .bind(referral.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(row))
    }

    /// The documents of the consultations about patient `patient_ref` on whose care team
    /// `user` is, newest first, at most `limit`: what they may attach to a request about the
    /// same patient.
    pub async fn patient_documents(
        &self,
        user: &UserId,
        patient_ref: &str,
        limit: i64,
    ) -> Result<Vec<PatientDocument>, StorageError> {
        let rows = sqlx::query(
            "SELECT d.id, d.room_id, d.sha256, d.size, d.kind, d.name, d.visibility, \
             d.shared_by, d.shared_by_role, d.created_at_ms, m.title, m.created_at AS room_created \
             FROM documents d JOIN rooms m ON m.id = d.room_id \
             JOIN care_team c ON c.room_id = m.id AND c.user_id = $1 \
             WHERE m.patient_ref = $2 ORDER BY d.created_at_ms DESC, d.id LIMIT $3",
        )
        .bind(user.as_str())
        .bind(patient_ref)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PatientDocument {
                    document: super::documents::document_from_row(r)?,
                    room_title: r.try_get("title")?,
                    room_created_at: r.try_get("room_created")?,
                })
            })
            .collect()
    }
}

/// Takes one document of `size` in the seat's and the room's quota counters if it fits their
/// limits (conditional `UPDATE`s, the seat's first, as `Db::start_upload` does: a concurrent
/// upload in the room cannot make both pass); `Some` names the limit that refused it.
async fn take_place_within(
    tx: &mut Transaction<'static, Any>,
    seat: &str,
    room: &RoomId,
    size: i64,
    role: Role,
    limits: &AttachLimits,
) -> Result<Option<AttachRefusal>, StorageError> {
    sqlx::query(
        "INSERT INTO document_quota_invites (invite_id) VALUES ($1) \
         ON CONFLICT (invite_id) DO NOTHING",
    )
    .bind(seat)
    .execute(&mut **tx)
    .await?;
    let person = sqlx::query(
        "UPDATE document_quota_invites SET documents = documents + 1, bytes = bytes + $1 \
         WHERE invite_id = $2 AND documents < $3 AND bytes + $4 <= $5",
    )
    .bind(size)
    .bind(seat)
    .bind(limits.person_documents)
    .bind(size)
    .bind(limits.person_bytes)
    .execute(&mut **tx)
    .await?;
    if person.rows_affected() != 1 {
        return Ok(Some(AttachRefusal::PersonFull));
    }
    sqlx::query(
        "INSERT INTO document_quota_rooms (room_id) VALUES ($1) ON CONFLICT (room_id) DO NOTHING",
    )
    .bind(room.as_str())
    .execute(&mut **tx)
    .await?;
    let non_clinician = i64::from(!role.is_clinician());
    let taken = sqlx::query(
        "UPDATE document_quota_rooms SET documents = documents + 1, \
         non_clinician_documents = non_clinician_documents + $1 \
         WHERE room_id = $2 AND documents < $3",
    )
    .bind(non_clinician)
    .bind(room.as_str())
    .bind(limits.room_documents)
    .execute(&mut **tx)
    .await?;
    Ok((taken.rows_affected() != 1).then_some(AttachRefusal::RoomFull))
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    a: &ReferralDocumentRow,
) -> Result<(), StorageError> {
    let (room, doc) = match &a.source {
        AttachmentSource::Upload => (None, None),
        AttachmentSource::Consultation { room, document } => {
            (Some(room.as_str()), Some(document.as_str()))
        }
    };
    sqlx::query(&format!(
        "INSERT INTO referral_documents ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(a.id.as_str())
    .bind(a.referral_id.as_str())
    .bind(&a.sha256)
    .bind(a.size)
    .bind(a.kind.as_str())
    .bind(&a.name)
    .bind(a.source.as_str())
    .bind(room)
    .bind(doc)
    .bind(a.attached_by.as_str())
    .bind(a.attached_at)
    .bind(a.room_document.as_ref().map(DocumentId::as_str))
    .execute(&mut **tx)
    .await
    .map_err(map_unique)?;
    Ok(())
}
