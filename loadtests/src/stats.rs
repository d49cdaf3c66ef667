//! What the synthetic peers measure, and the run's report.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::payload::{Kind, Stamp};

/// Latency samples kept per peer; beyond this, samples are thinned (every other one).
const MAX_SAMPLES: usize = 500_000;

/// Reception of one publisher's stream of one kind at one receiver.
#[derive(Debug, Default, Clone)]
pub struct StreamRx {
    pub first_seq: u64,
    pub max_seq: u64,
    pub received: u64,
    pub reordered: u64,
}

/// Latency samples, in microseconds, bounded: past `MAX_SAMPLES` every other one is kept.
#[derive(Debug, Default)]
pub struct Samples {
    pub us: Vec<u32>,
    thin: u32,
}

impl Samples {
    fn push(&mut self, seq: u64, us: u64) {
        if self.us.len() >= MAX_SAMPLES {
            // Keep memory bounded on long runs: halve, keep every other sample from now on.
            let kept: Vec<u32> = self.us.iter().step_by(2).copied().collect();
            self.us = kept;
            self.thin += 1;
        }
        if self.thin == 0 || seq.is_multiple_of(1 << self.thin) {
            self.us.push(us.min(u32::MAX as u64) as u32);
        }
    }

    pub fn ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.us.iter().map(|us| *us as f64 / 1000.0)
    }
}

/// The measured window on its own: each stream's (highest sequence number, packets received)
/// when it opened, and the latencies from then on. The run's figures include the joins before
/// it (a lecture's arrival is part of the load); these tell the steady state apart.
#[derive(Debug, Default)]
pub struct WindowRx {
    pub at_start: HashMap<(u32, Kind), (u64, u64)>,
    pub latencies: Samples,
}

/// Everything one peer measured.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub connected: bool,
    pub sent_audio: u64,
    pub sent_video: u64,
    pub streams: HashMap<(u32, Kind), StreamRx>,
    pub latencies: Samples,
    /// Set when the measured window opens.
    pub window: Option<WindowRx>,
    pub join_time: Option<Duration>,
    /// When each step of the join was done, from the signaling connect's start (huizhen peers).
    pub join_steps: JoinSteps,
    pub error: Option<String>,
}

/// The steps of a join before the first media packet, each as time since the signaling
/// connect started: where a slow join spends its time.
#[derive(Debug, Default, Clone, Copy)]
pub struct JoinSteps {
    /// WebSocket and TLS up, `join` sent, `joined` received.
    pub joined: Option<Duration>,
    /// The first `offer` received (and answered).
    pub offer: Option<Duration>,
    /// ICE and DTLS done: the peer connection is up.
    pub connected: Option<Duration>,
}

impl PeerStats {
    /// The measured window starts now.
    pub fn open_window(&mut self) {
        self.window = Some(WindowRx {
            at_start: self
                .streams
                .iter()
                .map(|(k, s)| (*k, (s.max_seq, s.received)))
                .collect(),
            latencies: Samples::default(),
        });
    }

    /// (expected, received) in the measured window, over all streams.
    pub fn window_counts(&self) -> (u64, u64) {
        let Some(w) = &self.window else {
            return (0, 0);
        };
        self.streams.iter().fold((0, 0), |(e, r), (k, s)| {
            let (expected, received) = match w.at_start.get(k) {
                Some((max_seq, received)) => (s.max_seq - max_seq, s.received - received),
                // A stream that began inside the window.
                None => (s.max_seq - s.first_seq + 1, s.received),
            };
            (e + expected, r + received)
        })
    }

    pub fn record(&mut self, stamp: Stamp, now_ns: u64) {
        let s = self
            .streams
            .entry((stamp.publisher, stamp.kind))
            .or_insert(StreamRx {
                first_seq: stamp.seq,
                max_seq: stamp.seq,
                ..Default::default()
            });
        if s.received > 0 && stamp.seq <= s.max_seq {
            if stamp.seq < s.first_seq {
                // From before what we count as the start: ignore.
                return;
            }
            s.reordered += 1;
        }
        s.received += 1;
        s.max_seq = s.max_seq.max(stamp.seq);
        let us = now_ns.saturating_sub(stamp.sent_ns) / 1000;
        self.latencies.push(stamp.seq, us);
        if let Some(w) = &mut self.window {
            w.latencies.push(stamp.seq, us);
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

/// Histogram percentiles for people: `p50 <= 0.1 p95 <= 0.5 …`, `> last bucket` past it.
fn turns(p: &Percentiles) -> String {
    if p.samples == 0 {
        return "none (no media, or not huizhen)".into();
    }
    let bound = |ms: f64| {
        if ms.is_infinite() {
            "> last bucket".to_string()
        } else {
            format!("<= {ms}")
        }
    };
    format!(
        "p50 {} p95 {} p99 {} ({} turns)",
        bound(p.p50),
        bound(p.p95),
        bound(p.p99),
        p.samples
    )
}

impl Percentiles {
    /// From a Prometheus histogram: `(upper bound, cumulative count)` pairs in order of bound,
    /// the last one `+Inf`. Each percentile is the bound of the bucket it falls in.
    pub fn of_histogram(buckets: &[(f64, f64)]) -> Self {
        let total = buckets.last().map_or(0.0, |b| b.1);
        if total <= 0.0 {
            return Self::default();
        }
        let at = |q: f64| {
            buckets
                .iter()
                .find(|(_, n)| *n >= q * total)
                .map_or(f64::INFINITY, |b| b.0)
        };
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
            samples: total as usize,
        }
    }

    /// From values in any unit; the result is in the same unit.
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: values[values.len() - 1],
            samples: values.len(),
        }
    }
}

