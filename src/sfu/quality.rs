//! Call quality as the SFU sees it: round-trip time and packet loss of every peer connection,
//! folded into fixed histograms that the metrics endpoint reads at scrape time.
//!
//! str0m reports each transport about once a second ([`STATS_INTERVAL`]): one
//! `Event::PeerStats` for the peer connection (from transport-wide congestion control feedback,
//! when the participant's client sends it), then one `MediaIngressStats` per track received and
//! one `MediaEgressStats` per track forwarded (from RTCP receiver reports, which every client
//! sends). Each report adds one observation to a histogram and is then forgotten: nothing here
//! is kept per participant, so the exported series are a fixed set whatever the number of
//! people, and no participant, room or address is ever a label.
//!
//! It never runs per packet: only on those reports.

use std::time::Duration;

use str0m::Event;

/// How often str0m reports a transport's statistics.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Upper bounds of the round-trip time histograms, in seconds (ITU-T G.114 finds a one-way
/// delay under 150 ms good for a conversation, so 300 ms of round trip is where talk starts to
/// overlap).
pub const RTT_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0];

/// Upper bounds of the loss histograms, as fractions of packets lost: `0.0` counts the reports
/// with no loss at all; Opus hides a few percent, video stutters from about 5 %.
pub const LOSS_BUCKETS: [f64; 8] = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

/// Observations at or under each bound (not cumulative), as a worker counts them; the ones over
/// the last bound are `count` minus their sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets<const N: usize> {
    pub counts: [u64; N],
    pub count: u64,
    pub sum: f64,
}

impl<const N: usize> Default for Buckets<N> {
    fn default() -> Self {
        Self {
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }
}

impl<const N: usize> Buckets<N> {
    fn observe(&mut self, bounds: &[f64; N], v: f64) {
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += v;
    }
}

/// What the quality reports of one worker's transports add up to since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QualityStats {
    /// Peer connection reports (`PeerStats`), about one per connected participant per second.
    pub reports: u64,
    /// Round-trip time per peer connection report, from transport-wide congestion control
    /// feedback (absent when the client sends none).
    pub rtt: Buckets<{ RTT_BUCKETS.len() }>,
    /// Fraction lost per peer connection report, of what the participant sent us (ingress)
    /// and of what we sent the participant (egress), from transport-wide feedback.
    pub loss_ingress: Buckets<{ LOSS_BUCKETS.len() }>,
    pub loss_egress: Buckets<{ LOSS_BUCKETS.len() }>,
    /// Round-trip time per track report, from RTCP: the subscriber's receiver reports on a
    /// forwarded track (and extended reports on a received one, from clients that send them).
    pub track_rtt: Buckets<{ RTT_BUCKETS.len() }>,
    /// Fraction lost per track report, from RTCP: the receiver reports we send on a received
    /// track (ingress), the subscriber's on a forwarded one (egress).
    pub track_loss_ingress: Buckets<{ LOSS_BUCKETS.len() }>,
    pub track_loss_egress: Buckets<{ LOSS_BUCKETS.len() }>,
}

impl QualityStats {
    /// Counts a statistics event of one transport; any other event is ignored.
    pub(super) fn observe(&mut self, event: &Event) {
        match event {
            Event::PeerStats(s) => {
                self.reports += 1;
                if let Some(rtt) = s.rtt {
                    self.rtt.observe(&RTT_BUCKETS, rtt.as_secs_f64());
                }
                if let Some(loss) = s.ingress_loss_fraction.and_then(fraction) {
                    self.loss_ingress.observe(&LOSS_BUCKETS, loss);
                }
                if let Some(loss) = s.egress_loss_fraction.and_then(fraction) {
                    self.loss_egress.observe(&LOSS_BUCKETS, loss);
                }
            }
            Event::MediaIngressStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.track_rtt.observe(&RTT_BUCKETS, rtt.as_secs_f64());
                }
                if let Some(loss) = s.loss.and_then(fraction) {
                    self.track_loss_ingress.observe(&LOSS_BUCKETS, loss);
                }
            }
            Event::MediaEgressStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.track_rtt.observe(&RTT_BUCKETS, rtt.as_secs_f64());
                }
                if let Some(loss) = s.loss.and_then(fraction) {
                    self.track_loss_egress.observe(&LOSS_BUCKETS, loss);
                }
            }
            _ => {}
        }
    }
}

