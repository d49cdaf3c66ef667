//! Scenarios (named presets) and the run that executes one, against huizhen or a Janus
//! VideoRoom.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use huizhen::config::MAX_ROOM_PARTICIPANTS;
use tokio::sync::watch;

use crate::api::{self, Api};
use crate::janus::{self, JanusPeerSpec};
use crate::peer::{Live, MediaParams, PeerSpec, run_peer};
use crate::stats::{
    JoinStepsReport, PeerStats, Percentiles, ProcSample, Report, ServerFigures, process_cpu_seconds,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `rooms` rooms of `participants` each; everyone publishes audio and video and receives
    /// everyone else.
    Consult { rooms: usize, participants: usize },
    /// `rooms` lectures: in each, one presenter publishing audio and video and `viewers`
    /// observers receiving it (the server must allow `viewers + 1` in a room:
    /// `limits.max_participants`).
    Training { rooms: usize, viewers: usize },
    /// `rooms` rooms of `participants` audio-only participants.
    Audio { rooms: usize, participants: usize },
    /// `total` participants (rooms of 3, audio and video) joining at `rate` per second: join
    /// times and errors under a burst of arrivals. Its knee search raises the rate (and the
    /// total with it, so the storm lasts as long) until a join fails or join time passes a
    /// limit ([`KneeLimits::JOIN_STORM`]).
    JoinStorm { total: usize, rate: u32 },
    /// `sessions` signaling connections that join (as observers, rooms of `per_room`) and then
    /// sit idle: what a connected but quiet participant costs the server.
    SignalingIdle { sessions: usize, per_room: usize },
}

impl Scenario {
    /// The same preset one step larger: more rooms (consult, audio: a consultation stays a
    /// handful), a larger audience (training: one lecture grows until it is as large as a room
    /// may be, [`MAX_ROOM_PARTICIPANTS`], then more lectures of that size), joins per second
    /// (join-storm: the participants grow with them, so the storm lasts as long) or sessions
    /// (signaling-idle).
    pub fn scaled(&self, factor: f64) -> Scenario {
        let grow = |n: usize| ((n as f64 * factor).round() as usize).max(n + 1);
        match *self {
            Scenario::Consult {
                rooms,
                participants,
            } => Scenario::Consult {
                rooms: grow(rooms),
                participants,
            },
            Scenario::Audio {
                rooms,
                participants,
            } => Scenario::Audio {
                rooms: grow(rooms),
                participants,
            },
            Scenario::Training { rooms, viewers } => {
                let most = MAX_ROOM_PARTICIPANTS - 1;
                if viewers < most {
                    Scenario::Training {
                        rooms,
                        viewers: grow(viewers).min(most),
                    }
                } else {
                    Scenario::Training {
                        rooms: grow(rooms),
                        viewers,
                    }
                }
            }
            Scenario::JoinStorm { total, rate } => {
                let faster = grow(rate as usize);
                Scenario::JoinStorm {
                    // As many seconds of arrivals at the new rate as at the old.
                    total: (total * faster)
                        .div_ceil(rate.max(1) as usize)
                        .max(total + 1),
                    rate: u32::try_from(faster).unwrap_or(u32::MAX),
                }
            }
            Scenario::SignalingIdle { sessions, per_room } => Scenario::SignalingIdle {
                sessions: grow(sessions),
                per_room,
            },
        }
    }

    /// Joins per second of a join storm; None for the other presets.
    pub fn join_rate(&self) -> Option<u32> {
        match *self {
            Scenario::JoinStorm { rate, .. } => Some(rate),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Consult { .. } => "consult",
            Scenario::Training { .. } => "training",
            Scenario::Audio { .. } => "audio",
            Scenario::JoinStorm { .. } => "join-storm",
            Scenario::SignalingIdle { .. } => "signaling-idle",
        }
    }

