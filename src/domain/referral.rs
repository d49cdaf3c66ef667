//! A consultation request (a referral): a clinician asks a department of another institution,
//! or of their own, and optionally a named specialist in it, to consult jointly on a patient.
//!
//! This module owns the request's vocabulary (its urgency, the times proposed, whom it is
//! addressed to, which side acts) and its life as a state machine. [`apply`] is the one place
//! that says which step applies in which state and for which side, and what the request becomes:
//!
//! - `requested`: the receiver accepts (with a time: `scheduled`; without: `accepted`), proposes
//!   another time (`counter_proposed`), declines, or forwards it within the department.
//! - `accepted`: the receiver gives the time (`scheduled`); either side may propose one.
//! - `counter_proposed`: the other side accepts the proposal (`scheduled`) or proposes another;
//!   the proposer may replace their own.
//! - `scheduled`: either side starts the consultation (`in_consultation`) or proposes a new time.
//! - `in_consultation`: the receiver issues the report (`report_issued`), then either side closes.
//! - Until the consultation starts the receiver may decline and the requester may cancel.
//!   `declined`, `closed` and `cancelled` are final.
//!
//! Nothing here reads the clock or stores anything: callers pass `now` (Unix seconds), storage
//! keeps the names [`ReferralState::as_str`] gives, and the service that owns referrals decides
//! which [`Side`] an account is on.

use serde::{Deserialize, Serialize};

use super::ids::{DepartmentId, UserId};
use super::text::is_hiding;

/// The shortest consultation a slot may book, in minutes.
pub const SLOT_MIN_MINUTES: u32 = 5;
/// The longest consultation a slot may book, in minutes.
pub const SLOT_MAX_MINUTES: u32 = 240;
/// How far in the past a new slot may start: room for the two sides' clocks and for the time a
/// form takes to submit, not a way to book consultations after the fact.
pub const SLOT_PAST_SLACK_SECS: i64 = 5 * 60;
/// How far ahead a slot may start: a year, leap day included.
pub const SLOT_MAX_AHEAD_SECS: i64 = 366 * 24 * 60 * 60;

/// The pseudonymous patient reference (never a name or an identity number).
pub const PATIENT_REF_MAX_CHARS: usize = 100;
/// Why the patient is referred; also the most a decline or a cancellation reason may say.
pub const REASON_MAX_CHARS: usize = 500;
/// The clinical question put to the receiver.
pub const QUESTION_MAX_CHARS: usize = 2000;
/// How many times the requester may propose with a new request.
pub const MAX_PROPOSED_SLOTS: usize = 5;

/// How soon the requester needs the consultation. Urgent and emergency requests are marked in
/// the receiver's inbox and sorted before routine ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Routine,
    Urgent,
    Emergency,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Urgent => "urgent",
            Urgency::Emergency => "emergency",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "routine" => Urgency::Routine,
            "urgent" => Urgency::Urgent,
            "emergency" => Urgency::Emergency,
            _ => return None,
        })
    }

    /// An inbox's order: emergencies first (0), then urgent (1), then routine (2), e.g.
    /// `sort_by_key(|r| (r.urgency.sort_rank(), r.created_at))`. A rank rather than `Ord`, so
    /// that "less" never has to mean "more urgent".
    pub fn sort_rank(self) -> u8 {
        match self {
            Urgency::Emergency => 0,
            Urgency::Urgent => 1,
            Urgency::Routine => 2,
        }
    }

    /// Shown with a mark in the inbox: anything but routine.
    pub fn is_marked(self) -> bool {
        !matches!(self, Urgency::Routine)
    }
}

/// A proposed or agreed consultation time. Made only by [`Slot::new`], which checks it against
/// the clock, or by [`Slot::from_stored`] for one read back, so a slot in hand is always of an
/// allowed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Slot {
    /// Unix seconds.
    start: i64,
    minutes: u32,
}

impl Slot {
    /// A new slot: 5 to 240 minutes long, starting no earlier than 5 minutes ago and no later
    /// than 366 days ahead.
    pub fn new(start: i64, minutes: u32, now: i64) -> Result<Slot, ReferralError> {
        if !(SLOT_MIN_MINUTES..=SLOT_MAX_MINUTES).contains(&minutes) {
            return Err(ReferralError::BadDuration);
        }
        let slot = Slot { start, minutes };
        if slot.has_passed(now) {
            return Err(ReferralError::SlotInPast);
        }
        if start > now.saturating_add(SLOT_MAX_AHEAD_SECS) {
            return Err(ReferralError::SlotTooFar);
        }
        Ok(slot)
    }

    /// A slot read back from storage. Its time was checked when it was proposed and may well
    /// have passed since (a consultation held last week), so only its length is checked.
    pub fn from_stored(start: i64, minutes: u32) -> Option<Slot> {
        (SLOT_MIN_MINUTES..=SLOT_MAX_MINUTES)
            .contains(&minutes)
            .then_some(Slot { start, minutes })
    }

    /// Unix seconds.
    pub fn start(self) -> i64 {
        self.start
    }

    pub fn minutes(self) -> u32 {
        self.minutes
    }

    /// Unix seconds.
    pub fn end(self) -> i64 {
        self.start + i64::from(self.minutes) * 60
    }

    /// Past its start, beyond the clock slack a new slot is allowed.
    fn has_passed(self, now: i64) -> bool {
        self.start < now.saturating_sub(SLOT_PAST_SLACK_SECS)
    }
}

/// Whom a request is addressed to. It always names the receiving department, which is the
/// boundary forwarding may not cross; a named specialist in it is optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Department(DepartmentId),
    Specialist {
        department: DepartmentId,
        user: UserId,
    },
}

impl Target {
    /// From the two columns storage keeps: the department and, where one is named, the
    /// specialist.
    pub fn new(department: DepartmentId, specialist: Option<UserId>) -> Target {
        match specialist {
            None => Target::Department(department),
            Some(user) => Target::Specialist { department, user },
        }
    }

    pub fn department(&self) -> &DepartmentId {
        match self {
            Target::Department(department) | Target::Specialist { department, .. } => department,
        }
    }

    pub fn specialist(&self) -> Option<&UserId> {
        match self {
            Target::Department(_) => None,
            Target::Specialist { user, .. } => Some(user),
        }
    }
}

/// Which side of a request acts: the clinician who asked, or the department asked. The caller
/// says which side an account is on; [`apply`] says what that side may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Requester,
    Receiver,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Requester => "requester",
            Side::Receiver => "receiver",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requester" => Side::Requester,
            "receiver" => Side::Receiver,
            _ => return None,
        })
    }

    pub fn other(self) -> Side {
        match self {
            Side::Requester => Side::Receiver,
            Side::Receiver => Side::Requester,
        }
    }
}

