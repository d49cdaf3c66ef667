//! A short run of every scenario against a real server started in this process: packets flow
//! and the report is well formed. No speed is asserted (these machines are shared and noisy).

use std::time::Duration;

use huizhen::auth::hash_password;

use huizhen::config::Config;
use huizhen::domain::role::AccountRole;
use huizhen::server::Server;
use huizhen_loadtests::peer::MediaParams;
use huizhen_loadtests::{KneeLimits, RunConfig, Scenario, Target, find_knee, run};

async fn server(dir: &std::path::Path) -> Server {
    server_with(dir, |_| {}).await
}

async fn server_with(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.cert_dir = dir.join("certs");
    config.server.shutdown_grace_s = 1;
    config.storage.data_dir = dir.join("data");
    config.media.udp_bind = "127.0.0.1:0".parse().unwrap();
    config.media.announce = vec!["127.0.0.1".parse().unwrap()];
    config.metrics.listen = "127.0.0.1:0".into();
    // Room for the lecture past a hundred below.
    config.limits.max_participants = 150;
    tweak(&mut config);
    let server = Server::start(config).await.unwrap();
    let hash = hash_password("load-test-password").unwrap();
    server
        .db
        .create_user("load", "Load", AccountRole::Doctor, &hash)
        .await
        .unwrap();
    server
}

/// A run of `scenario` against `server` for `seconds`, with `media`.
fn run_config(server: &Server, scenario: Scenario, seconds: u64, media: MediaParams) -> RunConfig {
    RunConfig {
        target: Target::Huizhen {
            base_url: format!("https://127.0.0.1:{}", server.https_addr.port()),
            metrics_url: Some(format!("http://{}/metrics", server.metrics_addr.unwrap())),
            username: "load".into(),
            password: "load-test-password".into(),
        },
        server_pid: None,
        scenario,
        duration: Duration::from_secs(seconds),
        media,
        progress: false,
    }
}

/// A knee search from `scenario` (load x2 per step) against a fresh server, 1 s per step.
async fn knee(scenario: Scenario, limits: KneeLimits) -> Vec<huizhen_loadtests::stats::Report> {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let media = MediaParams {
        video_kbps: 200,
        fps: 10,
    };
    let runs = find_knee(run_config(&server, scenario, 1, media), 2.0, limits, |_| {})
        .await
        .unwrap();
    server.shutdown().await;
    runs
}

async fn smoke(scenario: Scenario) -> huizhen_loadtests::stats::Report {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let media = MediaParams {
        video_kbps: 300,
        fps: 15,
    };
    let report = run(run_config(&server, scenario, 2, media)).await.unwrap();
    server.shutdown().await;

    println!("{}", report.summary());
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    for key in [
        "scenario",
        "loss_ratio",
        "window_loss_ratio",
        "latency_ms",
        "window_latency_ms",
        "join_ms",
        "join_steps_ms",
        "server",
        "received_packets",
    ] {
        assert!(json.get(key).is_some(), "report lacks {key}: {json}");
    }
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.peers_failed, 0);
    assert!(report.join_ms.samples > 0);
    assert!(
        report.server.rss_bytes > 0.0,
        "server figures missing: {:?}",
        report.server
    );
    if !matches!(scenario, Scenario::SignalingIdle { .. }) {
        assert!(report.received_packets > 0, "no packet flowed");
        assert!(report.latency_ms.samples > 0);
        // Every media peer went through each step, in order, before its first packet.
        let steps = &report.join_steps_ms;
        let connected = report.peers_connected as usize;
        assert_eq!(
            (
                steps.joined.samples,
                steps.offer.samples,
                steps.connected.samples
            ),
            (connected, connected, connected),
            "{steps:?}"
        );
        assert!(steps.joined.max <= steps.offer.max && steps.offer.p50 <= steps.connected.p50);
        // The measured window on its own: a subset of the run's packets.
        assert!(report.window_latency_ms.samples > 0);
        assert!(report.window_latency_ms.samples <= report.latency_ms.samples);
        assert!((0.0..=1.0).contains(&report.window_loss_ratio));
        assert!(report.server.packets_out_per_s > 0.0, "{:?}", report.server);
        // The server's own turn histogram was read (its percentiles are bucket bounds).
        assert!(report.server.turn_ms.samples > 0, "{:?}", report.server);
        assert!(report.server.turn_ms.p50 <= report.server.turn_ms.p99);
    }
    report
}

