//! Consultation requests (referrals) as a service: a doctor or specialist asks a department,
//! or a named specialist in it, to consult jointly on a patient; the receiving side answers
//! from its inboxes; a request agreed on a time opens the consultation room.
//!
//! The state machine is `domain::referral` ([`apply`] says which step applies when, and for
//! which side); this module decides which side an account is on (or that the request is not
//! theirs to see), checks whom a request is addressed to, and persists each step as one
//! conditional transaction (`storage`), so that of two clinicians answering at once one wins
//! and the other is told ([`ReferralServiceError::Conflict`]). It writes the audit entries
//! each step owes into the step's transaction (`audit`), for the edge to put on the chain; it
//! does not end rooms: the HTTP edge does.
//!
//! Who is on which side:
//! - the requester: the account that asked;
//! - the receiver: the named specialist, or, for a request to a department as a whole, any
//!   doctor or specialist of that department (the requester excepted). All of them see it; once
//!   one of them has taken it on (accepted it or proposed a time: a forward, allowed only
//!   before, hands it on), only that one may take the receiving side's next steps
//!   ([`ReferralServiceError::Taken`]), unless their account is disabled;
//! - anyone else: the request does not exist for them ([`ReferralServiceError::NotVisible`]).
//!
//! When a request is first scheduled, its room is opened in the same transaction: held by the
//! requester's institution, the requester its care team's doctor, the receiving clinician (the
//! one who took the request on, or the named specialist) on its care team as a specialist, and
//! the agreed time as its slot. A new time agreed later moves the room's slot.

pub mod audit;
pub mod consent;
pub mod documents;

use serde_json::json;

use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{ConsentId, DepartmentId, InstitutionId, ReferralId, RoomId, UserId};
use crate::domain::referral::{
    Action, NewReferral, ReferralError, ReferralState, Side, Slot, Target, Urgency, apply,
};
use crate::domain::webhook::{EventKind, OutboxEvent};
use crate::storage::{
    Change, Db, NewReferralEvent, PendingAudit, ReferralBox, ReferralEvent, ReferralRow,
    ReferralStep, RoomStep, StorageError, User,
};

/// The most requests one list answers.
pub const MAX_LISTED: i64 = 200;
/// The longest room title a request's reason gives (the room API's own limit).
pub const ROOM_TITLE_MAX_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferralServiceError {
    /// The state machine or the request's content refused it; its `code()` says why.
    #[error(transparent)]
    Refused(#[from] ReferralError),
    /// No such request.
    #[error("no such consultation request")]
    NotFound,
    /// A request that exists, but the account is on neither side of it: answered like one
    /// that does not exist, and worth recording (it may be probing).
    #[error("no such consultation request")]
    NotVisible,
    #[error("only doctors and specialists send and answer consultation requests")]
    NotAClinician,
    #[error("no such department")]
    UnknownDepartment,
    #[error("that account is not a doctor or specialist of the department")]
    NotInDepartment,
    #[error("a consultation request cannot be addressed to the clinician who asks")]
    SelfReferral,
    /// Another step was taken on the request between reading it and writing this one.
    #[error(
        "the consultation request changed at the same moment (another clinician answered it); \
         reload it and try again"
    )]
    Conflict,
    /// A step of the receiving side by a clinician of the department other than the one who
    /// took the request on: it is theirs (until their account is disabled, and the department
    /// has it again).
    #[error("a colleague has taken this consultation request on: only they can answer it")]
    Taken,
    /// A step other than a forward by a colleague covering for the specialist the request
    /// names ([`Referrals::covers`]).
    #[error(
        "the specialist this request names is not taking requests now: forward it to yourself, \
         a colleague or the department to answer it"
    )]
    CoverForwardsOnly,
    /// One of the requester's caps (`storage::referrals`): too many requests open, or sent in
    /// the last day.
    #[error("{}", limit_words(.limit, *.max))]
    Limit { limit: &'static str, max: i64 },
    #[error(transparent)]
    Storage(StorageError),
}

fn limit_words(limit: &str, max: i64) -> String {
    match limit {
        "open_referrals" => format!(
            "you have {max} consultation requests open, the most at once: close or cancel some \
             first"
        ),
        _ => format!("you have sent {max} consultation requests in the last 24 hours, the most"),
    }
}

impl ReferralServiceError {
    /// A stable name for the HTTP edge to answer with.
    pub fn code(&self) -> &'static str {
        match self {
            ReferralServiceError::Refused(e) => e.code(),
            ReferralServiceError::NotFound | ReferralServiceError::NotVisible => "not_found",
            ReferralServiceError::NotAClinician => "forbidden",
            ReferralServiceError::UnknownDepartment => "unknown_department",
            ReferralServiceError::NotInDepartment => "not_in_department",
            ReferralServiceError::SelfReferral => "self_referral",
            ReferralServiceError::Conflict => "conflict",
            ReferralServiceError::Taken => "taken",
            ReferralServiceError::CoverForwardsOnly => "forward_first",
            ReferralServiceError::Limit { .. } => "limit_reached",
            ReferralServiceError::Storage(_) => "internal",
        }
    }
}

impl From<StorageError> for ReferralServiceError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ReferralServiceError::NotFound,
            StorageError::Conflict => ReferralServiceError::Conflict,
            StorageError::Limit { limit, max } => ReferralServiceError::Limit { limit, max },
            other => ReferralServiceError::Storage(other),
        }
    }
}

