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
