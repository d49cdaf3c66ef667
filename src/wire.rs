//! The JSON shapes clients see for stored things: documents, annotations, chat, clinical
//! records, rooms and participants, over the HTTP API, in signaling messages and in the JSON
//! summary. Each is converted from a storage row or a service type here, field by field, so a
//! column added to a table reaches no client unless it is added here (and to docs/protocol.md).
//! Storage rows do not implement `Serialize`.

use serde::Serialize;

use crate::domain::document::DocumentKind;
use crate::domain::ids::{
    AnnotationId, ChatMessageId, DocumentId, InviteId, ParticipantId, RecordId, RoomId, UserId,
};
use crate::domain::record::{RecordKind, RecordStatus};
use crate::domain::role::{Role, Visibility};
use crate::records::RecordView;
use crate::storage::{
    AnnotationRecord, ChatRecord, DocumentRecord, ParticipantRecord, PendingDraft, RecordEvent,
    RecordRow, RoomRecord, RoomStatus,
};
use crate::summary::Summary;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentView {
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

impl From<&DocumentRecord> for DocumentView {
    fn from(d: &DocumentRecord) -> Self {
        Self {
            id: d.id.clone(),
            room_id: d.room_id.clone(),
            sha256: d.sha256.clone(),
            size: d.size,
            kind: d.kind,
            name: d.name.clone(),
            visibility: d.visibility,
            shared_by: d.shared_by.clone(),
            shared_by_role: d.shared_by_role,
            created_at_ms: d.created_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnotationView {
    pub id: AnnotationId,
    pub document_id: DocumentId,
    pub page: i64,
    pub shape: serde_json::Value,
    pub author: ParticipantId,
    pub author_role: Role,
    pub created_at_ms: i64,
}

impl From<&AnnotationRecord> for AnnotationView {
    fn from(a: &AnnotationRecord) -> Self {
        Self {
            id: a.id.clone(),
            document_id: a.document_id.clone(),
            page: a.page,
            shape: a.shape.clone(),
            author: a.author.clone(),
            author_role: a.author_role,
            created_at_ms: a.created_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatView {
    pub id: ChatMessageId,
    pub participant_id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub text: String,
    pub at_ms: i64,
    /// Said among the clinicians during a huddle (never sent to anyone else).
    pub huddle: bool,
}

impl From<&ChatRecord> for ChatView {
    fn from(c: &ChatRecord) -> Self {
        Self {
            id: c.id.clone(),
            participant_id: c.participant_id.clone(),
            name: c.name.clone(),
            role: c.role,
            text: c.text.clone(),
            at_ms: c.at_ms,
            huddle: c.huddle,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordEventView {
    pub record_id: RecordId,
    pub from_status: RecordStatus,
    pub to_status: RecordStatus,
    pub actor: String,
    pub actor_role: String,
    pub note: String,
    pub at_ms: i64,
}

impl From<&RecordEvent> for RecordEventView {
    fn from(e: &RecordEvent) -> Self {
        Self {
            record_id: e.record_id.clone(),
            from_status: e.from_status,
            to_status: e.to_status,
            actor: e.actor.clone(),
            actor_role: e.actor_role.clone(),
            note: e.note.clone(),
            at_ms: e.at_ms,
        }
    }
}

/// A clinical record as stored: kind, status, body and author.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordRowView {
    pub id: RecordId,
    pub room_id: RoomId,
    pub kind: RecordKind,
    pub supersedes: Option<RecordId>,
    pub status: RecordStatus,
    pub body: serde_json::Value,
    pub body_sha256: String,
    pub author: String,
    pub author_name: String,
    pub author_role: String,
    pub created_at_ms: i64,
    /// Who signed it as they issued it (reports and prescriptions).
    pub signature: Option<SignatureView>,
}

/// The signing clinician's account, name, title and institution as they stood at signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureView {
    pub by: UserId,
    pub name: String,
    pub title: String,
    pub institution: String,
    pub at_ms: i64,
}

impl From<&RecordRow> for RecordRowView {
    fn from(r: &RecordRow) -> Self {
        Self {
            id: r.id.clone(),
            room_id: r.room_id.clone(),
            kind: r.kind,
            supersedes: r.supersedes.clone(),
            status: r.status,
            body: r.body.clone(),
            body_sha256: r.body_sha256.clone(),
            author: r.author.clone(),
            author_name: r.author_name.clone(),
            author_role: r.author_role.clone(),
            created_at_ms: r.created_at_ms,
            signature: r.signature.as_ref().map(|s| SignatureView {
                by: s.by.clone(),
                name: s.name.clone(),
                title: s.title.clone(),
                institution: s.institution.clone(),
                at_ms: s.at_ms,
            }),
        }
    }
}

/// A clinical record with its steps and its successor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClinicalRecordView {
    #[serde(flatten)]
    pub record: RecordRowView,
    pub events: Vec<RecordEventView>,
    pub superseded_by: Option<RecordId>,
    /// The patient it is about, by the name they joined with (`null`: about no one patient).
    pub subject_name: Option<String>,
    /// Whether the caller wrote it (as this participant, or through the same care-team seat
    /// before a reload): a draft of theirs is theirs to edit and issue. Only in answers to the
    /// room member's own HTTP calls; a view sent to the whole room (`record_updated`) has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yours: Option<bool>,
}

impl ClinicalRecordView {
    /// This view as the answer to `who` wrote it (or not).
    pub fn yours(mut self, yours: bool) -> Self {
        self.yours = Some(yours);
        self
    }
}

impl From<&RecordView> for ClinicalRecordView {
    fn from(v: &RecordView) -> Self {
        Self {
            record: (&v.record).into(),
            events: all(&v.events),
            superseded_by: v.superseded_by.clone(),
            subject_name: v.subject_name.clone(),
            yours: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomStatusView {
    Open,
    Ended,
}

/// A consultation room as the clinicians' API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    pub id: RoomId,
    pub title: String,
    pub patient_ref: Option<String>,
    pub created_by: UserId,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub status: RoomStatusView,
    pub waiting_room: bool,
    /// The agreed time of a scheduled referral's consultation (Unix seconds), else null.
    pub slot_start: Option<i64>,
    /// Its length in minutes, else null.
    pub slot_minutes: Option<i64>,
}

impl From<&RoomRecord> for RoomView {
    fn from(r: &RoomRecord) -> Self {
        Self {
            id: r.id.clone(),
            title: r.title.clone(),
            patient_ref: r.patient_ref.clone(),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            ended_at: r.ended_at,
            status: match r.status {
                RoomStatus::Open => RoomStatusView::Open,
                RoomStatus::Ended => RoomStatusView::Ended,
            },
            waiting_room: r.waiting_room,
            slot_start: r.slot.map(|(start, _)| start),
            slot_minutes: r.slot.map(|(_, minutes)| minutes),
        }
    }
}

/// Who took part in a consultation, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantRecordView {
    pub id: ParticipantId,
    pub invite_id: InviteId,
    pub role: Role,
    pub name: String,
    pub joined_at: i64,
    pub left_at: Option<i64>,
}

impl From<&ParticipantRecord> for ParticipantRecordView {
    fn from(p: &ParticipantRecord) -> Self {
        Self {
            id: p.id.clone(),
            invite_id: p.invite_id.clone(),
            role: p.role,
            name: p.name.clone(),
            joined_at: p.joined_at,
            left_at: p.left_at,
        }
    }
}

/// Converts a list of rows.
pub fn all<'a, T: 'a, V: From<&'a T>>(rows: impl IntoIterator<Item = &'a T>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentSummaryView {
    #[serde(flatten)]
    pub document: DocumentView,
    pub annotations: Vec<AnnotationView>,
}

/// A consultation's record after the call, as the JSON summary gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryView {
    pub room: RoomView,
    pub participants: Vec<ParticipantRecordView>,
    pub documents: Vec<DocumentSummaryView>,
    pub chat: Vec<ChatView>,
    pub records: Vec<ClinicalRecordView>,
    pub generated_at_ms: i64,
}

impl From<&Summary> for SummaryView {
    fn from(s: &Summary) -> Self {
        Self {
            room: (&s.room).into(),
            participants: all(&s.participants),
            documents: s
                .documents
                .iter()
                .map(|d| DocumentSummaryView {
                    document: (&d.document).into(),
                    annotations: all(&d.annotations),
                })
                .collect(),
            chat: all(&s.chat),
            records: all(&s.records),
            generated_at_ms: s.generated_at_ms,
        }
    }
}

// The patient's outcome page (docs/protocol.md, "The patient's outcome"): what was issued to
// them, shaped for them. No account ids, participant ids, body hashes or pharmacy steps'
// actors: the patient is told who signed, in words, and where each prescription stands.

/// A clinician who signed, as the patient is shown them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerView {
    pub name: String,
    pub title: String,
    pub institution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusWordsView {
    pub zh: &'static str,
    pub en: &'static str,
}

/// An issued report or prescription on the outcome page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeRecordView {
    pub id: RecordId,
    pub kind: RecordKind,
    pub status: RecordStatus,
    /// The status in words, Chinese and English.
    pub status_words: StatusWordsView,
    /// The record this one corrects.
    pub supersedes: Option<RecordId>,
    /// The issued correction that replaced this one.
    pub replaced_by: Option<RecordId>,
    pub issued_at_ms: i64,
    pub body: serde_json::Value,
    pub signed_by: Option<SignerView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUpView {
    pub report_id: RecordId,
    pub recommendation: String,
    pub date: Option<String>,
    pub advice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeConsultationView {
    pub id: RoomId,
    pub title: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub status: RoomStatusView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstitutionNameView {
    pub name: String,
}

/// The patient's outcome, as `GET /api/v1/outcome` answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeView {
    pub consultation: OutcomeConsultationView,
    pub institution: InstitutionNameView,
    pub clinicians: Vec<SignerView>,
    pub reports: Vec<OutcomeRecordView>,
    pub prescriptions: Vec<OutcomeRecordView>,
    pub follow_up: Vec<FollowUpView>,
    pub available_until: i64,
    pub generated_at_ms: i64,
}

fn signer(s: &crate::storage::Signature) -> SignerView {
    SignerView {
        name: s.name.clone(),
        title: s.title.clone(),
        institution: s.institution.clone(),
    }
}

impl From<&crate::summary::outcome::OutcomeRecord> for OutcomeRecordView {
    fn from(r: &crate::summary::outcome::OutcomeRecord) -> Self {
        let rec = &r.view.record;
        let words = r.words();
        Self {
            id: rec.id.clone(),
            kind: rec.kind,
            status: rec.status,
            status_words: StatusWordsView {
                zh: words.zh,
                en: words.en,
            },
            supersedes: rec.supersedes.clone(),
            replaced_by: r.replaced_by.clone(),
            issued_at_ms: r.issued_at_ms,
            body: rec.body.clone(),
            signed_by: rec.signature.as_ref().map(signer),
        }
    }
}

impl From<&crate::summary::outcome::PatientOutcome> for OutcomeView {
    fn from(o: &crate::summary::outcome::PatientOutcome) -> Self {
        Self {
            consultation: OutcomeConsultationView {
                id: o.room.id.clone(),
                title: o.room.title.clone(),
                created_at: o.room.created_at,
                ended_at: o.room.ended_at,
                status: match o.room.status {
                    RoomStatus::Open => RoomStatusView::Open,
                    RoomStatus::Ended => RoomStatusView::Ended,
                },
            },
            institution: InstitutionNameView {
                name: o.institution.clone(),
            },
            clinicians: o.signers().into_iter().map(signer).collect(),
            reports: all(o.of_kind(RecordKind::DiagnosisReport)),
            prescriptions: all(o.of_kind(RecordKind::Prescription)),
            follow_up: o
                .follow_up()
                .into_iter()
                .map(|f| FollowUpView {
                    report_id: f.report.clone(),
                    recommendation: f.recommendation.to_owned(),
                    date: f.date.map(str::to_owned),
                    advice: f.advice.map(str::to_owned),
                })
                .collect(),
            available_until: o.available_until,
            generated_at_ms: o.generated_at_ms,
        }
    }
}

/// A draft left to sign in one of the clinician's live consultations (`GET /me/drafts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingDraftView {
    pub record_id: RecordId,
    pub room_id: RoomId,
    pub room_title: String,
    pub kind: RecordKind,
    pub author_name: String,
    pub created_at_ms: i64,
}

impl From<&PendingDraft> for PendingDraftView {
    fn from(d: &PendingDraft) -> Self {
        Self {
            record_id: d.record_id.clone(),
            room_id: d.room_id.clone(),
            room_title: d.room_title.clone(),
            kind: d.kind,
            author_name: d.author_name.clone(),
            created_at_ms: d.created_at_ms,
        }
    }
}