type Result<T> = std::result::Result<T, ReferralServiceError>;

/// A time as a client gives it, checked against the clock when a step uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// Unix seconds.
    pub start: i64,
    pub minutes: u32,
}

impl Time {
    fn slot(self, now: i64) -> std::result::Result<Slot, ReferralError> {
        Slot::new(self.start, self.minutes, now)
    }
}

/// A new request as the requester fills it in.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub department: DepartmentId,
    pub specialist: Option<UserId>,
    pub patient_ref: String,
    pub reason: String,
    pub question: String,
    pub urgency: Urgency,
    pub proposed: Vec<Time>,
    /// The requester attests, with the request, that the patient agreed to sharing its
    /// documents in these words (their version, checked current by `consent::current_wording`):
    /// the consent is recorded in the transaction that makes the request, so a request is never
    /// made without the consent it was sent with.
    pub sharing_consent: Option<&'static str>,
}

/// A step as a clinician asks for it; [`Referrals::act`] turns it into the domain's
/// [`Action`] (times checked against the clock, a forward's target within the department).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Accept {
        time: Option<Time>,
    },
    ProposeTime {
        time: Time,
    },
    Decline {
        reason: String,
    },
    /// To a named specialist of the request's department, or (`None`) back to the department.
    Forward {
        specialist: Option<UserId>,
    },
    Start,
    IssueReport,
    /// `reason`: needed where no report was issued (empty otherwise).
    Close {
        reason: String,
    },
    Cancel {
        reason: String,
    },
}

/// Which list of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mailbox {
    /// Named to me, or taken on by me.
    Inbox,
    /// My department's requests to the department as a whole that nobody took on yet.
    Department,
    /// What I asked for.
    Outbox,
}

/// A request as one account sees it, with the times first proposed and every step.
#[derive(Debug, Clone)]
pub struct Detail {
    pub referral: ReferralRow,
    pub side: Side,
    pub proposed: Vec<Slot>,
    pub events: Vec<ReferralEvent>,
}

/// What a step did.
#[derive(Debug, Clone)]
pub struct Stepped {
    pub before: ReferralRow,
    pub after: ReferralRow,
    /// The side that took it.
    pub side: Side,
    /// The step's name (`Action::as_str`).
    pub action: &'static str,
    /// The consultation room opened by this step, if it opened one.
    pub room_opened: Option<RoomId>,
    /// The clinician this step put on the room's care team, if any.
    pub seated: Option<UserId>,
    /// The request's attachments that became documents of the room this step opened.
    pub documents_copied: Vec<crate::storage::ReferralDocumentRow>,
    /// The audit entries the step owes (`referrals::audit`), queued in its transaction: the
    /// edge appends them (`AuditLog::record_owed`).
    pub owed: Vec<PendingAudit>,
}

/// A new request, and the audit entries its creation owes (as [`Stepped::owed`]).
#[derive(Debug)]
pub struct Created {
    pub row: ReferralRow,
    pub owed: Vec<PendingAudit>,
}

/// What a step's webhook event says: ids, states, times and the pseudonymous patient
/// reference; never a name, a reason or the clinical question (free text).
struct EventFacts<'a> {
    row: &'a ReferralRow,
    action: &'static str,
    from: Option<&'a ReferralState>,
    state: &'a ReferralState,
    target: &'a Target,
    receiver: Option<&'a UserId>,
    room: Option<&'a RoomId>,
    version: i64,
    side: Side,
    actor: &'a UserId,
    receiver_institution: &'a InstitutionId,
    at: i64,
}

impl EventFacts<'_> {
    fn event(&self) -> Option<OutboxEvent> {
        let kind = EventKind::of_referral_step(self.action, self.state.as_str())?;
        Some(OutboxEvent {
            kind,
            consultation: self.row.id.as_str().to_owned(),
            recipients: vec![
                self.row.requester_institution.clone(),
                self.receiver_institution.clone(),
            ],
            data: json!({
                "referral_id": self.row.id,
                "step": self.action,
                "side": self.side,
                "actor_id": self.actor,
                "from_state": self.from.map(ReferralState::as_str),
                "state": self.state.as_str(),
                "version": self.version,
                "urgency": self.row.urgency,
                "slot": self.state.slot().map(|s| json!({"start": s.start(), "minutes": s.minutes()})),
                "requester_id": self.row.requester_id,
                "requester_institution_id": self.row.requester_institution,
                "receiver_institution_id": self.receiver_institution,
                "target_department_id": self.target.department(),
                "target_specialist_id": self.target.specialist(),
                "receiver_id": self.receiver,
                "room_id": self.room,
                "patient_ref": self.row.patient_ref,
            }),
            at: self.at,
        })
    }
}

/// The side `who` is on for request `r`, if any (see the module).
pub fn side_of(r: &ReferralRow, who: &User) -> Option<Side> {
    if who.id == r.requester_id {
        return Some(Side::Requester);
    }
    if !who.role.is_clinician() {
        return None;
    }
    let receiver = match &r.target {
        Target::Specialist { user, .. } => *user == who.id,
        Target::Department(department) => who.department_id.as_ref() == Some(department),
    };
    receiver.then_some(Side::Receiver)
}