/// A reported loss as a fraction in [0, 1]; a value that is not a number is no observation (a
/// peer's report is outside input). Rounded to a millionth: widened as it is, `0.1_f32` would
/// be 0.100000001 and miss the 10 % bucket.
fn fraction(v: f32) -> Option<f64> {
    v.is_finite()
        .then(|| ((f64::from(v) * 1e6).round() / 1e6).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use str0m::media::Mid;
    use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

    use super::*;

    fn peer(rtt_ms: Option<u64>, ingress: Option<f32>, egress: Option<f32>) -> Event {
        Event::PeerStats(PeerStats {
            peer_bytes_rx: 0,
            peer_bytes_tx: 0,
            bytes_rx: 0,
            bytes_tx: 0,
            timestamp: Instant::now(),
            bwe_tx: None,
            egress_loss_fraction: egress,
            ingress_loss_fraction: ingress,
            rtt: rtt_ms.map(Duration::from_millis),
            selected_candidate_pair: None,
        })
    }

    #[test]
    fn each_report_is_one_observation_of_what_it_carries() {
        let mut q = QualityStats::default();
        q.observe(&peer(Some(30), Some(0.02), None));
        q.observe(&peer(None, None, Some(0.0)));
        q.observe(&Event::MediaEgressStats(MediaEgressStats {
            mid: Mid::from("0"),
            rid: None,
            bytes: 1200,
            packets: 10,
            firs: 0,
            plis: 0,
            nacks: 0,
            rtt: Some(Duration::from_millis(120)),
            // A subscriber's report is outside input: not a number is no observation.
            loss: Some(f32::NAN),
            timestamp: Instant::now(),
            remote: None,
        }));
        q.observe(&Event::MediaIngressStats(MediaIngressStats {
            mid: Mid::from("1"),
            rid: None,
            bytes: 1200,
            packets: 10,
            firs: 0,
            plis: 0,
            nacks: 0,
            jitter: 0,
            rtt: None,
            loss: Some(0.1),
            timestamp: Instant::now(),
            remote: None,
        }));
        // Not a statistics report: ignored.
        q.observe(&Event::Connected);

        assert_eq!(q.reports, 2);
        assert_eq!(q.rtt.count, 1);
        assert_eq!(q.rtt.counts[2], 1, "30 ms is in the 50 ms bucket");
        assert_eq!((q.loss_ingress.count, q.loss_egress.count), (1, 1));
        assert_eq!(q.loss_ingress.counts[3], 1, "2 % is in the 2 % bucket");
        assert_eq!(q.loss_egress.counts[0], 1, "no loss is in the 0 bucket");
        assert_eq!(q.track_rtt.count, 1);
        assert_eq!(q.track_rtt.counts[4], 1, "120 ms is in the 150 ms bucket");
        assert_eq!(q.track_loss_egress.count, 0);
        assert_eq!(q.track_loss_ingress.count, 1);
        assert_eq!(
            q.track_loss_ingress.counts[5], 1,
            "10 % is in the 10 % bucket"
        );
    }

    #[test]
    fn buckets_count_at_or_under_their_bound() {
        let mut b = Buckets::<{ LOSS_BUCKETS.len() }>::default();
        for v in [0.0, 0.0, 0.01, 0.3, 0.9] {
            b.observe(&LOSS_BUCKETS, v);
        }
        assert_eq!(b.counts, [2, 0, 1, 0, 0, 0, 0, 1]);
        // 0.9 is over the last bound: only in the count.
        assert_eq!(b.count, 5);
        assert!((b.sum - 1.21).abs() < 1e-9);
    }

    #[test]
    fn a_loss_that_is_not_a_fraction_is_clamped_or_dropped() {
        assert_eq!(fraction(f32::NAN), None);
        assert_eq!(fraction(f32::INFINITY), None);
        assert_eq!(fraction(-0.5), Some(0.0));
        assert_eq!(fraction(3.0), Some(1.0));
        assert_eq!(fraction(0.25), Some(0.25));
    }
}