/// Where a request stands. Serialised with its name under `"state"` and its details beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReferralState {
    /// Waiting in the receiver's inbox.
    Requested,
    /// Accepted, the time still to agree.
    Accepted,
    /// One side proposed a time; the other has to answer it.
    CounterProposed {
        by: Side,
        slot: Slot,
    },
    /// A time both sides agreed.
    Scheduled {
        slot: Slot,
    },
    /// Refused by the receiver (final).
    Declined {
        reason: String,
    },
    InConsultation,
    ReportIssued,
    /// Done (final): after the report, or without one for the reason given.
    Closed {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Withdrawn before the consultation (final).
    Cancelled {
        by: Side,
        reason: String,
    },
}

impl ReferralState {
    /// The name storage keeps.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReferralState::Requested => "requested",
            ReferralState::Accepted => "accepted",
            ReferralState::CounterProposed { .. } => "counter_proposed",
            ReferralState::Scheduled { .. } => "scheduled",
            ReferralState::Declined { .. } => "declined",
            ReferralState::InConsultation => "in_consultation",
            ReferralState::ReportIssued => "report_issued",
            ReferralState::Closed { .. } => "closed",
            ReferralState::Cancelled { .. } => "cancelled",
        }
    }

    /// A state read back from storage: its name and the details it carries, each present
    /// exactly where the state has it (a row with a slot but no proposer, or a reason on a
    /// state that has none, is refused rather than guessed at).
    pub fn from_stored(
        name: &str,
        by: Option<Side>,
        slot: Option<Slot>,
        reason: Option<String>,
    ) -> Option<Self> {
        Some(match (name, by, slot, reason) {
            ("requested", None, None, None) => ReferralState::Requested,
            ("accepted", None, None, None) => ReferralState::Accepted,
            ("counter_proposed", Some(by), Some(slot), None) => {
                ReferralState::CounterProposed { by, slot }
            }
            ("scheduled", None, Some(slot), None) => ReferralState::Scheduled { slot },
            ("declined", None, None, Some(reason)) => ReferralState::Declined { reason },
            ("in_consultation", None, None, None) => ReferralState::InConsultation,
            ("report_issued", None, None, None) => ReferralState::ReportIssued,
            ("closed", None, None, reason) => ReferralState::Closed { reason },
            ("cancelled", Some(by), None, Some(reason)) => ReferralState::Cancelled { by, reason },
            _ => return None,
        })
    }

    /// The side that proposed the pending time, or that cancelled.
    pub fn by(&self) -> Option<Side> {
        match self {
            ReferralState::CounterProposed { by, .. } | ReferralState::Cancelled { by, .. } => {
                Some(*by)
            }
            _ => None,
        }
    }

    /// The time proposed or agreed.
    pub fn slot(&self) -> Option<Slot> {
        match self {
            ReferralState::CounterProposed { slot, .. } | ReferralState::Scheduled { slot } => {
                Some(*slot)
            }
            _ => None,
        }
    }

    /// Why the request was declined or cancelled.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ReferralState::Declined { reason } | ReferralState::Cancelled { reason, .. } => {
                Some(reason)
            }
            ReferralState::Closed { reason } => reason.as_deref(),
            _ => None,
        }
    }

    /// Nothing applies any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ReferralState::Declined { .. }
                | ReferralState::Closed { .. }
                | ReferralState::Cancelled { .. }
        )
    }

    /// Still waiting on someone: what the inboxes list.
    pub fn is_open(&self) -> bool {
        !self.is_terminal()
    }
}

/// A step one side asks to take. Slots in it were checked against the clock when made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Receiver, on a new or accepted request (with a time: scheduled); or the side answering a
    /// counter-proposal, agreeing to its time.
    Accept {
        slot: Option<Slot>,
    },
    ProposeTime {
        slot: Slot,
    },
    Decline {
        reason: String,
    },
    /// To another specialist of the department, or back to the department as a whole.
    Forward {
        to: Target,
    },
    Start,
    IssueReport,
    /// After the report; or, with a reason, a consultation that ended without one (the
    /// patient did not come, the question was settled in the call).
    Close {
        reason: String,
    },
    Cancel {
        reason: String,
    },
}

impl Action {
    /// The name errors, the audit trail and the wire use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Accept { .. } => "accept",
            Action::ProposeTime { .. } => "propose_time",
            Action::Decline { .. } => "decline",
            Action::Forward { .. } => "forward",
            Action::Start => "start",
            Action::IssueReport => "issue_report",
            Action::Close { .. } => "close",
            Action::Cancel { .. } => "cancel",
        }
    }
}

/// What a request is after a step. Forwarding changes whom it is addressed to, not its state;
/// every other step changes the state and keeps the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub state: ReferralState,
    pub target: Target,
}

