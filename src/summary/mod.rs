//! The record of one consultation after the call: who took part and when, the documents, the
//! chat, the notes, reports and prescriptions with every step, assembled from storage; and its
//! exports as FHIR R4 resources ([`fhir`]) and as a PDF ([`pdf`], laid out by [`layout`] in the
//! embedded typeface of [`font`]); and the patient's own outcome ([`outcome`]: only what was
//! issued to them, as JSON and as a PDF).
//!
//! Read-only: nothing here changes a record. Who may see a summary is the HTTP edge's question
//! (whoever may see the consultation; for the outcome, the patient's link); what of it they
//! see is the [`Reader`]'s: drafts only on the care team, and the copies of a request's
//! attachments the patient has not agreed to share only inside the room's institution.

pub mod fhir;
pub mod font;
pub mod layout;
pub mod outcome;
pub mod pdf;

use crate::domain::ids::{InviteId, RecordId, RoomId, UserId};
use crate::domain::record::RecordStatus;
use crate::domain::role::Role;
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
    /// The PDF writer failed (a bug, not bad input: every text is printable).
    #[error("cannot write the PDF: {0}")]
    Pdf(String),
}

#[derive(Debug, Clone)]
pub struct DocumentSummary {
    pub document: DocumentRecord,
    pub annotations: Vec<AnnotationRecord>,
}

/// A clinician of the room's care team, with their account as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    /// The account's id, as the audit trail names it. Not its sign-in name: the summary goes
    /// to everyone who may see the consultation, and a sign-in name is half of what it takes
    /// to lock a clinician out (five wrong passwords).
    pub account: UserId,
    pub name: String,
    pub role: Role,
    pub title: String,
    /// The name of the account's institution.
    pub institution: String,
    /// The invitation the clinician joins through: their participant rows carry it.
    pub seat: InviteId,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub room: RoomRecord,
    /// The name of the institution that holds the consultation (empty if it is gone).
    pub institution: String,
    pub care_team: Vec<TeamMember>,
    pub participants: Vec<ParticipantRecord>,
    pub documents: Vec<DocumentSummary>,
    pub chat: Vec<ChatRecord>,
    pub records: Vec<RecordView>,
    /// When this summary was assembled (Unix milliseconds).
    pub generated_at_ms: i64,
}

/// Who reads a summary, as far as it changes what is in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    /// On the consultation's care team: its drafts are theirs to see. Anyone else who may see
    /// the consultation (a colleague of the institution, a supervisor, an administrator) reads
    /// what was issued only.
    pub care_team: bool,
    /// Outside the room's institution (the receiving side of a request, a specialist of
    /// another hospital on the care team, or a supervisor of another hospital): the documents
    /// the patient has not agreed to share with other institutions are left out, named
    /// nowhere, as in the room (`Db::withheld_documents`).
    pub outside: bool,
}

pub async fn assemble(
    db: &Db,
    records: &Records,
    room: &RoomId,
    reader: Reader,
) -> Result<Summary, SummaryError> {
    let room = db.room(room).await?.ok_or(SummaryError::NotFound)?;
    let withheld = if reader.outside {
        db.withheld_documents(&room.id).await?
    } else {
        Default::default()
    };
    let mut documents = Vec::new();
    for d in db.documents_in_room(&room.id).await? {
        if withheld.contains(&d.id) {
            continue;
        }
        let annotations = db.annotations(&d.id).await?;
        documents.push(DocumentSummary {
            document: d,
            annotations,
        });
    }
    let institution = db
        .institution(&room.institution_id)
        .await?
        .map(|i| i.name)
        .unwrap_or_default();
    let mut care_team = Vec::new();
    for m in db.care_team(&room.id).await? {
        let Some(user) = db.user(&m.user_id).await? else {
            continue;
        };
        let their_institution = if user.institution_id == room.institution_id {
            institution.clone()
        } else {
            db.institution(&user.institution_id)
                .await?
                .map(|i| i.name)
                .unwrap_or_default()
        };
        care_team.push(TeamMember {
            account: user.id,
            name: user.display_name,
            role: m.role,
            title: user.title,
            institution: their_institution,
            seat: m.seat,
        });
    }
    Ok(Summary {
        institution,
        care_team,
        participants: db.participants_of(&room.id).await?,
        documents,
        chat: db.recent_chat(&room.id, MAX_CHAT).await?,
        records: readable(records.in_room_for(&room.id, None).await?, reader),
        generated_at_ms: crate::domain::clock::now_unix_ms(),
        room,
    })
}

/// The records `reader` may have: without the drafts unless they are on the care team, and
/// then without a link to a draft that corrects an issued record (the draft is not theirs to
/// know of).
fn readable(mut all: Vec<RecordView>, reader: Reader) -> Vec<RecordView> {
    if reader.care_team {
        return all;
    }
    let drafts: std::collections::HashSet<RecordId> = all
        .iter()
        .filter(|v| v.record.status == RecordStatus::Draft)
        .map(|v| v.record.id.clone())
        .collect();
    all.retain(|v| !drafts.contains(&v.record.id));
    for v in &mut all {
        if v.superseded_by.as_ref().is_some_and(|s| drafts.contains(s)) {
            v.superseded_by = None;
        }
    }
    all
}
