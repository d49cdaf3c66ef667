//! The rules of entering a consultation and of its waiting room and huddle, as one typed state
//! machine with no I/O: who arrives where ([`arrive`]), who may act on the waiting room and what
//! an action does to the person it names ([`apply`]), and when a huddle ends on its own
//! ([`Huddle::after_leave`]).
//!
//! The room (`room.rs`) owns the state (its lobby, its participants, its huddle) and carries out
//! what a step says (seats someone, tells everyone, writes the record); it asks this module
//! first, so that every transition and every refusal is decided in one place and tested here
//! as a table. A refusal is typed: it says what the actor is told ([`Refusal::problem`]) and
//! whether it may be misuse and goes on the record ([`Refusal::audit_reason`]).
//!
//! One person's place, and the moves between places:
//!
//! ```text
//!            arrive (invitation, waiting room)            admit / admit next
//!  Absent ───────────────────────────────────► Waiting ─────────────────────► Present
//!    ▲  ▲                                       │  ▲                            │
//!    │  └── decline / leave / connection lost ──┘  └──────── send back ─────────┤
//!    └─────────────────────────── leave / removed / resume window over ─────────┘
//! ```
//!
//! Only the care team (`Role::may_admit`), in the room on its current connection, moves anyone
//! between places; someone waiting who tries is refused as such (`StillWaiting`), a patient or
//! an observer in the room as not of the care team (`NotCareTeam`).

use crate::domain::ids::ParticipantId;
use crate::domain::role::Role;
use crate::rooms::Problem;

/// Where one person stands in a live consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the waiting room.
    Waiting { role: Role },
    /// In the room; `connected`: on a live signaling connection (not waiting for a resume).
    Present { role: Role, connected: bool },
    /// Not in this consultation now: never came, declined, gone, or an unknown id.
    Absent,
}

/// Who asks, as the room sees them on the connection they asked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// In the room, of the care team.
    CareTeam,
    /// In the room, not of the care team (a patient, an observer, a guest).
    InRoom,
    /// In the waiting room.
    Waiting,
}

impl Asker {
    /// `role` as present in the room.
    pub fn present(role: Role) -> Self {
        if role.may_admit() {
            Asker::CareTeam
        } else {
            Asker::InRoom
        }
    }
}

/// The huddle: the clinicians confer, and the others are sent none of their media.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Huddle {
    #[default]
    Off,
    /// Started by `by` (any clinician present may end it).
    On { by: ParticipantId },
}

impl Huddle {
    pub fn is_on(&self) -> bool {
        matches!(self, Huddle::On { .. })
    }

    /// Whether the huddle ends because someone left the room, with `clinicians` of the care
    /// team still in it (connected or not). A clinician whose connection dropped is still
    /// there until their resume window is over, so a huddle goes on while they may come back;
    /// once nobody of the care team is left, the patient is not left hearing nobody.
    pub fn after_leave(&self, clinicians: usize) -> bool {
        self.is_on() && clinicians == 0
    }
}

/// What the room looks like to a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// Every patient present agreed to observers (vacuously true with no patient present).
    pub observers_allowed: bool,
    pub huddle: bool,
    pub locked: bool,
}

/// What a clinician asks of the waiting room or the huddle (the rest of `Moderation` needs only
/// [`authorize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Let in the one named, wherever they are.
    Admit(Place),
    /// Let in whoever waits longest: their role, `None` when nobody waits.
    AdmitNext(Option<Role>),
    /// Turn away the one named.
    Decline(Place),
    /// Send the one named from the room back to the waiting room.
    SendBack(Place),
    Lock(bool),
    Huddle(bool),
}

/// What the room is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take them out of the waiting room into the room (named, or the first in line).
    Admit,
    /// Take them out of the waiting room, told they were turned away.
    Decline,
    /// Take them out of the room to the front of the waiting room.
    SendBack,
    Lock(bool),
    Huddle(bool),
    /// Already so (asked twice, or by two clinicians at once): nothing changes, nobody is told.
    Unchanged,
}

/// Why a step was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("you are waiting to be admitted; the care team lets you in")]
    StillWaiting,
    #[error("only the care team manages the waiting room")]
    NotCareTeam,
    #[error("this person is no longer waiting: admitted by someone else, gone, or turned away")]
    NotWaiting,
    #[error("nobody is waiting")]
    NobodyWaiting,
    #[error("they may come in once the patient agrees to observers being present")]
    AwaitsConsent,
    #[error("only a patient or an observer who is connected can be sent back to wait")]
    CannotSendBack,
    #[error(
        "only the doctor who runs the consultation removes someone (it revokes the link they came with)"
    )]
    NotHost,
}