/// Why a step or a new request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferralError {
    /// The action does not apply in this state for either side: accepting twice, anything
    /// after a cancellation.
    #[error("\"{action}\" is not possible while the consultation request is {}", words(.state))]
    NotNow {
        state: &'static str,
        action: &'static str,
    },
    /// The action applies in this state, but to the other side.
    #[error("the {} cannot \"{action}\" this consultation request now", .side.as_str())]
    WrongSide { action: &'static str, side: Side },
    #[error("a reason is required")]
    ReasonRequired,
    #[error("a reason may be at most {} characters", REASON_MAX_CHARS)]
    ReasonTooLong,
    #[error("that time has passed")]
    SlotInPast,
    #[error("a consultation may be booked at most {} days ahead", SLOT_MAX_AHEAD_SECS / 86_400)]
    SlotTooFar,
    #[error(
        "a consultation lasts {} to {} minutes",
        SLOT_MIN_MINUTES,
        SLOT_MAX_MINUTES
    )]
    BadDuration,
    /// Accepting an already accepted request says nothing new without a time.
    #[error("the request is accepted already: give a time to schedule it")]
    SlotRequired,
    /// Accepting a counter-proposal with another time than the one proposed.
    #[error("that is not the time proposed: propose it instead of accepting")]
    SlotMismatch,
    #[error("a request may be forwarded only within its department")]
    ForwardOutsideDepartment,
    #[error("the request is addressed there already")]
    ForwardToSameTarget,
    #[error("{0} is required")]
    FieldEmpty(&'static str),
    #[error("{field} may be at most {max} characters")]
    FieldTooLong { field: &'static str, max: usize },
    /// Text shown to the other side may not hide or reorder what it displays (see
    /// [`super::text`]); line breaks and tabs are allowed where the text may span lines.
    #[error("{0} may not contain control, direction-changing or invisible characters")]
    HiddenCharacters(&'static str),
    #[error("at most {} times may be proposed", MAX_PROPOSED_SLOTS)]
    TooManySlots,
    #[error("the same start time is proposed twice")]
    DuplicateSlot,
}

impl ReferralError {
    /// A stable name for the HTTP edge to answer with.
    pub fn code(&self) -> &'static str {
        match self {
            ReferralError::NotNow { .. } => "not_now",
            ReferralError::WrongSide { .. } => "wrong_side",
            ReferralError::ReasonRequired => "reason_required",
            ReferralError::ReasonTooLong => "reason_too_long",
            ReferralError::SlotInPast => "slot_in_past",
            ReferralError::SlotTooFar => "slot_too_far",
            ReferralError::BadDuration => "bad_duration",
            ReferralError::SlotRequired => "slot_required",
            ReferralError::SlotMismatch => "slot_mismatch",
            ReferralError::ForwardOutsideDepartment => "forward_outside_department",
            ReferralError::ForwardToSameTarget => "forward_to_same_target",
            ReferralError::FieldEmpty(_) => "field_empty",
            ReferralError::FieldTooLong { .. } => "field_too_long",
            ReferralError::HiddenCharacters(_) => "hidden_characters",
            ReferralError::TooManySlots => "too_many_slots",
            ReferralError::DuplicateSlot => "duplicate_slot",
        }
    }
}

/// A stored name as words for a message ("in_consultation" → "in consultation").
fn words(name: &str) -> String {
    name.replace('_', " ")
}

/// The step `side` asks to take on a request in `state` addressed to `target`, or why it is
/// refused: first whether the action applies in this state at all ([`ReferralError::NotNow`]),
/// then whether it is this side's to take ([`ReferralError::WrongSide`]), then its details.
/// `now` (Unix seconds) is for agreeing to a proposed time, which may have passed while it
/// waited.
pub fn apply(
    state: &ReferralState,
    target: &Target,
    side: Side,
    action: Action,
    now: i64,
) -> Result<Step, ReferralError> {
    use ReferralState as S;
    use Side::{Receiver, Requester};
    let action_name = action.as_str();
    let only = |allowed: Side| {
        if side == allowed {
            Ok(())
        } else {
            Err(ReferralError::WrongSide {
                action: action_name,
                side,
            })
        }
    };
    let next = match (action, state) {
        (Action::Accept { slot }, S::Requested) => {
            only(Receiver)?;
            match slot {
                Some(slot) => S::Scheduled { slot },
                None => S::Accepted,
            }
        }
        (Action::Accept { slot }, S::Accepted) => {
            only(Receiver)?;
            S::Scheduled {
                slot: slot.ok_or(ReferralError::SlotRequired)?,
            }
        }
        (Action::Accept { slot }, S::CounterProposed { by, slot: proposed }) => {
            // Agreeing is the other side's answer; a different time is a new proposal.
            only(by.other())?;
            if slot.is_some_and(|slot| slot != *proposed) {
                return Err(ReferralError::SlotMismatch);
            }
            if proposed.has_passed(now) {
                return Err(ReferralError::SlotInPast);
            }
            S::Scheduled { slot: *proposed }
        }
        (Action::ProposeTime { slot }, S::Requested) => {
            // The requester's own times came with the request.
            only(Receiver)?;
            S::CounterProposed { by: side, slot }
        }
        (
            Action::ProposeTime { slot },
            S::Accepted | S::CounterProposed { .. } | S::Scheduled { .. },
        ) => {
            // Over one's own pending proposal this replaces it; over a scheduled time it is a
            // request to reschedule, which the other side answers.
            S::CounterProposed { by: side, slot }
        }
        (
            Action::Decline { reason },
            S::Requested | S::Accepted | S::CounterProposed { .. } | S::Scheduled { .. },
        ) => {
            only(Receiver)?;
            S::Declined {
                reason: step_reason(&reason)?,
            }
        }
        (Action::Forward { to }, S::Requested) => {
            only(Receiver)?;
            // The department is what the requester chose; who in it takes the request is the
            // department's business.
            if to.department() != target.department() {
                return Err(ReferralError::ForwardOutsideDepartment);
            }
            if to == *target {
                return Err(ReferralError::ForwardToSameTarget);
            }
            return Ok(Step {
                state: S::Requested,
                target: to,
            });
        }
        (Action::Start, S::Scheduled { .. }) => S::InConsultation,
        (Action::IssueReport, S::InConsultation) => {
            only(Receiver)?;
            S::ReportIssued
        }
        (Action::Close { .. }, S::ReportIssued) => S::Closed { reason: None },
        (Action::Close { reason }, S::InConsultation) => {
            // Without a report, either side may close it, saying why: otherwise a consultation
            // that ended without one would hold its request open for ever.
            S::Closed {
                reason: Some(step_reason(&reason)?),
            }
        }
        (
            Action::Cancel { reason },
            S::Requested | S::Accepted | S::CounterProposed { .. } | S::Scheduled { .. },
        ) => {
            only(Requester)?;
            S::Cancelled {
                by: side,
                reason: step_reason(&reason)?,
            }
        }
        _ => {
            return Err(ReferralError::NotNow {
                state: state.as_str(),
                action: action_name,
            });
        }
    };
    Ok(Step {
        state: next,
        target: target.clone(),
    })
}

/// A new request's content, checked and trimmed. Whom it is addressed to, who sends it and the
/// documents attached are the caller's to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReferral {
    patient_ref: String,
    reason: String,
    question: String,
    urgency: Urgency,
    proposed: Vec<Slot>,
}

impl NewReferral {
    /// Text is trimmed, then must be 1 to its maximum in characters, with nothing hidden (the
    /// patient reference on one line); at most [`MAX_PROPOSED_SLOTS`] times, no two starting
    /// together. The slots were checked against the clock when made.
    pub fn validate(
        patient_ref: &str,
        reason: &str,
        question: &str,
        urgency: Urgency,
        proposed: Vec<Slot>,
    ) -> Result<NewReferral, ReferralError> {
        let patient_ref = field("patient_ref", patient_ref, PATIENT_REF_MAX_CHARS, false)?;
        let reason = field("reason", reason, REASON_MAX_CHARS, true)?;
        let question = field("question", question, QUESTION_MAX_CHARS, true)?;
        if proposed.len() > MAX_PROPOSED_SLOTS {
            return Err(ReferralError::TooManySlots);
        }
        for (i, slot) in proposed.iter().enumerate() {
            if proposed[..i].iter().any(|p| p.start == slot.start) {
                return Err(ReferralError::DuplicateSlot);
            }
        }
        Ok(NewReferral {
            patient_ref,
            reason,
            question,
            urgency,
            proposed,
        })
    }

