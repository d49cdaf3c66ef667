//! Panic containment: a panic while the core handles one input costs the room it was working
//! for, not the worker.
//!
//! A media worker serves many rooms from one `Sfu`. A panic inside it (str0m, or an arithmetic
//! slip of ours such as the allocator's u64 underflow a browser once caused) used to unwind
//! the worker's thread, and every room on it lost its media for good. The worker now runs each
//! unit of work (a datagram, an ICE-TCP frame, a room's command, a timer turn, a poll for
//! output) through [`Sfu::contained`], which catches the panic and repairs the core before the
//! next unit.
//!
//! # What a panic may have broken, and why dropping one room is enough
//!
//! Catching a panic keeps memory safe (this crate forbids `unsafe`, and nothing the core holds
//! is shared with another thread or behind a lock a panic could poison), but not the core's own
//! invariants: whatever the unwound code was writing may be half written. That is what
//! `UnwindSafe` warns of, and why [`Sfu::contained`] may assert it only because the repair
//! below trusts nothing the panic could have reached. So the question is what the work in progress could reach. The core keeps a scope
//! ([`Scope`]) of the work it is doing, narrowed as soon as it knows for whom:
//!
//! - **Working for one transport** (its datagram, its timer, its poll, a command naming its
//!   participant): everything such work writes is that transport's room's. It reaches other
//!   transports only through the room's router (forwarding to its members, renegotiating
//!   them, asking a publisher of the room for a keyframe): a consumer only ever names a
//!   producer of its own room, so no path leads to another room's transports or router. The
//!   room's transports and router are dropped together, each participant is told
//!   [`SfuEvent::Failed`] (`Lost`), and their room takes its normal path: the client is told
//!   `media_lost` and joins again with a fresh peer connection. Dropping only the transport
//!   would not do: work for a publisher writes into its subscribers' forwarders and peer
//!   connections, and a panic there leaves those half written too.
//! - **Adding or removing a transport**: the same, for the room it joins or leaves, and the
//!   participant is told `Failed` even if the table no longer (or not yet) holds them: their
//!   room waits for an offer that would otherwise never come.
//! - **Worker-wide bookkeeping** (the timer heap, a command for nobody yet): no room can be
//!   blamed, so nothing of the core is trusted. It is replaced by a fresh one (same addresses,
//!   DTLS certificate and counters), and every transport's participant is told `Failed`.
//! - **Reading** (routing a stranger's datagram, statistics): nothing was written; the input is
//!   dropped and nothing else is.
//!
//! Worker-wide structures written on behalf of a room are indexes derived from the transports
//! (addresses and ufrags → transport, the timer heap, the dirty list): after dropping a room
//! they are rebuilt from the transports that remain, so a half-done insert or removal in them
//! cannot leave another room's transport unreachable. The output queues (datagrams, events) are
//! only ever pushed whole, and the counters are at worst one off. Events queued before the
//! panic are kept, in order, before the failures: a room never waits in silence.
//!
//! The repair itself runs under `catch_unwind` too; should it panic, the core is replaced.
//! Containment needs `panic = "unwind"` (the default, and this crate's release profile).

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{FailReason, Sfu, SfuEvent, TransportKey};
use crate::domain::ids::{ParticipantId, RoomId};

/// What the core is doing now, as far as a panic is concerned: what it may have half written.
#[derive(Debug, Clone, Default)]
pub(super) enum Scope {
    /// Nothing that outlives the input: reads, or whole pushes to the output queues.
    #[default]
    Clean,
    /// Work for one transport: its room's state.
    Transport(TransportKey),
    /// A transport joining or leaving `room`: the room's state, and `participant`, whom the
    /// table may hold only in part.
    Room {
        room: RoomId,
        participant: ParticipantId,
    },
    /// Worker-wide state.
    Worker,
}

/// How the core recovered from a contained panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing was half written: only the input was lost.
    Nothing,
    /// One room's transports on this worker were dropped, each participant told `Failed`.
    Room { failed: usize },
    /// The core was replaced by a fresh one; every participant on it was told `Failed`.
    Worker { failed: usize },
}

impl Recovery {
    /// For the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Nothing => "nothing",
            Recovery::Room { .. } => "room",
            Recovery::Worker { .. } => "worker",
        }
    }

    /// Participants told their media failed.
    pub fn failed(self) -> usize {
        match self {
            Recovery::Nothing => 0,
            Recovery::Room { failed } | Recovery::Worker { failed } => failed,
        }
    }
}

/// A panic was caught while the core did some work, and the core repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contained {
    pub recovery: Recovery,
}

/// Faults the tests inject to exercise containment. Never in a release build.
#[cfg(any(test, feature = "fault-injection"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The participant's transport panics the next time it is polled (after its next
    /// datagram or timer), as the allocator's underflow did.
    PanicOnPoll { participant: ParticipantId },
    /// The next transport added panics before it is in the table: its room waits for an
    /// offer, so its participant must be told even though the core never held them.
    PanicOnNextAdd,
    /// A panic in worker-wide bookkeeping, attributable to no room.
    PanicInWorker,
}

impl Sfu {
    /// Runs `work` on the core, containing a panic in it: the core is repaired (see the module
    /// docs) and `Err` says how. `work` is one unit: one datagram, one command, one timer turn,
    /// one poll for output.
    pub fn contained<R>(&mut self, work: impl FnOnce(&mut Sfu) -> R) -> Result<R, Contained> {
        // Sound to assert: after a panic, `self` is only used through `recover`, which trusts
        // nothing the scope says may be half written.
        match catch_unwind(AssertUnwindSafe(|| work(self))) {
            Ok(r) => Ok(r),
            Err(_) => Err(Contained {
                recovery: self.recover(),
            }),
        }
    }

