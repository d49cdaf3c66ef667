//! The documents a consultation request carries: the referring clinician attaches lab
//! results, ECGs, imaging or letters to the request (uploaded with it, or taken from the
//! patient's earlier consultations), so that the receiving side can read the case before
//! answering, and the consultation's care team has them in its room.
//!
//! The rules:
//! - Both sides read a request's attachments, as files or in the viewer (its renders are the
//!   room's: `crate::documents::Viewable`); nobody else learns that they exist (a request
//!   they are on neither side of is not found, as for the request itself). On a request to
//!   another institution, the receiving side reads them only while the patient's consent to
//!   sharing is in force (`super::consent`); the requester always reads their own.
//! - On a request to another institution, nothing is attached until the requester has
//!   attested the patient's consent (`ConsentRequired`).
//! - Only the requester attaches and removes, and only while the request is open.
//! - A document taken from a consultation must be one the requester may read as a member of
//!   its care team, and that consultation must be about the same patient (the same
//!   pseudonymous reference): a document of another patient is refused, not silently sent.
//! - Every upload gets the checks a room's documents get (`crate::documents`: name, size,
//!   content sniffing), and its bytes go to the same content-addressed store.
//! - Limits per request (`documents.max_referral_documents`, `max_referral_bytes`) are counters
//!   taken in the inserting transaction (see `storage::referral_documents`).
//! - When the request's room opens, every attachment becomes a clinicians-only document of it
//!   in the same transaction; one attached later joins the open room at once; on a request to
//!   another institution, only while the patient's consent is in force (decided in that
//!   transaction). An attachment
//!   that is in the room can no longer be removed from the request (the room's record of what
//!   was shared stays whole).
//!
//! This module does not write the audit trail or tell live rooms: the HTTP edge does both.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use crate::config::DocumentsConfig;
use crate::documents::{DocumentError, Documents, Limit, Viewable};
use crate::domain::clock::now_unix;
use crate::domain::ids::{DocumentId, ReferralDocumentId, ReferralId, RoomId};
use crate::domain::referral::Side;
use crate::storage::{
    AttachLimits, AttachRefusal, AttachmentSource, Db, DetachRefusal, DocumentRecord,
    PatientDocument, ReferralDocumentRow, ReferralRow, RoomRecord, StorageError, User,
};

use super::consent::{ReferralConsents, Sharing};
use super::{ReferralServiceError, Referrals};

/// What the refusal tells the requester: how to lift it.
const ATTACH_NEEDS_CONSENT: &str =
    "record the patient's consent on the request (POST /api/v1/referrals/{id}/consent) first";
/// What it tells the receiving side.
const READ_NEEDS_CONSENT: &str = "its documents are withheld from your hospital";

/// The most documents of earlier consultations offered for attaching at once.
pub const MAX_CANDIDATES: i64 = 100;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The request itself refused (not found, not theirs).
    #[error(transparent)]
    Referral(#[from] ReferralServiceError),
    #[error("only the clinician who asked for the consultation attaches or removes its documents")]
    NotRequester,
    #[error(
        "the consultation request was declined, closed or cancelled: documents can no longer \
         be attached"
    )]
    NotOpen,
    #[error("a consultation request carries at most {max} documents")]
    TooMany { max: usize },
    #[error(
        "a consultation request carries at most {max} bytes of documents, and {used} are \
         attached: this document does not fit"
    )]
    TooManyBytes { max: u64, used: u64 },
    /// No such attachment on this request.
    #[error("no such document on this consultation request")]
    NotFound,
    /// No such document in a consultation the requester may read; worth recording.
    #[error("no such document in your consultations")]
    SourceNotVisible,
    #[error(
        "that document belongs to a consultation about another patient; attach documents of \
         this request's patient only"
    )]
    OtherPatient,
    #[error(
        "this document is already in the consultation's room and stays there; it can no longer \
         be removed from the request"
    )]
    InRoom,
    #[error("this document is attached to the request already")]
    AlreadyAttached,
    /// A request to another institution without the patient's consent to sharing in force:
    /// nothing is attached to it, and its receiving side reads none of its documents.
    #[error(
        "the consultation request goes to another hospital and the patient has not agreed \
         (or no longer agrees) to sharing documents with it: {0}"
    )]
    ConsentRequired(&'static str),
    /// The file (its name, size or content) or a room limit refused it.
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for AttachmentError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => AttachmentError::Referral(ReferralServiceError::NotFound),
            other => AttachmentError::Storage(other),
        }
    }
}