impl Refusal {
    /// What the asker is told it was.
    pub fn problem(self) -> Problem {
        match self {
            Refusal::StillWaiting | Refusal::NotCareTeam | Refusal::NotHost => Problem::Forbidden,
            Refusal::NotWaiting | Refusal::NobodyWaiting | Refusal::CannotSendBack => {
                Problem::NotWaiting
            }
            Refusal::AwaitsConsent => Problem::ConsentRequired,
        }
    }

    /// The audit reason of a refusal that may be misuse (someone asking for what their role
    /// may not do); `None` for what happens between honest clinicians (a race, a stale list).
    pub fn audit_reason(self) -> Option<&'static str> {
        match self {
            Refusal::StillWaiting => Some("moderation_while_waiting"),
            Refusal::NotCareTeam => Some("moderation_forbidden"),
            Refusal::NotHost => Some("removal_forbidden"),
            _ => None,
        }
    }
}

/// Whether `asker` may moderate at all (every `Moderation`, not only the waiting room's). The
/// room then asks the permission table's rows for the rest: `Role::may_moderate` for the
/// huddle, holding media and changing a role, `Role::may_remove` for removing someone.
pub fn authorize(asker: Asker) -> Result<(), Refusal> {
    match asker {
        Asker::CareTeam => Ok(()),
        Asker::InRoom => Err(Refusal::NotCareTeam),
        Asker::Waiting => Err(Refusal::StillWaiting),
    }
}

/// One step of the waiting room or the huddle: what `asker` asking `request` does, in a room
/// that stands as `facts` say.
pub fn apply(asker: Asker, request: Request, facts: Facts) -> Result<Step, Refusal> {
    authorize(asker)?;
    let may_enter = |role: Role| !role.is_third_party() || facts.observers_allowed;
    match request {
        Request::Admit(Place::Waiting { role }) | Request::AdmitNext(Some(role)) => {
            if may_enter(role) {
                Ok(Step::Admit)
            } else {
                Err(Refusal::AwaitsConsent)
            }
        }
        Request::Admit(Place::Present { .. } | Place::Absent) => Err(Refusal::NotWaiting),
        Request::AdmitNext(None) => Err(Refusal::NobodyWaiting),
        Request::Decline(Place::Waiting { .. }) => Ok(Step::Decline),
        Request::Decline(_) => Err(Refusal::NotWaiting),
        Request::SendBack(Place::Present {
            role,
            connected: true,
        }) if !role.may_admit() => Ok(Step::SendBack),
        Request::SendBack(_) => Err(Refusal::CannotSendBack),
        Request::Lock(locked) if locked == facts.locked => Ok(Step::Unchanged),
        Request::Lock(locked) => Ok(Step::Lock(locked)),
        Request::Huddle(on) if on == facts.huddle => Ok(Step::Unchanged),
        Request::Huddle(on) => Ok(Step::Huddle(on)),
    }
}

/// Someone arriving with a join: what they are and what they ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub role: Role,
    /// Through a care-team seat (an account), not an invitation link.
    pub seat: bool,
    /// They ask to send audio or video.
    pub publishes: bool,
    /// Their invitation was revoked in this consultation.
    pub revoked: bool,
    /// They were in the room a moment ago, let in on this same invitation, and this join
    /// replaces that connection (a reload of their page): they are let in again as they were,
    /// past the waiting room and a lock, instead of going to the back of the queue.
    pub readmitted: bool,
}

/// The room as an arrival finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doors {
    /// The consultation has a waiting room.
    pub waiting_room: bool,
    pub locked: bool,
    pub observers_allowed: bool,
    /// In the room, in the waiting room, and on their way in (joins being recorded).
    pub present: usize,
    pub waiting: usize,
    pub admitting: usize,
    pub max_participants: usize,
}

/// Where an arrival goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Waits,
    Enters,
}

/// Why an arrival is turned away at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Turned {
    #[error("the invitation was revoked")]
    Revoked,
    #[error("the consultation is locked")]
    Locked,
    #[error("the {} role may not publish media", .0.as_str())]
    MayNotPublish(Role),
    #[error("the patient has not agreed to observers being present")]
    ConsentRequired,
    #[error("the room is full ({0})")]
    Full(usize),
}