/// Server-side figures over the measurement window: from huizhen's /metrics endpoint, and with
/// the server's process id (`--server-pid`, needed for Janus, which has no such endpoint) the
/// process CPU time and memory from /proc instead, measured the same way for both servers.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerFigures {
    /// Where `process_cpu_seconds` and the RSS figures come from: `"/proc"` or `"metrics"`.
    pub figures_from: String,
    pub packets_in_per_s: f64,
    pub packets_out_per_s: f64,
    /// CPU seconds of the media worker threads over the window.
    pub media_cpu_seconds: f64,
    /// Forwarded packets per second of media-worker CPU time: the per-core throughput.
    pub packets_out_per_media_cpu_second: f64,
    /// CPU seconds (user + system, all threads) of the whole server process over the window.
    pub process_cpu_seconds: f64,
    /// Stamped media packets the generator received over the window per second of the
    /// server's process CPU time: the per-core throughput, comparable between servers.
    pub received_per_process_cpu_second: f64,
    pub rss_bytes: f64,
    pub peak_rss_bytes: f64,
    pub rss_per_participant_bytes: f64,
    pub dropped: HashMap<String, f64>,
    /// The server's own share of the added latency (huizhen's `huizhen_media_turn_seconds`:
    /// wake-up on received datagrams to the packets handed to the kernel), in ms. Read off a
    /// histogram, so each percentile is the upper bound of its bucket.
    pub turn_ms: Percentiles,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// `huizhen` or `janus`.
    pub target: String,
    pub scenario: String,
    pub rooms: usize,
    pub participants: usize,
    pub publishers: usize,
    pub duration_s: f64,
    pub video_kbps: u32,
    pub fps: u32,
    /// Arrivals per second (join-storm; null for the other presets).
    pub joins_per_s: Option<u32>,
    pub peers_connected: usize,
    pub peers_failed: usize,
    pub errors: Vec<String>,
    pub sent_audio_packets: u64,
    pub sent_video_packets: u64,
    pub received_packets: u64,
    pub expected_packets: u64,
    pub lost_packets: u64,
    pub loss_ratio: f64,
    /// Loss within the measured window only (the run's `loss_ratio` includes the joins).
    pub window_loss_ratio: f64,
    pub reordered_packets: u64,
    /// Stamped media packets the publishers sent, per second of the measured window.
    pub sent_per_s: f64,
    /// Stamped media packets the subscribers received, per second of the measured window: what
    /// the server delivered, counted the same way whichever server it is.
    pub received_per_s: f64,
    /// Send to receive, through the server, on loopback: the latency the server adds (plus
    /// the generator's own scheduling).
    pub latency_ms: Percentiles,
    /// The same for the packets received within the measured window only.
    pub window_latency_ms: Percentiles,
    /// Signaling connect to first remote media packet.
    pub join_ms: Percentiles,
    /// The steps on the way (huizhen only; `samples` 0 otherwise).
    pub join_steps_ms: JoinStepsReport,
    pub server: ServerFigures,
    pub generator_cpu_seconds: f64,
}

/// Percentiles of each [`JoinSteps`] step over the peers that reached it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct JoinStepsReport {
    pub joined: Percentiles,
    pub offer: Percentiles,
    pub connected: Percentiles,
}