impl AttachmentError {
    /// A stable name for the HTTP edge and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            AttachmentError::Referral(e) => e.code(),
            AttachmentError::NotRequester => "forbidden",
            AttachmentError::NotOpen => "referral_not_open",
            AttachmentError::TooMany { .. } | AttachmentError::TooManyBytes { .. } => {
                "limit_reached"
            }
            AttachmentError::NotFound | AttachmentError::SourceNotVisible => "not_found",
            AttachmentError::OtherPatient => "other_patient",
            AttachmentError::InRoom => "attachment_in_room",
            AttachmentError::AlreadyAttached => "already_attached",
            AttachmentError::ConsentRequired(_) => "consent_required",
            AttachmentError::Document(_) => "document",
            AttachmentError::Storage(_) => "internal",
        }
    }

    /// The limit's stable name where a limit refused it.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            AttachmentError::TooMany { .. } => Some("documents_per_request"),
            AttachmentError::TooManyBytes { .. } => Some("bytes_per_request"),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, AttachmentError>;

/// What attaching did.
#[derive(Debug, Clone)]
pub struct Attached {
    pub referral: ReferralRow,
    pub attachment: ReferralDocumentRow,
    /// The room document it became, if the request's room is open (the room is to be told).
    pub room_document: Option<DocumentRecord>,
}

/// The attachment service; cheap to clone.
#[derive(Clone, Debug)]
pub struct Attachments {
    db: Db,
    documents: Documents,
}

impl Attachments {
    pub fn new(db: Db, documents: Documents) -> Self {
        Self { db, documents }
    }

    fn config(&self) -> &DocumentsConfig {
        self.documents.config()
    }

    fn limits(&self) -> AttachLimits {
        let c = self.config();
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        let b = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        // The attachments all become documents of the request's room, in the requester's
        // name: the lesser limits apply (and `copy_into_room` may then take the places
        // without a check).
        AttachLimits {
            documents: n(c
                .max_referral_documents
                .min(c.max_documents_per_person)
                .min(c.max_per_room)),
            bytes: b(c.max_referral_bytes.min(c.max_bytes_per_person)),
            room_documents: n(c.max_per_room),
            person_documents: n(c.max_documents_per_person),
            person_bytes: b(c.max_bytes_per_person),
        }
    }

    /// Where the request stands on sharing with the receiving institution.
    async fn sharing(&self, referral: &ReferralRow) -> Result<Sharing> {
        Ok(ReferralConsents::new(self.db.clone())
            .sharing(referral)
            .await?)
    }

    /// The request, if `who` may see it, and the side they are on; refused to the receiving
    /// side while the request's documents may not reach it.
    async fn visible(&self, id: &ReferralId, who: &User) -> Result<(ReferralRow, Side)> {
        let (row, side) = Referrals::new(self.db.clone()).visible(id, who).await?;
        // A colleague covering for the specialist it names (`Referrals::covers`) sees that it
        // waits, not what the patient's documents say: those are for whoever takes it on.
        if super::side_of(&row, who).is_none() {
            return Err(AttachmentError::Referral(
                ReferralServiceError::CoverForwardsOnly,
            ));
        }
        if side == Side::Receiver && !self.sharing(&row).await?.readable_by(side) {
            return Err(AttachmentError::ConsentRequired(READ_NEEDS_CONSENT));
        }
        Ok((row, side))
    }

    /// The request, if `who` asked for it.
    async fn own(&self, id: &ReferralId, who: &User) -> Result<ReferralRow> {
        match Referrals::new(self.db.clone()).visible(id, who).await? {
            (row, Side::Requester) => Ok(row),
            (_, Side::Receiver) => Err(AttachmentError::NotRequester),
        }
    }

    /// The request, if `who` asked for it and may attach to it now (open, and the patient's
    /// consent in force where it goes to another institution).
    async fn attachable(&self, id: &ReferralId, who: &User) -> Result<ReferralRow> {
        let referral = self.own(id, who).await?;
        if !referral.state.is_open() {
            return Err(AttachmentError::NotOpen);
        }
        if !self.sharing(&referral).await?.allowed() {
            return Err(AttachmentError::ConsentRequired(ATTACH_NEEDS_CONSENT));
        }
        Ok(referral)
    }

    /// Whether `who` may attach to the request now (theirs, open, consented where needed):
    /// checked before a file is received, so that a refused upload stores nothing.
    pub async fn may_attach(&self, id: &ReferralId, who: &User) -> Result<()> {
        self.attachable(id, who).await.map(|_| ())
    }