/// A room's title from a request's reason: its first line, shortened to the room API's limit.
fn room_title(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("").trim();
    if line.chars().count() <= ROOM_TITLE_MAX_CHARS {
        return line.to_owned();
    }
    let mut title: String = line.chars().take(ROOM_TITLE_MAX_CHARS - 1).collect();
    title.push('…');
    title
}

/// What a step's event keeps besides the states: the time proposed or agreed, the reason
/// given, the new target of a forward.
fn event_detail(action: &Action, state: &ReferralState, target: &Target) -> serde_json::Value {
    let mut detail = serde_json::Map::new();
    if let Some(slot) = state.slot() {
        detail.insert("slot".into(), json!(slot));
    }
    if let Some(reason) = state.reason() {
        detail.insert("reason".into(), json!(reason));
    }
    if matches!(action, Action::Forward { .. }) {
        detail.insert("to".into(), json!(target));
    }
    serde_json::Value::Object(detail)
}

#[derive(Clone, Debug)]
pub struct Referrals {
    db: Db,
}

impl Referrals {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// An enabled doctor or specialist of `department`, or why not: a request named to (or
    /// forwarded to) an account that can no longer sign in would wait where nobody reads it.
    async fn in_department(&self, user: &UserId, department: &DepartmentId) -> Result<()> {
        match self.db.user(user).await? {
            Some(u)
                if u.role.is_clinician()
                    && u.department_id.as_ref() == Some(department)
                    && u.disabled_at.is_none() =>
            {
                Ok(())
            }
            _ => Err(ReferralServiceError::NotInDepartment),
        }
    }

    /// Refuses a receiving-side step by `who` on a request a colleague has taken on (see the
    /// module): a colleague whose account is disabled no longer holds it.
    async fn taken_by_other(&self, row: &ReferralRow, who: &User) -> Result<()> {
        let Some(holder) = row.receiver_id.as_ref().filter(|h| **h != who.id) else {
            return Ok(());
        };
        match self.db.user(holder).await? {
            Some(u) if u.disabled_at.is_none() => Err(ReferralServiceError::Taken),
            _ => Ok(()),
        }
    }