impl JoinStepsReport {
    pub fn of<'a>(steps: impl IntoIterator<Item = &'a JoinSteps>) -> Self {
        let (mut joined, mut offer, mut connected) = (Vec::new(), Vec::new(), Vec::new());
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for s in steps {
            joined.extend(s.joined.map(ms));
            offer.extend(s.offer.map(ms));
            connected.extend(s.connected.map(ms));
        }
        Self {
            joined: Percentiles::of(joined),
            offer: Percentiles::of(offer),
            connected: Percentiles::of(connected),
        }
    }

    /// `joined p50/p95 …, offer …, connected …`, or nothing when no step was timed.
    fn summary(&self) -> String {
        if self.joined.samples == 0 {
            return String::new();
        }
        let step = |name: &str, p: &Percentiles| format!("{name} {:.0}/{:.0}", p.p50, p.p95);
        format!(
            "\njoin steps ms p50/p95 (from signaling connect): {}, {}, {}",
            step("joined", &self.joined),
            step("offer", &self.offer),
            step("media connected", &self.connected),
        )
    }
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "{} scenario {}: {} rooms, {} participants ({} publishing), {:.1} s\n\
             peers connected {} / failed {}\n\
             packets sent {} audio + {} video, received {}, lost {} ({:.3}%), reordered {}\n\
             in the window: sent {:.0} pkt/s, received {:.0} pkt/s\n\
             added latency ms p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}\n\
             in the window only: loss {:.3}%, added latency ms p50 {:.2} p95 {:.2} p99 {:.2} max {:.2}\n\
             join ms p50 {:.0} p95 {:.0} max {:.0}{}\n\
             server: {:.0} pkt/s in, {:.0} pkt/s out, {:.0} pkt/s out per media-core second, \
             media CPU {:.2} s, process CPU {:.2} s ({}; {:.0} received pkt per process-core second), \
             RSS {:.1} MiB (peak {:.1}, {:.0} KiB per participant)\n\
             server turn ms (wake to sent, bucket bounds) {}\n\
             generator CPU {:.2} s",
            self.target,
            self.scenario,
            self.rooms,
            self.participants,
            self.publishers,
            self.duration_s,
            self.peers_connected,
            self.peers_failed,
            self.sent_audio_packets,
            self.sent_video_packets,
            self.received_packets,
            self.lost_packets,
            self.loss_ratio * 100.0,
            self.reordered_packets,
            self.sent_per_s,
            self.received_per_s,
            self.latency_ms.p50,
            self.latency_ms.p95,
            self.latency_ms.p99,
            self.latency_ms.max,
            self.window_loss_ratio * 100.0,
            self.window_latency_ms.p50,
            self.window_latency_ms.p95,
            self.window_latency_ms.p99,
            self.window_latency_ms.max,
            self.join_ms.p50,
            self.join_ms.p95,
            self.join_ms.max,
            self.join_steps_ms.summary(),
            self.server.packets_in_per_s,
            self.server.packets_out_per_s,
            self.server.packets_out_per_media_cpu_second,
            self.server.media_cpu_seconds,
            self.server.process_cpu_seconds,
            self.server.figures_from,
            self.server.received_per_process_cpu_second,
            self.server.rss_bytes / 1_048_576.0,
            self.server.peak_rss_bytes / 1_048_576.0,
            self.server.rss_per_participant_bytes / 1024.0,
            turns(&self.server.turn_ms),
            self.generator_cpu_seconds,
        )
    }
}

/// This process's CPU time (user + system), from /proc (Linux; 0 elsewhere).
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat")
}

/// Another process's CPU time (all its threads) and memory, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_bytes: f64,
    /// The process's peak RSS since it started (`VmHWM`).
    pub peak_rss_bytes: f64,
}

impl ProcSample {
    /// `None` when the process is gone (or this is not Linux).
    pub fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |k| k * 1024.0)
        };
        Some(Self {
            cpu_seconds: cpu_seconds(&format!("/proc/{pid}/stat")),
            rss_bytes: kib("VmRSS:"),
            peak_rss_bytes: kib("VmHWM:"),
        })
    }
}

/// The calling thread's CPU time.
pub fn thread_cpu_seconds() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

fn cpu_seconds(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_bucket_bounds() {
        // 90 turns under 0.05 ms, 9 under 0.25 ms, 1 past the last bound.
        let h = [
            (0.05, 90.0),
            (0.25, 99.0),
            (50.0, 99.0),
            (f64::INFINITY, 100.0),
        ];
        let p = Percentiles::of_histogram(&h);
        assert_eq!((p.p50, p.p95, p.p99), (0.05, 0.25, 0.25));
        assert!(p.max.is_infinite());
        assert_eq!(p.samples, 100);
        assert_eq!(Percentiles::of_histogram(&[]).samples, 0);
    }

    #[test]
    fn loss_and_reordering_are_counted_per_stream() {
        let mut p = PeerStats::default();
        let st = |seq| Stamp {
            kind: Kind::Audio,
            publisher: 1,
            seq,
            sent_ns: 0,
        };
        for seq in [10, 11, 13, 12, 15] {
            p.record(st(seq), 1_000_000);
        }
        let s = &p.streams[&(1, Kind::Audio)];
        assert_eq!(
            (s.first_seq, s.max_seq, s.received, s.reordered),
            (10, 15, 5, 1)
        );
        assert_eq!(p.latencies.us, vec![1000; 5]);
        assert_eq!(p.window_counts(), (0, 0), "no window opened");
        // The window counts only what came after it opened: 16 and 18 of 16..=18, and the
        // first packet of a stream that began inside it.
        p.open_window();
        p.record(st(16), 3_000_000);
        p.record(st(18), 2_000_000);
        p.record(
            Stamp {
                publisher: 2,
                ..st(7)
            },
            2_000_000,
        );
        assert_eq!(p.window_counts(), (4, 3));
        assert_eq!(
            p.window.as_ref().unwrap().latencies.us,
            vec![3000, 2000, 2000]
        );
        assert_eq!(p.latencies.us.len(), 8);
        let q = Percentiles::of(vec![3.0, 1.0, 2.0, 4.0]);
        assert_eq!((q.p50, q.max), (3.0, 4.0));
    }
}
