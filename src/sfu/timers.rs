//! When each transport is next due: a min-heap of deadlines, so that a worker turn costs
//! O(log n) in the number of transports instead of a scan of all of them.
//!
//! Entries are never removed in place. A transport remembers the one deadline it is scheduled
//! at (`Transport::scheduled`); an entry that does not match it is stale and is dropped when it
//! reaches the top. Stale entries are bounded by rebuilding the heap when they outnumber the
//! live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::TransportKey;

/// The heap is rebuilt when it holds more than this many entries per transport (plus a floor).
const STALE_FACTOR: usize = 4;
const STALE_FLOOR: usize = 256;

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TransportKey)>>,
}

impl Timers {
    pub fn push(&mut self, at: Instant, key: TransportKey) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry, stale or not.
    pub fn peek(&self) -> Option<(Instant, TransportKey)> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TransportKey)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn pop(&mut self) {
        self.heap.pop();
    }

    /// Whether stale entries have piled up past the bound for `live` transports.
    pub fn needs_rebuild(&self, live: usize) -> bool {
        self.heap.len() > live * STALE_FACTOR + STALE_FLOOR
    }

    /// Replaces every entry with the given (current) deadlines.
    pub fn rebuild(&mut self, current: impl Iterator<Item = (Instant, TransportKey)>) {
        self.heap = current.map(Reverse).collect();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::ids::{ParticipantId, RoomId};
    use crate::sfu::Transport;
    use crate::sfu::table::Transports;

    #[test]
    fn entries_come_out_in_deadline_order_and_stale_ones_are_bounded() {
        let now = Instant::now();
        let mut table = Transports::default();
        let key = |table: &mut Transports| {
            table.insert(Transport::new(
                now,
                RoomId::generate(),
                ParticipantId::generate(),
                crate::sfu::PublishKinds::default(),
                true,
            ))
        };
        let (a, b) = (key(&mut table), key(&mut table));
        let mut timers = Timers::default();
        timers.push(now + Duration::from_millis(20), a);
        timers.push(now + Duration::from_millis(10), b);
        assert_eq!(timers.peek(), Some((now + Duration::from_millis(10), b)));
        assert_eq!(timers.pop_due(now), None, "nothing due yet");
        let later = now + Duration::from_millis(30);
        assert_eq!(timers.pop_due(later).map(|e| e.1), Some(b));
        assert_eq!(timers.pop_due(later).map(|e| e.1), Some(a));
        assert_eq!(timers.pop_due(later), None);

        // A transport re-queued ever later leaves its earlier entries behind; past the bound
        // the heap is rebuilt from the current deadlines alone.
        for i in 0..=(table.len() * STALE_FACTOR + STALE_FLOOR) as u64 {
            timers.push(now + Duration::from_secs(60 + i), a);
        }
        assert!(timers.needs_rebuild(table.len()));
        let current = [
            (now + Duration::from_secs(1), a),
            (now + Duration::from_secs(2), b),
        ];
        timers.rebuild(current.into_iter());
        assert_eq!(timers.len(), 2);
        assert!(!timers.needs_rebuild(table.len()));
        assert_eq!(timers.peek(), Some((now + Duration::from_secs(1), a)));
    }
}