    pub fn patient_ref(&self) -> &str {
        &self.patient_ref
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn question(&self) -> &str {
        &self.question
    }

    pub fn urgency(&self) -> Urgency {
        self.urgency
    }

    /// In the order the requester gave them.
    pub fn proposed(&self) -> &[Slot] {
        &self.proposed
    }
}

enum TextFault {
    Empty,
    TooLong,
    Hidden,
}

/// Trimmed text of 1 to `max` characters that hides nothing; `lines` allows line breaks and
/// tabs, which a clinical question needs and a one-line reference does not.
fn clean_text(raw: &str, max: usize, lines: bool) -> Result<String, TextFault> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars == 0 {
        return Err(TextFault::Empty);
    }
    if chars > max {
        return Err(TextFault::TooLong);
    }
    let allowed = |c: char| lines && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| is_hiding(c) && !allowed(c)) {
        return Err(TextFault::Hidden);
    }
    Ok(text.to_owned())
}

fn field(name: &'static str, raw: &str, max: usize, lines: bool) -> Result<String, ReferralError> {
    clean_text(raw, max, lines).map_err(|fault| match fault {
        TextFault::Empty => ReferralError::FieldEmpty(name),
        TextFault::TooLong => ReferralError::FieldTooLong { field: name, max },
        TextFault::Hidden => ReferralError::HiddenCharacters(name),
    })
}

