//! Prometheus metrics, served on their own listener (`metrics.listen`) so they can stay on a
//! private interface, in the OpenMetrics text format written by `prometheus-client`.
//!
//! What is counted where it happens: the control plane's connection refusals and timeouts and
//! the join latency are `prometheus-client` families kept here; the gauges and counters other
//! modules bump in place (`participants`, `signaling_messages`, ...) stay plain atomics, read at
//! scrape time. Media counters are asked of each worker at scrape time, so the forwarding path
//! pays nothing for them; a worker's histograms (its turn time, the quality of its peer
//! connections) come as bucket counts and are encoded as they are.
//!
//! Labels are typed structs whose values come from closed sets (a cap, a deadline, a reason, a
//! worker's index, an error code): never a participant, room, address or name, so the number
//! of series is fixed by the code and the configuration, not by who connects.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::media::tcp::{Cap, CloseReason, TcpStats};
use crate::media::{MediaHandle, TURN_BUCKETS_MICROS, WorkerStats, cpu_seconds};
use crate::sfu::{Buckets, LOSS_BUCKETS, RTT_BUCKETS};

/// The `Content-Type` of the exposition (OpenMetrics 1.0 text, which Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the join latency histogram, in seconds.
const JOIN_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A cap that made the HTTPS listener close a new connection at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// How a pre-call network check over the media path ended (`crate::netcheck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetCheckEnd {
    /// The client had measured.
    Done,
    /// Its `media.net_check_seconds` ran out.
    Time,
    /// Its person was let in.
    Admitted,
    /// Its path failed or never came up: media from that network would not connect either.
    Failed,
    /// Its signaling connection closed first.
    Dropped,
}

impl NetCheckEnd {
    pub const ALL: [Self; 5] = [
        Self::Done,
        Self::Time,
        Self::Admitted,
        Self::Failed,
        Self::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Time => "time",
            Self::Admitted => "admitted",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// A label value written as one of a closed set of names.
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}

label_value!(
    ConnectionCap,
    ConnectionDeadline,
    Cap,
    CloseReason,
    NetCheckEnd
);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CapLabels {
    cap: ConnectionCap,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NetCheckLabels {
    reason: NetCheckEnd,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeadlineLabels {
    deadline: ConnectionDeadline,
}

/// A signaling error code: the protocol's closed set (`signaling::protocol::ErrorCode`).
#[derive(Debug, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

/// A media worker, by its index (`media.workers` of them, at most 256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WorkerLabels {
    worker: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DropReason {
    KeyframeWait,
    Stale,
    UnknownStream,
    MalformedRed,
    SendError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KeyframeDirection {
    Sent,
    Received,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FrameDirection {
    In,
    Out,
    Dropped,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::KeyframeWait => "keyframe_wait",
            Self::Stale => "stale",
            Self::UnknownStream => "unknown_stream",
            Self::MalformedRed => "malformed_red",
            Self::SendError => "send_error",
        }
    }
}

impl KeyframeDirection {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Received => "received",
        }
    }
}

impl FrameDirection {
    fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Dropped => "dropped",
        }
    }
}

/// How a media worker's core recovered from a contained panic (`sfu::Recovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PanicRecovery {
    Nothing,
    Room,
    Worker,
}

impl PanicRecovery {
    fn as_str(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Room => "room",
            Self::Worker => "worker",
        }
    }
}

/// Which way media went, seen from the server: `ingress` from a participant to the server
/// (their upload), `egress` from the server to a participant (their download).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MediaDirection {
    Ingress,
    Egress,
}

impl MediaDirection {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// What a subscriber is sent of a video now (`sfu::allocator`): a simulcast layer (a video
/// without layers counts as `f`), or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum VideoLayer {
    Q,
    H,
    F,
    Paused,
}

impl VideoLayer {
    /// In the order of `SfuStats::video_layers`.
    const ALL: [VideoLayer; 4] = [Self::Q, Self::H, Self::F, Self::Paused];

    fn as_str(self) -> &'static str {
        match self {
            Self::Q => "q",
            Self::H => "h",
            Self::F => "f",
            Self::Paused => "paused",
        }
    }
}

label_value!(
    PanicRecovery,
    DropReason,
    KeyframeDirection,
    FrameDirection,
    MediaDirection,
    VideoLayer
);

