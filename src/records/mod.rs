//! Clinical records created in a consultation: consultation notes, diagnosis reports and
//! e-prescriptions ([`body`]), their life from draft to issued and, for prescriptions, through
//! the pharmacy ([`status`]).
//!
//! Owns the rules that make records trustworthy: who may write which kind, that an issued
//! record's body never changes (a correction is a new record that `supersedes` the old one, and
//! the old one can then no longer be dispensed), and that every step names who took it. It does
//! not write the audit trail or tell the room; the HTTP edge does both.

mod body;

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

pub use body::BodyError;

use crate::domain::clock::now_unix_ms;

use crate::domain::ids::{InstitutionId, InviteId, ParticipantId, RecordId, RoomId, UserId};
use crate::domain::member::Member;
use crate::domain::record::{PharmacyAction, RecordKind, RecordStatus};
use crate::domain::role::{AccountRole, Role};
use crate::domain::text::is_hiding_in_record;
use crate::domain::webhook::EventKind;
use crate::storage::{Db, PendingAudit, RecordEvent, RecordRow, Signature, StorageError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("your role may not {0}")]
    Forbidden(&'static str),
    #[error("no such record in this consultation")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] BodyError),
    #[error("{0}")]
    Conflict(&'static str),
    /// Issuing this kind takes the signature of the clinician's own account (entered through
    /// their care-team seat, confirmed with their password).
    #[error("{0}")]
    SignatureRequired(&'static str),
    /// Several patients came to this consultation: a report or a prescription names the one it
    /// is about.
    #[error("several patients came to this consultation: name the patient this record is about")]
    PatientRequired,
    /// The named patient never came to this consultation.
    #[error("no patient of this consultation has that id")]
    UnknownPatient,
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for RecordError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => RecordError::NotFound,
            other => RecordError::Storage(other),
        }
    }
}

/// What a clinician asks to create.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub kind: RecordKind,
    pub body: serde_json::Value,
    /// Issue at once, under this signature (`None` inside for kinds that need none); `None`:
    /// a draft.
    pub issue: Option<Option<Signature>>,
    /// The issued record of the same kind this one corrects.
    pub supersedes: Option<RecordId>,
    /// The patient it is about (a participant who came as a patient), when named.
    pub patient: Option<ParticipantId>,
}

/// A record as participants and the summary see it: the row, its steps, and its successor.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    pub record: RecordRow,
    pub events: Vec<RecordEvent>,
    pub superseded_by: Option<RecordId>,
    /// The patient it is about (its subject), under the name they last joined the room with,
    /// so the care team's list tells several patients' records apart. `None` when it is about
    /// no one patient, or nobody joined with that invitation.
    pub subject_name: Option<String>,
}

fn may_write(role: Role, kind: RecordKind) -> bool {
    match kind {
        RecordKind::Note => role.may_write_note(),
        RecordKind::DiagnosisReport => role.may_write_diagnosis(),
        RecordKind::Prescription => role.may_prescribe(),
    }
}

pub fn may_read(role: Role, r: &RecordRow) -> bool {
    role.may_read_record(r.kind, r.status)
}

/// Whether a participant may read a record: their role may, and a patient only their own (the
/// record's subject is their invitation). A record made before patients were told apart has no
/// subject: its patient may read it when the room only ever had one (`single_patient`).
pub fn may_read_as(role: Role, invite: &InviteId, r: &RecordRow, single_patient: bool) -> bool {
    if !may_read(role, r) {
        return false;
    }
    if role != Role::Patient {
        return true;
    }
    match &r.subject {
        Some(subject) => subject == invite,
        None => single_patient,
    }
}

/// The invitations of a room's patients, each once (a reload is a new participant on the same
/// invitation: the same patient).
fn distinct_invites(patients: Vec<(ParticipantId, InviteId)>) -> Vec<InviteId> {
    let mut invites: Vec<InviteId> = patients.into_iter().map(|(_, i)| i).collect();
    invites.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    invites.dedup();
    invites
}

/// Kinds a patient reads: these always name their patient.
fn about_one_patient(kind: RecordKind) -> bool {
    matches!(kind, RecordKind::DiagnosisReport | RecordKind::Prescription)
}

