//! Shared documents, unfinished uploads and annotations as rows. The bytes are not here: they
//! are in the blob store (`crate::documents`), named by the `sha256` column.
//!
//! The document quotas are counters (migrations/0004), changed only in the transactions that
//! insert and delete the rows they count: an upload takes its place in them with conditional
//! `UPDATE`s ([`Db::start_upload`]), finishing it keeps the place for the document
//! ([`Db::complete_upload`]) and discarding it gives the place back ([`Db::delete_upload`]).
//! Counting rows and then inserting would be a race: every request sees the same count.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError, map_unique};
use crate::domain::document::DocumentKind;
use crate::domain::ids::{AnnotationId, DocumentId, InviteId, ParticipantId, RoomId, UploadId};
use crate::domain::role::{Role, Visibility};

#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    pub id: DocumentId,
    pub room_id: RoomId,
    pub sha256: String,
    pub size: i64,
    pub kind: DocumentKind,
    pub name: String,
    pub visibility: Visibility,
    pub shared_by: ParticipantId,
    pub shared_by_role: Role,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    pub id: UploadId,
    pub room_id: RoomId,
    pub participant: ParticipantId,
    pub invite: InviteId,
    pub role: Role,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    pub visibility: Visibility,
    pub created_at: i64,
}

/// The limits an upload must fit in, all checked and taken in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    /// Uploads one person (invite) may have open at once.
    pub open_uploads: i64,
    /// Documents one person may share, their open uploads included.
    pub person_documents: i64,
    /// Bytes one person may share, their open uploads' declared sizes included.
    pub person_bytes: i64,
    /// Documents in the room, everyone's, open uploads included.
    pub room_documents: i64,
    /// Of those, the documents of participants who are not clinicians
    /// ([`Role::is_clinician`]).
    pub room_non_clinician_documents: i64,
}

/// Which limit refused an upload (the first that would be passed, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaRefusal {
    OpenUploads,
    PersonDocuments,
    /// `used`: the person's bytes, shared and held by open uploads, when it was refused.
    PersonBytes {
        used: i64,
    },
    RoomDocuments,
    RoomNonClinicianDocuments,
}

/// What one person (invite) has used of the quotas: open uploads hold their places.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersonUsage {
    pub open_uploads: i64,
    pub documents: i64,
    pub bytes: i64,
}

/// What a room has used of its quota: open uploads hold their places.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomUsage {
    pub documents: i64,
    pub non_clinician_documents: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationRecord {
    pub id: AnnotationId,
    pub document_id: DocumentId,
    pub page: i64,
    /// The shape as the client sent it, validated (`crate::documents::annotation`).
    pub shape: serde_json::Value,
    pub author: ParticipantId,
    pub author_role: Role,
    pub created_at_ms: i64,
}

fn corrupt(what: &'static str) -> StorageError {
    StorageError::Corrupt(what)
}

