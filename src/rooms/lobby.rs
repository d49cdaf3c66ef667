//! The waiting room of one live consultation: who came with an invitation and waits for a
//! clinician to let them in, in order, with what they are told.
//!
//! A waiting person is a [`Participant`] kept apart from the room's: the room's broadcasts,
//! media, documents, chat and access tokens reach only those in `Room::participants`, so
//! nothing of the consultation reaches someone here until they are admitted. The lobby itself
//! decides nothing about who may admit (the room asks the permission table); it keeps the
//! queue, its lock and its message, and estimates waits from how far apart the last
//! admissions were.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::notice::{Queue, WaiterInfo, Waiting};
use super::participant::Participant;
use super::request::Precall;
use crate::domain::ids::{ParticipantId, RoomId};

/// Admissions remembered for the estimate.
const ADMISSIONS_KEPT: usize = 6;

/// One person waiting.
#[derive(Debug)]
pub struct Waiter {
    pub person: Participant,
    pub since: i64,
    /// Why they wait again, when they were in the room (they wait at the front).
    pub sent_back: Option<SentBack>,
    pub precall: Option<Precall>,
}

/// Why someone who was in the room waits again. The client says it in the person's language
/// from [`code`](Self::code); only a clinician's own words travel as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentBack {
    /// A clinician sent them back, with their own words when they gave some.
    CareTeam(Option<String>),
    /// An observer or guest, while the patient has not agreed to observers being present.
    AwaitsConsent,
}