/// A run longer than the server's idle window keeps its session: the generator renews its
/// token when half its life is over (here 6 s idle, so every 3 s). Each pause is longer than
/// half the idle window and shorter than a token's shortest life (5 s: tokens count in whole
/// seconds), with room to spare for a slow machine.
#[tokio::test]
async fn the_generators_session_outlives_the_idle_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with(dir.path(), |c| c.auth.session_idle_s = 6).await;
    let base = format!("https://127.0.0.1:{}", server.https_addr.port());
    let api = huizhen_loadtests::api::Api::login(&base, "load", "load-test-password")
        .await
        .unwrap();
    for i in 0..4 {
        let room = api.create_room(&format!("long run {i}")).await.unwrap();
        api.end_room(&room).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3200)).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consult() {
    let r = smoke(Scenario::Consult {
        rooms: 2,
        participants: 3,
    })
    .await;
    assert_eq!((r.participants, r.publishers), (6, 6));
    assert!(r.sent_video_packets > 0 && r.sent_audio_packets > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training() {
    let r = smoke(Scenario::Training {
        rooms: 1,
        viewers: 5,
    })
    .await;
    assert_eq!((r.participants, r.publishers), (6, 1));
}

/// A lecture larger than a consultation room ever is: one presenter, 120 viewers in one room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lecture_past_a_hundred() {
    let r = smoke(Scenario::Training {
        rooms: 1,
        viewers: 120,
    })
    .await;
    assert_eq!((r.rooms, r.participants, r.publishers), (1, 121, 1));
    assert_eq!(r.peers_connected, 121);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio() {
    let r = smoke(Scenario::Audio {
        rooms: 1,
        participants: 4,
    })
    .await;
    assert_eq!(r.sent_video_packets, 0);
    assert!(r.sent_audio_packets > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_storm() {
    let r = smoke(Scenario::JoinStorm { total: 9, rate: 20 }).await;
    assert_eq!((r.rooms, r.participants), (3, 9));
    // Join time ends at the first remote media packet: everyone has two others to hear.
    assert_eq!(r.join_ms.samples, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_storm_knee_search_steps_the_rate_up() {
    let limits = KneeLimits {
        max_join_p95_ms: f64::MAX,
        max_steps: 2,
        ..KneeLimits::JOIN_STORM
    };
    let runs = knee(Scenario::JoinStorm { total: 3, rate: 10 }, limits).await;
    assert_eq!(
        runs.len(),
        2,
        "no error and no join limit: max_steps ends it"
    );
    // Twice the rate, and twice the participants so the arrivals last as long.
    assert_eq!(
        (runs[0].joins_per_s, runs[1].joins_per_s),
        (Some(10), Some(20))
    );
    assert_eq!((runs[0].participants, runs[1].participants), (3, 6));
    assert!(
        runs.iter()
            .all(|r| r.errors.is_empty() && r.join_ms.samples == r.participants)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_idle() {
    let r = smoke(Scenario::SignalingIdle {
        sessions: 20,
        per_room: 8,
    })
    .await;
    assert_eq!((r.rooms, r.peers_connected), (3, 20));
    assert_eq!(r.received_packets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knee_search_steps_the_load_up() {
    let limits = KneeLimits {
        max_loss: 1.0,
        max_p99_ms: f64::MAX,
        max_steps: 2,
        ..KneeLimits::DEFAULT
    };
    let scenario = Scenario::Training {
        rooms: 1,
        viewers: 2,
    };
    let runs = knee(scenario, limits).await;
    assert_eq!(
        runs.len(),
        2,
        "limits this loose hold, so max_steps ends the search"
    );
    // One lecture of a presenter and two viewers, then its audience grows.
    assert_eq!((runs[0].participants, runs[1].participants), (3, 5));
    assert_eq!((runs[0].rooms, runs[1].rooms), (1, 1));
    assert!(runs.iter().all(|r| r.received_packets > 0));
}