    /// Per room: (role, publishes audio, publishes video) of each participant.
    fn rooms(&self) -> Vec<Vec<(&'static str, bool, bool)>> {
        // One clinician per room: a clinician is their account's care-team seat, and a second
        // connection on one seat takes it over (the first is closed, 4003 `replaced`). The
        // others come with links, as patients: the same media either way.
        let consult_role = |i: usize| match i {
            0 => "doctor",
            _ => "patient",
        };
        match *self {
            Scenario::Consult {
                rooms,
                participants,
            } => (0..rooms)
                .map(|_| {
                    (0..participants)
                        .map(|i| (consult_role(i), true, true))
                        .collect()
                })
                .collect(),
            Scenario::Audio {
                rooms,
                participants,
            } => (0..rooms)
                .map(|_| {
                    (0..participants)
                        .map(|i| (consult_role(i), true, false))
                        .collect()
                })
                .collect(),
            Scenario::Training { rooms, viewers } => (0..rooms)
                .map(|_| {
                    let mut room = vec![("doctor", true, true)];
                    room.extend((0..viewers).map(|_| ("observer", false, false)));
                    room
                })
                .collect(),
            Scenario::JoinStorm { total, .. } => (0..total.div_ceil(3))
                .map(|r| {
                    let n = (total - r * 3).min(3);
                    (0..n).map(|i| (consult_role(i), true, true)).collect()
                })
                .collect(),
            Scenario::SignalingIdle { sessions, per_room } => {
                let per_room = per_room.max(1);
                (0..sessions.div_ceil(per_room))
                    .map(|r| {
                        let n = (sessions - r * per_room).min(per_room);
                        vec![("observer", false, false); n]
                    })
                    .collect()
            }
        }
    }

    /// Time between two joins.
    fn join_spacing(&self) -> Duration {
        match *self {
            Scenario::JoinStorm { rate, .. } => Duration::from_secs(1) / rate.max(1),
            Scenario::SignalingIdle { .. } => Duration::from_millis(1),
            _ => Duration::from_millis(5),
        }
    }

    /// Signaling only: no peer connection at all.
    fn signaling_only(&self) -> bool {
        matches!(self, Scenario::SignalingIdle { .. })
    }
}

/// The server under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// huizhen: rooms and invites over its HTTP API, participants over its WSS signaling.
    Huizhen {
        /// `https://host:port` of the server.
        base_url: String,
        /// `http://host:port/metrics`; without it (and without a server pid) the report has
        /// no server-side figures.
        metrics_url: Option<String>,
        username: String,
        password: String,
    },
    /// A Janus VideoRoom over its WebSocket API (`ws://host:port/`); the participants' peer
    /// connections bind to `bind`, an address Janus gathers ICE candidates on (Janus skips
    /// loopback interfaces, and pins its sockets to the interface it gathered on, so loopback
    /// peers cannot reach it).
    Janus {
        ws_url: String,
        bind: std::net::IpAddr,
    },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Huizhen { .. } => "huizhen",
            Target::Janus { .. } => "janus",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub target: Target,
    /// The server's process id: its CPU time and memory are then read from /proc (the only
    /// source for Janus; for huizhen it replaces the process figures of /metrics).
    pub server_pid: Option<u32>,
    pub scenario: Scenario,
    /// The measured part of the run, after every peer connected.
    pub duration: Duration,
    pub media: MediaParams,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}

/// One participant, for whichever server.
enum Participant {
    Huizhen(PeerSpec),
    Janus(JanusPeerSpec),
}

/// What a run must undo at its end.
enum Teardown {
    Huizhen { api: Api, rooms: Vec<String> },
    Janus { ws_url: String, rooms: Vec<u64> },
}

