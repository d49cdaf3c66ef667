//! Prometheus metrics, served on their own listener (`metrics.listen`) so they can stay on a
//! private interface. Counters are plain atomics updated where things happen; media counters
//! are asked of each worker at scrape time, so the forwarding path pays nothing for them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::media::tcp::{Cap, CloseReason, TcpStats};
use crate::media::{MediaHandle, TURN_BUCKETS_MICROS, WorkerStats, cpu_seconds};

/// Upper bounds of the join latency histogram, in seconds.
const JOIN_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// One value per media worker: (name, help, type, how to read it).
type WorkerSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&WorkerStats) -> f64,
);

const WORKER_SERIES: [WorkerSeries; 14] = [
    (
        "huizhen_media_rooms",
        "Rooms on this media worker (new rooms go to the worker with the fewest).",
        "gauge",
        |s| s.rooms as f64,
    ),
    (
        "huizhen_media_transports",
        "Peer connections.",
        "gauge",
        |s| s.sfu.transports as f64,
    ),
    (
        "huizhen_media_producers",
        "Tracks received from participants.",
        "gauge",
        |s| s.sfu.producers as f64,
    ),
    (
        "huizhen_media_consumers",
        "Tracks forwarded to participants.",
        "gauge",
        |s| s.sfu.consumers as f64,
    ),
    (
        "huizhen_media_packets_in_total",
        "RTP packets received.",
        "counter",
        |s| s.sfu.rtp_in as f64,
    ),
    (
        "huizhen_media_packets_out_total",
        "RTP packets forwarded.",
        "counter",
        |s| s.sfu.rtp_out as f64,
    ),
    (
        "huizhen_media_bytes_in_total",
        "RTP payload bytes received.",
        "counter",
        |s| s.sfu.rtp_in_bytes as f64,
    ),
    (
        "huizhen_media_bytes_out_total",
        "RTP payload bytes forwarded.",
        "counter",
        |s| s.sfu.rtp_out_bytes as f64,
    ),
    (
        "huizhen_media_tcp_connections",
        "ICE-TCP connections this worker holds (routed to it by their first STUN request).",
        "gauge",
        |s| s.tcp_connections as f64,
    ),
    (
        "huizhen_media_datagrams_unrouted_total",
        "Datagrams no peer connection accepted.",
        "counter",
        |s| s.sfu.datagrams_unrouted as f64,
    ),
    (
        "huizhen_media_events_deferred_total",
        "Events to a room that found its queue full and waited in the worker (none is dropped).",
        "counter",
        |s| s.events_deferred as f64,
    ),
    (
        "huizhen_media_events_coalesced_total",
        "Waiting events to a room that a newer one for the same participant replaced.",
        "counter",
        |s| s.events_coalesced as f64,
    ),
    (
        "huizhen_media_events_waiting",
        "Events waiting in the worker for room in their room's queue.",
        "gauge",
        |s| s.events_waiting as f64,
    ),
    (
        "huizhen_media_cpu_seconds_total",
        "CPU time used by the media worker thread.",
        "counter",
        |s| s.cpu_seconds,
    ),
];

/// A cap that made the HTTPS listener close a new connection at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionCap {
    /// `limits.max_http_connections`.
    Global,
    /// `limits.max_connections_per_address`.
    PerAddress,
}

impl ConnectionCap {
    pub const ALL: [Self; 2] = [Self::Global, Self::PerAddress];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::PerAddress => "per_address",
        }
    }
}

/// A deadline that made the HTTPS listener close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionDeadline {
    /// `server.tls_handshake_timeout_s`.
    Handshake,
    /// `server.header_read_timeout_s` (HTTP/1.1).
    Header,
    /// `server.idle_timeout_s`.
    Idle,
}

impl ConnectionDeadline {
    pub const ALL: [Self; 3] = [Self::Handshake, Self::Header, Self::Idle];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Header => "header",
            Self::Idle => "idle",
        }
    }
}

