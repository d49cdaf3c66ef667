//! How many of each protocol error the server has sent, for the metrics endpoint. Kept here,
//! beside the codes, so that the metrics module needs nothing of the protocol.

use std::sync::atomic::{AtomicU64, Ordering};

use super::protocol::ErrorCode;

#[derive(Debug)]
pub struct ErrorCounts {
    counts: [AtomicU64; ErrorCode::ALL.len()],
}

// By hand: the standard library derives `Default` for arrays of at most 32.
impl Default for ErrorCounts {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ErrorCounts {
    pub fn count(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every code with its count, in a fixed order.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        ErrorCode::ALL
            .iter()
            .zip(&self.counts)
            .map(|(code, n)| (code.as_str(), n.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_code() {
        let e = ErrorCounts::default();
        e.count(ErrorCode::RoomFull);
        e.count(ErrorCode::RoomFull);
        let snap = e.snapshot();
        assert_eq!(snap.len(), ErrorCode::ALL.len());
        assert!(snap.contains(&("room_full", 2)));
        assert!(snap.contains(&("bad_message", 0)));
    }
}