/// Rooms and participants on the target; the participants' order is the join order.
async fn set_up(
    cfg: &RunConfig,
    plan: &[Vec<(&'static str, bool, bool)>],
) -> anyhow::Result<(Vec<Participant>, Teardown)> {
    let mut participants = Vec::new();
    match &cfg.target {
        Target::Huizhen {
            base_url,
            username,
            password,
            ..
        } => {
            let api = Api::login(base_url, username, password).await?;
            let ws_url = api.ws_url();
            let mut rooms = Vec::new();
            for (r, members) in plan.iter().enumerate() {
                let room = api
                    .create_room(&format!("load {} #{r}", cfg.scenario.name()))
                    .await?;
                for (role, audio, video) in members {
                    participants.push(Participant::Huizhen(PeerSpec {
                        index: participants.len() as u32,
                        ws_url: ws_url.clone(),
                        token: api.invite(&room, role).await?,
                        audio: *audio,
                        video: *video,
                    }));
                }
                rooms.push(room);
            }
            Ok((participants, Teardown::Huizhen { api, rooms }))
        }
        Target::Janus { ws_url, bind } => {
            if cfg.scenario.signaling_only() {
                anyhow::bail!("{} runs against huizhen only", cfg.scenario.name());
            }
            // Room ids of this run only, so a Janus kept between runs never mixes them.
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64 % 1_000_000_000)
                * 1000;
            let rooms: Vec<(u64, usize)> = plan
                .iter()
                .enumerate()
                .map(|(r, members)| (base + r as u64, members.len()))
                .collect();
            janus::create_rooms(ws_url, &rooms)
                .await
                .context("creating Janus rooms")?;
            for (members, (room, _)) in plan.iter().zip(&rooms) {
                let publishers = members.iter().filter(|(_, a, v)| *a || *v).count();
                for (_, audio, video) in members {
                    let publishing = *audio || *video;
                    participants.push(Participant::Janus(JanusPeerSpec {
                        index: participants.len() as u32,
                        ws_url: ws_url.clone(),
                        room: *room,
                        bind: *bind,
                        audio: *audio,
                        video: *video,
                        expect_feeds: publishers - usize::from(publishing),
                    }));
                }
            }
            let rooms = rooms.into_iter().map(|(id, _)| id).collect();
            Ok((
                participants,
                Teardown::Janus {
                    ws_url: ws_url.clone(),
                    rooms,
                },
            ))
        }
    }
}

/// One scrape of whatever server-side sources the run has.
struct ServerSample {
    metrics: Option<std::collections::HashMap<String, f64>>,
    proc: Option<ProcSample>,
}

async fn sample_server(cfg: &RunConfig, when: &str) -> anyhow::Result<ServerSample> {
    let metrics = match &cfg.target {
        Target::Huizhen {
            metrics_url: Some(url),
            ..
        } => Some(
            api::scrape(url)
                .await
                .with_context(|| format!("metrics {when}"))?,
        ),
        _ => None,
    };
    let proc = match cfg.server_pid {
        Some(pid) => Some(
            ProcSample::of(pid)
                .with_context(|| format!("/proc/{pid} {when}: is the server running?"))?,
        ),
        None => None,
    };
    Ok(ServerSample { metrics, proc })
}

fn loss_ratio(lost: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        lost as f64 / expected as f64
    }
}