impl SentBack {
    pub fn code(&self) -> &'static str {
        match self {
            SentBack::CareTeam(_) => "care_team",
            SentBack::AwaitsConsent => "awaits_consent",
        }
    }

    /// The clinician's own words, if they gave any.
    pub fn words(&self) -> Option<&str> {
        match self {
            SentBack::CareTeam(words) => words.as_deref(),
            SentBack::AwaitsConsent => None,
        }
    }

    /// In English, for a client that shows `sent_back` as it comes.
    pub fn text(&self) -> String {
        match self {
            SentBack::CareTeam(Some(words)) => words.clone(),
            SentBack::CareTeam(None) => "the doctors asked you to wait a moment".to_owned(),
            SentBack::AwaitsConsent => {
                "the patient has not agreed to observers being present; you wait until they do"
                    .to_owned()
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Lobby {
    waiters: VecDeque<Waiter>,
    pub locked: bool,
    pub message: Option<String>,
    admissions: VecDeque<Instant>,
}

impl Lobby {
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Joins the end of the queue; someone sent back waits at the front.
    pub fn push(&mut self, waiter: Waiter) {
        if waiter.sent_back.is_some() {
            self.waiters.push_front(waiter);
        } else {
            self.waiters.push_back(waiter);
        }
    }

    /// Where `id` stands in line, from 0.
    pub fn position(&self, id: &ParticipantId) -> Option<usize> {
        self.waiters.iter().position(|w| &w.person.id == id)
    }

    /// Puts back, where they stood (`at`, from [`position`](Self::position) before they were
    /// taken), someone whose admission failed on the server's side: nobody loses their place
    /// over it.
    pub fn restore(&mut self, at: usize, waiter: Waiter) {
        let at = at.min(self.waiters.len());
        self.waiters.insert(at, waiter);
    }

    pub fn find(&self, id: &ParticipantId) -> Option<&Waiter> {
        self.waiters.iter().find(|w| &w.person.id == id)
    }

    pub fn find_mut(&mut self, id: &ParticipantId) -> Option<&mut Waiter> {
        self.waiters.iter_mut().find(|w| &w.person.id == id)
    }

    /// Takes the one named out of the queue (admitted, declined, gone).
    pub fn take(&mut self, id: &ParticipantId) -> Option<Waiter> {
        let pos = self.waiters.iter().position(|w| &w.person.id == id)?;
        self.waiters.remove(pos)
    }

    /// Whoever is first in line.
    pub fn first(&self) -> Option<&Waiter> {
        self.waiters.front()
    }

    /// Takes whoever is first.
    pub fn take_next(&mut self) -> Option<Waiter> {
        self.waiters.pop_front()
    }

    /// Takes everyone matching `which` (their invitation revoked, their connection gone).
    pub fn take_where(&mut self, which: impl Fn(&Waiter) -> bool) -> Vec<Waiter> {
        let (taken, kept): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|w| which(w));
        self.waiters = kept.into();
        taken
    }

    pub fn iter(&self) -> impl Iterator<Item = &Waiter> {
        self.waiters.iter()
    }

    pub fn drain(&mut self) -> Vec<Waiter> {
        self.waiters.drain(..).collect()
    }

    /// Remembers when someone was let in, for the estimate.
    pub fn note_admission(&mut self, at: Instant) {
        if self.admissions.len() == ADMISSIONS_KEPT {
            self.admissions.pop_front();
        }
        self.admissions.push_back(at);
    }

    /// The mean time between the last admissions, once there were at least two.
    fn pace(&self) -> Option<Duration> {
        let (first, last) = (self.admissions.front()?, self.admissions.back()?);
        let gaps = self.admissions.len().checked_sub(1).filter(|n| *n > 0)?;
        Some(last.duration_since(*first) / gaps as u32)
    }

    /// What the one at `position` (1 = next) is told about their wait at `now` (Unix
    /// seconds). Before the consultation's agreed start (`slot`), the first in line waits at
    /// least until then, and each behind them one admission's pace more. Without a time to
    /// come, the pace of the last admissions times their place. Nothing when neither is known:
    /// a guess from nothing would mislead someone sitting in front of a screen.
    pub fn estimate_s(&self, position: usize, slot: Option<(i64, i64)>, now: i64) -> Option<u64> {
        let pace = self.pace().map(|pace| pace.as_secs());
        let until_start = slot
            .map(|(start, _)| start.saturating_sub(now))
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0);
        match (until_start, pace) {
            (Some(until), pace) => {
                let behind = position.saturating_sub(1) as u64;
                Some(until.saturating_add(pace.unwrap_or(0).saturating_mul(behind)))
            }
            (None, Some(pace)) => Some(pace.saturating_mul(position as u64)),
            (None, None) => None,
        }
    }

    /// What `id` is told at `now` (Unix seconds), if they wait.
    pub fn waiting(
        &self,
        room: &RoomId,
        title: &str,
        slot: Option<(i64, i64)>,
        id: &ParticipantId,
        now: i64,
    ) -> Option<Waiting> {
        let index = self.waiters.iter().position(|w| &w.person.id == id)?;
        let position = index + 1;
        Some(Waiting {
            room: room.clone(),
            title: title.to_owned(),
            position,
            of: self.waiters.len(),
            estimated_wait_s: self.estimate_s(position, slot, now),
            message: self.message.clone(),
            sent_back: self.waiters[index].sent_back.clone(),
            slot,
        })
    }

    /// The queue as clinicians see it.
    pub fn queue(&self) -> Queue {
        Queue {
            waiting: self
                .waiters
                .iter()
                .map(|w| WaiterInfo {
                    id: w.person.id.clone(),
                    name: w.person.name.clone(),
                    role: w.person.role,
                    waiting_since: w.since,
                    sent_back: w.sent_back.is_some(),
                    precall: w.precall,
                })
                .collect(),
            locked: self.locked,
            message: self.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(id: &str) -> Waiter {
        use crate::domain::ids::InviteId;
        use crate::domain::role::Role;
        use crate::rooms::{Publish, SessionLink};
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        Waiter {
            person: Participant::new(
                ParticipantId::parse(id).unwrap(),
                id.to_owned(),
                Role::Patient,
                InviteId::generate(),
                None,
                Publish::default(),
                SessionLink { conn: 1, tx },
            ),
            since: 0,
            sent_back: None,
            precall: None,
        }
    }

    #[test]
    fn someone_whose_admission_failed_keeps_their_place() {
        let mut lobby = Lobby::default();
        for id in [
            "p_aaaaaaaaaaaaaaaa",
            "p_bbbbbbbbbbbbbbbb",
            "p_cccccccccccccccc",
        ] {
            lobby.push(waiter(id));
        }
        let order = |l: &Lobby| l.iter().map(|w| w.person.name.clone()).collect::<Vec<_>>();
        // The first taken (admit next) and put back: first again, not last.
        let first = lobby.take_next().unwrap();
        lobby.restore(0, first);
        assert_eq!(order(&lobby)[0], "p_aaaaaaaaaaaaaaaa");
        // The second, admitted by name, and put back where they stood.
        let id = ParticipantId::parse("p_bbbbbbbbbbbbbbbb").unwrap();
        let at = lobby.position(&id).unwrap();
        let second = lobby.take(&id).unwrap();
        lobby.restore(at, second);
        assert_eq!(
            order(&lobby),
            [
                "p_aaaaaaaaaaaaaaaa",
                "p_bbbbbbbbbbbbbbbb",
                "p_cccccccccccccccc"
            ]
        );
        // Where the line got shorter meanwhile: at its end.
        let last = lobby
            .take(&ParticipantId::parse("p_cccccccccccccccc").unwrap())
            .unwrap();
        lobby.take_next();
        lobby.restore(2, last);
        assert_eq!(order(&lobby), ["p_bbbbbbbbbbbbbbbb", "p_cccccccccccccccc"]);
    }

    #[test]
    fn the_estimate_follows_the_pace_of_admissions() {
        let mut lobby = Lobby::default();
        assert_eq!(
            lobby.estimate_s(1, None, 0),
            None,
            "no admissions yet: no guess"
        );
        let start = Instant::now();
        lobby.note_admission(start);
        assert_eq!(
            lobby.estimate_s(1, None, 0),
            None,
            "one admission is no pace"
        );
        lobby.note_admission(start + Duration::from_secs(600));
        lobby.note_admission(start + Duration::from_secs(1200));
        assert_eq!(lobby.estimate_s(1, None, 0), Some(600));
        assert_eq!(lobby.estimate_s(3, None, 0), Some(1800));
        for k in 3..20 {
            lobby.note_admission(start + Duration::from_secs(1200 + 60 * k));
        }
        assert_eq!(
            lobby.estimate_s(1, None, 0),
            Some(60),
            "only the latest admissions count"
        );
    }

    #[test]
    fn before_the_agreed_time_the_estimate_counts_down_to_it() {
        let now = 1_800_000_000;
        let slot = Some((now + 900, 30));
        let mut lobby = Lobby::default();
        // An early patient, before anyone was admitted: until the agreed start.
        assert_eq!(lobby.estimate_s(1, slot, now), Some(900));
        assert_eq!(
            lobby.estimate_s(2, slot, now),
            Some(900),
            "no pace: no more is guessed"
        );
        assert_eq!(lobby.estimate_s(1, slot, now + 600), Some(300));
        // Once the time has come, only the pace tells, and there is none yet.
        assert_eq!(lobby.estimate_s(1, slot, now + 900), None);
        assert_eq!(lobby.estimate_s(1, slot, now + 4000), None);
        let start = Instant::now();
        lobby.note_admission(start);
        lobby.note_admission(start + Duration::from_secs(240));
        // With a pace: each one behind the first waits one admission more after the start.
        assert_eq!(lobby.estimate_s(1, slot, now), Some(900));
        assert_eq!(lobby.estimate_s(3, slot, now), Some(900 + 2 * 240));
        assert_eq!(lobby.estimate_s(2, slot, now + 1000), Some(480));
        // A consultation without a time: the pace alone.
        assert_eq!(lobby.estimate_s(2, None, now), Some(480));
    }
}