/// A report or a prescription is issued under the signature of the account of whoever issues
/// it, and only that account's; other kinds need none (a signature given anyway is kept).
fn check_signature(
    kind: RecordKind,
    who: &Member,
    signature: Option<&Signature>,
) -> Result<(), RecordError> {
    if let Some(sig) = signature {
        if who.account.as_ref() != Some(&sig.by) {
            return Err(RecordError::SignatureRequired(
                "a record is signed only by the account of the clinician who issues it",
            ));
        }
        return Ok(());
    }
    if !kind.needs_signature() {
        return Ok(());
    }
    Err(RecordError::SignatureRequired(if who.account.is_none() {
        "reports and prescriptions are signed by a clinician account: sign in and enter the \
         consultation from your console"
    } else {
        "confirm with your password to sign and issue this record"
    }))
}

/// Whether `who` wrote what participant `author`, who came through `author_seat`, wrote: they
/// are that participant, or a later entry through the same care-team seat (the clinician
/// reloaded, or came from another device: a new participant each time). A link is no seat:
/// several people may come through one.
fn authored(who: &Member, author: &str, author_seat: Option<&InviteId>) -> bool {
    author == who.participant.as_str()
        || (who.account.is_some() && author_seat == Some(&who.invite))
}

fn sha256_of(body: &serde_json::Value) -> String {
    crate::domain::hex::hex(&Sha256::digest(body.to_string().as_bytes()))
}

/// The most prescriptions one page of a pharmacy's queue lists (oldest first: the next to act
/// on), and how many when the caller does not say.
pub const MAX_QUEUE_PAGE: i64 = 500;
pub const DEFAULT_QUEUE_PAGE: i64 = 100;

/// Where the next page of a pharmacy's queue begins: after this prescription (its creation
/// time and id), written `<created_at_ms>.<record id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCursor {
    pub at_ms: i64,
    pub id: RecordId,
}

impl QueueCursor {
    pub fn parse(s: &str) -> Option<Self> {
        let (at, id) = s.split_once('.')?;
        Some(Self {
            at_ms: at.parse().ok().filter(|ms: &i64| *ms >= 0)?,
            id: RecordId::parse(id)?,
        })
    }
}

impl std::fmt::Display for QueueCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.at_ms, self.id)
    }
}

/// One page of a pharmacy's queue: the prescriptions, how many there are in all, and where the
/// next page begins (none: this was the last).
#[derive(Debug)]
pub struct QueuePage {
    pub rows: Vec<RecordRow>,
    pub total: i64,
    pub next: Option<QueueCursor>,
}

/// The pharmacist acting on a prescription: their account, role and institution.
#[derive(Clone, Copy, Debug)]
pub struct Pharmacist<'a> {
    pub id: &'a UserId,
    pub role: AccountRole,
    pub institution: &'a InstitutionId,
}

/// What a change to a record owes the audit trail, given the record as the change leaves it:
/// its entries as JSON. Built by the edge (which knows who acted, as the trail names them) and
/// queued in the change's own transaction (`storage::audit_pending`), so a committed step of
/// care is never missing from the trail.
pub type Owes<'a> = &'a (dyn Fn(&RecordRow) -> Vec<String> + Sync);

/// A record as a change left it, and the audit entries the change owes (for the edge to
/// append: `AuditLog::record_owed`).
#[derive(Debug)]
pub struct Changed {
    pub record: RecordRow,
    pub owed: Vec<PendingAudit>,
}

#[derive(Clone, Debug)]
pub struct Records {
    db: Db,
}

