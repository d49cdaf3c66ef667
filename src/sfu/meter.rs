//! What a producer's stream (one simulcast layer, or its only stream) costs a subscriber's
//! link: bytes counted as they are forwarded, turned into a bitrate once per window.
//!
//! Counted in `Sfu::forward`, once per incoming packet (not per subscriber): one addition and
//! one comparison. The allocator reads it to know what a layer would add to a link; nothing
//! here looks at a clock of its own.

use std::time::{Duration, Instant};

/// How long bytes are summed before they become a rate: long enough to hold a few keyframes'
/// worth of a layer, short enough that a publisher dropping a layer's rate shows soon.
const WINDOW: Duration = Duration::from_secs(1);

/// A rate older than this (no packet since) is no rate: the stream stopped.
const STALE: Duration = Duration::from_secs(3);

/// What a forwarded packet costs beyond its payload on the subscriber's link: the RTP header
/// with its extensions and the SRTP tag (str0m's estimate counts RTP packets, not IP).
pub const PACKET_OVERHEAD_BYTES: u64 = 40;

#[derive(Debug, Clone, Copy, Default)]
pub struct BitrateMeter {
    /// Start of the window being summed, and its bytes so far.
    window: Option<(Instant, u64)>,
    /// The last full window's rate (bits per second), and when it ended.
    rate: Option<(u64, Instant)>,
}

impl BitrateMeter {
    /// Counts one packet of `payload` bytes arriving at `now`.
    pub fn add(&mut self, now: Instant, payload: usize) {
        let bytes = payload as u64 + PACKET_OVERHEAD_BYTES;
        match &mut self.window {
            Some((start, sum)) => {
                let elapsed = now.saturating_duration_since(*start);
                if elapsed >= WINDOW {
                    let bps = (*sum * 8 * 1000) / (elapsed.as_millis().max(1) as u64);
                    self.rate = Some((bps, now));
                    self.window = Some((now, bytes));
                } else {
                    *sum += bytes;
                }
            }
            None => self.window = Some((now, bytes)),
        }
    }

    /// The measured rate in bits per second; None before a full window, or once the stream
    /// has been quiet for a while.
    pub fn rate(&self, now: Instant) -> Option<u64> {
        let (bps, at) = self.rate?;
        (now.saturating_duration_since(at) < STALE).then_some(bps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_measures_its_rate_and_a_quiet_one_none() {
        let t0 = Instant::now();
        let mut m = BitrateMeter::default();
        assert_eq!(m.rate(t0), None);
        // 50 packets a second of 210 bytes: 250 bytes each with the overhead = 100 kbit/s.
        for i in 0..=50 {
            m.add(t0 + Duration::from_millis(20 * i), 210);
        }
        let now = t0 + Duration::from_millis(1000);
        assert_eq!(m.rate(now), Some(100_000));
        assert_eq!(m.rate(now + Duration::from_secs(4)), None, "stale");
    }
}