/// Runs one scenario to its end and reports.
pub async fn run(cfg: RunConfig) -> anyhow::Result<Report> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    str0m::crypto::from_feature_flags().install_process_default();
    let plan = cfg.scenario.rooms();
    let (participants, teardown) = set_up(&cfg, &plan).await?;
    let publishers = plan.iter().flatten().filter(|(_, a, v)| *a || *v).count();

    let baseline = sample_server(&cfg, "before the joins").await?;
    let epoch = Instant::now();
    let live = Arc::new(Live::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut all_stats = Vec::new();
    for participant in participants.iter() {
        let stats = Arc::new(Mutex::new(PeerStats::default()));
        all_stats.push(stats.clone());
        let (live, stop) = (live.clone(), stop_rx.clone());
        tasks.push(match participant {
            Participant::Huizhen(spec) if cfg.scenario.signaling_only() => tokio::spawn(
                crate::peer::run_idle_session(spec.clone(), stats, live, stop),
            ),
            Participant::Huizhen(spec) => {
                tokio::spawn(run_peer(spec.clone(), cfg.media, epoch, stats, live, stop))
            }
            Participant::Janus(spec) => tokio::spawn(janus::run_peer(
                spec.clone(),
                cfg.media,
                epoch,
                stats,
                live,
                stop,
            )),
        });
        // Spaced joins: steady-state presets measure forwarding, not a join storm.
        tokio::time::sleep(cfg.scenario.join_spacing()).await;
    }

    // Everyone connected (or given up on), then the measured window.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (live.connected.load(Ordering::Relaxed) as usize) < participants.len()
        && Instant::now() < deadline
    {
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let keyframe waits and renegotiations settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sample_server(&cfg, "before the run").await?;
    let gen_cpu_before = process_cpu_seconds();
    let (sent_before, received_before) = (
        live.sent.load(Ordering::Relaxed),
        live.received.load(Ordering::Relaxed),
    );
    for s in &all_stats {
        crate::peer::lock(s).open_window();
    }
    let window_start = Instant::now();
    let mut last_rx = received_before;
    while window_start.elapsed() < cfg.duration {
        tokio::time::sleep(Duration::from_secs(1).min(cfg.duration)).await;
        if cfg.progress {
            let rx = live.received.load(Ordering::Relaxed);
            eprintln!(
                "t={:>4.1}s peers {}/{} connected, receiving {} pkt/s",
                window_start.elapsed().as_secs_f64(),
                live.connected.load(Ordering::Relaxed),
                participants.len(),
                rx - last_rx
            );
            last_rx = rx;
        }
    }
    let window = window_start.elapsed();
    let (sent_in_window, received_in_window) = (
        live.sent.load(Ordering::Relaxed) - sent_before,
        live.received.load(Ordering::Relaxed) - received_before,
    );
    let after = sample_server(&cfg, "after the run").await?;
    let generator_cpu_seconds = process_cpu_seconds() - gen_cpu_before;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let rooms = match teardown {
        Teardown::Huizhen { api, rooms } => {
            for room in &rooms {
                let _ = api.end_room(room).await;
            }
            rooms.len()
        }
        Teardown::Janus { ws_url, rooms } => {
            let _ = janus::destroy_rooms(&ws_url, &rooms).await;
            rooms.len()
        }
    };

    let secs = window.as_secs_f64();
    let mut report = Report {
        target: cfg.target.name().into(),
        scenario: cfg.scenario.name().into(),
        rooms,
        participants: participants.len(),
        publishers,
        duration_s: secs,
        video_kbps: cfg.media.video_kbps,
        fps: cfg.media.fps,
        joins_per_s: cfg.scenario.join_rate(),
        sent_per_s: sent_in_window as f64 / secs,
        received_per_s: received_in_window as f64 / secs,
        generator_cpu_seconds,
        ..Default::default()
    };
    let mut latencies = Vec::new();
    let mut window_latencies = Vec::new();
    let (mut window_expected, mut window_lost) = (0u64, 0u64);
    let mut joins = Vec::new();
    let mut join_steps = Vec::new();
    for s in &all_stats {
        let s = s.lock().unwrap_or_else(|e| e.into_inner());
        if s.connected {
            report.peers_connected += 1;
        } else {
            report.peers_failed += 1;
        }
        if let Some(e) = &s.error
            && report.errors.len() < 20
        {
            report.errors.push(e.clone());
        }
        report.sent_audio_packets += s.sent_audio;
        report.sent_video_packets += s.sent_video;
        for rx in s.streams.values() {
            let expected = rx.max_seq - rx.first_seq + 1;
            report.received_packets += rx.received;
            report.expected_packets += expected;
            report.lost_packets += expected.saturating_sub(rx.received);
            report.reordered_packets += rx.reordered;
        }
        latencies.extend(s.latencies.ms());
        if let Some(w) = &s.window {
            window_latencies.extend(w.latencies.ms());
        }
        let (expected, received) = s.window_counts();
        window_expected += expected;
        window_lost += expected.saturating_sub(received);
        if let Some(j) = s.join_time {
            joins.push(j.as_secs_f64() * 1000.0);
        }
        join_steps.push(s.join_steps);
    }
    report.loss_ratio = loss_ratio(report.lost_packets, report.expected_packets);
    report.latency_ms = Percentiles::of(latencies);
    report.window_loss_ratio = loss_ratio(window_lost, window_expected);
    report.window_latency_ms = Percentiles::of(window_latencies);
    report.join_ms = Percentiles::of(joins);
    report.join_steps_ms = JoinStepsReport::of(&join_steps);
    report.server = server_figures(
        &baseline,
        &before,
        &after,
        secs,
        participants.len(),
        received_in_window,
    );
    Ok(report)
}

/// Percentiles (ms) of huizhen's turn histogram between two scrapes, all workers together.
fn turn_percentiles(
    before: &std::collections::HashMap<String, f64>,
    after: &std::collections::HashMap<String, f64>,
) -> Percentiles {
    let mut by_bound: Vec<(f64, f64)> = Vec::new();
    for (k, v) in after {
        if !k.starts_with("huizhen_media_turn_seconds_bucket{") {
            continue;
        }
        let Some(le) = api::label(k, "le") else {
            continue;
        };
        let bound_ms = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse::<f64>().unwrap_or(f64::INFINITY) * 1000.0
        };
        let n = v - before.get(k).copied().unwrap_or(0.0);
        match by_bound.iter_mut().find(|(b, _)| *b == bound_ms) {
            Some(entry) => entry.1 += n,
            None => by_bound.push((bound_ms, n)),
        }
    }
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    Percentiles::of_histogram(&by_bound)
}