    /// Once the patient's consent to sharing is in force again on a request whose room is
    /// open, the attachments kept out of the room while it was not join it (within the room's
    /// and the requester's limits): the room documents made, each with its attachment.
    pub async fn copy_kept_out(
        &self,
        referral: &ReferralId,
    ) -> Result<Vec<(ReferralDocumentRow, DocumentRecord)>> {
        Ok(self
            .db
            .copy_kept_out_attachments(referral, &self.limits())
            .await?)
    }

    /// A request's attachments, for either side.
    pub async fn list(&self, id: &ReferralId, who: &User) -> Result<Vec<ReferralDocumentRow>> {
        self.visible(id, who).await?;
        Ok(self.db.referral_documents(id).await?)
    }

    /// One attachment and its checked bytes, for either side.
    pub async fn open(
        &self,
        id: &ReferralId,
        doc: &ReferralDocumentId,
        who: &User,
    ) -> Result<(ReferralRow, ReferralDocumentRow, PathBuf)> {
        let (referral, attachment) = self.attachment(id, doc, who).await?;
        let path = self.documents.open_blob(&attachment.sha256).await?;
        Ok((referral, attachment, path))
    }

    /// The request and one of its attachments, for either side (not yet read from disk).
    async fn attachment(
        &self,
        id: &ReferralId,
        doc: &ReferralDocumentId,
        who: &User,
    ) -> Result<(ReferralRow, ReferralDocumentRow)> {
        let (referral, _) = self.visible(id, who).await?;
        let attachment = self
            .db
            .referral_document(id, doc)
            .await?
            .ok_or(AttachmentError::NotFound)?;
        Ok((referral, attachment))
    }

    /// One attachment, checked against its hash, for the viewer's renders (pages, ECG, DICOM
    /// header): for either side, exactly as [`Attachments::open`].
    pub async fn view(
        &self,
        id: &ReferralId,
        doc: &ReferralDocumentId,
        who: &User,
    ) -> Result<(ReferralRow, ReferralDocumentRow, Viewable)> {
        let (referral, attachment) = self.attachment(id, doc, who).await?;
        let shown = self
            .documents
            .viewable(&attachment.sha256, attachment.kind)
            .await?;
        Ok((referral, attachment, shown))
    }

    /// Attaches a file received whole and staged at `staged` (removed whatever happens), as
    /// `name`.
    pub async fn attach_upload(
        &self,
        id: &ReferralId,
        who: &User,
        staged: PathBuf,
        name: &str,
    ) -> Result<Attached> {
        let name = match crate::documents::validate_name(name) {
            Ok(name) => name,
            Err(e) => {
                let _ = tokio::fs::remove_file(&staged).await;
                return Err(e.into());
            }
        };
        let referral = match self.attachable(id, who).await {
            Ok(r) => r,
            Err(e) => {
                let _ = tokio::fs::remove_file(&staged).await;
                return Err(e);
            }
        };
        let (sha, size, kind) = self.documents.ingest(staged, &name).await?;
        let row = ReferralDocumentRow {
            id: ReferralDocumentId::generate(),
            referral_id: referral.id.clone(),
            sha256: sha.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            kind,
            name,
            source: AttachmentSource::Upload,
            attached_by: who.id.clone(),
            attached_at: now_unix(),
            room_document: None,
        };
        self.store(referral, row).await
    }

    /// Attaches document `document` of consultation `room`, which `who` may read as a member
    /// of its care team and which is about the request's patient.
    pub async fn attach_from_consultation(
        &self,
        id: &ReferralId,
        who: &User,
        room: &RoomId,
        document: &DocumentId,
    ) -> Result<Attached> {
        let referral = self.attachable(id, who).await?;
        let source_room = self
            .db
            .room(room)
            .await?
            .ok_or(AttachmentError::SourceNotVisible)?;
        if self.db.care_team_member(room, &who.id).await?.is_none() {
            return Err(AttachmentError::SourceNotVisible);
        }
        let doc = self
            .db
            .document(room, document)
            .await?
            .ok_or(AttachmentError::SourceNotVisible)?;
        if source_room.patient_ref.as_deref() != Some(referral.patient_ref.as_str()) {
            return Err(AttachmentError::OtherPatient);
        }
        // What the room withholds from its care team's clinicians of other institutions (the
        // patient has not agreed to share it with them) is not theirs to hand on either:
        // attaching it to a request of their own would copy it past the consent. As in the
        // room, it is not there for them.
        if self
            .withheld_from(&source_room, who)
            .await?
            .contains(document)
        {
            return Err(AttachmentError::SourceNotVisible);
        }
        let attached = self.db.referral_documents(id).await?;
        let already = attached.iter().any(|a| {
            matches!(&a.source, AttachmentSource::Consultation { document: d, .. } if d == document)
        });
        if already {
            return Err(AttachmentError::AlreadyAttached);
        }
        let row = ReferralDocumentRow {
            id: ReferralDocumentId::generate(),
            referral_id: referral.id.clone(),
            sha256: doc.sha256.clone(),
            size: doc.size,
            kind: doc.kind,
            name: doc.name.clone(),
            source: AttachmentSource::Consultation {
                room: room.clone(),
                document: document.clone(),
            },
            attached_by: who.id.clone(),
            attached_at: now_unix(),
            room_document: None,
        };
        self.store(referral, row).await
    }