impl Records {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Creates a record (a draft, or issued at once), possibly as the correction of an issued
    /// record of the same kind in the same room.
    pub async fn create(
        &self,
        room: &RoomId,
        who: &Member,
        new: NewRecord,
        owes: Owes<'_>,
    ) -> Result<Changed, RecordError> {
        let NewRecord {
            kind,
            body,
            issue,
            supersedes,
            patient,
        } = new;
        if !may_write(who.role, kind) {
            return Err(RecordError::Forbidden(match kind {
                RecordKind::Note => "write consultation notes",
                RecordKind::DiagnosisReport => "write diagnosis reports",
                RecordKind::Prescription => "issue prescriptions",
            }));
        }
        let body = body::canonical(kind, body)?;
        let mut subject = self.subject(room, kind, patient).await?;
        if let Some(old) = &supersedes {
            let old = self.in_room(room, old).await?;
            // A correction is about the patient of what it corrects.
            if old.subject.is_some() {
                subject = old.subject.clone();
            }
            if old.kind != kind {
                return Err(RecordError::Conflict(
                    "a correction must be of the same kind",
                ));
            }
            if old.status == RecordStatus::Draft {
                return Err(RecordError::Conflict("drafts are edited, not corrected"));
            }
            if self.db.successor_of(&old.id).await?.is_some() {
                return Err(RecordError::Conflict("this record was corrected already"));
            }
        }
        let record = RecordRow {
            id: RecordId::generate(),
            room_id: room.clone(),
            kind,
            supersedes,
            status: RecordStatus::Draft,
            body_sha256: sha256_of(&body),
            body,
            author: who.participant.to_string(),
            author_name: who.name.clone(),
            author_role: who.role.as_str().to_owned(),
            created_at_ms: now_unix_ms(),
            signature: None,
            subject,
        };
        if let Some(signature) = &issue {
            // Checked before the draft exists: a refused signature leaves nothing behind.
            check_signature(kind, who, signature.as_ref())?;
        }
        let mut owed = self
            .db
            .insert_record(&record, owes(&record))
            .await
            .map_err(|e| match e {
                StorageError::Conflict => {
                    RecordError::Conflict("this record was corrected already")
                }
                other => other.into(),
            })?;
        if let Some(signature) = issue {
            let mut issued = self.issue(room, who, &record.id, signature, owes).await?;
            owed.append(&mut issued.owed);
            issued.owed = owed;
            return Ok(issued);
        }
        Ok(Changed { record, owed })
    }

    /// The patient a new record is about: the one named (who must have come to this room as a
    /// patient), else the room's only patient. Reports and prescriptions must have one: with
    /// several patients and none named, [`RecordError::PatientRequired`]. A note names one only
    /// when told to.
    async fn subject(
        &self,
        room: &RoomId,
        kind: RecordKind,
        patient: Option<ParticipantId>,
    ) -> Result<Option<InviteId>, RecordError> {
        let patients = self.db.patients_in_room(room).await?;
        if let Some(named) = patient {
            return patients
                .into_iter()
                .find(|(id, _)| id == &named)
                .map(|(_, invite)| Some(invite))
                .ok_or(RecordError::UnknownPatient);
        }
        if !about_one_patient(kind) {
            return Ok(None);
        }
        let mut invites = distinct_invites(patients);
        match invites.len() {
            // Nobody came yet (a report written ahead): the first patient will be its reader
            // only when they are the room's only one; until then no patient sees it.
            0 => Ok(None),
            1 => Ok(invites.pop()),
            _ => Err(RecordError::PatientRequired),
        }
    }

    /// Whether the room only ever had one patient (or none): records without a subject are
    /// theirs.
    pub async fn single_patient(&self, room: &RoomId) -> Result<bool, RecordError> {
        Ok(distinct_invites(self.db.patients_in_room(room).await?).len() <= 1)
    }

    async fn in_room(&self, room: &RoomId, id: &RecordId) -> Result<RecordRow, RecordError> {
        self.db
            .record(id)
            .await?
            .filter(|r| &r.room_id == room)
            .ok_or(RecordError::NotFound)
    }

    /// Whether `who` wrote what `author` (a participant of `room`) wrote ([`authored`]).
    async fn is_author(
        &self,
        room: &RoomId,
        who: &Member,
        author: &str,
    ) -> Result<bool, RecordError> {
        // The author's seat is read only when it can decide.
        let seat = match ParticipantId::parse(author) {
            Some(id) if author != who.participant.as_str() && who.account.is_some() => {
                self.db.participant_invite(room, &id).await?
            }
            _ => None,
        };
        Ok(authored(who, author, seat.as_ref()))
    }

