//! The record of one consultation after the call: who took part and when, the documents, the
//! chat, the notes, reports and prescriptions with every step, assembled from storage; and its
//! exports as FHIR R4 resources ([`fhir`]) and as a PDF ([`pdf`]); and the patient's own
//! outcome ([`outcome`]: only what was issued to them, as JSON and as a PDF).
//!
//! Read-only: nothing here changes a record. Who may see a summary is the HTTP edge's question
//! (the room's creator, administrators, supervisors; for the outcome, the patient's link).

pub mod fhir;
pub mod outcome;
pub mod pdf;

pub(crate) use fhir::instant as fhir_instant;

use crate::domain::ids::RoomId;
use crate::records::{RecordError, RecordView, Records};
use crate::storage::{
    AnnotationRecord, ChatRecord, Db, DocumentRecord, ParticipantRecord, RoomRecord, StorageError,
};

/// Chat messages included in a summary (a consultation has far fewer).
const MAX_CHAT: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    #[error("no such consultation")]
    NotFound,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Records(#[from] RecordError),
}

#[derive(Debug, Clone)]
pub struct DocumentSummary {
    pub document: DocumentRecord,
    pub annotations: Vec<AnnotationRecord>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub room: RoomRecord,
    pub participants: Vec<ParticipantRecord>,
    pub documents: Vec<DocumentSummary>,
    pub chat: Vec<ChatRecord>,
    pub records: Vec<RecordView>,
    /// When this summary was assembled (Unix milliseconds).
    pub generated_at_ms: i64,
}

pub async fn assemble(db: &Db, records: &Records, room: &RoomId) -> Result<Summary, SummaryError> {
    let room = db.room(room).await?.ok_or(SummaryError::NotFound)?;
    let mut documents = Vec::new();
    for d in db.documents_in_room(&room.id).await? {
        let annotations = db.annotations(&d.id).await?;
        documents.push(DocumentSummary {
            document: d,
            annotations,
        });
    }
    Ok(Summary {
        participants: db.participants_of(&room.id).await?,
        documents,
        chat: db.recent_chat(&room.id, MAX_CHAT).await?,
        records: records.in_room_for(&room.id, None).await?,
        generated_at_ms: crate::domain::clock::now_unix_ms(),
        room,
    })
}