    /// A new request from `who` (a doctor or a specialist), `requested`, in the receiver's
    /// inbox.
    pub async fn create(&self, who: &User, new: NewRequest, now: i64) -> Result<Created> {
        if !who.role.is_clinician() {
            return Err(ReferralServiceError::NotAClinician);
        }
        let proposed = new
            .proposed
            .iter()
            .map(|t| t.slot(now))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let checked = NewReferral::validate(
            &new.patient_ref,
            &new.reason,
            &new.question,
            new.urgency,
            proposed,
        )?;
        let department = self
            .db
            .department(&new.department)
            .await?
            .ok_or(ReferralServiceError::UnknownDepartment)?;
        if let Some(specialist) = &new.specialist {
            if *specialist == who.id {
                return Err(ReferralServiceError::SelfReferral);
            }
            self.in_department(specialist, &department.id).await?;
        }
        let row = ReferralRow {
            id: ReferralId::generate(),
            requester_id: who.id.clone(),
            requester_institution: who.institution_id.clone(),
            target: Target::new(department.id, new.specialist),
            receiver_id: None,
            patient_ref: checked.patient_ref().to_owned(),
            reason: checked.reason().to_owned(),
            question: checked.question().to_owned(),
            urgency: checked.urgency(),
            state: ReferralState::Requested,
            room_id: None,
            room_slot: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let event = NewReferralEvent {
            action: "create",
            actor: &who.id,
            side: Side::Requester,
            detail: json!({
                "target": row.target,
                "urgency": row.urgency,
                "proposed": checked.proposed(),
            }),
        };
        let outbox = EventFacts {
            row: &row,
            action: "create",
            from: None,
            state: &row.state,
            target: &row.target,
            receiver: None,
            room: None,
            version: row.version,
            side: Side::Requester,
            actor: &who.id,
            receiver_institution: &department.institution_id,
            at: now,
        }
        .event();
        let consent = new
            .sharing_consent
            .map(|wording_version| Change::ReferralConsentGiven {
                referral: row.id.clone(),
                id: ConsentId::generate(),
                purpose: ConsentPurpose::ExternalSharing,
                wording_version,
                by: who.id.clone(),
                at: now,
            });
        let actor = crate::audit::Actor::User(who.id.clone(), who.role);
        let owed = audit::created(&actor, &row, new.sharing_consent)
            .iter()
            .map(crate::audit::AuditEvent::to_json)
            .collect();
        let owed = self
            .db
            .insert_referral(
                &row,
                checked.proposed(),
                &event,
                outbox.as_ref(),
                consent.as_ref(),
                owed,
            )
            .await?;
        Ok(Created { row, owed })
    }

    /// The request and the side `who` is on; `NotVisible` when they are on neither.
    pub async fn visible(&self, id: &ReferralId, who: &User) -> Result<(ReferralRow, Side)> {
        let row = self
            .db
            .referral(id)
            .await?
            .ok_or(ReferralServiceError::NotFound)?;
        let side = match side_of(&row, who) {
            Some(side) => side,
            None if self.covers(&row, who).await? => Side::Receiver,
            None => return Err(ReferralServiceError::NotVisible),
        };
        Ok((row, side))
    }

    /// Whether `who` covers for the specialist request `r` names: a request still waiting for
    /// an answer, named to a specialist of `who`'s department who is not taking requests now
    /// (away, or their account disabled), would otherwise wait unseen in their inbox. Their
    /// department's doctors and specialists see it in the department's box and may forward
    /// it (to themselves, a colleague, or the department as a whole), and nothing else: the
    /// request names a person, and only a forward changes whom.
    pub async fn covers(&self, r: &ReferralRow, who: &User) -> Result<bool> {
        let Target::Specialist { department, user } = &r.target else {
            return Ok(false);
        };
        if !who.role.is_clinician()
            || who.department_id.as_ref() != Some(department)
            || *user == who.id
        {
            return Ok(false);
        }
        self.covered(r).await
    }

    /// Whether `r` is one its department covers for: still waiting for an answer, named to a
    /// specialist who is not taking requests now (away, or their account disabled). Its
    /// department's clinicians are then told of it, as of a request to the department.
    pub async fn covered(&self, r: &ReferralRow) -> Result<bool> {
        let Target::Specialist { user, .. } = &r.target else {
            return Ok(false);
        };
        if r.receiver_id.is_some() || r.state != ReferralState::Requested {
            return Ok(false);
        }
        // As the department's box reads it (`ReferralBox::Department`).
        Ok(match self.db.user(user).await? {
            Some(named) => !named.accepts_referrals || named.disabled_at.is_some(),
            None => false,
        })
    }

    /// The request with the times first proposed and every step, for either side.
    pub async fn detail(&self, id: &ReferralId, who: &User) -> Result<Detail> {
        let (referral, side) = self.visible(id, who).await?;
        self.detail_of(referral, side).await
    }

    /// The times and steps of a request its caller just created or took a step on, as the
    /// side they took it on (a forward takes the request out of its sender's sight, but the
    /// answer to the forward still shows it).
    pub async fn detail_of(&self, referral: ReferralRow, side: Side) -> Result<Detail> {
        Ok(Detail {
            proposed: self.db.referral_slots(&referral.id).await?,
            events: self.db.referral_events(&referral.id).await?,
            referral,
            side,
        })
    }

    /// One of `who`'s lists, each request with the side they are on: open requests first, then
    /// emergencies, urgent, routine, then the longest waiting. Accounts that are not clinicians
    /// have none. The department's box has, besides the requests to the department, those
    /// named to one of its specialists who is not taking requests now ([`Referrals::covers`]).
    pub async fn list(&self, who: &User, mailbox: Mailbox) -> Result<Vec<(ReferralRow, Side)>> {
        if !who.role.is_clinician() {
            return Ok(Vec::new());
        }
        let which = match mailbox {
            Mailbox::Inbox => ReferralBox::Inbox(&who.id),
            Mailbox::Outbox => ReferralBox::Outbox(&who.id),
            Mailbox::Department => match &who.department_id {
                Some(department) => ReferralBox::Department(department),
                None => return Ok(Vec::new()),
            },
        };
        let rows = self.db.referrals_in(which, MAX_LISTED).await?;
        // A request to one's own department is in one's outbox, not one's department's box.
        Ok(rows
            .into_iter()
            .filter(|r| mailbox == Mailbox::Outbox || r.requester_id != who.id)
            .filter_map(|r| {
                let side = match (side_of(&r, who), mailbox) {
                    (Some(side), _) => side,
                    // Listed there only while its specialist is not taking requests (the
                    // query checks): a step still checks `covers`.
                    (None, Mailbox::Department) => Side::Receiver,
                    (None, _) => return None,
                };
                Some((r, side))
            })
            .collect())
    }

    /// Takes a step on request `id` as `who`, on the side they are on.
    pub async fn act(
        &self,
        id: &ReferralId,
        who: &User,
        request: Request,
        now: i64,
    ) -> Result<Stepped> {
        let (row, side) = self.visible(id, who).await?;
        if side_of(&row, who).is_none() && !matches!(request, Request::Forward { .. }) {
            return Err(ReferralServiceError::CoverForwardsOnly);
        }
        let action = match request {
            Request::Accept { time } => Action::Accept {
                slot: time.map(|t| t.slot(now)).transpose()?,
            },
            Request::ProposeTime { time } => Action::ProposeTime {
                slot: time.slot(now)?,
            },
            Request::Decline { reason } => Action::Decline { reason },
            Request::Forward { specialist } => {
                let department = row.target.department().clone();
                if let Some(specialist) = &specialist {
                    if *specialist == row.requester_id {
                        return Err(ReferralServiceError::SelfReferral);
                    }
                    self.in_department(specialist, &department).await?;
                }
                Action::Forward {
                    to: Target::new(department, specialist),
                }
            }
            Request::Start => Action::Start,
            Request::IssueReport => Action::IssueReport,
            Request::Close { reason } => Action::Close { reason },
            Request::Cancel { reason } => Action::Cancel { reason },
        };
        self.step(row, who, side, action, now).await
    }

    /// After a diagnosis report was issued in `room` by the account `issuer`: if the room is a
    /// request's consultation and the issuer is on its receiving side, the request's report is
    /// issued. A request still `scheduled` is started first: a report signed in its room says
    /// the consultation took place, whether or not anyone pressed Start (otherwise the request
    /// stayed "scheduled" after its report, and a later Start did not count the report). The
    /// steps taken, in order (none when that does not apply).
    pub async fn report_issued(
        &self,
        room: &RoomId,
        issuer: &UserId,
        now: i64,
    ) -> Result<Vec<Stepped>> {
        let Some(mut row) = self.db.referral_for_room(room).await? else {
            return Ok(Vec::new());
        };
        let Some(who) = self.db.user(issuer).await? else {
            return Ok(Vec::new());
        };
        if side_of(&row, &who) != Some(Side::Receiver) {
            return Ok(Vec::new());
        }
        let mut steps = Vec::new();
        if matches!(row.state, ReferralState::Scheduled { .. }) {
            match self
                .step(row, &who, Side::Receiver, Action::Start, now)
                .await
            {
                Ok(started) => {
                    row = started.after.clone();
                    steps.push(started);
                }
                // A colleague's request: theirs to start and close.
                Err(ReferralServiceError::Taken) => return Ok(steps),
                // Started meanwhile (the patient's admission, `patient_admitted`, or by hand):
                // the report goes on the request as it is now.
                Err(ReferralServiceError::Conflict) => {
                    match self.db.referral_for_room(room).await? {
                        Some(now) => row = now,
                        None => return Ok(steps),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if row.state != ReferralState::InConsultation {
            return Ok(steps);
        }
        match self
            .step(row, &who, Side::Receiver, Action::IssueReport, now)
            .await
        {
            Ok(issued) => steps.push(issued),
            // A colleague's report in the room: the request is the other clinician's to close.
            Err(ReferralServiceError::Taken) => {}
            Err(e) if steps.is_empty() => return Err(e),
            // The start stands (committed, its audit entries owed): it is announced, and the
            // report's step can still be taken by hand.
            Err(e) => {
                tracing::warn!(room = %room, error = %e, "a request's report step failed after its start");
            }
        }
        Ok(steps)
    }

    /// After a patient was admitted to `room` by the account `by`: a request still
    /// `scheduled` whose consultation this is starts, by them on their side (the request
    /// shows the consultation under way without anyone pressing Start). Nothing when the room
    /// is no request's, the request is past that, or `by` is on neither side or is not the
    /// receiving colleague who has it.
    pub async fn patient_admitted(
        &self,
        room: &RoomId,
        by: &UserId,
        now: i64,
    ) -> Result<Option<Stepped>> {
        self.in_room_step(room, by, now, Action::Start, |state| {
            matches!(state, ReferralState::Scheduled { .. })
        })
        .await
    }

    /// After the account `by` ended the consultation in `room`: a request whose report was
    /// issued there closes, by them (it is complete). One without a report stays in
    /// consultation: closing it says why, which only a person can.
    pub async fn consultation_ended(
        &self,
        room: &RoomId,
        by: &UserId,
        now: i64,
    ) -> Result<Option<Stepped>> {
        let close = Action::Close {
            reason: String::new(),
        };
        self.in_room_step(room, by, now, close, |state| {
            *state == ReferralState::ReportIssued
        })
        .await
    }

    async fn in_room_step(
        &self,
        room: &RoomId,
        by: &UserId,
        now: i64,
        action: Action,
        applies: impl Fn(&ReferralState) -> bool,
    ) -> Result<Option<Stepped>> {
        let Some(row) = self.db.referral_for_room(room).await? else {
            return Ok(None);
        };
        if !applies(&row.state) {
            return Ok(None);
        }
        let Some(who) = self.db.user(by).await? else {
            return Ok(None);
        };
        let Some(side) = side_of(&row, &who) else {
            return Ok(None);
        };
        match self.step(row, &who, side, action, now).await {
            Ok(stepped) => Ok(Some(stepped)),
            // A colleague's request, or a step taken meanwhile (by hand, or by the other
            // clinician's end): nothing more to do.
            Err(
                ReferralServiceError::Taken
                | ReferralServiceError::Refused(_)
                | ReferralServiceError::Conflict,
            ) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn step(
        &self,
        row: ReferralRow,
        who: &User,
        side: Side,
        action: Action,
        now: i64,
    ) -> Result<Stepped> {
        let name = action.as_str();
        let next = apply(&row.state, &row.target, side, action.clone(), now)?;
        if side == Side::Receiver {
            self.taken_by_other(&row, who).await?;
        }
        // Who on the receiving side has the request: whoever took the last step there; a
        // forward hands it on (to the named specialist, or back to the department), and one to
        // oneself takes it on.
        let receiver = match (&action, side) {
            (Action::Forward { to }, _) => to.specialist().filter(|s| **s == who.id).cloned(),
            (_, Side::Receiver) => Some(who.id.clone()),
            (_, Side::Requester) => row.receiver_id.clone(),
        };
        let specialist = receiver.as_ref().or(next.target.specialist());
        let title = room_title(&row.reason);
        let new_room = RoomId::generate();
        let room = match (&next.state, &row.room_id) {
            (ReferralState::Scheduled { slot }, None) => RoomStep::Open {
                room: &new_room,
                title: &title,
                specialist,
                slot: *slot,
            },
            (ReferralState::Scheduled { slot }, Some(room)) => RoomStep::Reslot {
                room,
                specialist,
                slot: *slot,
            },
            _ => RoomStep::None,
        };
        let opens = matches!(room, RoomStep::Open { .. });
        // The receiving institution: the department's (a forward stays in the department).
        let receiver_institution = self
            .db
            .department(row.target.department())
            .await?
            .ok_or(ReferralServiceError::UnknownDepartment)?
            .institution_id;
        let outbox = EventFacts {
            row: &row,
            action: name,
            from: Some(&row.state),
            state: &next.state,
            target: &next.target,
            receiver: receiver.as_ref(),
            room: row.room_id.as_ref().or(opens.then_some(&new_room)),
            version: row.version + 1,
            side,
            actor: &who.id,
            receiver_institution: &receiver_institution,
            at: now,
        }
        .event();
        let actor = crate::audit::Actor::User(who.id.clone(), who.role);
        let owed = |s: &crate::storage::SteppedRow| {
            audit::stepped(&actor, &row, s, side, name, opens)
                .iter()
                .map(crate::audit::AuditEvent::to_json)
                .collect()
        };
        let stepped = self
            .db
            .step_referral(
                &row,
                &ReferralStep {
                    state: &next.state,
                    target: &next.target,
                    receiver: receiver.as_ref(),
                    event: NewReferralEvent {
                        action: name,
                        actor: &who.id,
                        side,
                        detail: event_detail(&action, &next.state, &next.target),
                    },
                    room,
                    at: now,
                    outbox: outbox.as_ref(),
                },
                &owed,
            )
            .await?;
        Ok(Stepped {
            room_opened: if opens {
                stepped.row.room_id.clone()
            } else {
                None
            },
            seated: stepped.seated,
            documents_copied: stepped.documents_copied,
            owed: stepped.owed,
            after: stepped.row,
            before: row,
            side,
            action: name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::now_unix;
    use crate::domain::ids::InstitutionId;
    use crate::domain::organisation::InstitutionKind;
    use crate::domain::role::{AccountRole, Role};
    use crate::storage::NewAccount;

    const HOUR: i64 = 3600;

    struct World {
        _dir: tempfile::TempDir,
        db: Db,
        svc: Referrals,
        township_doctor: User,
        cardio_a: User,
        cardio_b: User,
        neuro: User,
        cardiology: DepartmentId,
    }

    async fn account(
        db: &Db,
        name: &str,
        role: AccountRole,
        institution: &InstitutionId,
        department: Option<&DepartmentId>,
    ) -> User {
        db.create_account(&NewAccount {
            username: name,
            display_name: name,
            role,
            password_hash: "x",
            institution,
            department,
            title: "",
            specialty: "",
        })
        .await
        .unwrap()
    }

    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.db").display()
        ))
        .await
        .unwrap();
        let town = db
            .create_institution("Township clinic", InstitutionKind::TownshipClinic)
            .await
            .unwrap();
        let county = db
            .create_institution("County hospital", InstitutionKind::Hospital)
            .await
            .unwrap();
        let cardiology = db
            .create_department(&county.id, "Cardiology")
            .await
            .unwrap();
        let neurology = db.create_department(&county.id, "Neurology").await.unwrap();
        World {
            svc: Referrals::new(db.clone()),
            township_doctor: account(&db, "town", AccountRole::Doctor, &town.id, None).await,
            cardio_a: account(
                &db,
                "a",
                AccountRole::Specialist,
                &county.id,
                Some(&cardiology.id),
            )
            .await,
            cardio_b: account(
                &db,
                "b",
                AccountRole::Specialist,
                &county.id,
                Some(&cardiology.id),
            )
            .await,
            neuro: account(
                &db,
                "n",
                AccountRole::Specialist,
                &county.id,
                Some(&neurology.id),
            )
            .await,
            cardiology: cardiology.id,
            db,
            _dir: dir,
        }
    }

    fn request(w: &World, urgency: Urgency, specialist: Option<&User>) -> NewRequest {
        NewRequest {
            department: w.cardiology.clone(),
            specialist: specialist.map(|u| u.id.clone()),
            patient_ref: " P-0042 ".into(),
            reason: "Chest pain on exertion\nfor two weeks".into(),
            question: "Stable angina?".into(),
            urgency,
            proposed: vec![Time {
                start: now_unix() + 24 * HOUR,
                minutes: 30,
            }],
            sharing_consent: None,
        }
    }

    /// A routine request from the township's doctor, to cardiology or its `specialist`.
    async fn routine(w: &World, specialist: Option<&User>) -> ReferralRow {
        w.svc
            .create(
                &w.township_doctor,
                request(w, Urgency::Routine, specialist),
                now_unix(),
            )
            .await
            .unwrap()
            .row
    }

    /// A request named to a specialist who is not taking requests is the department's to pass
    /// on: its colleagues see it in the department's box and may forward it (to themselves
    /// too), and nothing else, until someone answers it; others still see nothing.
    #[tokio::test]
    async fn the_department_covers_for_an_away_specialist() {
        let w = world().await;
        let now = now_unix();
        w.db.set_accepts_referrals(&w.cardio_b.id, true)
            .await
            .unwrap();
        let to_b = routine(&w, Some(&w.cardio_b)).await;
        let department_box = |who: &User| {
            let (svc, who) = (w.svc.clone(), who.clone());
            async move { svc.list(&who, Mailbox::Department).await.unwrap() }
        };
        // Taking requests: theirs alone.
        assert!(department_box(&w.cardio_a).await.is_empty());
        assert!(matches!(
            w.svc.visible(&to_b.id, &w.cardio_a).await,
            Err(ReferralServiceError::NotVisible)
        ));
        // Away: the department sees it, as the receiving side.
        w.db.set_accepts_referrals(&w.cardio_b.id, false)
            .await
            .unwrap();
        let listed = department_box(&w.cardio_a).await;
        assert_eq!(listed.len(), 1);
        assert_eq!((&listed[0].0.id, listed[0].1), (&to_b.id, Side::Receiver));
        assert_eq!(
            w.svc.visible(&to_b.id, &w.cardio_a).await.unwrap().1,
            Side::Receiver
        );
        for outsider in [&w.neuro] {
            assert!(matches!(
                w.svc.visible(&to_b.id, outsider).await,
                Err(ReferralServiceError::NotVisible)
            ));
        }
        // Only a forward: answering it is the named specialist's, or whoever it goes to.
        for step in [
            Request::Accept { time: None },
            Request::Decline {
                reason: "Not mine".into(),
            },
        ] {
            assert!(matches!(
                w.svc.act(&to_b.id, &w.cardio_a, step, now).await,
                Err(ReferralServiceError::CoverForwardsOnly)
            ));
        }
        let taken = w
            .svc
            .act(
                &to_b.id,
                &w.cardio_a,
                Request::Forward {
                    specialist: Some(w.cardio_a.id.clone()),
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(taken.after.target.specialist(), Some(&w.cardio_a.id));
        assert_eq!(side_of(&taken.after, &w.cardio_a), Some(Side::Receiver));
        // Now it is theirs: out of the department's box, answered as any other.
        assert!(department_box(&w.cardio_b).await.is_empty());
        w.svc
            .act(&to_b.id, &w.cardio_a, Request::Accept { time: None }, now)
            .await
            .unwrap();
        // An account disabled counts as away too.
        let to_a = routine(&w, Some(&w.cardio_a)).await;
        w.db.set_accepts_referrals(&w.cardio_a.id, true)
            .await
            .unwrap();
        assert!(w.svc.visible(&to_a.id, &w.cardio_b).await.is_err());
        w.db.set_disabled(&w.cardio_a.id, Some(now)).await.unwrap();
        assert_eq!(
            w.svc.visible(&to_a.id, &w.cardio_b).await.unwrap().1,
            Side::Receiver
        );
    }

    #[tokio::test]
    async fn sides_follow_the_target() {
        let w = world().await;
        let now = now_unix();
        let to_department = w
            .svc
            .create(&w.township_doctor, request(&w, Urgency::Routine, None), now)
            .await
            .unwrap()
            .row;
        assert_eq!(to_department.patient_ref, "P-0042");
        let side = |u: &User| side_of(&to_department, u);
        assert_eq!(side(&w.township_doctor), Some(Side::Requester));
        assert_eq!(side(&w.cardio_a), Some(Side::Receiver));
        assert_eq!(side(&w.cardio_b), Some(Side::Receiver));
        assert_eq!(side(&w.neuro), None);
        w.db.set_accepts_referrals(&w.cardio_b.id, true)
            .await
            .unwrap();
        let to_b = routine(&w, Some(&w.cardio_b)).await;
        assert_eq!(side_of(&to_b, &w.cardio_a), None);
        assert_eq!(side_of(&to_b, &w.cardio_b), Some(Side::Receiver));
        assert!(matches!(
            w.svc.visible(&to_b.id, &w.cardio_a).await,
            Err(ReferralServiceError::NotVisible)
        ));
        // Whom a request names is checked: a specialist of another department, oneself.
        for (by, to, err) in [
            (&w.township_doctor, &w.neuro, "not_in_department"),
            (&w.cardio_a, &w.cardio_a, "self_referral"),
        ] {
            let e = w
                .svc
                .create(by, request(&w, Urgency::Routine, Some(to)), now)
                .await
                .unwrap_err();
            assert_eq!(e.code(), err);
        }
    }

    #[tokio::test]
    async fn inboxes_put_open_and_urgent_requests_first() {
        let w = world().await;
        let now = now_unix();
        let doc = &w.township_doctor;
        let routine = w
            .svc
            .create(doc, request(&w, Urgency::Routine, None), now)
            .await
            .unwrap()
            .row;
        let urgent = w
            .svc
            .create(doc, request(&w, Urgency::Urgent, None), now + 1)
            .await
            .unwrap()
            .row;
        let emergency = w
            .svc
            .create(doc, request(&w, Urgency::Emergency, None), now + 2)
            .await
            .unwrap()
            .row;
        let ids = |rows: Vec<(ReferralRow, Side)>| {
            rows.into_iter().map(|(r, _)| r.id).collect::<Vec<_>>()
        };
        let cancel = Request::Cancel {
            reason: "Patient improved".into(),
        };
        w.svc.act(&emergency.id, doc, cancel, now).await.unwrap();
        assert_eq!(
            ids(w.svc.list(&w.cardio_a, Mailbox::Department).await.unwrap()),
            [urgent.id.clone(), routine.id.clone(), emergency.id.clone()]
        );
        assert_eq!(
            ids(w.svc.list(doc, Mailbox::Outbox).await.unwrap()),
            [urgent.id.clone(), routine.id.clone(), emergency.id.clone()]
        );
        // Taken on by a, it leaves the department's box for a's own.
        let accept = Request::Accept { time: None };
        w.svc
            .act(&urgent.id, &w.cardio_a, accept, now)
            .await
            .unwrap();
        assert_eq!(
            ids(w.svc.list(&w.cardio_a, Mailbox::Inbox).await.unwrap()),
            [urgent.id]
        );
        assert!(
            w.svc
                .list(&w.cardio_b, Mailbox::Inbox)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            w.svc
                .list(&w.neuro, Mailbox::Department)
                .await
                .unwrap()
                .is_empty()
        );
        // What was withdrawn stays, after what is open.
        assert_eq!(
            ids(w.svc.list(&w.cardio_b, Mailbox::Department).await.unwrap()),
            [routine.id, emergency.id]
        );
    }

    #[tokio::test]
    async fn scheduling_opens_the_room_once_and_one_of_two_answers_wins() {
        let w = world().await;
        let now = now_unix();
        let r = w
            .svc
            .create(&w.township_doctor, request(&w, Urgency::Urgent, None), now)
            .await
            .unwrap()
            .row;
        let at = |h: i64| Time {
            start: now + h * HOUR,
            minutes: 30,
        };
        let (a, b) = tokio::join!(
            w.svc.act(
                &r.id,
                &w.cardio_a,
                Request::Accept { time: Some(at(2)) },
                now
            ),
            w.svc.act(
                &r.id,
                &w.cardio_b,
                Request::Accept { time: Some(at(3)) },
                now
            ),
        );
        let (won, lost) = match (a, b) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            other => panic!("one accept must win: {other:?}"),
        };
        assert!(matches!(lost.code(), "conflict" | "not_now"), "{lost:?}");
        let room = won.room_opened.clone().expect("a room");
        assert_eq!(won.after.room_id.as_ref(), Some(&room));
        let winner = won.seated.clone().expect("the accepting specialist");
        let team = w.db.care_team(&room).await.unwrap();
        let mut roles: Vec<_> = team.iter().map(|m| (m.role.as_str(), &m.user_id)).collect();
        roles.sort();
        assert_eq!(
            roles,
            [
                (Role::Doctor.as_str(), &w.township_doctor.id),
                (Role::Specialist.as_str(), &winner)
            ]
        );
        let stored = w.db.room(&room).await.unwrap().unwrap();
        assert_eq!(stored.patient_ref.as_deref(), Some("P-0042"));
        assert_eq!(stored.title, "Chest pain on exertion");
        assert_eq!(stored.institution_id, w.township_doctor.institution_id);
        // A new time moves the room's slot; no second room.
        let winner = if winner == w.cardio_a.id {
            &w.cardio_a
        } else {
            &w.cardio_b
        };
        let doc = &w.township_doctor;
        w.svc
            .act(&r.id, doc, Request::ProposeTime { time: at(5) }, now)
            .await
            .unwrap();
        let again = w
            .svc
            .act(&r.id, winner, Request::Accept { time: None }, now)
            .await
            .unwrap();
        assert_eq!(again.room_opened, None);
        assert_eq!(again.after.room_id, Some(room.clone()));
        assert_eq!(again.after.room_slot.map(Slot::start), Some(now + 5 * HOUR));
        let events = w.db.referral_events(&r.id).await.unwrap();
        let steps: Vec<_> = events
            .iter()
            .map(|e| (e.version, e.action.as_str(), e.to_state.as_str()))
            .collect();
        assert_eq!(
            steps,
            [
                (1, "create", "requested"),
                (2, "accept", "scheduled"),
                (3, "propose_time", "counter_proposed"),
                (4, "accept", "scheduled"),
            ]
        );
        // Each step queued the entries it owes the trail in its own transaction, in order,
        // and the answer that lost queued none.
        use crate::audit::Action as A;
        let owed = w.db.pending_audit(i64::MAX, None, 100).await.unwrap();
        let owed: Vec<(String, String)> = owed
            .owed
            .iter()
            .map(|p| {
                let e: serde_json::Value = serde_json::from_str(&p.event).unwrap();
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["actor"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let by = |a: A, u: &User| (a.as_str().to_owned(), u.id.to_string());
        assert_eq!(
            owed,
            [
                by(A::ReferralCreated, doc),
                by(A::ReferralAccepted, winner),
                by(A::ReferralScheduled, winner),
                by(A::RoomCreated, winner),
                by(A::CareTeamAdded, winner),
                by(A::ReferralTimeProposed, doc),
                by(A::ReferralAccepted, winner),
                by(A::ReferralScheduled, winner),
            ]
        );
        assert_eq!(won.owed.len(), 4);
        assert!(won.owed.iter().all(|p| p.event.contains(room.as_str())));
        // The report is the receiver's: the requester's own report does not count, and starts
        // nothing.
        let room = again.after.room_id.clone().unwrap();
        assert!(
            w.svc
                .report_issued(&room, &doc.id, now)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            w.db.referral(&r.id).await.unwrap().unwrap().state,
            ReferralState::Scheduled { .. }
        ));
        // Nobody pressed Start: the receiver's report starts the request, then issues it, two
        // steps on its record.
        let reported = w.svc.report_issued(&room, &winner.id, now).await.unwrap();
        let taken: Vec<_> = reported.iter().map(|s| s.action).collect();
        assert_eq!(taken, ["start", "issue_report"]);
        assert_eq!(reported[1].after.state, ReferralState::ReportIssued);
        // Issued again (a second report): nothing more to step.
        assert!(
            w.svc
                .report_issued(&room, &winner.id, now)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