/// The server's figures over the window; /proc (when sampled) wins over /metrics for process
/// CPU and memory, so both servers are measured the same way.
fn server_figures(
    baseline: &ServerSample,
    before: &ServerSample,
    after: &ServerSample,
    secs: f64,
    participants: usize,
    received_in_window: u64,
) -> ServerFigures {
    let mut f = ServerFigures::default();
    if let (Some(b), Some(a)) = (&before.metrics, &after.metrics) {
        let d = |name: &str| api::sum(a, name) - api::sum(b, name);
        let media_cpu = d("huizhen_media_cpu_seconds_total");
        let out = d("huizhen_media_packets_out_total");
        for (k, v) in a {
            if k.starts_with("huizhen_media_dropped_total{") {
                let reason = api::label(k, "reason").unwrap_or("?");
                let prev = b.get(k).copied().unwrap_or(0.0);
                *f.dropped.entry(reason.to_owned()).or_insert(0.0) += v - prev;
            }
        }
        f.turn_ms = turn_percentiles(b, a);
        f.figures_from = "metrics".into();
        f.packets_in_per_s = d("huizhen_media_packets_in_total") / secs;
        f.packets_out_per_s = out / secs;
        f.media_cpu_seconds = media_cpu;
        f.packets_out_per_media_cpu_second = if media_cpu > 0.0 {
            out / media_cpu
        } else {
            0.0
        };
        f.process_cpu_seconds = d("process_cpu_seconds_total");
        f.rss_bytes = api::sum(a, "process_resident_memory_bytes");
        f.peak_rss_bytes = api::sum(a, "process_peak_resident_memory_bytes");
        // What the participants added over the server's footprint before they joined.
        f.rss_per_participant_bytes = (f.rss_bytes
            - baseline
                .metrics
                .as_ref()
                .map_or(0.0, |m| api::sum(m, "process_resident_memory_bytes")))
            / participants.max(1) as f64;
    }
    if let (Some(b), Some(a)) = (before.proc, after.proc) {
        f.figures_from = "/proc".into();
        f.process_cpu_seconds = a.cpu_seconds - b.cpu_seconds;
        f.rss_bytes = a.rss_bytes;
        f.peak_rss_bytes = a.peak_rss_bytes;
        f.rss_per_participant_bytes =
            (a.rss_bytes - baseline.proc.map_or(0.0, |p| p.rss_bytes)) / participants.max(1) as f64;
    }
    if f.process_cpu_seconds > 0.0 {
        f.received_per_process_cpu_second = received_in_window as f64 / f.process_cpu_seconds;
    }
    f
}

/// Where the knee search stops: the first load that breaks any limit. A participant whose peer
/// connection never came up always breaks it.
#[derive(Debug, Clone, Copy)]
pub struct KneeLimits {
    pub max_loss: f64,
    /// Media's added latency, p99.
    pub max_p99_ms: f64,
    /// Join time (signaling connect to first remote media), p95.
    pub max_join_p95_ms: f64,
    /// Whether an error a participant reports (a refused join, a signaling error) breaks it.
    pub errors_break: bool,
    /// Give up growing after this many steps.
    pub max_steps: usize,
}

impl KneeLimits {
    /// For media (consult, training, audio): loss over 1 % or p99 added latency over 50 ms.
    pub const DEFAULT: KneeLimits = KneeLimits {
        max_loss: 0.01,
        max_p99_ms: 50.0,
        max_join_p95_ms: f64::INFINITY,
        errors_break: false,
        max_steps: 12,
    };