/// Counters and gauges owned by the control plane (HTTPS listener, signaling, rooms).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections open on the HTTPS listener (admitted under the caps, not yet closed).
    pub http_connections: AtomicI64,
    http_refused: [AtomicU64; ConnectionCap::ALL.len()],
    http_timed_out: [AtomicU64; ConnectionDeadline::ALL.len()],
    pub signaling_connections: AtomicI64,
    pub signaling_messages: AtomicU64,
    /// Connections dropped because the client did not take what it was sent (its queue filled).
    pub slow_clients: AtomicU64,
    pub participants: AtomicI64,
    join_buckets: [AtomicU64; JOIN_BUCKETS.len()],
    join_count: AtomicU64,
    join_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn connection_refused(&self, cap: ConnectionCap) {
        self.http_refused[cap as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_timed_out(&self, deadline: ConnectionDeadline) {
        self.http_timed_out[deadline as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections refused so far by `cap`.
    pub fn refused(&self, cap: ConnectionCap) -> u64 {
        self.http_refused[cap as usize].load(Ordering::Relaxed)
    }

    /// Connections closed so far by `deadline`.
    pub fn timed_out(&self, deadline: ConnectionDeadline) -> u64 {
        self.http_timed_out[deadline as usize].load(Ordering::Relaxed)
    }

    /// Time from a `join` message to the `joined` reply.
    pub fn observe_join(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in JOIN_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.join_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.join_count.fetch_add(1, Ordering::Relaxed);
        self.join_sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything; `errors` are the signaling errors sent,
    /// by code (kept by signaling).
    pub async fn render(
        &self,
        live_rooms: usize,
        errors: &[(&'static str, u64)],
        media: &MediaHandle,
    ) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        gauge(
            o,
            "huizhen_rooms",
            "Live consultation rooms.",
            live_rooms as f64,
        );
        gauge(
            o,
            "huizhen_participants",
            "Participants present in live rooms.",
            self.participants.load(Ordering::Relaxed) as f64,
        );
        gauge(
            o,
            "huizhen_http_connections",
            "Open connections on the HTTPS listener (handshakes, HTTP and WebSockets).",
            self.http_connections.load(Ordering::Relaxed) as f64,
        );
        header(
            o,
            "huizhen_http_connections_refused_total",
            "New connections closed at once because a connection cap was reached, by cap.",
            "counter",
        );
        for cap in ConnectionCap::ALL {
            let _ = writeln!(
                o,
                "huizhen_http_connections_refused_total{{cap=\"{}\"}} {}",
                cap.as_str(),
                self.refused(cap)
            );
        }
        header(
            o,
            "huizhen_http_connections_timed_out_total",
            "Connections closed by a deadline, by deadline: handshake (TLS), header (an HTTP/1.1 request head not complete in time; idle HTTP/1.1 keep-alive connections end this way too), idle (no byte either way while waiting on the client).",
            "counter",
        );
        for deadline in ConnectionDeadline::ALL {
            let _ = writeln!(
                o,
                "huizhen_http_connections_timed_out_total{{deadline=\"{}\"}} {}",
                deadline.as_str(),
                self.timed_out(deadline)
            );
        }
        gauge(
            o,
            "huizhen_signaling_connections",
            "Open signaling WebSockets.",
            self.signaling_connections.load(Ordering::Relaxed) as f64,
        );
        counter(
            o,
            "huizhen_signaling_messages_total",
            "Signaling messages received.",
            self.signaling_messages.load(Ordering::Relaxed),
        );
        counter(
            o,
            "huizhen_signaling_slow_clients_total",
            "Signaling connections dropped because the client did not keep up with what it was sent.",
            self.slow_clients.load(Ordering::Relaxed),
        );
        header(
            o,
            "huizhen_signaling_errors_total",
            "Signaling errors sent, by code.",
            "counter",
        );
        for (code, n) in errors {
            let _ = writeln!(o, "huizhen_signaling_errors_total{{code=\"{code}\"}} {n}");
        }
        header(
            o,
            "huizhen_join_seconds",
            "Time from join to joined.",
            "histogram",
        );
        for (i, bound) in JOIN_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "huizhen_join_seconds_bucket{{le=\"{bound}\"}} {}",
                self.join_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.join_count.load(Ordering::Relaxed);
        let _ = writeln!(o, "huizhen_join_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            o,
            "huizhen_join_seconds_sum {}",
            self.join_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "huizhen_join_seconds_count {count}");

        let (rss, peak) = memory_bytes();
        gauge(
            o,
            "process_resident_memory_bytes",
            "Resident memory of the server process.",
            rss,
        );
        gauge(
            o,
            "process_peak_resident_memory_bytes",
            "Peak resident memory of the server process.",
            peak,
        );
        header(
            o,
            "process_cpu_seconds_total",
            "CPU time of the server process.",
            "counter",
        );
        let _ = writeln!(o, "process_cpu_seconds_total {}", process_cpu_seconds());

        let mut workers = Vec::new();
        for w in media.workers() {
            if let Ok(s) = w.stats().await {
                workers.push(s);
            }
        }
        for (name, help, kind, value) in WORKER_SERIES {
            header(o, name, help, kind);
            for (i, s) in workers.iter().enumerate() {
                let _ = writeln!(o, "{name}{{worker=\"{i}\"}} {}", value(s));
            }
        }
        header(
            o,
            "huizhen_media_dropped_total",
            "Packets not forwarded to a subscriber, by reason.",
            "counter",
        );
        for (i, s) in workers.iter().enumerate() {
            for (reason, v) in [
                ("keyframe_wait", s.sfu.dropped_keyframe_wait),
                ("stale", s.sfu.dropped_stale),
                ("unknown_stream", s.sfu.dropped_unknown_stream),
                ("send_error", s.send_errors),
            ] {
                let _ = writeln!(
                    o,
                    "huizhen_media_dropped_total{{worker=\"{i}\",reason=\"{reason}\"}} {v}"
                );
            }
        }
        header(
            o,
            "huizhen_media_turn_seconds",
            "Time from a media worker waking on received datagrams to every packet they caused handed to the kernel.",
            "histogram",
        );
        for (i, s) in workers.iter().enumerate() {
            let t = &s.turns;
            let mut cumulative = 0;
            for (bound, n) in TURN_BUCKETS_MICROS.iter().zip(t.buckets) {
                cumulative += n;
                let _ = writeln!(
                    o,
                    "huizhen_media_turn_seconds_bucket{{worker=\"{i}\",le=\"{}\"}} {cumulative}",
                    *bound as f64 / 1e6
                );
            }
            let _ = writeln!(
                o,
                "huizhen_media_turn_seconds_bucket{{worker=\"{i}\",le=\"+Inf\"}} {}",
                t.count
            );
            let _ = writeln!(
                o,
                "huizhen_media_turn_seconds_sum{{worker=\"{i}\"}} {}",
                t.sum_micros as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "huizhen_media_turn_seconds_count{{worker=\"{i}\"}} {}",
                t.count
            );
        }
        header(
            o,
            "huizhen_media_keyframe_requests_total",
            "Keyframe requests (PLI): sent to publishers, received from subscribers.",
            "counter",
        );
        for (i, s) in workers.iter().enumerate() {
            let _ = writeln!(
                o,
                "huizhen_media_keyframe_requests_total{{worker=\"{i}\",direction=\"sent\"}} {}",
                s.sfu.keyframe_requests_sent
            );
            let _ = writeln!(
                o,
                "huizhen_media_keyframe_requests_total{{worker=\"{i}\",direction=\"received\"}} {}",
                s.sfu.keyframe_requests_received
            );
        }
        if media.tcp_local_addr().is_some() {
            tcp_series(o, media.tcp_stats());
        }
        out
    }
}

/// The ICE-TCP listener's and connections' counters (all workers together).
fn tcp_series(o: &mut String, t: &TcpStats) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    gauge(
        o,
        "huizhen_media_tcp_connections_open",
        "ICE-TCP connections open, those still waiting for their first STUN request included.",
        load(&t.open) as f64,
    );
    counter(
        o,
        "huizhen_media_tcp_connections_accepted_total",
        "ICE-TCP connections admitted under the caps.",
        load(&t.accepted),
    );
    header(
        o,
        "huizhen_media_tcp_connections_refused_total",
        "ICE-TCP connections closed at once because a cap was reached, by cap.",
        "counter",
    );
    for (cap, v) in [
        (Cap::Global, load(&t.refused_global)),
        (Cap::PerAddress, load(&t.refused_per_address)),
    ] {
        let _ = writeln!(
            o,
            "huizhen_media_tcp_connections_refused_total{{cap=\"{}\"}} {v}",
            cap.as_str()
        );
    }
    header(
        o,
        "huizhen_media_tcp_connections_closed_total",
        "ICE-TCP connections closed, by reason: stun_deadline (no STUN request in time), not_ice (a first frame naming no worker), unrouted (a frame no peer connection took), bad_frame (empty or over the size cap), idle, slow_reader, peer (closed or failed by the other end), shutdown.",
        "counter",
    );
    for reason in CloseReason::ALL {
        let _ = writeln!(
            o,
            "huizhen_media_tcp_connections_closed_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            t.closed_for(reason)
        );
    }
    header(
        o,
        "huizhen_media_tcp_frames_total",
        "ICE-TCP frames received, queued for writing, and dropped because a connection's write queue was full (a peer not reading).",
        "counter",
    );
    for (direction, v) in [
        ("in", load(&t.frames_in)),
        ("out", load(&t.frames_out)),
        ("dropped", load(&t.frames_dropped)),
    ] {
        let _ = writeln!(
            o,
            "huizhen_media_tcp_frames_total{{direction=\"{direction}\"}} {v}"
        );
    }
}

/// (VmRSS, VmHWM) in bytes, from /proc (Linux; zeros elsewhere).
fn memory_bytes() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") * 1024.0, kib("VmHWM:") * 1024.0)
}

fn process_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat")
}

fn header(o: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(o: &mut String, name: &str, help: &str, v: f64) {
    header(o, name, help, "gauge");
    let _ = writeln!(o, "{name} {v}");
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    header(o, name, help, "counter");
    let _ = writeln!(o, "{name} {v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_join(Duration::from_millis(7));
        m.observe_join(Duration::from_millis(300));
        assert_eq!(m.join_buckets[0].load(Ordering::Relaxed), 0); // 5 ms
        assert_eq!(m.join_buckets[1].load(Ordering::Relaxed), 1); // 10 ms
        assert_eq!(m.join_buckets[6].load(Ordering::Relaxed), 2); // 500 ms
        assert_eq!(m.join_count.load(Ordering::Relaxed), 2);
    }
}