pub(super) fn document_from_row(row: &AnyRow) -> Result<DocumentRecord, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    Ok(DocumentRecord {
        id: DocumentId::parse(&s("id")?).ok_or(corrupt("document id"))?,
        room_id: RoomId::parse(&s("room_id")?).ok_or(corrupt("document room"))?,
        sha256: s("sha256")?,
        size: row.try_get("size")?,
        kind: DocumentKind::parse(&s("kind")?).ok_or(corrupt("document kind"))?,
        name: s("name")?,
        visibility: Visibility::parse(&s("visibility")?).ok_or(corrupt("document visibility"))?,
        shared_by: ParticipantId::parse(&s("shared_by")?).ok_or(corrupt("document sharer"))?,
        shared_by_role: Role::parse(&s("shared_by_role")?).ok_or(corrupt("document role"))?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn upload_from_row(row: &AnyRow) -> Result<UploadRecord, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    Ok(UploadRecord {
        id: UploadId::parse(&s("id")?).ok_or(corrupt("upload id"))?,
        room_id: RoomId::parse(&s("room_id")?).ok_or(corrupt("upload room"))?,
        participant: ParticipantId::parse(&s("participant_id")?)
            .ok_or(corrupt("upload participant"))?,
        invite: InviteId::parse(&s("invite_id")?).ok_or(corrupt("upload invite"))?,
        role: Role::parse(&s("role")?).ok_or(corrupt("upload role"))?,
        name: s("name")?,
        size: row.try_get("size")?,
        sha256: s("sha256")?,
        visibility: Visibility::parse(&s("visibility")?).ok_or(corrupt("upload visibility"))?,
        created_at: row.try_get("created_at")?,
    })
}

fn person_usage_from_row(row: &AnyRow) -> Result<PersonUsage, StorageError> {
    Ok(PersonUsage {
        open_uploads: row.try_get("open_uploads")?,
        documents: row.try_get("documents")?,
        bytes: row.try_get("bytes")?,
    })
}

fn annotation_from_row(row: &AnyRow) -> Result<AnnotationRecord, StorageError> {
    let s = |c: &str| row.try_get::<String, _>(c);
    Ok(AnnotationRecord {
        id: AnnotationId::parse(&s("id")?).ok_or(corrupt("annotation id"))?,
        document_id: DocumentId::parse(&s("document_id")?).ok_or(corrupt("annotation doc"))?,
        page: row.try_get("page")?,
        shape: serde_json::from_str(&s("shape")?).map_err(|_| corrupt("annotation shape"))?,
        author: ParticipantId::parse(&s("author")?).ok_or(corrupt("annotation author"))?,
        author_role: Role::parse(&s("author_role")?).ok_or(corrupt("annotation role"))?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

const DOC_COLUMNS: &str = "id, room_id, sha256, size, kind, name, visibility, shared_by, \
                           shared_by_role, created_at_ms";
const UPLOAD_COLUMNS: &str =
    "id, room_id, participant_id, invite_id, role, name, size, sha256, visibility, created_at";

/// A document row, in the caller's transaction (its quota places are the caller's to take).
pub(super) async fn insert_document(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    d: &DocumentRecord,
) -> Result<(), StorageError> {
    sqlx::query(&format!(
        "INSERT INTO documents ({DOC_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(d.id.as_str())
    .bind(d.room_id.as_str())
    .bind(&d.sha256)
    .bind(d.size)
    .bind(d.kind.as_str())
    .bind(&d.name)
    .bind(d.visibility.as_str())
    .bind(d.shared_by.as_str())
    .bind(d.shared_by_role.as_str())
    .bind(d.created_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Stores a new upload if it fits every limit of `quota`, taking its places (one open
    /// upload, one document and its declared size for the person, one document for the room)
    /// in the same transaction. `Ok(Err(_))` names the limit that refused it; nothing changed.
    ///
    /// Each counter is taken by one `UPDATE … WHERE used < limit` whose affected rows say
    /// whether it fitted: SQLite runs one writer at a time, and PostgreSQL makes a concurrent
    /// `UPDATE` of the same row wait and then check its `WHERE` against the row as committed,
    /// so of N requests racing for the last place exactly one gets it. The person's row is
    /// always taken before the room's (here and in [`Db::delete_upload`]), so two transactions
    /// never wait on each other in a circle.
    pub async fn start_upload(
        &self,
        u: &UploadRecord,
        quota: &UploadQuota,
    ) -> Result<Result<(), QuotaRefusal>, StorageError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO document_quota_invites (invite_id) VALUES ($1) \
             ON CONFLICT (invite_id) DO NOTHING",
        )
        .bind(u.invite.as_str())
        .execute(&mut *tx)
        .await?;
        let person = sqlx::query(
            "UPDATE document_quota_invites \
             SET open_uploads = open_uploads + 1, documents = documents + 1, bytes = bytes + $1 \
             WHERE invite_id = $2 AND open_uploads < $3 AND documents < $4 AND bytes + $5 <= $6",
        )
        .bind(u.size)
        .bind(u.invite.as_str())
        .bind(quota.open_uploads)
        .bind(quota.person_documents)
        .bind(u.size)
        .bind(quota.person_bytes)
        .execute(&mut *tx)
        .await?;
        if person.rows_affected() != 1 {
            let row = sqlx::query(
                "SELECT open_uploads, documents, bytes FROM document_quota_invites \
                 WHERE invite_id = $1",
            )
            .bind(u.invite.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let used = person_usage_from_row(&row)?;
            tx.rollback().await?;
            return Ok(Err(if used.open_uploads >= quota.open_uploads {
                QuotaRefusal::OpenUploads
            } else if used.documents >= quota.person_documents {
                QuotaRefusal::PersonDocuments
            } else {
                QuotaRefusal::PersonBytes { used: used.bytes }
            }));
        }
        let non_clinician = i64::from(!u.role.is_clinician());
        sqlx::query(
            "INSERT INTO document_quota_rooms (room_id) VALUES ($1) \
             ON CONFLICT (room_id) DO NOTHING",
        )
        .bind(u.room_id.as_str())
        .execute(&mut *tx)
        .await?;
        let room = sqlx::query(
            "UPDATE document_quota_rooms SET documents = documents + 1, \
             non_clinician_documents = non_clinician_documents + $1 \
             WHERE room_id = $2 AND documents < $3 AND non_clinician_documents + $4 <= $5",
        )
        .bind(non_clinician)
        .bind(u.room_id.as_str())
        .bind(quota.room_documents)
        .bind(non_clinician)
        .bind(quota.room_non_clinician_documents)
        .execute(&mut *tx)
        .await?;
        if room.rows_affected() != 1 {
            let used = sqlx::query("SELECT documents FROM document_quota_rooms WHERE room_id = $1")
                .bind(u.room_id.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get::<i64, _>("documents")?;
            tx.rollback().await?;
            return Ok(Err(if used >= quota.room_documents {
                QuotaRefusal::RoomDocuments
            } else {
                QuotaRefusal::RoomNonClinicianDocuments
            }));
        }
        sqlx::query(&format!(
            "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(u.id.as_str())
        .bind(u.room_id.as_str())
        .bind(u.participant.as_str())
        .bind(u.invite.as_str())
        .bind(u.role.as_str())
        .bind(&u.name)
        .bind(u.size)
        .bind(&u.sha256)
        .bind(u.visibility.as_str())
        .bind(u.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_unique)?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// What `invite` has used of the person's quotas.
    pub async fn person_usage(&self, invite: &InviteId) -> Result<PersonUsage, StorageError> {
        let row = sqlx::query(
            "SELECT open_uploads, documents, bytes FROM document_quota_invites \
             WHERE invite_id = $1",
        )
        .bind(invite.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref()
            .map_or(Ok(PersonUsage::default()), person_usage_from_row)
    }

    /// What `room` has used of its quota.
    pub async fn room_usage(&self, room: &RoomId) -> Result<RoomUsage, StorageError> {
        let row = sqlx::query(
            "SELECT documents, non_clinician_documents FROM document_quota_rooms \
             WHERE room_id = $1",
        )
        .bind(room.as_str())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) => RoomUsage {
                documents: row.try_get("documents")?,
                non_clinician_documents: row.try_get("non_clinician_documents")?,
            },
            None => RoomUsage::default(),
        })
    }

    /// The upload, only if it belongs to `room`.
    pub async fn upload(
        &self,
        room: &RoomId,
        id: &UploadId,
    ) -> Result<Option<UploadRecord>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND room_id = $2"
        ))
        .bind(id.as_str())
        .bind(room.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    pub async fn open_uploads_of(&self, invite: &InviteId) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM uploads WHERE invite_id = $1")
            .bind(invite.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Deletes an unfinished upload and gives its places in the quotas back, in one
    /// transaction; `false` if there was no such upload (finished or discarded meanwhile).
    pub async fn delete_upload(&self, id: &UploadId) -> Result<bool, StorageError> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(
            "DELETE FROM uploads WHERE id = $1 RETURNING invite_id, room_id, role, size",
        )
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let size: i64 = row.try_get("size")?;
        let role = Role::parse(&row.try_get::<String, _>("role")?).ok_or(corrupt("upload role"))?;
        sqlx::query(
            "UPDATE document_quota_invites SET open_uploads = open_uploads - 1, \
             documents = documents - 1, bytes = bytes - $1 WHERE invite_id = $2",
        )
        .bind(size)
        .bind(row.try_get::<String, _>("invite_id")?)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE document_quota_rooms SET documents = documents - 1, \
             non_clinician_documents = non_clinician_documents - $1 WHERE room_id = $2",
        )
        .bind(i64::from(!role.is_clinician()))
        .bind(row.try_get::<String, _>("room_id")?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Uploads started before `before` (Unix seconds); every upload when `before` is `None`.
    pub async fn uploads_started_before(
        &self,
        before: Option<i64>,
    ) -> Result<Vec<UploadId>, StorageError> {
        let rows = sqlx::query("SELECT id FROM uploads WHERE created_at < $1")
            .bind(before.unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| UploadId::parse(&r.try_get::<String, _>("id")?).ok_or(corrupt("upload id")))
            .collect()
    }

    /// Makes a finished upload a document, in one transaction: the document row appears and the
    /// upload row disappears together. The upload's places in the quotas become the
    /// document's (its person has one open upload fewer), so finishing never passes a quota:
    /// the place was taken when the upload started.
    pub async fn complete_upload(
        &self,
        upload: &UploadId,
        d: &DocumentRecord,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        // Deleted first: of two requests finishing (or one finishing, one discarding) the same
        // upload, the second waits here and then finds nothing.
        let Some(row) = sqlx::query("DELETE FROM uploads WHERE id = $1 RETURNING invite_id")
            .bind(upload.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(StorageError::Conflict);
        };
        insert_document(&mut tx, d).await?;
        sqlx::query(
            "UPDATE document_quota_invites SET open_uploads = open_uploads - 1 \
             WHERE invite_id = $1",
        )
        .bind(row.try_get::<String, _>("invite_id")?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The document, only if it belongs to `room`: an id from another room is not found.
    pub async fn document(
        &self,
        room: &RoomId,
        id: &DocumentId,
    ) -> Result<Option<DocumentRecord>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE id = $1 AND room_id = $2"
        ))
        .bind(id.as_str())
        .bind(room.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    /// Oldest first.
    pub async fn documents_in_room(
        &self,
        room: &RoomId,
    ) -> Result<Vec<DocumentRecord>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {DOC_COLUMNS} FROM documents WHERE room_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(room.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(document_from_row).collect()
    }

    pub async fn count_documents(&self, room: &RoomId) -> Result<i64, StorageError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM documents WHERE room_id = $1")
            .bind(room.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn insert_annotation(
        &self,
        room: &RoomId,
        a: &AnnotationRecord,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO annotations (id, document_id, room_id, page, shape, author, author_role, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(a.id.as_str())
        .bind(a.document_id.as_str())
        .bind(room.as_str())
        .bind(a.page)
        .bind(a.shape.to_string())
        .bind(a.author.as_str())
        .bind(a.author_role.as_str())
        .bind(a.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn annotations(
        &self,
        document: &DocumentId,
    ) -> Result<Vec<AnnotationRecord>, StorageError> {
        let rows = sqlx::query(
            "SELECT id, document_id, page, shape, author, author_role, created_at_ms \
             FROM annotations WHERE document_id = $1 ORDER BY created_at_ms, id",
        )
        .bind(document.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(annotation_from_row).collect()
    }
}