    /// For arrivals (join-storm): any error, or join p95 over the 300 ms the benchmark's target
    /// names for loopback. The media the storm's participants exchange is reported, not judged.
    pub const JOIN_STORM: KneeLimits = KneeLimits {
        max_loss: 1.0,
        max_p99_ms: f64::INFINITY,
        max_join_p95_ms: 300.0,
        errors_break: true,
        max_steps: 12,
    };

    /// The limits a knee search of `scenario` is judged by.
    pub fn for_scenario(scenario: &Scenario) -> KneeLimits {
        match scenario {
            Scenario::JoinStorm { .. } => Self::JOIN_STORM,
            _ => Self::DEFAULT,
        }
    }

    pub fn held(&self, r: &Report) -> bool {
        r.peers_failed == 0
            && (r.errors.is_empty() || !self.errors_break)
            && r.loss_ratio <= self.max_loss
            && r.latency_ms.p99 <= self.max_p99_ms
            && r.join_ms.p95 <= self.max_join_p95_ms
    }
}

/// Steps the load up by `factor` from `cfg.scenario` until a run breaks the limits; returns
/// every run, the last one being the first that did not hold (unless `max_steps` ran out).
pub async fn find_knee(
    mut cfg: RunConfig,
    factor: f64,
    limits: KneeLimits,
    mut on_step: impl FnMut(&Report),
) -> anyhow::Result<Vec<Report>> {
    let mut runs = Vec::new();
    for _ in 0..limits.max_steps {
        let report = run(cfg.clone()).await?;
        on_step(&report);
        let held = limits.held(&report);
        runs.push(report);
        if !held {
            break;
        }
        cfg.scenario = cfg.scenario.scaled(factor);
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_always_grows_consultations_stay_small_lectures_grow() {
        assert_eq!(
            Scenario::Consult {
                rooms: 1,
                participants: 3
            }
            .scaled(1.5),
            Scenario::Consult {
                rooms: 2,
                participants: 3
            }
        );
        // A lecture's audience grows up to the largest room, then lectures are added.
        assert_eq!(
            Scenario::Training {
                rooms: 1,
                viewers: 30
            }
            .scaled(1.5),
            Scenario::Training {
                rooms: 1,
                viewers: 45
            }
        );
        assert_eq!(
            Scenario::Training {
                rooms: 1,
                viewers: 900
            }
            .scaled(1.5),
            Scenario::Training {
                rooms: 1,
                viewers: MAX_ROOM_PARTICIPANTS - 1
            }
        );
        assert_eq!(
            Scenario::Training {
                rooms: 2,
                viewers: MAX_ROOM_PARTICIPANTS - 1
            }
            .scaled(1.5),
            Scenario::Training {
                rooms: 3,
                viewers: MAX_ROOM_PARTICIPANTS - 1
            }
        );
        let broke = Report {
            loss_ratio: 0.02,
            ..Default::default()
        };
        assert!(!KneeLimits::DEFAULT.held(&broke));
        assert!(KneeLimits::DEFAULT.held(&Report::default()));
    }

    #[test]
    fn a_join_storm_steps_its_rate_up_and_breaks_on_errors_or_slow_joins() {
        // Three seconds of arrivals at 20 per second, then at 30: still three seconds.
        let storm = Scenario::JoinStorm {
            total: 60,
            rate: 20,
        };
        assert_eq!(
            storm.scaled(1.5),
            Scenario::JoinStorm {
                total: 90,
                rate: 30
            }
        );
        assert_eq!(storm.join_rate(), Some(20));
        let limits = KneeLimits::for_scenario(&storm);
        let mut r = Report::default();
        r.join_ms.p95 = 299.0;
        // Media that a consultation's knee would call broken does not end a join storm.
        r.latency_ms.p99 = 80.0;
        assert!(limits.held(&r));
        r.join_ms.p95 = 301.0;
        assert!(!limits.held(&r));
        r.join_ms.p95 = 100.0;
        r.errors.push("join refused: room_full".into());
        assert!(!limits.held(&r));
        // The media presets judge media only.
        let consult = Scenario::Consult {
            rooms: 1,
            participants: 3,
        };
        r.errors.clear();
        r.join_ms.p95 = 5_000.0;
        r.latency_ms.p99 = 10.0;
        assert!(KneeLimits::for_scenario(&consult).held(&r));
        assert_eq!(consult.join_rate(), None);
    }
}