/// The reason given with a decline or a cancellation.
fn step_reason(raw: &str) -> Result<String, ReferralError> {
    clean_text(raw, REASON_MAX_CHARS, true).map_err(|fault| match fault {
        TextFault::Empty => ReferralError::ReasonRequired,
        TextFault::TooLong => ReferralError::ReasonTooLong,
        TextFault::Hidden => ReferralError::HiddenCharacters("reason"),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use ReferralError as E;
    use ReferralState as S;
    use Side::{Receiver, Requester};

    const NOW: i64 = 1_750_000_000;
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    fn cardiology() -> DepartmentId {
        DepartmentId::parse("dep_Cardiology000001").unwrap()
    }

    fn neurology() -> DepartmentId {
        DepartmentId::parse("dep_Neurology0000001").unwrap()
    }

    fn dr_wang() -> UserId {
        UserId::parse("u_DrWang0000000001").unwrap()
    }

    fn dr_li() -> UserId {
        UserId::parse("u_DrLi000000000001").unwrap()
    }

    /// The time on the table in the states that carry one (pending proposal, scheduled).
    fn s() -> Slot {
        Slot::new(NOW + DAY, 30, NOW).unwrap()
    }

    /// Another time, the one the table's actions propose.
    fn t() -> Slot {
        Slot::new(NOW + 2 * DAY, 45, NOW).unwrap()
    }

    /// Whom the table's requests are addressed to.
    fn target() -> Target {
        Target::Department(cardiology())
    }

    fn proposed(by: Side) -> ReferralState {
        S::CounterProposed { by, slot: t() }
    }

    fn scheduled(slot: Slot) -> ReferralState {
        S::Scheduled { slot }
    }

    /// What the table's decline and cancel leave, trimmed.
    fn declined() -> ReferralState {
        S::Declined {
            reason: "No capacity this week".into(),
        }
    }

    fn cancelled() -> ReferralState {
        S::Cancelled {
            by: Requester,
            reason: "Patient improved".into(),
        }
    }

    /// What the table's close leaves where there is no report.
    fn closed_because() -> ReferralState {
        S::Closed {
            reason: Some("Patient did not come".into()),
        }
    }

    /// One of each state, under the label the table uses (both sides where a state names one).
    fn states() -> Vec<(&'static str, ReferralState)> {
        let all = vec![
            ("requested", S::Requested),
            ("accepted", S::Accepted),
            (
                "proposed_by_requester",
                S::CounterProposed {
                    by: Requester,
                    slot: s(),
                },
            ),
            (
                "proposed_by_receiver",
                S::CounterProposed {
                    by: Receiver,
                    slot: s(),
                },
            ),
            ("scheduled", S::Scheduled { slot: s() }),
            (
                "declined",
                S::Declined {
                    reason: "Outside our remit".into(),
                },
            ),
            ("in_consultation", S::InConsultation),
            ("report_issued", S::ReportIssued),
            ("closed", S::Closed { reason: None }),
            (
                "cancelled_by_requester",
                S::Cancelled {
                    by: Requester,
                    reason: "Seen locally".into(),
                },
            ),
            (
                "cancelled_by_receiver",
                S::Cancelled {
                    by: Receiver,
                    reason: "Seen locally".into(),
                },
            ),
        ];
        // A new state fails to compile here: add it above and to the table.
        for (_, state) in &all {
            match state {
                S::Requested
                | S::Accepted
                | S::CounterProposed { .. }
                | S::Scheduled { .. }
                | S::Declined { .. }
                | S::InConsultation
                | S::ReportIssued
                | S::Closed { .. }
                | S::Cancelled { .. } => {}
            }
        }
        all
    }

    /// One of each action (accepting in its three forms), under the label the table uses.
    fn actions() -> Vec<(&'static str, Action)> {
        let all = vec![
            ("accept", Action::Accept { slot: None }),
            ("accept_s", Action::Accept { slot: Some(s()) }),
            ("accept_t", Action::Accept { slot: Some(t()) }),
            ("propose_t", Action::ProposeTime { slot: t() }),
            (
                "decline",
                Action::Decline {
                    reason: "  No capacity this week\n".into(),
                },
            ),
            (
                "forward",
                Action::Forward {
                    to: Target::Specialist {
                        department: cardiology(),
                        user: dr_wang(),
                    },
                },
            ),
            ("start", Action::Start),
            ("issue_report", Action::IssueReport),
            (
                "close",
                Action::Close {
                    reason: "Patient did not come".into(),
                },
            ),
            (
                "cancel",
                Action::Cancel {
                    reason: " Patient improved ".into(),
                },
            ),
        ];
        // A new action fails to compile here: add it above and to the table.
        for (_, action) in &all {
            match action {
                Action::Accept { .. }
                | Action::ProposeTime { .. }
                | Action::Decline { .. }
                | Action::Forward { .. }
                | Action::Start
                | Action::IssueReport
                | Action::Close { .. }
                | Action::Cancel { .. } => {}
            }
        }
        all
    }

    enum Want {
        /// Allowed; the request becomes this (forwarding also changes the target).
        To(ReferralState),
        /// `NotNow` naming this state and action.
        NotNow,
        /// `WrongSide` naming this action and side.
        WrongSide,
        /// Refused for the action's details.
        Fails(ReferralError),
    }

    /// The specification: every state, every action, what the requester and the receiver get.
    #[rustfmt::skip]
    fn table() -> Vec<(&'static str, &'static str, Want, Want)> {
        use Want::*;
        vec![
            // state                   action          requester                receiver
            ("requested",              "accept",       WrongSide,               To(S::Accepted)),
            ("requested",              "accept_s",     WrongSide,               To(scheduled(s()))),
            ("requested",              "accept_t",     WrongSide,               To(scheduled(t()))),
            ("requested",              "propose_t",    WrongSide,               To(proposed(Receiver))),
            ("requested",              "decline",      WrongSide,               To(declined())),
            ("requested",              "forward",      WrongSide,               To(S::Requested)),
            ("requested",              "start",        NotNow,                  NotNow),
            ("requested",              "issue_report", NotNow,                  NotNow),
            ("requested",              "close",        NotNow,                  NotNow),
            ("requested",              "cancel",       To(cancelled()),         WrongSide),

            ("accepted",               "accept",       WrongSide,               Fails(E::SlotRequired)),
            ("accepted",               "accept_s",     WrongSide,               To(scheduled(s()))),
            ("accepted",               "accept_t",     WrongSide,               To(scheduled(t()))),
            ("accepted",               "propose_t",    To(proposed(Requester)), To(proposed(Receiver))),
            ("accepted",               "decline",      WrongSide,               To(declined())),
            ("accepted",               "forward",      NotNow,                  NotNow),
            ("accepted",               "start",        NotNow,                  NotNow),
            ("accepted",               "issue_report", NotNow,                  NotNow),
            ("accepted",               "close",        NotNow,                  NotNow),
            ("accepted",               "cancel",       To(cancelled()),         WrongSide),

            ("proposed_by_requester",  "accept",       WrongSide,               To(scheduled(s()))),
            ("proposed_by_requester",  "accept_s",     WrongSide,               To(scheduled(s()))),
            ("proposed_by_requester",  "accept_t",     WrongSide,               Fails(E::SlotMismatch)),
            ("proposed_by_requester",  "propose_t",    To(proposed(Requester)), To(proposed(Receiver))),
            ("proposed_by_requester",  "decline",      WrongSide,               To(declined())),
            ("proposed_by_requester",  "forward",      NotNow,                  NotNow),
            ("proposed_by_requester",  "start",        NotNow,                  NotNow),
            ("proposed_by_requester",  "issue_report", NotNow,                  NotNow),
            ("proposed_by_requester",  "close",        NotNow,                  NotNow),
            ("proposed_by_requester",  "cancel",       To(cancelled()),         WrongSide),

            ("proposed_by_receiver",   "accept",       To(scheduled(s())),      WrongSide),
            ("proposed_by_receiver",   "accept_s",     To(scheduled(s())),      WrongSide),
            ("proposed_by_receiver",   "accept_t",     Fails(E::SlotMismatch),  WrongSide),
            ("proposed_by_receiver",   "propose_t",    To(proposed(Requester)), To(proposed(Receiver))),
            ("proposed_by_receiver",   "decline",      WrongSide,               To(declined())),
            ("proposed_by_receiver",   "forward",      NotNow,                  NotNow),
            ("proposed_by_receiver",   "start",        NotNow,                  NotNow),
            ("proposed_by_receiver",   "issue_report", NotNow,                  NotNow),
            ("proposed_by_receiver",   "close",        NotNow,                  NotNow),
            ("proposed_by_receiver",   "cancel",       To(cancelled()),         WrongSide),

            ("scheduled",              "accept",       NotNow,                  NotNow),
            ("scheduled",              "accept_s",     NotNow,                  NotNow),
            ("scheduled",              "accept_t",     NotNow,                  NotNow),
            ("scheduled",              "propose_t",    To(proposed(Requester)), To(proposed(Receiver))),
            ("scheduled",              "decline",      WrongSide,               To(declined())),
            ("scheduled",              "forward",      NotNow,                  NotNow),
            ("scheduled",              "start",        To(S::InConsultation),   To(S::InConsultation)),
            ("scheduled",              "issue_report", NotNow,                  NotNow),
            ("scheduled",              "close",        NotNow,                  NotNow),
            ("scheduled",              "cancel",       To(cancelled()),         WrongSide),

            ("declined",               "accept",       NotNow,                  NotNow),
            ("declined",               "accept_s",     NotNow,                  NotNow),
            ("declined",               "accept_t",     NotNow,                  NotNow),
            ("declined",               "propose_t",    NotNow,                  NotNow),
            ("declined",               "decline",      NotNow,                  NotNow),
            ("declined",               "forward",      NotNow,                  NotNow),
            ("declined",               "start",        NotNow,                  NotNow),
            ("declined",               "issue_report", NotNow,                  NotNow),
            ("declined",               "close",        NotNow,                  NotNow),
            ("declined",               "cancel",       NotNow,                  NotNow),

            ("in_consultation",        "accept",       NotNow,                  NotNow),
            ("in_consultation",        "accept_s",     NotNow,                  NotNow),
            ("in_consultation",        "accept_t",     NotNow,                  NotNow),
            ("in_consultation",        "propose_t",    NotNow,                  NotNow),
            ("in_consultation",        "decline",      NotNow,                  NotNow),
            ("in_consultation",        "forward",      NotNow,                  NotNow),
            ("in_consultation",        "start",        NotNow,                  NotNow),
            ("in_consultation",        "issue_report", WrongSide,               To(S::ReportIssued)),
            ("in_consultation",        "close",        To(closed_because()),    To(closed_because())),
            ("in_consultation",        "cancel",       NotNow,                  NotNow),

            ("report_issued",          "accept",       NotNow,                  NotNow),
            ("report_issued",          "accept_s",     NotNow,                  NotNow),
            ("report_issued",          "accept_t",     NotNow,                  NotNow),
            ("report_issued",          "propose_t",    NotNow,                  NotNow),
            ("report_issued",          "decline",      NotNow,                  NotNow),
            ("report_issued",          "forward",      NotNow,                  NotNow),
            ("report_issued",          "start",        NotNow,                  NotNow),
            ("report_issued",          "issue_report", NotNow,                  NotNow),
            ("report_issued",          "close",        To(S::Closed { reason: None }), To(S::Closed { reason: None })),
            ("report_issued",          "cancel",       NotNow,                  NotNow),

            ("closed",                 "accept",       NotNow,                  NotNow),
            ("closed",                 "accept_s",     NotNow,                  NotNow),
            ("closed",                 "accept_t",     NotNow,                  NotNow),
            ("closed",                 "propose_t",    NotNow,                  NotNow),
            ("closed",                 "decline",      NotNow,                  NotNow),
            ("closed",                 "forward",      NotNow,                  NotNow),
            ("closed",                 "start",        NotNow,                  NotNow),
            ("closed",                 "issue_report", NotNow,                  NotNow),
            ("closed",                 "close",        NotNow,                  NotNow),
            ("closed",                 "cancel",       NotNow,                  NotNow),

            ("cancelled_by_requester", "accept",       NotNow,                  NotNow),
            ("cancelled_by_requester", "accept_s",     NotNow,                  NotNow),
            ("cancelled_by_requester", "accept_t",     NotNow,                  NotNow),
            ("cancelled_by_requester", "propose_t",    NotNow,                  NotNow),
            ("cancelled_by_requester", "decline",      NotNow,                  NotNow),
            ("cancelled_by_requester", "forward",      NotNow,                  NotNow),
            ("cancelled_by_requester", "start",        NotNow,                  NotNow),
            ("cancelled_by_requester", "issue_report", NotNow,                  NotNow),
            ("cancelled_by_requester", "close",        NotNow,                  NotNow),
            ("cancelled_by_requester", "cancel",       NotNow,                  NotNow),

            ("cancelled_by_receiver",  "accept",       NotNow,                  NotNow),
            ("cancelled_by_receiver",  "accept_s",     NotNow,                  NotNow),
            ("cancelled_by_receiver",  "accept_t",     NotNow,                  NotNow),
            ("cancelled_by_receiver",  "propose_t",    NotNow,                  NotNow),
            ("cancelled_by_receiver",  "decline",      NotNow,                  NotNow),
            ("cancelled_by_receiver",  "forward",      NotNow,                  NotNow),
            ("cancelled_by_receiver",  "start",        NotNow,                  NotNow),
            ("cancelled_by_receiver",  "issue_report", NotNow,                  NotNow),
            ("cancelled_by_receiver",  "close",        NotNow,                  NotNow),
            ("cancelled_by_receiver",  "cancel",       NotNow,                  NotNow),
        ]
    }

    #[test]
    fn every_state_action_and_side_is_in_the_table() {
        let table = table();
        let mut covered = HashSet::new();
        let mut wrong = Vec::new();
        for (state_label, state) in states() {
            for (action_label, action) in actions() {
                let rows: Vec<_> = table
                    .iter()
                    .filter(|(s, a, _, _)| *s == state_label && *a == action_label)
                    .collect();
                assert_eq!(
                    rows.len(),
                    1,
                    "{state_label} × {action_label}: the table needs exactly one row"
                );
                covered.insert((state_label, action_label));
                let (_, _, for_requester, for_receiver) = rows[0];
                for (side, want) in [(Requester, for_requester), (Receiver, for_receiver)] {
                    let expected = match want {
                        Want::To(next) => Ok(Step {
                            state: next.clone(),
                            target: match &action {
                                Action::Forward { to } => to.clone(),
                                _ => target(),
                            },
                        }),
                        Want::NotNow => Err(E::NotNow {
                            state: state.as_str(),
                            action: action.as_str(),
                        }),
                        Want::WrongSide => Err(E::WrongSide {
                            action: action.as_str(),
                            side,
                        }),
                        Want::Fails(e) => Err(e.clone()),
                    };
                    let got = apply(&state, &target(), side, action.clone(), NOW);
                    if got != expected {
                        wrong.push(format!(
                            "{state_label} × {action_label} by the {}: expected {expected:?}, got {got:?}",
                            side.as_str()
                        ));
                    }
                }
            }
        }
        assert_eq!(
            covered.len(),
            table.len(),
            "the table has rows for states or actions the test does not enumerate"
        );
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn a_request_runs_from_request_to_close() {
        let now = NOW;
        let mut state = S::Requested;
        let mut to = target();
        let steps = [
            (
                Receiver,
                Action::Forward {
                    to: Target::new(cardiology(), Some(dr_li())),
                },
            ),
            (Receiver, Action::Accept { slot: None }),
            (Requester, Action::ProposeTime { slot: s() }),
            (Receiver, Action::ProposeTime { slot: t() }),
            (Requester, Action::Accept { slot: None }),
            (Requester, Action::Start),
            (Receiver, Action::IssueReport),
            (
                Requester,
                Action::Close {
                    reason: String::new(),
                },
            ),
        ];
        for (side, action) in steps {
            let step = apply(&state, &to, side, action, now).unwrap();
            (state, to) = (step.state, step.target);
        }
        assert_eq!(state, S::Closed { reason: None });
        assert_eq!(to.specialist(), Some(&dr_li()));
        assert!(state.is_terminal());
    }

    #[test]
    fn slot_limits() {
        let at = NOW + HOUR;
        assert_eq!(Slot::new(at, 0, NOW), Err(E::BadDuration));
        assert_eq!(
            Slot::new(at, SLOT_MIN_MINUTES - 1, NOW),
            Err(E::BadDuration)
        );
        assert_eq!(
            Slot::new(at, SLOT_MAX_MINUTES + 1, NOW),
            Err(E::BadDuration)
        );
        assert!(Slot::new(at, SLOT_MIN_MINUTES, NOW).is_ok());
        assert!(Slot::new(at, SLOT_MAX_MINUTES, NOW).is_ok());
        // Five minutes of clock slack, no more.
        assert!(Slot::new(NOW - SLOT_PAST_SLACK_SECS, 30, NOW).is_ok());
        assert_eq!(
            Slot::new(NOW - SLOT_PAST_SLACK_SECS - 1, 30, NOW),
            Err(E::SlotInPast)
        );
        assert!(Slot::new(NOW + SLOT_MAX_AHEAD_SECS, 30, NOW).is_ok());
        assert_eq!(
            Slot::new(NOW + SLOT_MAX_AHEAD_SECS + 1, 30, NOW),
            Err(E::SlotTooFar)
        );
        assert_eq!(SLOT_MAX_AHEAD_SECS, 366 * DAY);
        // The length is checked first, and extreme times do not overflow.
        assert_eq!(Slot::new(NOW - DAY, 1, NOW), Err(E::BadDuration));
        assert_eq!(Slot::new(i64::MIN, 30, NOW), Err(E::SlotInPast));
        assert_eq!(Slot::new(i64::MAX, 30, NOW), Err(E::SlotTooFar));
        assert_eq!(Slot::new(0, 30, i64::MIN), Err(E::SlotTooFar));

        let slot = Slot::new(at, 45, NOW).unwrap();
        assert_eq!(
            (slot.start(), slot.minutes(), slot.end()),
            (at, 45, at + 45 * 60)
        );
        // Read back, a slot long past is fine; a length out of bounds is not.
        assert_eq!(
            Slot::from_stored(NOW - 30 * DAY, 30).map(Slot::start),
            Some(NOW - 30 * DAY)
        );
        assert_eq!(Slot::from_stored(at, 45), Some(slot));
        assert_eq!(Slot::from_stored(at, 241), None);
        assert_eq!(Slot::from_stored(at, 4), None);
    }

    #[test]
    fn agreeing_to_a_proposal_whose_time_has_passed_is_refused() {
        let soon = Slot::new(NOW + HOUR, 30, NOW).unwrap();
        let state = S::CounterProposed {
            by: Receiver,
            slot: soon,
        };
        let accept = || Action::Accept { slot: None };
        let late = soon.start() + SLOT_PAST_SLACK_SECS + 1;
        assert_eq!(
            apply(&state, &target(), Requester, accept(), late),
            Err(E::SlotInPast)
        );
        let in_time = soon.start() + SLOT_PAST_SLACK_SECS;
        assert_eq!(
            apply(&state, &target(), Requester, accept(), in_time).map(|s| s.state),
            Ok(scheduled(soon))
        );
        // Proposing another time is how to move on from it.
        let later = Slot::new(late + DAY, 30, late).unwrap();
        assert_eq!(
            apply(
                &state,
                &target(),
                Requester,
                Action::ProposeTime { slot: later },
                late
            )
            .map(|s| s.state),
            Ok(S::CounterProposed {
                by: Requester,
                slot: later
            })
        );
    }

    #[test]
    fn decline_and_cancel_reasons() {
        let decline = |reason: &str| {
            apply(
                &S::Requested,
                &target(),
                Receiver,
                Action::Decline {
                    reason: reason.into(),
                },
                NOW,
            )
        };
        let cancel = |reason: &str| {
            apply(
                &S::Scheduled { slot: s() },
                &target(),
                Requester,
                Action::Cancel {
                    reason: reason.into(),
                },
                NOW,
            )
        };
        let close = |reason: &str| {
            apply(
                &S::InConsultation,
                &target(),
                Receiver,
                Action::Close {
                    reason: reason.into(),
                },
                NOW,
            )
        };
        for step in [decline, cancel, close] {
            assert_eq!(step(""), Err(E::ReasonRequired));
            assert_eq!(step(" \n\t "), Err(E::ReasonRequired));
            assert_eq!(
                step(&"王".repeat(REASON_MAX_CHARS + 1)),
                Err(E::ReasonTooLong)
            );
            assert_eq!(step("Dr. \u{202e}roF"), Err(E::HiddenCharacters("reason")));
            assert_eq!(step("a\u{0}b"), Err(E::HiddenCharacters("reason")));
            let longest = "王".repeat(REASON_MAX_CHARS);
            assert_eq!(
                step(&format!("  {longest}  ")).unwrap().state.reason(),
                Some(longest.as_str())
            );
            assert_eq!(
                step(" Two lines:\nno slot\tthis week. ")
                    .unwrap()
                    .state
                    .reason(),
                Some("Two lines:\nno slot\tthis week.")
            );
        }
        // The side is checked before the reason.
        assert_eq!(
            apply(
                &S::Requested,
                &target(),
                Requester,
                Action::Decline { reason: "".into() },
                NOW
            ),
            Err(E::WrongSide {
                action: "decline",
                side: Requester
            })
        );
    }

    #[test]
    fn forwarding_stays_within_the_department() {
        let forward = |from: Target, to: Target| {
            apply(&S::Requested, &from, Receiver, Action::Forward { to }, NOW)
        };
        let dept = Target::Department(cardiology());
        let wang = Target::new(cardiology(), Some(dr_wang()));
        let li = Target::new(cardiology(), Some(dr_li()));
        for (from, to) in [
            (dept.clone(), wang.clone()),
            (wang.clone(), li.clone()),
            (wang.clone(), dept.clone()),
        ] {
            assert_eq!(
                forward(from, to.clone()),
                Ok(Step {
                    state: S::Requested,
                    target: to
                })
            );
        }
        for same in [dept.clone(), wang.clone()] {
            assert_eq!(forward(same.clone(), same), Err(E::ForwardToSameTarget));
        }
        for (from, to) in [
            (dept.clone(), Target::Department(neurology())),
            (wang.clone(), Target::new(neurology(), Some(dr_wang()))),
            (dept, Target::new(neurology(), Some(dr_li()))),
        ] {
            assert_eq!(forward(from, to), Err(E::ForwardOutsideDepartment));
        }
        assert_eq!(wang.department(), &cardiology());
        assert_eq!(wang.specialist(), Some(&dr_wang()));
        assert_eq!(
            Target::new(neurology(), None),
            Target::Department(neurology())
        );
        assert_eq!(Target::Department(neurology()).specialist(), None);
    }

    #[test]
    fn urgent_requests_sort_first_and_are_marked() {
        use Urgency::*;
        let mut inbox = vec![Routine, Emergency, Urgent, Routine, Emergency];
        inbox.sort_by_key(|u| u.sort_rank());
        assert_eq!(inbox, [Emergency, Emergency, Urgent, Routine, Routine]);
        assert!(Emergency.is_marked() && Urgent.is_marked() && !Routine.is_marked());
    }

    #[test]
    fn stored_names_round_trip() {
        for u in [Urgency::Routine, Urgency::Urgent, Urgency::Emergency] {
            assert_eq!(Urgency::parse(u.as_str()), Some(u));
            assert_eq!(serde_json::to_value(u).unwrap(), u.as_str());
        }
        assert_eq!(Urgency::parse("Urgent"), None);
        for side in [Requester, Receiver] {
            assert_eq!(Side::parse(side.as_str()), Some(side));
            assert_eq!(side.other().other(), side);
            assert_ne!(side.other(), side);
        }
        assert_eq!(Side::parse("patient"), None);

        let names: HashSet<_> = states().iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            names,
            HashSet::from([
                "requested",
                "accepted",
                "counter_proposed",
                "scheduled",
                "declined",
                "in_consultation",
                "report_issued",
                "closed",
                "cancelled",
            ])
        );
        for (_, state) in states() {
            let back = ReferralState::from_stored(
                state.as_str(),
                state.by(),
                state.slot(),
                state.reason().map(String::from),
            );
            assert_eq!(back, Some(state.clone()));
            // Final exactly when it is not open; the finals are the three that end a request.
            assert_eq!(state.is_terminal(), !state.is_open());
            assert_eq!(
                state.is_terminal(),
                matches!(state.as_str(), "declined" | "closed" | "cancelled")
            );
        }
        // Details missing or out of place are refused, not guessed.
        assert_eq!(
            ReferralState::from_stored("scheduled", None, None, None),
            None
        );
        assert_eq!(
            ReferralState::from_stored("counter_proposed", None, Some(s()), None),
            None
        );
        assert_eq!(
            ReferralState::from_stored("requested", None, None, Some("x".into())),
            None
        );
        assert_eq!(
            ReferralState::from_stored("cancelled", None, None, Some("x".into())),
            None
        );
        assert_eq!(
            ReferralState::from_stored("Requested", None, None, None),
            None
        );

        let action_names: Vec<_> = actions().iter().map(|(_, a)| a.as_str()).collect();
        assert_eq!(
            action_names,
            [
                "accept",
                "accept",
                "accept",
                "propose_time",
                "decline",
                "forward",
                "start",
                "issue_report",
                "close",
                "cancel"
            ]
        );
    }

    #[test]
    fn serialised_shapes() {
        assert_eq!(
            serde_json::to_value(S::Scheduled { slot: s() }).unwrap(),
            serde_json::json!({"state": "scheduled", "slot": {"start": NOW + DAY, "minutes": 30}})
        );
        assert_eq!(
            serde_json::to_value(proposed(Receiver)).unwrap(),
            serde_json::json!({
                "state": "counter_proposed",
                "by": "receiver",
                "slot": {"start": NOW + 2 * DAY, "minutes": 45}
            })
        );
        assert_eq!(
            serde_json::to_value(S::InConsultation).unwrap(),
            serde_json::json!({"state": "in_consultation"})
        );
        let wang = Target::new(cardiology(), Some(dr_wang()));
        let json = serde_json::to_value(&wang).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"specialist": {
                "department": "dep_Cardiology000001",
                "user": "u_DrWang0000000001"
            }})
        );
        assert_eq!(serde_json::from_value::<Target>(json).unwrap(), wang);
        let dept = serde_json::json!({"department": "dep_Cardiology000001"});
        assert_eq!(
            serde_json::from_value::<Target>(dept).unwrap(),
            Target::Department(cardiology())
        );
        // Ids inside are checked on the way in.
        assert!(
            serde_json::from_value::<Target>(serde_json::json!({"department": "u_x"})).is_err()
        );
    }

    #[test]
    fn new_requests_are_checked_and_trimmed() {
        let ok = |patient: &str, reason: &str, question: &str, proposed: Vec<Slot>| {
            NewReferral::validate(patient, reason, question, Urgency::Urgent, proposed)
        };
        let r = ok(
            "  P-2024-0042 ",
            " Chest pain on exertion ",
            "\nIs this stable angina?\nECG attached.\n",
            vec![s(), t()],
        )
        .unwrap();
        assert_eq!(r.patient_ref(), "P-2024-0042");
        assert_eq!(r.reason(), "Chest pain on exertion");
        assert_eq!(r.question(), "Is this stable angina?\nECG attached.");
        assert_eq!(r.urgency(), Urgency::Urgent);
        assert_eq!(r.proposed(), [s(), t()]);
        assert!(ok("P1", "r", "q", vec![]).unwrap().proposed().is_empty());

        assert_eq!(ok(" ", "r", "q", vec![]), Err(E::FieldEmpty("patient_ref")));
        assert_eq!(ok("P1", "", "q", vec![]), Err(E::FieldEmpty("reason")));
        assert_eq!(
            ok("P1", "r", "\n\n", vec![]),
            Err(E::FieldEmpty("question"))
        );
        for (field, max) in [
            ("patient_ref", PATIENT_REF_MAX_CHARS),
            ("reason", REASON_MAX_CHARS),
            ("question", QUESTION_MAX_CHARS),
        ] {
            let at_max = "é".repeat(max);
            let over = "é".repeat(max + 1);
            let with = |text: &str| match field {
                "patient_ref" => ok(text, "r", "q", vec![]),
                "reason" => ok("P1", text, "q", vec![]),
                _ => ok("P1", "r", text, vec![]),
            };
            assert!(with(&at_max).is_ok(), "{field}");
            assert_eq!(with(&over), Err(E::FieldTooLong { field, max }));
            assert_eq!(with("a\u{200b}b"), Err(E::HiddenCharacters(field)));
        }
        // A reference is one line; a reason or a question may have several.
        assert_eq!(
            ok("P\n1", "r", "q", vec![]),
            Err(E::HiddenCharacters("patient_ref"))
        );
        assert!(ok("P1", "a\nb", "a\r\n\tb", vec![]).is_ok());

        let five: Vec<_> = (1..=5)
            .map(|d| Slot::new(NOW + d * DAY, 30, NOW).unwrap())
            .collect();
        assert!(ok("P1", "r", "q", five.clone()).is_ok());
        let mut six = five.clone();
        six.push(Slot::new(NOW + 6 * DAY, 30, NOW).unwrap());
        assert_eq!(ok("P1", "r", "q", six), Err(E::TooManySlots));
        let same_start = Slot::new(NOW + DAY, 60, NOW).unwrap();
        assert_eq!(
            ok("P1", "r", "q", vec![s(), t(), same_start]),
            Err(E::DuplicateSlot)
        );
        assert_eq!(ok("P1", "r", "q", vec![s(), s()]), Err(E::DuplicateSlot));
    }

    #[test]
    fn errors_have_distinct_codes_and_plain_messages() {
        let all = [
            E::NotNow {
                state: "in_consultation",
                action: "accept",
            },
            E::WrongSide {
                action: "issue_report",
                side: Requester,
            },
            E::ReasonRequired,
            E::ReasonTooLong,
            E::SlotInPast,
            E::SlotTooFar,
            E::BadDuration,
            E::SlotRequired,
            E::SlotMismatch,
            E::ForwardOutsideDepartment,
            E::ForwardToSameTarget,
            E::FieldEmpty("reason"),
            E::FieldTooLong {
                field: "question",
                max: QUESTION_MAX_CHARS,
            },
            E::HiddenCharacters("patient_ref"),
            E::TooManySlots,
            E::DuplicateSlot,
        ];
        let codes: HashSet<_> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
        for e in &all {
            assert!(
                e.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                e.code()
            );
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            all[0].to_string(),
            "\"accept\" is not possible while the consultation request is in consultation"
        );
        assert_eq!(
            all[1].to_string(),
            "the requester cannot \"issue_report\" this consultation request now"
        );
        assert_eq!(
            E::SlotTooFar.to_string(),
            "a consultation may be booked at most 366 days ahead"
        );
        assert_eq!(
            E::BadDuration.to_string(),
            "a consultation lasts 5 to 240 minutes"
        );
        assert_eq!(
            all[12].to_string(),
            "question may be at most 2000 characters"
        );
    }
}
