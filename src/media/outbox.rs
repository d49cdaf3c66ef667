//! The media core's events on their way to room tasks, delivered without ever blocking the
//! worker and without losing one that changes state.
//!
//! A room's event queue is bounded, and the worker must never wait on a room (it serves every
//! room on its core). An event that finds its room's queue full waits here, in that room's
//! backlog, and is retried on the worker's next turns (the worker wakes for it within
//! [`RETRY`]), ahead of anything newer for that room, so a room sees its events in the order the
//! core made them. The backlog coalesces per participant instead of dropping: a newer offer
//! replaces an older one still waiting (only the latest offer can be answered), a failure
//! replaces everything still waiting (the transport is gone), a second `Connected` (which
//! only informs) is redundant, a newer video quality replaces an older one for the same
//! m-line, and a newer download estimate (a network check's) an older one. So what waits for
//! one participant is at most an offer, a `Connected`, a video quality per m-line they receive,
//! an estimate and the answer failures of answers to offers already delivered, or a failure
//! alone: the backlog is bounded by the worker's participants, not by how long a room is slow.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::domain::ids::RoomId;
use crate::sfu::SfuEvent;

/// How soon the worker retries a backlog when nothing else wakes it.
pub(super) const RETRY: Duration = Duration::from_millis(5);

/// Every room's way to its task, with what waits for room in its queue.
#[derive(Debug, Default)]
pub(super) struct Outboxes {
    rooms: HashMap<RoomId, Outbox>,
    /// Rooms whose backlog is not empty.
    backlogged: Vec<RoomId>,
    /// Events in all backlogs.
    waiting: usize,
    /// Events that found their room's queue full (or a backlog before them) and waited.
    pub(super) deferred: u64,
    /// Events a newer one for the same participant made redundant while they waited.
    pub(super) coalesced: u64,
}

#[derive(Debug)]
struct Outbox {
    tx: mpsc::Sender<SfuEvent>,
    backlog: VecDeque<SfuEvent>,
}

impl Outboxes {
    pub(super) fn open(&mut self, room: RoomId, tx: mpsc::Sender<SfuEvent>) {
        self.forget(&room);
        self.rooms.insert(
            room,
            Outbox {
                tx,
                backlog: VecDeque::new(),
            },
        );
    }

    /// After a panic in the worker's own code: every room keeps its way to its task, and what
    /// waited is dropped (the core was replaced and tells each participant `Failed`, which
    /// would have replaced all of it anyway); the counters start consistent again.
    pub(super) fn reset(&mut self) {
        for out in self.rooms.values_mut() {
            out.backlog.clear();
        }
        self.backlogged.clear();
        self.waiting = 0;
    }

    /// The room's task has stopped: what still waits for it goes with it.
    pub(super) fn close(&mut self, room: &RoomId) {
        self.forget(room);
    }

    fn forget(&mut self, room: &RoomId) {
        if let Some(out) = self.rooms.remove(room) {
            self.waiting -= out.backlog.len();
            self.backlogged.retain(|r| r != room);
        }
    }

    pub(super) fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Events waiting in backlogs now.
    pub(super) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Hands an event to its room's queue, or to the room's backlog when the queue is full or
    /// older events still wait.
    pub(super) fn deliver(&mut self, event: SfuEvent) {
        let Some(out) = self.rooms.get_mut(event.room()) else {
            return;
        };
        let event = if out.backlog.is_empty() {
            match out.tx.try_send(event) {
                Ok(()) => return,
                Err(TrySendError::Full(event)) => {
                    self.backlogged.push(event.room().clone());
                    event
                }
                // The room task has stopped; its close message is on the way.
                Err(TrySendError::Closed(_)) => return,
            }
        } else {
            event
        };
        self.deferred += 1;
        let before = out.backlog.len();
        let coalesced = defer(&mut out.backlog, event);
        self.coalesced += coalesced;
        self.waiting = self.waiting + out.backlog.len() - before;
    }

