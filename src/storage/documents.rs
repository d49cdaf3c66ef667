//! Shared documents, unfinished uploads and annotations as rows. The bytes are not here: they
//! are in the blob store (`crate::documents`), named by the `sha256` column.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Db, StorageError};
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

fn document_from_row(row: &AnyRow) -> Result<DocumentRecord, StorageError> {
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

impl Db {
    pub async fn insert_upload(&self, u: &UploadRecord) -> Result<(), StorageError> {
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
        .execute(self.pool())
        .await?;
        Ok(())
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

    pub async fn delete_upload(&self, id: &UploadId) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
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
    /// upload row disappears together.
    pub async fn complete_upload(
        &self,
        upload: &UploadId,
        d: &DocumentRecord,
    ) -> Result<(), StorageError> {
        let mut tx = self.pool().begin().await?;
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
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(upload.as_str())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() != 1 {
            // Completed concurrently by another request: keep the first.
            return Err(StorageError::Conflict);
        }
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
