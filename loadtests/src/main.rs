//! `huizhen-loadtests`: run a scenario against a running huizhen server and report.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use huizhen_loadtests::peer::MediaParams;
use huizhen_loadtests::{KneeLimits, RunConfig, Scenario, Target, baseline, find_knee, run};

#[derive(Clone, Copy, ValueEnum)]
enum Server {
    Huizhen,
    /// A Janus VideoRoom (`--janus-url`), for the side-by-side benchmark.
    Janus,
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    Consult,
    Training,
    Audio,
    JoinStorm,
    SignalingIdle,
    /// No server: a bare UDP relay on this machine (the kernel's limit).
    RelayUdp,
    /// No server: the bare relay plus AES-128-GCM per packet in and out (kernel + cipher).
    RelaySrtp,
}

#[derive(Parser)]
#[command(name = "huizhen-loadtests", about = "Load generator for huizhen")]
struct Cli {
    /// Scenario preset.
    #[arg(long, value_enum, default_value = "consult")]
    scenario: Preset,
    /// Which server the participants join.
    #[arg(long, value_enum, default_value = "huizhen")]
    target: Server,
    /// Server base URL.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    url: String,
    /// Janus's WebSocket API (--target janus).
    #[arg(long, default_value = "ws://127.0.0.1:8188/")]
    janus_url: String,
    /// The address the participants' peer connections bind to with --target janus: one Janus
    /// gathers ICE candidates on (Janus does not use loopback interfaces for ICE).
    #[arg(long, default_value = "127.0.0.1")]
    janus_bind: std::net::IpAddr,
    /// The server's process id: its CPU time and memory are then read from /proc/PID (needed
    /// for figures from Janus; for huizhen it replaces the process figures of /metrics).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Prometheus endpoint of the server, for server-side figures.
    #[arg(long, default_value = "http://127.0.0.1:9464/metrics")]
    metrics: String,
    /// A clinician account that may create rooms.
    #[arg(long, default_value = "doctor")]
    username: String,
    /// Its password (or HUIZHEN_LOADTEST_PASSWORD).
    #[arg(
        long,
        env = "HUIZHEN_LOADTEST_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    password: String,
    /// Rooms (consult, audio; training: lectures).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Participants per room (consult, audio).
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Viewers per lecture (training).
    #[arg(long, default_value_t = 30)]
    viewers: usize,
    /// Participants in total (join-storm) or sessions (signaling-idle).
    #[arg(long, default_value_t = 60)]
    total: usize,
    /// Joins per second (join-storm).
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Subscribers per packet (relay-udp, relay-srtp).
    #[arg(long, default_value_t = 2)]
    fanout: usize,
    /// Packets per second offered (relay-udp, relay-srtp).
    #[arg(long, default_value_t = 20_000)]
    relay_rate: u32,
    /// How the relay moves datagrams (relay-udp, relay-srtp): one system call per datagram,
    /// or the server's own batched media I/O (recvmmsg/sendmmsg).
    #[arg(long, value_enum, default_value_t = baseline::Io::PerDatagram)]
    relay_io: baseline::Io,
    /// Payload bytes (relay-udp, relay-srtp).
    #[arg(long, default_value_t = 1000)]
    payload: usize,
    /// Measured seconds, after everyone connected.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 500)]
    video_kbps: u32,
    #[arg(long, default_value_t = 15)]
    fps: u32,
    /// Step the load up (x --knee-factor) until loss > 1 % or p99 added latency > 50 ms; the
    /// JSON report is then the list of runs.
    #[arg(long)]
    knee: bool,
    #[arg(long, default_value_t = 1.5)]
    knee_factor: f64,
    /// Join-storm's knee: the join time p95 (ms) past which a step counts as broken (any
    /// error breaks it too). The other presets are judged by loss and media latency.
    #[arg(long, default_value_t = KneeLimits::JOIN_STORM.max_join_p95_ms)]
    knee_join_p95_ms: f64,
    /// Write the JSON report here (also printed to stdout with --json -).
    #[arg(long)]
    json: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Preset::RelayUdp | Preset::RelaySrtp = cli.scenario {
        let crypto = if matches!(cli.scenario, Preset::RelaySrtp) {
            baseline::Crypto::AesGcm
        } else {
            baseline::Crypto::None
        };
        let report = baseline::run(baseline::BaselineConfig {
            subscribers: cli.fanout,
            payload: cli.payload,
            rate: cli.relay_rate,
            duration: Duration::from_secs(cli.seconds),
            crypto,
            io: cli.relay_io,
        })?;
        eprintln!(
            "relay {:?} {:?}, fan-out {}: offered {:.0}/s, in {:.0}/s, out {:.0}/s, delivered {:.0}/s, open failures {}, relay CPU {:.2} s, {:.0} packets out per relay-core second",
            report.crypto,
            report.io,
            report.subscribers,
            report.offered_per_s,
            report.relayed_in_per_s,
            report.relayed_out_per_s,
            report.delivered_per_s,
            report.open_failures,
            report.relay_cpu_seconds,
            report.out_per_relay_cpu_second
        );
        return write_json(cli.json.as_deref(), &report);
    }
    let target = match cli.target {
        Server::Huizhen => {
            if cli.password.is_empty() {
                anyhow::bail!(
                    "--password (or HUIZHEN_LOADTEST_PASSWORD) is needed to create rooms"
                );
            }
            Target::Huizhen {
                base_url: cli.url,
                metrics_url: (!cli.metrics.is_empty()).then_some(cli.metrics),
                username: cli.username,
                password: cli.password,
            }
        }
        Server::Janus => Target::Janus {
            ws_url: cli.janus_url,
            bind: cli.janus_bind,
        },
    };
    let scenario = match cli.scenario {
        Preset::Consult => Scenario::Consult {
            rooms: cli.rooms,
            participants: cli.participants,
        },
        Preset::Training => Scenario::Training {
            rooms: cli.rooms,
            viewers: cli.viewers,
        },
        Preset::Audio => Scenario::Audio {
            rooms: cli.rooms,
            participants: cli.participants,
        },
        Preset::JoinStorm => Scenario::JoinStorm {
            total: cli.total,
            rate: cli.rate,
        },
        Preset::SignalingIdle => Scenario::SignalingIdle {
            sessions: cli.total,
            per_room: cli.participants,
        },
        Preset::RelayUdp | Preset::RelaySrtp => unreachable!("handled above"),
    };
    let cfg = RunConfig {
        target,
        server_pid: cli.server_pid,
        scenario,
        duration: Duration::from_secs(cli.seconds),
        media: MediaParams {
            video_kbps: cli.video_kbps,
            fps: cli.fps,
        },
        progress: !cli.knee,
    };
    if cli.knee {
        let mut limits = KneeLimits::for_scenario(&cfg.scenario);
        if let Scenario::JoinStorm { .. } = cfg.scenario {
            limits.max_join_p95_ms = cli.knee_join_p95_ms;
        }
        let runs = find_knee(cfg, cli.knee_factor, limits, |r| {
            let rate = r
                .joins_per_s
                .map(|j| format!(" at {j} joins/s"))
                .unwrap_or_default();
            eprintln!(
                "{} participants{rate}: {:.0} pkt/s received, loss {:.3} %, p99 {:.2} ms (window only: {:.3} %, {:.2} ms), join p95 {:.0} ms, {} errors, {} peers failed -> {}",
                r.participants,
                r.received_per_s,
                r.loss_ratio * 100.0,
                r.latency_ms.p99,
                r.window_loss_ratio * 100.0,
                r.window_latency_ms.p99,
                r.join_ms.p95,
                r.errors.len(),
                r.peers_failed,
                if limits.held(r) { "held" } else { "broke" }
            );
        })
        .await?;
        return write_json(cli.json.as_deref(), &runs);
    }
    let report = run(cfg).await?;
    eprintln!("{}", report.summary());
    write_json(cli.json.as_deref(), &report)
}

fn write_json(target: Option<&str>, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    match target {
        Some("-") => println!("{json}"),
        Some(path) => std::fs::write(path, json)?,
        None => {}
    }
    Ok(())
}
