//! The proxy's controls during a run: the [`Profile`] of each direction, timed blackouts, and the
//! counters of what happened to packets. Cloned freely; every clone controls the same proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::link::{Cause, Fate};
use crate::profile::{Profile, SpecError};

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    Uplink,
    /// Server → client.
    Downlink,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Uplink, Direction::Downlink];

    fn index(self) -> usize {
        match self {
            Direction::Uplink => 0,
            Direction::Downlink => 1,
        }
    }
}

/// What happened to one direction's packets, over every client, since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams that arrived at the proxy.
    pub received: u64,
    /// Datagrams sent on (a duplicate counts twice).
    pub sent: u64,
    /// Their payload bytes (UDP: the datagrams'; TCP: the stream's), what the path carried.
    pub sent_bytes: u64,
    pub duplicated: u64,
    pub lost_blackout: u64,
    pub lost_random: u64,
    pub lost_queue: u64,
    /// Dropped because too many were already held for delivery (the proxy's own bound).
    pub lost_overflow: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub uplink: DirectionStats,
    pub downlink: DirectionStats,
    /// Clients seen (each with its own upstream socket), and datagrams of new clients refused
    /// because the proxy already had its most clients.
    pub clients: u64,
    pub refused_datagrams: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    duplicated: AtomicU64,
    lost_blackout: AtomicU64,
    lost_random: AtomicU64,
    lost_queue: AtomicU64,
    lost_overflow: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            received: l(&self.received),
            sent: l(&self.sent),
            sent_bytes: l(&self.sent_bytes),
            duplicated: l(&self.duplicated),
            lost_blackout: l(&self.lost_blackout),
            lost_random: l(&self.lost_random),
            lost_queue: l(&self.lost_queue),
            lost_overflow: l(&self.lost_overflow),
        }
    }
}

#[derive(Default)]
struct Settings {
    profiles: [Profile; 2],
    /// A timed blackout of each direction ends at this instant.
    blackout_until: [Option<Instant>; 2],
}

#[derive(Default)]
struct Inner {
    settings: Mutex<Settings>,
    counters: [Counters; 2],
    clients: AtomicU64,
    refused_datagrams: AtomicU64,
}

/// Controls a running proxy (see the crate docs).
#[derive(Clone, Default)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl Handle {
    pub(crate) fn new(uplink: Profile, downlink: Profile) -> Self {
        let h = Self::default();
        h.settings().profiles = [uplink, downlink];
        h
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        // Nothing panics while holding it; a poisoned lock still holds valid settings.
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The profile of `direction` as set (a timed blackout is not part of it).
    pub fn profile(&self, direction: Direction) -> Profile {
        self.settings().profiles[direction.index()]
    }

    /// Sets `direction`'s profile, from the next packet on. The links keep their state (their
    /// generators, queues and burst state): a change is a change of conditions, not a restart.
    pub fn set(&self, direction: Direction, profile: Profile) -> Result<(), SpecError> {
        profile.validate()?;
        self.settings().profiles[direction.index()] = profile;
        Ok(())
    }

    /// Sets both directions' profiles.
    pub fn set_both(&self, profile: Profile) -> Result<(), SpecError> {
        profile.validate()?;
        self.settings().profiles = [profile; 2];
        Ok(())
    }

    /// Applies `spec` on top of each direction's current profile (`None`: both).
    pub fn apply(&self, direction: Option<Direction>, spec: &str) -> Result<(), SpecError> {
        let mut s = self.settings();
        let dirs: &[Direction] = match &direction {
            Some(d) => std::slice::from_ref(d),
            None => &Direction::BOTH,
        };
        let mut next = s.profiles;
        for d in dirs {
            next[d.index()] = next[d.index()].with_spec(spec)?;
        }
        s.profiles = next;
        Ok(())
    }

    /// Takes both directions of every path down for `length` from now; returns when it ends.
    pub fn blackout(&self, length: Duration) -> Instant {
        let end = Instant::now() + length;
        self.settings().blackout_until = [Some(end); 2];
        end
    }

    /// Ends a timed blackout early.
    pub fn end_blackout(&self) {
        self.settings().blackout_until = [None; 2];
    }

    pub fn stats(&self) -> Stats {
        Stats {
            uplink: self.inner.counters[0].snapshot(),
            downlink: self.inner.counters[1].snapshot(),
            clients: self.inner.clients.load(Ordering::Relaxed),
            refused_datagrams: self.inner.refused_datagrams.load(Ordering::Relaxed),
        }
    }

    /// The profile in force for a packet of `direction` arriving at `now`.
    pub(crate) fn effective(&self, direction: Direction, now: Instant) -> Profile {
        let s = self.settings();
        let mut p = s.profiles[direction.index()];
        if s.blackout_until[direction.index()].is_some_and(|end| now < end) {
            p.down = true;
        }
        p
    }

    pub(crate) fn count_arrival(&self, direction: Direction) {
        self.inner.counters[direction.index()]
            .received
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_fate(&self, direction: Direction, fate: &Fate) {
        let c = &self.inner.counters[direction.index()];
        let counter = match fate {
            Fate::Lost(Cause::Blackout) => &c.lost_blackout,
            Fate::Lost(Cause::Loss) => &c.lost_random,
            Fate::Lost(Cause::Queue) => &c.lost_queue,
            Fate::Delivered { copies, .. } => {
                if *copies > 1 {
                    c.duplicated.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_sent(&self, direction: Direction, bytes: usize) {
        let c = &self.inner.counters[direction.index()];
        c.sent.fetch_add(1, Ordering::Relaxed);
        c.sent_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_overflow(&self, direction: Direction) {
        self.inner.counters[direction.index()]
            .lost_overflow
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_client(&self, accepted: bool) {
        let c = if accepted {
            &self.inner.clients
        } else {
            &self.inner.refused_datagrams
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_change_per_direction_and_blackouts_time_out() {
        let h = Handle::new(Profile::default(), Profile::default());
        h.apply(Some(Direction::Downlink), "rate=300kbit").unwrap();
        assert_eq!(h.profile(Direction::Uplink), Profile::default());
        assert_eq!(h.profile(Direction::Downlink).rate_bps, Some(300_000));
        // A bad spec changes nothing, in either direction.
        assert!(h.apply(None, "loss=5%,rate=1bit").is_err());
        assert_eq!(h.profile(Direction::Uplink), Profile::default());
        assert_eq!(h.profile(Direction::Downlink).rate_bps, Some(300_000));

        let end = h.blackout(Duration::from_millis(50));
        assert!(h.effective(Direction::Uplink, Instant::now()).down);
        assert!(!h.effective(Direction::Uplink, end).down);
        assert!(!h.profile(Direction::Uplink).down);
        h.blackout(Duration::from_secs(60));
        h.end_blackout();
        assert!(!h.effective(Direction::Downlink, Instant::now()).down);
    }
}