impl From<Turned> for super::RoomError {
    fn from(t: Turned) -> Self {
        match t {
            Turned::Revoked => super::RoomError::InviteRevoked,
            Turned::Locked => super::RoomError::Locked,
            Turned::MayNotPublish(role) => super::RoomError::MayNotPublish(role),
            Turned::ConsentRequired => super::RoomError::ConsentRequired,
            Turned::Full(n) => super::RoomError::Full(n),
        }
    }
}

/// Where `arrival` goes, or why not. Those with an invitation wait in a consultation that has a
/// waiting room (an observer waits there for the patient's consent too); the care team enters
/// with its seats, even while the room is locked. The waiting room holds as many as the room.
pub fn arrive(arrival: Arrival, doors: Doors) -> Result<Entry, Turned> {
    let back_in = arrival.seat || arrival.readmitted;
    let waits = doors.waiting_room && !back_in;
    if arrival.revoked {
        return Err(Turned::Revoked);
    }
    if doors.locked && !back_in {
        return Err(Turned::Locked);
    }
    if arrival.publishes && !arrival.role.may_publish() {
        return Err(Turned::MayNotPublish(arrival.role));
    }
    if !waits && arrival.role.is_third_party() && !doors.observers_allowed {
        return Err(Turned::ConsentRequired);
    }
    let held = if waits { doors.waiting } else { doors.present };
    if held + doors.admitting >= doors.max_participants {
        return Err(Turned::Full(doors.max_participants));
    }
    Ok(if waits { Entry::Waits } else { Entry::Enters })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Facts = Facts {
        observers_allowed: true,
        huddle: false,
        locked: false,
    };
    const NO_CONSENT: Facts = Facts {
        observers_allowed: false,
        ..OPEN
    };
    const HUDDLING: Facts = Facts {
        huddle: true,
        ..OPEN
    };
    const LOCKED: Facts = Facts {
        locked: true,
        ..OPEN
    };

    fn waiting(role: Role) -> Place {
        Place::Waiting { role }
    }
    fn present(role: Role) -> Place {
        Place::Present {
            role,
            connected: true,
        }
    }
    fn dropped(role: Role) -> Place {
        Place::Present {
            role,
            connected: false,
        }
    }

    /// One row of the transition table: what, who asks, what, in which room, the outcome.
    type Row = (&'static str, Asker, Request, Facts, Result<Step, Refusal>);

    /// Every waiting-room and huddle transition, and every refusal, by who asks.
    #[test]
    fn every_transition_and_refusal() {
        use Asker::*;
        use Refusal::*;
        use Role::*;
        #[rustfmt::skip]
        let table: &[Row] = &[
            // wait -> admit
            ("doctor admits a waiting patient", CareTeam, Request::Admit(waiting(Patient)), OPEN, Ok(Step::Admit)),
            ("admit an observer with consent", CareTeam, Request::Admit(waiting(Observer)), OPEN, Ok(Step::Admit)),
            ("admit a guest without consent", CareTeam, Request::Admit(waiting(Guest)), NO_CONSENT, Err(AwaitsConsent)),
            ("admit an observer without consent", CareTeam, Request::Admit(waiting(Observer)), NO_CONSENT, Err(AwaitsConsent)),
            ("a patient needs nobody's consent", CareTeam, Request::Admit(waiting(Patient)), NO_CONSENT, Ok(Step::Admit)),
            ("admit during a huddle", CareTeam, Request::Admit(waiting(Patient)), HUDDLING, Ok(Step::Admit)),
            ("admit while locked (the lock keeps out arrivals, not those waiting)", CareTeam, Request::Admit(waiting(Patient)), LOCKED, Ok(Step::Admit)),
            // admit someone already admitted or gone
            ("admit someone already admitted", CareTeam, Request::Admit(present(Patient)), OPEN, Err(NotWaiting)),
            ("admit someone admitted whose link dropped", CareTeam, Request::Admit(dropped(Patient)), OPEN, Err(NotWaiting)),
            ("admit someone gone", CareTeam, Request::Admit(Place::Absent), OPEN, Err(NotWaiting)),
            // admit next
            ("admit next: a patient waits", CareTeam, Request::AdmitNext(Some(Patient)), OPEN, Ok(Step::Admit)),
            ("admit next: nobody waits", CareTeam, Request::AdmitNext(None), OPEN, Err(NobodyWaiting)),
            ("admit next: an observer first, no consent", CareTeam, Request::AdmitNext(Some(Observer)), NO_CONSENT, Err(AwaitsConsent)),
            // patients trying to admit themselves or skip the queue
            ("a waiting patient admits themselves", Waiting, Request::Admit(waiting(Patient)), OPEN, Err(StillWaiting)),
            ("a waiting patient takes the next place", Waiting, Request::AdmitNext(Some(Patient)), OPEN, Err(StillWaiting)),
            ("a waiting patient declines the one ahead", Waiting, Request::Decline(waiting(Patient)), OPEN, Err(StillWaiting)),
            ("a waiting patient unlocks", Waiting, Request::Lock(false), LOCKED, Err(StillWaiting)),
            ("a patient in the room admits another", InRoom, Request::Admit(waiting(Patient)), OPEN, Err(NotCareTeam)),
            ("a patient in the room admits next", InRoom, Request::AdmitNext(Some(Patient)), OPEN, Err(NotCareTeam)),
            ("an observer admits", InRoom, Request::Admit(waiting(Observer)), OPEN, Err(NotCareTeam)),
            // decline
            ("decline someone waiting", CareTeam, Request::Decline(waiting(Patient)), OPEN, Ok(Step::Decline)),
            ("decline an observer waiting for consent", CareTeam, Request::Decline(waiting(Observer)), NO_CONSENT, Ok(Step::Decline)),
            ("decline someone admitted meanwhile", CareTeam, Request::Decline(present(Patient)), OPEN, Err(NotWaiting)),
            ("decline someone gone", CareTeam, Request::Decline(Place::Absent), OPEN, Err(NotWaiting)),
            ("a patient declines", InRoom, Request::Decline(waiting(Patient)), OPEN, Err(NotCareTeam)),
            // send back
            ("send back a patient", CareTeam, Request::SendBack(present(Patient)), OPEN, Ok(Step::SendBack)),
            ("send back an observer", CareTeam, Request::SendBack(present(Observer)), OPEN, Ok(Step::SendBack)),
            ("send back a guest during a huddle", CareTeam, Request::SendBack(present(Guest)), HUDDLING, Ok(Step::SendBack)),
            ("send back a clinician", CareTeam, Request::SendBack(present(Specialist)), OPEN, Err(CannotSendBack)),
            ("send back someone whose link dropped", CareTeam, Request::SendBack(dropped(Patient)), OPEN, Err(CannotSendBack)),
            ("send back someone already waiting", CareTeam, Request::SendBack(waiting(Patient)), OPEN, Err(CannotSendBack)),
            ("send back someone gone", CareTeam, Request::SendBack(Place::Absent), OPEN, Err(CannotSendBack)),
            ("a patient sends the doctor back", InRoom, Request::SendBack(present(Doctor)), OPEN, Err(NotCareTeam)),
            // lock / unlock
            ("lock", CareTeam, Request::Lock(true), OPEN, Ok(Step::Lock(true))),
            ("lock again", CareTeam, Request::Lock(true), LOCKED, Ok(Step::Unchanged)),
            ("unlock", CareTeam, Request::Lock(false), LOCKED, Ok(Step::Lock(false))),
            ("unlock when open", CareTeam, Request::Lock(false), OPEN, Ok(Step::Unchanged)),
            ("a patient locks", InRoom, Request::Lock(true), OPEN, Err(NotCareTeam)),
            ("a patient unlocks", InRoom, Request::Lock(false), LOCKED, Err(NotCareTeam)),
            // huddle
            ("a clinician starts a huddle", CareTeam, Request::Huddle(true), OPEN, Ok(Step::Huddle(true))),
            ("a huddle while nobody is admitted (they confer before)", CareTeam, Request::Huddle(true), OPEN, Ok(Step::Huddle(true))),
            ("a clinician ends a huddle (whoever started it)", CareTeam, Request::Huddle(false), HUDDLING, Ok(Step::Huddle(false))),
            ("start one already on", CareTeam, Request::Huddle(true), HUDDLING, Ok(Step::Unchanged)),
            ("end one not on", CareTeam, Request::Huddle(false), OPEN, Ok(Step::Unchanged)),
            ("a patient ends the huddle", InRoom, Request::Huddle(false), HUDDLING, Err(NotCareTeam)),
            ("an observer starts one", InRoom, Request::Huddle(true), OPEN, Err(NotCareTeam)),
            ("someone waiting starts one", Waiting, Request::Huddle(true), OPEN, Err(StillWaiting)),
        ];
        for (what, asker, request, facts, want) in table {
            assert_eq!(apply(*asker, *request, *facts), *want, "{what}");
        }
    }

    #[test]
    fn refusals_say_what_they_are_and_which_are_audited() {
        use Refusal::*;
        let table = [
            (
                StillWaiting,
                Problem::Forbidden,
                Some("moderation_while_waiting"),
            ),
            (
                NotCareTeam,
                Problem::Forbidden,
                Some("moderation_forbidden"),
            ),
            (NotWaiting, Problem::NotWaiting, None),
            (NobodyWaiting, Problem::NotWaiting, None),
            (AwaitsConsent, Problem::ConsentRequired, None),
            (CannotSendBack, Problem::NotWaiting, None),
        ];
        for (refusal, problem, audited) in table {
            assert_eq!(refusal.problem(), problem, "{refusal:?}");
            assert_eq!(refusal.audit_reason(), audited, "{refusal:?}");
        }
        assert_eq!(authorize(Asker::present(Role::Specialist)), Ok(()));
        assert_eq!(authorize(Asker::present(Role::Guest)), Err(NotCareTeam));
    }

    #[test]
    fn a_huddle_ends_with_the_last_clinician() {
        let on = Huddle::On {
            by: ParticipantId::generate(),
        };
        let table = [
            (Huddle::Off, 0, false),
            (Huddle::Off, 1, false),
            (on.clone(), 1, false),
            (on.clone(), 2, false),
            (on, 0, true),
        ];
        for (huddle, clinicians, ends) in table {
            assert_eq!(
                huddle.after_leave(clinicians),
                ends,
                "{huddle:?} {clinicians}"
            );
        }
    }

    /// Every way in, and every way of being turned away at the door.
    #[test]
    fn arrivals() {
        use Role::*;
        let doors = Doors {
            waiting_room: true,
            locked: false,
            observers_allowed: false,
            present: 1,
            waiting: 0,
            admitting: 0,
            max_participants: 3,
        };
        let plain = Doors {
            waiting_room: false,
            ..doors
        };
        let link = |role| Arrival {
            role,
            seat: false,
            publishes: false,
            revoked: false,
            readmitted: false,
        };
        let seat = |role| Arrival {
            seat: true,
            ..link(role)
        };
        let reload = |role| Arrival {
            readmitted: true,
            ..link(role)
        };
        #[rustfmt::skip]
        let table: &[(&str, Arrival, Doors, Result<Entry, Turned>)] = &[
            ("a patient waits", link(Patient), doors, Ok(Entry::Waits)),
            ("an observer waits, even without consent", link(Observer), doors, Ok(Entry::Waits)),
            ("a clinician enters", seat(Doctor), doors, Ok(Entry::Enters)),
            ("no waiting room: a patient enters", link(Patient), plain, Ok(Entry::Enters)),
            ("no waiting room: an observer without consent", link(Observer), plain, Err(Turned::ConsentRequired)),
            ("no waiting room: an observer with consent", link(Observer), Doors { observers_allowed: true, ..plain }, Ok(Entry::Enters)),
            ("revoked", Arrival { revoked: true, ..link(Patient) }, doors, Err(Turned::Revoked)),
            ("locked: a link", link(Patient), Doors { locked: true, ..doors }, Err(Turned::Locked)),
            ("locked: a seat enters", seat(Specialist), Doors { locked: true, ..doors }, Ok(Entry::Enters)),
            ("an observer asking to publish", Arrival { publishes: true, ..link(Observer) }, doors, Err(Turned::MayNotPublish(Observer))),
            ("a guest may publish", Arrival { publishes: true, ..link(Guest) }, Doors { observers_allowed: true, ..plain }, Ok(Entry::Enters)),
            ("the waiting room is full", link(Patient), Doors { waiting: 2, admitting: 1, ..doors }, Err(Turned::Full(3))),
            ("the waiting room has a place", link(Patient), Doors { waiting: 2, present: 3, ..doors }, Ok(Entry::Waits)),
            ("the room is full", seat(Doctor), Doors { present: 3, ..doors }, Err(Turned::Full(3))),
            ("the room is full with those on their way", seat(Doctor), Doors { present: 1, admitting: 2, ..doors }, Err(Turned::Full(3))),
            ("an admitted patient's reload enters again", reload(Patient), doors, Ok(Entry::Enters)),
            ("an admitted patient's reload enters a locked room", reload(Patient), Doors { locked: true, ..doors }, Ok(Entry::Enters)),
            ("an admitted patient's reload on a revoked link", Arrival { revoked: true, ..reload(Patient) }, doors, Err(Turned::Revoked)),
            ("an admitted observer's reload still needs consent", reload(Observer), plain, Err(Turned::ConsentRequired)),
        ];
        for (what, arrival, doors, want) in table {
            assert_eq!(arrive(*arrival, *doors), *want, "{what}");
        }
    }
}