#[derive(Debug, EncodeLabelSet)]
struct VideoLayerLabels {
    worker: usize,
    layer: VideoLayer,
}

#[derive(Debug, EncodeLabelSet)]
struct LossLabels {
    worker: usize,
    direction: MediaDirection,
}

#[derive(Debug, EncodeLabelSet)]
struct DropLabels {
    worker: usize,
    reason: DropReason,
}

#[derive(Debug, EncodeLabelSet)]
struct PanicLabels {
    worker: usize,
    recovery: PanicRecovery,
}

#[derive(Debug, EncodeLabelSet)]
struct KeyframeLabels {
    worker: usize,
    direction: KeyframeDirection,
}

#[derive(Debug, EncodeLabelSet)]
struct TcpCapLabels {
    cap: Cap,
}

#[derive(Debug, EncodeLabelSet)]
struct TcpCloseLabels {
    reason: CloseReason,
}

#[derive(Debug, EncodeLabelSet)]
struct FrameLabels {
    direction: FrameDirection,
}

/// Counters, gauges and histograms owned by the control plane (HTTPS listener, signaling,
/// rooms).
#[derive(Debug)]
pub struct Metrics {
    /// Connections open on the HTTPS listener (admitted under the caps, not yet closed).
    pub http_connections: AtomicI64,
    pub signaling_connections: AtomicI64,
    pub signaling_messages: AtomicU64,
    /// Connections dropped because the client did not take what it was sent (its queue filled).
    pub slow_clients: AtomicU64,
    pub participants: AtomicI64,
    http_refused: Family<CapLabels, Counter>,
    http_timed_out: Family<DeadlineLabels, Counter>,
    join: Histogram,
    net_checks_started: Counter,
    net_checks_ended: Family<NetCheckLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let http_refused = Family::default();
        for cap in ConnectionCap::ALL {
            // Every cap is in the exposition from the start, at zero.
            let _ = http_refused.get_or_create(&CapLabels { cap });
        }
        let http_timed_out = Family::default();
        for deadline in ConnectionDeadline::ALL {
            let _ = http_timed_out.get_or_create(&DeadlineLabels { deadline });
        }
        let net_checks_ended = Family::default();
        for reason in NetCheckEnd::ALL {
            let _ = net_checks_ended.get_or_create(&NetCheckLabels { reason });
        }
        Self {
            net_checks_started: Counter::default(),
            net_checks_ended,
            http_connections: AtomicI64::new(0),
            signaling_connections: AtomicI64::new(0),
            signaling_messages: AtomicU64::new(0),
            slow_clients: AtomicU64::new(0),
            participants: AtomicI64::new(0),
            http_refused,
            http_timed_out,
            join: Histogram::new(JOIN_BUCKETS),
        }
    }
}

impl Metrics {
    pub fn net_check_started(&self) {
        self.net_checks_started.inc();
    }

    pub fn net_check_ended(&self, reason: NetCheckEnd) {
        self.net_checks_ended
            .get_or_create(&NetCheckLabels { reason })
            .inc();
    }

    pub fn connection_refused(&self, cap: ConnectionCap) {
        self.http_refused.get_or_create(&CapLabels { cap }).inc();
    }

    pub fn connection_timed_out(&self, deadline: ConnectionDeadline) {
        self.http_timed_out
            .get_or_create(&DeadlineLabels { deadline })
            .inc();
    }

    /// Connections refused so far by `cap`.
    pub fn refused(&self, cap: ConnectionCap) -> u64 {
        self.http_refused.get_or_create(&CapLabels { cap }).get()
    }

    /// Connections closed so far by `deadline`.
    pub fn timed_out(&self, deadline: ConnectionDeadline) -> u64 {
        self.http_timed_out
            .get_or_create(&DeadlineLabels { deadline })
            .get()
    }

    /// Time from a `join` message to the `joined` reply.
    pub fn observe_join(&self, d: Duration) {
        self.join.observe(d.as_secs_f64());
    }