    /// Which of `views` (records of `room`) `who` wrote ([`authored`], for a whole list with
    /// one read).
    pub async fn written_by(
        &self,
        room: &RoomId,
        who: &Member,
        views: &[RecordView],
    ) -> Result<HashSet<RecordId>, RecordError> {
        let seat_of: HashMap<String, InviteId> = if who.account.is_some() {
            self.db
                .participants_of(room)
                .await?
                .into_iter()
                .map(|p| (p.id.as_str().to_owned(), p.invite_id))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(views
            .iter()
            .filter(|v| authored(who, &v.record.author, seat_of.get(&v.record.author)))
            .map(|v| v.record.id.clone())
            .collect())
    }

    /// The author's own draft (written by this participant, or under the same care-team seat
    /// before a reload), or why not.
    async fn own_draft(
        &self,
        room: &RoomId,
        who: &Member,
        id: &RecordId,
    ) -> Result<RecordRow, RecordError> {
        let r = self.in_room(room, id).await?;
        if !self.is_author(room, who, &r.author).await? {
            return Err(RecordError::Forbidden("change another author's record"));
        }
        if r.status != RecordStatus::Draft {
            return Err(RecordError::Conflict(
                "an issued record cannot change; issue a correction instead",
            ));
        }
        Ok(r)
    }

    pub async fn update_draft(
        &self,
        room: &RoomId,
        who: &Member,
        id: &RecordId,
        body: serde_json::Value,
    ) -> Result<RecordRow, RecordError> {
        let mut r = self.own_draft(room, who, id).await?;
        r.body = body::canonical(r.kind, body)?;
        r.body_sha256 = sha256_of(&r.body);
        self.db
            .update_draft(id, &r.body, &r.body_sha256)
            .await
            .map_err(|_| RecordError::Conflict("the record is no longer a draft"))?;
        Ok(r)
    }

    pub async fn issue(
        &self,
        room: &RoomId,
        who: &Member,
        id: &RecordId,
        signature: Option<Signature>,
        owes: Owes<'_>,
    ) -> Result<Changed, RecordError> {
        let mut r = self.own_draft(room, who, id).await?;
        check_signature(r.kind, who, signature.as_ref())?;
        let owed = self
            .step_signed(
                &mut r,
                RecordStatus::Issued,
                who.participant.to_string(),
                who.role.as_str(),
                String::new(),
                signature,
                owes,
            )
            .await?;
        Ok(Changed { record: r, owed })
    }

    /// A pharmacist's review, dispensing or rejection of a prescription.
    pub async fn pharmacy(
        &self,
        pharmacist: &Pharmacist<'_>,
        id: &RecordId,
        action: PharmacyAction,
        note: String,
        owes: Owes<'_>,
    ) -> Result<Changed, RecordError> {
        let Pharmacist {
            id: pharmacist,
            role,
            institution,
        } = *pharmacist;
        if !role.may_review_prescriptions() {
            return Err(RecordError::Forbidden("act on prescriptions"));
        }
        // Another institution's prescription is not there for this pharmacy: as unknown.
        if !self.db.record_concerns(id, institution).await? {
            return Err(RecordError::NotFound);
        }
        // As in a record's own fields: nothing that hides or reorders what is printed (a
        // right-to-left override can turn "not 50 mg" around in the summary).
        if note.chars().count() > 1000 || note.chars().any(is_hiding_in_record) {
            return Err(RecordError::Conflict(
                "the note must be at most 1000 printable characters",
            ));
        }
        let mut r = self.db.record(id).await?.ok_or(RecordError::NotFound)?;
        let to = crate::domain::record::next(r.kind, r.status, action).ok_or(
            RecordError::Conflict("not allowed in the prescription's current state"),
        )?;
        if self.db.successor_of(id).await?.is_some() {
            return Err(RecordError::Conflict(
                "this prescription was corrected; act on the newer version",
            ));
        }
        let owed = self
            .step_signed(
                &mut r,
                to,
                pharmacist.to_string(),
                role.as_str(),
                note,
                None,
                owes,
            )
            .await?;
        Ok(Changed { record: r, owed })
    }

    /// Moves `r` to `to` (signed with `signature` when given) and leaves it as stored.
    #[allow(clippy::too_many_arguments)]
    async fn step_signed(
        &self,
        r: &mut RecordRow,
        to: RecordStatus,
        actor: String,
        actor_role: &str,
        note: String,
        signature: Option<Signature>,
        owes: Owes<'_>,
    ) -> Result<Vec<PendingAudit>, RecordError> {
        let signature = signature.as_ref();
        let event = RecordEvent {
            record_id: r.id.clone(),
            from_status: r.status,
            to_status: to,
            actor,
            actor_role: actor_role.to_owned(),
            note,
            at_ms: now_unix_ms(),
        };
        // What an institution's own systems are told: ids, kind, status, the body's digest.
        let kind = match to {
            RecordStatus::Issued => Some(EventKind::RecordIssued),
            RecordStatus::Reviewed => Some(EventKind::PrescriptionReviewed),
            RecordStatus::Dispensed => Some(EventKind::PrescriptionDispensed),
            RecordStatus::Rejected => Some(EventKind::PrescriptionRejected),
            _ => None,
        };
        let webhook = kind.map(|kind| {
            (
                &r.room_id,
                kind,
                serde_json::json!({
                    "record_id": r.id,
                    "room_id": r.room_id,
                    "kind": r.kind.as_str(),
                    "from_status": r.status.as_str(),
                    "status": to.as_str(),
                    "supersedes": r.supersedes,
                    "body_sha256": r.body_sha256,
                    "signed_by": signature.map(|s| &s.by),
                    "actor_role": actor_role,
                }),
            )
        });
        let mut after = r.clone();
        after.status = to;
        if signature.is_some() {
            after.signature = signature.cloned();
        }
        let owed = self
            .db
            .change_record_status(&event, &r.body_sha256, signature, webhook, owes(&after))
            .await
            .map_err(|e| match e {
                StorageError::Conflict => {
                    RecordError::Conflict("the record changed meanwhile; reload it")
                }
                other => other.into(),
            })?;
        *r = after;
        Ok(owed)
    }

    /// Every record of the room with its steps and successor; filtered for a reader when given
    /// (their role, and for a patient their invitation: see [`may_read_as`]).
    pub async fn in_room_for(
        &self,
        room: &RoomId,
        reader: Option<(Role, &InviteId)>,
    ) -> Result<Vec<RecordView>, RecordError> {
        let single = match reader {
            Some((Role::Patient, _)) => self.single_patient(room).await?,
            _ => true,
        };
        let rows = self.db.records_in_room(room).await?;
        let events = self.db.record_events_in_room(room).await?;
        let names = self.patient_names(room).await?;
        let successor = |id: &RecordId| {
            rows.iter()
                .find(|r| r.supersedes.as_ref() == Some(id))
                .map(|r| r.id.clone())
        };
        Ok(rows
            .iter()
            .filter(|r| reader.is_none_or(|(role, invite)| may_read_as(role, invite, r, single)))
            .map(|r| RecordView {
                record: r.clone(),
                events: events
                    .iter()
                    .filter(|e| e.record_id == r.id)
                    .cloned()
                    .collect(),
                superseded_by: successor(&r.id),
                subject_name: r.subject.as_ref().and_then(|i| names.get(i).cloned()),
            })
            .collect())
    }

    /// The name each patient of `room` last joined under, by their invitation (a patient who
    /// reloaded and typed another name is shown under the latest).
    async fn patient_names(
        &self,
        room: &RoomId,
    ) -> Result<std::collections::HashMap<InviteId, String>, RecordError> {
        // In order of joining: a later join's name replaces an earlier one's.
        Ok(self
            .db
            .participants_of(room)
            .await?
            .into_iter()
            .filter(|p| p.role == Role::Patient)
            .map(|p| (p.invite_id, p.name))
            .collect())
    }

    /// One record with its steps, for whoever may act on it.
    pub async fn view(&self, id: &RecordId) -> Result<RecordView, RecordError> {
        let record = self.db.record(id).await?.ok_or(RecordError::NotFound)?;
        let events = self.db.record_events(id).await?;
        let superseded_by = self.db.successor_of(id).await?;
        let subject_name = match &record.subject {
            Some(invite) => self.patient_names(&record.room_id).await?.remove(invite),
            None => None,
        };
        Ok(RecordView {
            record,
            events,
            superseded_by,
            subject_name,
        })
    }

    /// Prescriptions in `status` that concern the pharmacy of `institution` (written in its
    /// consultations, or signed by its clinicians), oldest first, a page of at most `limit`
    /// (1 to [`MAX_QUEUE_PAGE`]) after `after`. Drafts belong to the care team: the pharmacy
    /// sees a prescription once it is issued.
    pub async fn queue(
        &self,
        status: RecordStatus,
        institution: &InstitutionId,
        after: Option<&QueueCursor>,
        limit: i64,
    ) -> Result<QueuePage, RecordError> {
        if status == RecordStatus::Draft {
            return Err(RecordError::Forbidden(
                "see draft prescriptions (drafts belong to the care team)",
            ));
        }
        let limit = limit.clamp(1, MAX_QUEUE_PAGE);
        // One more than the page: whether another follows, without a second query.
        let mut rows = self
            .db
            .prescriptions_in(
                status,
                institution,
                after.map(|c| (c.at_ms, &c.id)),
                limit + 1,
            )
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last()).flatten().map(|r| QueueCursor {
            at_ms: r.created_at_ms,
            id: r.id.clone(),
        });
        let total = self.db.count_prescriptions_in(status, institution).await?;
        Ok(QueuePage { rows, total, next })
    }
}