    /// Repairs the core after a panic in the current scope.
    fn recover(&mut self) -> Recovery {
        let scope = std::mem::take(&mut self.scope);
        let room = match &scope {
            Scope::Clean => return Recovery::Nothing,
            Scope::Transport(key) => self.room_of(*key),
            Scope::Room { room, .. } => Some(room.clone()),
            Scope::Worker => None,
        };
        let named = match scope {
            Scope::Room { room, participant } => Some((room, participant)),
            _ => None,
        };
        if let Some(room) = room {
            let dropped = catch_unwind(AssertUnwindSafe(|| self.drop_room(&room, named.clone())));
            match dropped {
                Ok(failed) => return Recovery::Room { failed },
                Err(_) => self.scope = Scope::Worker,
            }
        }
        Recovery::Worker {
            failed: self.replace(named),
        }
    }

    /// The room of a transport, from the table or, if it is half removed, from a router that
    /// still lists it.
    fn room_of(&self, key: TransportKey) -> Option<RoomId> {
        if let Some(t) = self.transports.get(key) {
            return Some(t.room.clone());
        }
        self.routers
            .iter()
            .find(|(_, r)| r.members.contains(&key))
            .map(|(room, _)| room.clone())
    }

    /// Drops every transport of `room` and its router, tells each participant (and `named`,
    /// whom the table may not hold) `Failed`, and rebuilds the worker-wide indexes from the
    /// transports left. Returns how many were told.
    fn drop_room(&mut self, room: &RoomId, named: Option<(RoomId, ParticipantId)>) -> usize {
        // The whole table, not the router's member list: the router may be half written.
        let keys: Vec<TransportKey> = self
            .transports
            .iter()
            .filter(|(_, t)| &t.room == room)
            .map(|(k, _)| k)
            .collect();
        let mut failed = Vec::with_capacity(keys.len() + 1);
        for key in keys {
            // Not disconnected: a peer connection whose state is not trusted is not asked to
            // do anything, even say goodbye. The room tells the client over signaling.
            if let Some(t) = self.transports.remove(key) {
                failed.push((t.room, t.id));
            }
        }
        self.routers.remove(room);
        if let Some(named) = named
            && !failed.contains(&named)
        {
            failed.push(named);
        }
        self.rebuild_indexes();
        let told = failed.len();
        for (room, participant) in failed {
            self.events.push_back(SfuEvent::Failed {
                room,
                participant,
                reason: FailReason::Lost,
            });
        }
        told
    }

    /// Rebuilds every index derived from the transports: who owns which address and ufrag,
    /// the timer heap, the dirty list. Every transport left is polled on the next turn (which
    /// schedules it again); an address forgotten is learnt again from the peer's next ICE
    /// check.
    fn rebuild_indexes(&mut self) {
        self.transports.repair();
        let live = |key: &TransportKey| self.transports.get(*key).is_some();
        self.by_addr.retain(|_, k| live(k));
        self.by_tcp_addr.retain(|_, k| live(k));
        self.by_ufrag.clear();
        self.dirty.clear();
        let mut scheduled = Vec::new();
        let keys: Vec<TransportKey> = self.transports.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(t) = self.transports.get_mut(key) else {
                continue;
            };
            for ufrag in t.ufrags() {
                self.by_ufrag.insert(ufrag.to_owned(), key);
            }
            if let Some(at) = t.scheduled {
                scheduled.push((at, key));
            }
            t.dirty = true;
            self.dirty.push(key);
        }
        self.timers.rebuild(scheduled.into_iter());
    }

    /// Replaces the core by a fresh one with the same addresses, certificate and counters;
    /// the events already queued stay, then every participant it held (and `named`) is told
    /// `Failed`. Returns how many were told.
    fn replace(&mut self, named: Option<(RoomId, ParticipantId)>) -> usize {
        // Reading the table is safe whatever state it is in; should even that panic, the
        // participants cannot be named and only the fresh core is had.
        let mut failed: Vec<(RoomId, ParticipantId)> = catch_unwind(AssertUnwindSafe(|| {
            self.transports
                .iter()
                .map(|(_, t)| (t.room.clone(), t.id.clone()))
                .collect()
        }))
        .unwrap_or_default();
        if let Some(named) = named
            && !failed.contains(&named)
        {
            failed.push(named);
        }
        let mut fresh = Sfu::fresh_like(self);
        fresh.events = std::mem::take(&mut self.events);
        for (room, participant) in &failed {
            fresh.events.push_back(SfuEvent::Failed {
                room: room.clone(),
                participant: participant.clone(),
                reason: FailReason::Lost,
            });
        }
        *self = fresh;
        failed.len()
    }

    /// After a panic in the worker's own code around the core (its outbox, sockets, ICE-TCP
    /// table): nothing the worker held is trusted, so neither is the core it was driving. The
    /// core is replaced as for a panic no room can be blamed for; returns how many
    /// participants were told their media failed.
    pub fn replace_after_worker_panic(&mut self) -> usize {
        self.scope = Scope::Clean;
        self.replace(None)
    }

    /// Applies a fault the tests asked for (see [`Fault`]).
    #[cfg(any(test, feature = "fault-injection"))]
    pub(super) fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::PanicOnPoll { participant } => {
                self.panic_on_poll = self.transports.key_of(&participant);
            }
            Fault::PanicOnNextAdd => self.panic_on_add = true,
            Fault::PanicInWorker => {
                self.scope = Scope::Worker;
                panic!("injected fault: a panic in worker-wide bookkeeping");
            }
        }
    }
}