    /// The OpenMetrics text exposition of everything (ending in `# EOF`); `errors` are the
    /// signaling errors sent, by code (kept by signaling).
    pub async fn render(
        &self,
        live_rooms: usize,
        errors: &[(&'static str, u64)],
        media: &MediaHandle,
    ) -> Result<String, std::fmt::Error> {
        // A worker that does not answer (it is stopping) is left out, the others keep their
        // index.
        let mut workers = Vec::with_capacity(media.workers().len());
        for (index, w) in media.workers().iter().enumerate() {
            if let Ok(s) = w.stats().await {
                workers.push((WorkerLabels { worker: index }, s));
            }
        }
        let tcp = media.tcp_local_addr().map(|_| media.tcp_stats());
        let registry = self.registry(live_rooms, errors, &workers, tcp);
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &registry)?;
        Ok(out)
    }

    /// One scrape's registry: the families kept here (shared, not copied) and what was read
    /// for this scrape.
    fn registry(
        &self,
        live_rooms: usize,
        errors: &[(&'static str, u64)],
        workers: &[(WorkerLabels, WorkerStats)],
        tcp: Option<&TcpStats>,
    ) -> Registry {
        let mut r = Registry::default();
        let load = |a: &AtomicI64| a.load(Ordering::Relaxed);
        r.register(
            "huizhen_rooms",
            "Live consultation rooms",
            ConstGauge::new(i64::try_from(live_rooms).unwrap_or(i64::MAX)),
        );
        r.register(
            "huizhen_participants",
            "Participants present in live rooms",
            ConstGauge::new(load(&self.participants)),
        );
        r.register(
            "huizhen_http_connections",
            "Open connections on the HTTPS listener (handshakes, HTTP and WebSockets)",
            ConstGauge::new(load(&self.http_connections)),
        );
        r.register(
            "huizhen_http_connections_refused",
            "New connections closed at once because a connection cap was reached, by cap",
            self.http_refused.clone(),
        );
        r.register(
            "huizhen_http_connections_timed_out",
            "Connections closed by a deadline, by deadline: handshake (TLS), header (an HTTP/1.1 \
             request head not complete in time; idle HTTP/1.1 keep-alive connections end this \
             way too), idle (no byte either way while waiting on the client)",
            self.http_timed_out.clone(),
        );
        r.register(
            "huizhen_signaling_connections",
            "Open signaling WebSockets",
            ConstGauge::new(load(&self.signaling_connections)),
        );
        r.register(
            "huizhen_signaling_messages",
            "Signaling messages received",
            ConstCounter::new(self.signaling_messages.load(Ordering::Relaxed)),
        );
        r.register(
            "huizhen_signaling_slow_clients",
            "Signaling connections dropped because the client did not keep up with what it was \
             sent",
            ConstCounter::new(self.slow_clients.load(Ordering::Relaxed)),
        );
        r.register(
            "huizhen_signaling_errors",
            "Signaling errors sent, by code",
            Series(
                errors
                    .iter()
                    .map(|(code, n)| (CodeLabels { code }, ConstCounter::new(*n)))
                    .collect(),
            ),
        );
        r.register(
            "huizhen_net_checks_started",
            "Pre-call network checks over the media path started (someone waiting)",
            self.net_checks_started.clone(),
        );
        r.register(
            "huizhen_net_checks_ended",
            "Pre-call network checks ended, by reason: done (measured), time, admitted, failed \
             (no media path from that network), dropped (the connection closed first)",
            self.net_checks_ended.clone(),
        );
        r.register_with_unit(
            "huizhen_join",
            "Time from join to joined",
            Unit::Seconds,
            self.join.clone(),
        );
        process_series(&mut r);
        media_series(&mut r, workers);
        if let Some(t) = tcp {
            tcp_series(&mut r, t);
        }
        r
    }
}

/// The server process's memory and CPU time.
fn process_series(r: &mut Registry) {
    let (rss, peak) = memory_bytes();
    r.register_with_unit(
        "process_resident_memory",
        "Resident memory of the server process",
        Unit::Bytes,
        ConstGauge::new(rss),
    );
    r.register_with_unit(
        "process_peak_resident_memory",
        "Peak resident memory of the server process",
        Unit::Bytes,
        ConstGauge::new(peak),
    );
    r.register_with_unit(
        "process_cpu",
        "CPU time of the server process",
        Unit::Seconds,
        ConstCounter::new(cpu_seconds("/proc/self/stat")),
    );
}

/// A series with one value per media worker: (name, help, how to read it).
type WorkerSeries = (&'static str, &'static str, fn(&WorkerStats) -> u64);

/// One value per media worker, read for this scrape.
fn per_worker<M>(
    workers: &[(WorkerLabels, WorkerStats)],
    value: impl Fn(&WorkerStats) -> M,
) -> Series<WorkerLabels, M> {
    Series(workers.iter().map(|(l, s)| (*l, value(s))).collect())
}

/// A gauge of a size (which fits an `i64`).
fn size(n: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
}

/// What the media workers report.
fn media_series(r: &mut Registry, workers: &[(WorkerLabels, WorkerStats)]) {
    let gauges: [WorkerSeries; 6] = [
        (
            "huizhen_media_rooms",
            "Rooms on this media worker (new rooms go to the worker with the fewest)",
            |s| s.rooms as u64,
        ),
        ("huizhen_media_transports", "Peer connections", |s| {
            s.sfu.transports
        }),
        (
            "huizhen_media_producers",
            "Tracks received from participants",
            |s| s.sfu.producers,
        ),
        (
            "huizhen_media_consumers",
            "Tracks forwarded to participants",
            |s| s.sfu.consumers,
        ),
        (
            "huizhen_media_tcp_connections",
            "ICE-TCP connections this worker holds (routed to it by their first STUN request)",
            |s| s.tcp_connections as u64,
        ),
        (
            "huizhen_media_events_waiting",
            "Events waiting in the worker for room in their room's queue",
            |s| s.events_waiting as u64,
        ),
    ];
    for (name, help, value) in gauges {
        r.register(name, help, per_worker(workers, |s| size(value(s))));
    }
    let counters: [WorkerSeries; 11] = [
        ("huizhen_media_packets_in", "RTP packets received", |s| {
            s.sfu.rtp_in
        }),
        ("huizhen_media_packets_out", "RTP packets forwarded", |s| {
            s.sfu.rtp_out
        }),
        (
            "huizhen_media_bytes_in",
            "RTP payload bytes received",
            |s| s.sfu.rtp_in_bytes,
        ),
        (
            "huizhen_media_bytes_out",
            "RTP payload bytes forwarded",
            |s| s.sfu.rtp_out_bytes,
        ),
        (
            "huizhen_media_audio_red_in",
            "Audio packets received with redundancy (RED): the share of microphones that send it",
            |s| s.sfu.red_in,
        ),
        (
            "huizhen_media_audio_rebuilt",
            "Audio packets a publisher's uplink lost, rebuilt from the redundancy (RED) of the \
             next ones for subscribers without RED",
            |s| s.sfu.red_rebuilt,
        ),
        (
            "huizhen_media_datagrams_unrouted",
            "Datagrams no peer connection accepted",
            |s| s.sfu.datagrams_unrouted,
        ),
        (
            "huizhen_media_events_deferred",
            "Events to a room that found its queue full and waited in the worker (none is \
             dropped)",
            |s| s.events_deferred,
        ),
        (
            "huizhen_media_events_coalesced",
            "Waiting events to a room that a newer one for the same participant replaced",
            |s| s.events_coalesced,
        ),
        (
            "huizhen_media_video_layer_switches",
            "Times the layer a subscriber is sent of a video changed (pausing and resuming \
             included)",
            |s| s.sfu.layer_switches,
        ),
        (
            "huizhen_media_worker_panic_failures",
            "Participants told their media failed because a panic was contained in their \
             worker's core",
            |s| s.panics.participants_failed,
        ),
    ];
    for (name, help, value) in counters {
        r.register(
            name,
            help,
            per_worker(workers, |s| ConstCounter::new(value(s))),
        );
    }
    r.register_with_unit(
        "huizhen_media_cpu",
        "CPU time used by the media worker thread",
        Unit::Seconds,
        per_worker(workers, |s| ConstCounter::new(s.cpu_seconds)),
    );
    let mut layers = Vec::with_capacity(workers.len() * VideoLayer::ALL.len());
    for (WorkerLabels { worker }, s) in workers {
        for (layer, n) in VideoLayer::ALL.into_iter().zip(s.sfu.video_layers) {
            let labels = VideoLayerLabels {
                worker: *worker,
                layer,
            };
            layers.push((labels, size(n)));
        }
    }
    r.register(
        "huizhen_media_video_consumers",
        "Videos forwarded to participants, by what each is sent now: a simulcast layer (q, h, \
         f; f for a video without layers) or nothing (paused)",
        Series(layers),
    );
    let mut dropped = Vec::with_capacity(workers.len() * 5);
    let mut keyframes = Vec::with_capacity(workers.len() * 2);
    for (WorkerLabels { worker }, s) in workers {
        let worker = *worker;
        for (reason, n) in [
            (DropReason::KeyframeWait, s.sfu.dropped_keyframe_wait),
            (DropReason::Stale, s.sfu.dropped_stale),
            (DropReason::UnknownStream, s.sfu.dropped_unknown_stream),
            (DropReason::MalformedRed, s.sfu.dropped_malformed_red),
            (DropReason::SendError, s.send_errors),
        ] {
            dropped.push((DropLabels { worker, reason }, ConstCounter::new(n)));
        }
        for (direction, n) in [
            (KeyframeDirection::Sent, s.sfu.keyframe_requests_sent),
            (
                KeyframeDirection::Received,
                s.sfu.keyframe_requests_received,
            ),
        ] {
            keyframes.push((KeyframeLabels { worker, direction }, ConstCounter::new(n)));
        }
    }
    r.register(
        "huizhen_media_dropped",
        "Packets not forwarded to a subscriber, by reason",
        Series(dropped),
    );
    let mut panics = Vec::with_capacity(workers.len() * 3);
    for (WorkerLabels { worker }, s) in workers {
        let worker = *worker;
        for (recovery, n) in [
            (PanicRecovery::Nothing, s.panics.nothing),
            (PanicRecovery::Room, s.panics.room),
            (PanicRecovery::Worker, s.panics.worker),
        ] {
            panics.push((PanicLabels { worker, recovery }, ConstCounter::new(n)));
        }
    }
    r.register(
        "huizhen_media_worker_panics",
        "Panics contained in a media worker's core, by what it cost: nothing but the input, the \
         room being worked for (its participants rejoin), or the whole core (every participant \
         on the worker rejoins)",
        Series(panics),
    );
    r.register_with_unit(
        "huizhen_media_turn",
        "Time from a media worker waking on received datagrams to every packet they caused \
         handed to the kernel",
        Unit::Seconds,
        per_worker(workers, |s| {
            let t = &s.turns;
            BucketCounts::new(
                TURN_BUCKETS_MICROS.iter().map(|b| *b as f64 / 1e6),
                &t.buckets,
                t.count,
                t.sum_micros as f64 / 1e6,
            )
        }),
    );
    r.register(
        "huizhen_media_keyframe_requests",
        "Keyframe requests (PLI): sent to publishers, received from subscribers",
        Series(keyframes),
    );
    quality_series(r, workers);
}

/// Call quality from the workers' transport reports (`sfu::quality`): histograms over every
/// participant (and every track), never a series per participant.
fn quality_series(r: &mut Registry, workers: &[(WorkerLabels, WorkerStats)]) {
    let ratio = || Unit::Other("ratio".into());
    let by_direction =
        |ingress: fn(&WorkerStats) -> &Buckets<{ LOSS_BUCKETS.len() }>,
         egress: fn(&WorkerStats) -> &Buckets<{ LOSS_BUCKETS.len() }>| {
            let mut series = Vec::with_capacity(workers.len() * 2);
            for (WorkerLabels { worker }, s) in workers {
                for (direction, b) in [
                    (MediaDirection::Ingress, ingress(s)),
                    (MediaDirection::Egress, egress(s)),
                ] {
                    let labels = LossLabels {
                        worker: *worker,
                        direction,
                    };
                    series.push((labels, histogram(b, &LOSS_BUCKETS)));
                }
            }
            Series(series)
        };
    r.register(
        "huizhen_media_quality_reports",
        "Statistics reports on peer connections, about one per connected participant per second",
        per_worker(workers, |s| ConstCounter::new(s.sfu.quality.reports)),
    );
    r.register_with_unit(
        "huizhen_media_rtt",
        "Round-trip time per peer connection report, from transport-wide congestion control \
         feedback (clients that send none are not in it)",
        Unit::Seconds,
        per_worker(workers, |s| histogram(&s.sfu.quality.rtt, &RTT_BUCKETS)),
    );
    r.register_with_unit(
        "huizhen_media_loss",
        "Fraction of packets lost per peer connection report, from transport-wide congestion \
         control feedback: ingress (what a participant sent the server), egress (what the \
         server sent a participant)",
        ratio(),
        by_direction(
            |s| &s.sfu.quality.loss_ingress,
            |s| &s.sfu.quality.loss_egress,
        ),
    );
    r.register_with_unit(
        "huizhen_media_track_rtt",
        "Round-trip time per track report, from RTCP receiver reports (and extended reports)",
        Unit::Seconds,
        per_worker(workers, |s| {
            histogram(&s.sfu.quality.track_rtt, &RTT_BUCKETS)
        }),
    );
    r.register_with_unit(
        "huizhen_media_track_loss",
        "Fraction of packets lost per track report, from RTCP receiver reports: ingress (ours, \
         on a track a participant sends), egress (a subscriber's, on a track forwarded to them)",
        ratio(),
        by_direction(
            |s| &s.sfu.quality.track_loss_ingress,
            |s| &s.sfu.quality.track_loss_egress,
        ),
    );
}

/// A worker's histogram over `bounds`.
fn histogram<const N: usize>(b: &Buckets<N>, bounds: &[f64; N]) -> BucketCounts {
    BucketCounts::new(bounds.iter().copied(), &b.counts, b.count, b.sum)
}

/// The ICE-TCP listener's and connections' counters (all workers together).
fn tcp_series(r: &mut Registry, t: &TcpStats) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    r.register(
        "huizhen_media_tcp_connections_open",
        "ICE-TCP connections open, those still waiting for their first STUN request included",
        size(load(&t.open)),
    );
    r.register(
        "huizhen_media_tcp_connections_accepted",
        "ICE-TCP connections admitted under the caps",
        ConstCounter::new(load(&t.accepted)),
    );
    r.register(
        "huizhen_media_tcp_connections_refused",
        "ICE-TCP connections closed at once because a cap was reached, by cap",
        Series(vec![
            (
                TcpCapLabels { cap: Cap::Global },
                ConstCounter::new(load(&t.refused_global)),
            ),
            (
                TcpCapLabels {
                    cap: Cap::PerAddress,
                },
                ConstCounter::new(load(&t.refused_per_address)),
            ),
        ]),
    );
    r.register(
        "huizhen_media_tcp_connections_closed",
        "ICE-TCP connections closed, by reason: stun_deadline (no STUN request in time), \
         not_ice (a first frame naming no worker), unrouted (a frame no peer connection took), \
         bad_frame (empty or over the size cap), idle, slow_reader, peer (closed or failed by \
         the other end), shutdown",
        Series(
            CloseReason::ALL
                .into_iter()
                .map(|reason| {
                    (
                        TcpCloseLabels { reason },
                        ConstCounter::new(t.closed_for(reason)),
                    )
                })
                .collect(),
        ),
    );
    r.register(
        "huizhen_media_tcp_frames",
        "ICE-TCP frames received, queued for writing, and dropped because a connection's write \
         queue was full (a peer not reading)",
        Series(
            [
                (FrameDirection::In, load(&t.frames_in)),
                (FrameDirection::Out, load(&t.frames_out)),
                (FrameDirection::Dropped, load(&t.frames_dropped)),
            ]
            .into_iter()
            .map(|(direction, n)| (FrameLabels { direction }, ConstCounter::new(n)))
            .collect(),
        ),
    );
}

/// Values read for one scrape, one per label set, written in the order given (a `Family` is
/// for values updated in place, and writes its series in no set order).
#[derive(Debug)]
struct Series<L, M>(Vec<(L, M)>);

impl<L, M> EncodeMetric for Series<L, M>
where
    L: EncodeLabelSet + std::fmt::Debug,
    M: EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, metric) in &self.0 {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// A histogram counted elsewhere (by a media worker, which owns its counts and is asked for
/// them at scrape time), in the shape the encoder takes: each bucket's own count (not
/// cumulative), the last bucket `+Inf`.
#[derive(Debug, Clone, PartialEq)]
struct BucketCounts {
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum: f64,
}

impl BucketCounts {
    /// `counts[i]`: observations at or under `bounds[i]` and over the bound before; the
    /// observations over the last bound are `count` minus their sum.
    fn new(bounds: impl Iterator<Item = f64>, counts: &[u64], count: u64, sum: f64) -> Self {
        let mut buckets: Vec<(f64, u64)> = bounds.zip(counts.iter().copied()).collect();
        let counted: u64 = buckets.iter().map(|(_, n)| n).sum();
        buckets.push((f64::INFINITY, count.saturating_sub(counted)));
        Self {
            buckets,
            count,
            sum,
        }
    }
}

impl TypedMetric for BucketCounts {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for BucketCounts {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// (VmRSS, VmHWM) in bytes, from /proc (Linux; zeros elsewhere).
fn memory_bytes() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    (
        kib("VmRSS:").saturating_mul(1024),
        kib("VmHWM:").saturating_mul(1024),
    )
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    /// The exposition with line numbers, for a failure message.
    fn numbered(s: &str) -> String {
        let mut out = String::new();
        for (i, l) in s.lines().enumerate() {
            let _ = writeln!(out, "{i:4} {l}");
        }
        out
    }

    fn exposition(m: &Metrics, errors: &[(&'static str, u64)]) -> String {
        let mut out = String::new();
        encode(&mut out, &m.registry(2, errors, &[], None)).unwrap();
        out
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn join_histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_join(Duration::from_millis(7));
        m.observe_join(Duration::from_millis(300));
        let text = exposition(&m, &[]);
        let bucket = |le: &str| {
            value(
                &text,
                &format!("huizhen_join_seconds_bucket{{le=\"{le}\"}}"),
            )
        };
        assert_eq!(bucket("0.005"), Some(0.0), "{}", numbered(&text));
        assert_eq!(bucket("0.01"), Some(1.0));
        assert_eq!(bucket("0.5"), Some(2.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
        assert_eq!(value(&text, "huizhen_join_seconds_count"), Some(2.0));
        assert!(text.contains("# TYPE huizhen_join_seconds histogram\n"));
        assert!(text.contains("# UNIT huizhen_join_seconds seconds\n"));
    }

    #[test]
    fn every_cap_and_deadline_is_there_from_the_start() {
        let m = Metrics::default();
        m.connection_refused(ConnectionCap::PerAddress);
        m.connection_timed_out(ConnectionDeadline::Idle);
        m.connection_timed_out(ConnectionDeadline::Idle);
        assert_eq!(m.refused(ConnectionCap::PerAddress), 1);
        assert_eq!(m.timed_out(ConnectionDeadline::Idle), 2);
        let text = exposition(&m, &[("room_full", 3), ("bad_message", 0)]);
        for (series, v) in [
            (
                "huizhen_http_connections_refused_total{cap=\"global\"}",
                0.0,
            ),
            (
                "huizhen_http_connections_refused_total{cap=\"per_address\"}",
                1.0,
            ),
            (
                "huizhen_http_connections_timed_out_total{deadline=\"handshake\"}",
                0.0,
            ),
            (
                "huizhen_http_connections_timed_out_total{deadline=\"header\"}",
                0.0,
            ),
            (
                "huizhen_http_connections_timed_out_total{deadline=\"idle\"}",
                2.0,
            ),
            ("huizhen_signaling_errors_total{code=\"room_full\"}", 3.0),
            ("huizhen_signaling_errors_total{code=\"bad_message\"}", 0.0),
            ("huizhen_rooms", 2.0),
        ] {
            assert_eq!(
                value(&text, series),
                Some(v),
                "{series} in\n{}",
                numbered(&text)
            );
        }
        // OpenMetrics: a counter's family is named without `_total`, its sample with it.
        assert!(text.contains("# TYPE huizhen_signaling_errors counter\n"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn counts_kept_elsewhere_become_a_histogram() {
        let h = BucketCounts::new([0.1, 0.2].into_iter(), &[1, 2], 5, 1.5);
        assert_eq!(h.buckets, vec![(0.1, 1), (0.2, 2), (f64::INFINITY, 2)]);
        let mut r = Registry::default();
        r.register("x", "X", Series(vec![(WorkerLabels { worker: 3 }, h)]));
        let mut text = String::new();
        encode(&mut text, &r).unwrap();
        for (series, v) in [
            ("x_bucket{le=\"0.1\",worker=\"3\"}", 1.0),
            ("x_bucket{le=\"0.2\",worker=\"3\"}", 3.0),
            ("x_bucket{le=\"+Inf\",worker=\"3\"}", 5.0),
            ("x_count{worker=\"3\"}", 5.0),
            ("x_sum{worker=\"3\"}", 1.5),
        ] {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
    }
}