    /// Moves what waits into the rooms' queues, oldest first, as far as they have room.
    pub(super) fn retry(&mut self) {
        if self.waiting == 0 {
            return;
        }
        let rooms = &mut self.rooms;
        let mut moved = 0;
        self.backlogged.retain(|room| {
            let Some(out) = rooms.get_mut(room) else {
                return false;
            };
            while let Some(event) = out.backlog.pop_front() {
                match out.tx.try_send(event) {
                    Ok(()) => moved += 1,
                    Err(TrySendError::Full(event)) => {
                        out.backlog.push_front(event);
                        return true;
                    }
                    Err(TrySendError::Closed(_)) => {
                        moved += 1 + out.backlog.len();
                        out.backlog.clear();
                    }
                }
            }
            false
        });
        self.waiting -= moved;
    }
}

/// Queues `event` behind what waits, dropping what it makes redundant; returns how many
/// (including itself) were dropped.
fn defer(backlog: &mut VecDeque<SfuEvent>, event: SfuEvent) -> u64 {
    let who = event.participant().clone();
    let before = backlog.len();
    match &event {
        SfuEvent::Failed { .. } => backlog.retain(|e| e.participant() != &who),
        SfuEvent::Offer { .. } => {
            backlog.retain(|e| !(matches!(e, SfuEvent::Offer { .. }) && e.participant() == &who))
        }
        SfuEvent::Connected { .. } => {
            let redundant = backlog.iter().any(|e| {
                matches!(e, SfuEvent::Connected { .. } | SfuEvent::Failed { .. })
                    && e.participant() == &who
            });
            if redundant {
                return 1;
            }
        }
        SfuEvent::VideoQuality { mid, .. } => backlog.retain(|e| {
            !matches!(e, SfuEvent::VideoQuality { mid: m, .. } if m == mid)
                || e.participant() != &who
        }),
        // Only the latest estimate is worth telling.
        SfuEvent::DownEstimate { .. } => backlog
            .retain(|e| !matches!(e, SfuEvent::DownEstimate { .. }) || e.participant() != &who),
        SfuEvent::AnswerFailed { .. } => {}
    }
    let dropped = before - backlog.len();
    backlog.push_back(event);
    dropped as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ParticipantId;
    use crate::sfu::{AnswerError, FailReason, OfferOut};

    fn offer(room: &RoomId, p: &ParticipantId, offer_id: u64) -> SfuEvent {
        SfuEvent::Offer {
            room: room.clone(),
            participant: p.clone(),
            offer: OfferOut {
                offer_id,
                sdp: String::new(),
                tracks: Vec::new(),
                screen_mid: None,
                publish_mids: Default::default(),
            },
        }
    }

    fn answer_failed(room: &RoomId, p: &ParticipantId, offer_id: u64) -> SfuEvent {
        SfuEvent::AnswerFailed {
            room: room.clone(),
            participant: p.clone(),
            offer_id,
            error: AnswerError::Stale,
        }
    }

    fn connected(room: &RoomId, p: &ParticipantId) -> SfuEvent {
        SfuEvent::Connected {
            room: room.clone(),
            participant: p.clone(),
        }
    }

    fn failed(room: &RoomId, p: &ParticipantId) -> SfuEvent {
        SfuEvent::Failed {
            room: room.clone(),
            participant: p.clone(),
            reason: FailReason::Lost,
        }
    }

    /// An event in a form tests compare: (participant, what, offer id).
    fn label(e: &SfuEvent) -> (ParticipantId, &'static str, u64) {
        let (what, id) = match e {
            SfuEvent::Offer { offer, .. } => ("offer", offer.offer_id),
            SfuEvent::AnswerFailed { offer_id, .. } => ("answer_failed", *offer_id),
            SfuEvent::Connected { .. } => ("connected", 0),
            SfuEvent::Failed { .. } => ("failed", 0),
            SfuEvent::VideoQuality { .. } => ("video_quality", 0),
            SfuEvent::DownEstimate { bps, .. } => ("down_estimate", *bps),
        };
        (e.participant().clone(), what, id)
    }

    #[test]
    fn a_full_room_queue_loses_no_offer_or_failure_and_keeps_the_order() {
        let room = RoomId::generate();
        let (tx, mut rx) = mpsc::channel(2);
        let mut out = Outboxes::default();
        out.open(room.clone(), tx);
        let [a, b, c] = [(); 3].map(|_| ParticipantId::generate());

        // The room is not reading: two fit its queue, the rest wait.
        for e in [
            connected(&room, &a),
            offer(&room, &a, 1),
            offer(&room, &b, 1),
            offer(&room, &a, 2),
            answer_failed(&room, &b, 1),
            offer(&room, &b, 2), // replaces b's offer 1
            offer(&room, &a, 3), // replaces a's offer 2
            connected(&room, &c),
            offer(&room, &c, 1),
            connected(&room, &c), // redundant
            failed(&room, &c),    // replaces c's connected and offer
        ] {
            out.deliver(e);
        }
        assert_eq!(out.deferred, 9);
        assert_eq!(out.coalesced, 5);
        assert_eq!(out.waiting(), 4);
        out.retry();
        assert_eq!(out.waiting(), 4, "nothing moves while the queue is full");

        // The room reads again, a little at a time; the worker retries on its turns.
        let mut got = Vec::new();
        while out.waiting() > 0 || !rx.is_empty() {
            if let Ok(e) = rx.try_recv() {
                got.push(label(&e));
            }
            out.retry();
        }
        let of = |p: &ParticipantId| -> Vec<(&'static str, u64)> {
            got.iter()
                .filter(|(q, ..)| q == p)
                .map(|(_, what, id)| (*what, *id))
                .collect()
        };
        assert_eq!(of(&a), [("connected", 0), ("offer", 1), ("offer", 3)]);
        assert_eq!(of(&b), [("answer_failed", 1), ("offer", 2)]);
        assert_eq!(of(&c), [("failed", 0)]);
        assert_eq!(got.len(), 6);

        // With the queue free again, events go straight through.
        out.deliver(offer(&room, &a, 4));
        assert_eq!(out.waiting(), 0);
        assert_eq!(label(&rx.try_recv().unwrap()), (a.clone(), "offer", 4));
        assert_eq!(out.deferred, 9);
    }

    #[test]
    fn a_waiting_download_estimate_is_replaced_by_a_newer_one() {
        let room = RoomId::generate();
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outboxes::default();
        out.open(room.clone(), tx);
        let [a, b] = [(); 2].map(|_| ParticipantId::generate());
        let estimate = |p: &ParticipantId, kbps: u64| SfuEvent::DownEstimate {
            room: room.clone(),
            participant: p.clone(),
            bps: kbps * 1000,
        };
        out.deliver(connected(&room, &a)); // fills the queue
        for e in [
            estimate(&a, 500),
            estimate(&b, 700),
            estimate(&a, 900),  // replaces a's 500
            estimate(&a, 2400), // replaces a's 900
        ] {
            out.deliver(e);
        }
        assert_eq!((out.waiting(), out.coalesced), (2, 2));
        let mut got = Vec::new();
        while out.waiting() > 0 || !rx.is_empty() {
            if let Ok(e) = rx.try_recv() {
                got.push(label(&e));
            }
            out.retry();
        }
        assert_eq!(
            got,
            [
                (a.clone(), "connected", 0),
                (b, "down_estimate", 700_000),
                (a, "down_estimate", 2_400_000),
            ]
        );
    }

    #[test]
    fn a_room_that_stopped_takes_its_backlog_with_it() {
        let (room, other) = (RoomId::generate(), RoomId::generate());
        let p = ParticipantId::generate();
        let (tx, rx) = mpsc::channel(1);
        let (tx2, _rx2) = mpsc::channel(1);
        let mut out = Outboxes::default();
        out.open(room.clone(), tx);
        out.open(other.clone(), tx2);
        for id in 1..=3 {
            out.deliver(offer(&room, &p, id));
            out.deliver(answer_failed(&other, &p, id));
        }
        assert_eq!(out.waiting(), 3);
        drop(rx);
        out.retry();
        assert_eq!(out.waiting(), 2, "the other room's still wait");
        out.close(&other);
        assert_eq!((out.waiting(), out.rooms()), (0, 1));
        out.retry();
    }
}