    async fn store(&self, referral: ReferralRow, row: ReferralDocumentRow) -> Result<Attached> {
        let c = self.config();
        let stored = match self.db.attach_referral_document(&row, &self.limits()).await {
            // The unique index: the same document attached at the same moment by another
            // request of the requester's.
            Err(StorageError::Conflict) => return Err(AttachmentError::AlreadyAttached),
            other => other?,
        };
        match stored {
            Ok(copied) => {
                let mut attachment = row;
                attachment.room_document = copied.as_ref().map(|d| d.id.clone());
                Ok(Attached {
                    referral,
                    attachment,
                    room_document: copied,
                })
            }
            Err(AttachRefusal::NotOpen) => Err(AttachmentError::NotOpen),
            Err(AttachRefusal::TooMany) => Err(AttachmentError::TooMany {
                max: usize::try_from(self.limits().documents).unwrap_or(usize::MAX),
            }),
            Err(AttachRefusal::TooManyBytes { used }) => Err(AttachmentError::TooManyBytes {
                max: u64::try_from(self.limits().bytes).unwrap_or(u64::MAX),
                used: u64::try_from(used).unwrap_or(0),
            }),
            Err(AttachRefusal::RoomFull) => {
                Err(DocumentError::LimitReached(Limit::RoomDocuments {
                    max: c.max_per_room,
                })
                .into())
            }
            Err(AttachRefusal::PersonFull) => {
                Err(DocumentError::LimitReached(Limit::PersonDocuments {
                    max: c.max_documents_per_person,
                })
                .into())
            }
        }
    }

    /// Removes an attachment that is not in the consultation's room yet.
    pub async fn remove(
        &self,
        id: &ReferralId,
        doc: &ReferralDocumentId,
        who: &User,
    ) -> Result<(ReferralRow, ReferralDocumentRow)> {
        let referral = self.own(id, who).await?;
        match self.db.detach_referral_document(id, doc).await? {
            Ok(row) => Ok((referral, row)),
            Err(DetachRefusal::NotFound) => Err(AttachmentError::NotFound),
            Err(DetachRefusal::InRoom) => Err(AttachmentError::InRoom),
        }
    }

    /// The documents of the patient's earlier consultations that `who` may attach to the
    /// request (those on whose care team they are, about the same patient), newest first,
    /// without those attached already.
    pub async fn candidates(&self, id: &ReferralId, who: &User) -> Result<Vec<PatientDocument>> {
        let referral = self.own(id, who).await?;
        let attached = self.db.referral_documents(id).await?;
        let taken: HashSet<&DocumentId> = attached
            .iter()
            .filter_map(|a| match &a.source {
                AttachmentSource::Consultation { document, .. } => Some(document),
                AttachmentSource::Upload => None,
            })
            .collect();
        let found = self
            .db
            .patient_documents(&who.id, &referral.patient_ref, MAX_CANDIDATES)
            .await?;
        // Each room's withheld documents, once per room (see `attach_from_consultation`).
        let mut withheld: HashMap<RoomId, HashSet<DocumentId>> = HashMap::new();
        let mut shown = Vec::with_capacity(found.len());
        for p in found {
            if taken.contains(&p.document.id) {
                continue;
            }
            let room = &p.document.room_id;
            if !withheld.contains_key(room) {
                let hidden = match self.db.room(room).await? {
                    Some(r) => self.withheld_from(&r, who).await?,
                    None => HashSet::new(),
                };
                withheld.insert(room.clone(), hidden);
            }
            if !withheld[room].contains(&p.document.id) {
                shown.push(p);
            }
        }
        Ok(shown)
    }

    /// The documents of `room` withheld from `who`: none for a clinician of the room's own
    /// institution; for another's, those the patient has not agreed to share
    /// (`Db::withheld_documents`, the room's rule).
    async fn withheld_from(&self, room: &RoomRecord, who: &User) -> Result<HashSet<DocumentId>> {
        if who.institution_id == room.institution_id {
            return Ok(HashSet::new());
        }
        Ok(self.db.withheld_documents(&room.id).await?)
    }
}
