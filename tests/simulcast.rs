//! Simulcast end to end (issue 19, "Quality on weak links"; docs/SIMULCAST.md): a webrtc-rs
//! publisher sends its camera in three layers, real server, real webrtc-rs subscribers over UDP
//! on 127.0.0.1, one of them behind the impairment proxy. Each subscriber asks for simulcast, so
//! the server estimates its link and chooses the layer it is sent; which layer arrives is told
//! by the marker byte each layer carries (`common::peer::layer_marker`). Prints what it measured
//! (`cargo test --locked --test integration simulcast:: -- --nocapture`).

use std::time::{Duration, Instant};

use crate::common::TestServer;
use crate::common::impaired::{Count, proxy_for};
use crate::common::peer::{JoinOptions, LAYER_RIDS, TestPeer, dedupe_simulcast_lines};
use huizhen_impair::{Direction, Profile};
use serde_json::Value;

const CONNECT: Duration = Duration::from_secs(20);
/// Packets that show a path works (about a second of audio).
const ENOUGH: u64 = 25;
/// From a subscriber's start, str0m's estimate climbs from 300 kbit/s; the allocator steps up
/// a layer at most every 2 s, after the room for it held 3 s (docs/SIMULCAST.md, section 7).
const CLIMB: Duration = Duration::from_secs(60);
/// How long a capped link has to bring its subscriber below the top layer (the smoothed
/// estimate lags the cap by a few seconds).
const DROP: Duration = Duration::from_secs(30);
/// How long a subscriber's layer is watched once it has settled.
const WATCH: Duration = Duration::from_secs(4);

/// The publisher's marker: its layers carry this, one more and two more.
const DOCTOR: u8 = 0x40;
const TOP: u8 = DOCTOR + 2;

/// A participant asking for simulcast, connected and sending, its media through `via` if given.
async fn simulcast_peer(
    s: &TestServer,
    room: &str,
    role: &str,
    name: &str,
    (marker, camera): (u8, bool),
    via: Option<std::net::SocketAddr>,
) -> TestPeer {
    let opts = JoinOptions {
        ws_url: s.ws_url.clone(),
        token: s.invite(room, role).await,
        name: name.into(),
        publish_audio: true,
        publish_video: camera,
        marker,
        h264: false,
    };
    let p = TestPeer::join_simulcast(opts, via)
        .await
        .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    p.wait_connected(CONNECT)
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e:#}"));
    p.start_media();
    p
}

/// The marker of the layer of `from`'s camera that reaches `to` now.
fn layer_now(to: &TestPeer, from: &TestPeer) -> Option<u8> {
    to.received(&from.id(), "video").last_marker
}

/// Waits until `to` receives `from`'s camera in a layer `ok` accepts (by marker); how long it
/// took.
async fn wait_layer(
    to: &TestPeer,
    from: &TestPeer,
    ok: impl Fn(u8) -> bool,
    timeout: Duration,
    what: &str,
) -> Duration {
    let start = Instant::now();
    loop {
        let v = to.received(&from.id(), "video").packets;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Only a layer that is still arriving counts.
        let now = to.received(&from.id(), "video");
        if now.packets > v && now.last_marker.is_some_and(&ok) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{}: {what} within {timeout:?}; last layer {:?}, video_quality told: {:?}",
            to.options().name,
            now.last_marker,
            qualities(to)
        );
    }
}

/// Every layer of `from`'s camera seen at `to` over `window`, sampled every 100 ms.
async fn layers_over(to: &TestPeer, from: &TestPeer, window: Duration) -> Vec<Option<u8>> {
    let end = Instant::now() + window;
    let mut seen = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen.push(layer_now(to, from));
    }
    seen
}

/// The `video_quality` messages `p` was sent: (layer, reason).
fn qualities(p: &TestPeer) -> Vec<(Value, Value)> {
    p.history()
        .into_iter()
        .filter(|m| m["type"] == "video_quality")
        .map(|m| (m["layer"].clone(), m["reason"].clone()))
        .collect()
}

/// The share of `from`'s audio packets that reached `to` over `window`.
async fn audio_share(from: &TestPeer, to: &TestPeer, window: Duration) -> f64 {
    let before = Count::of(from, to, "audio");
    tokio::time::sleep(window).await;
    Count::of(from, to, "audio").ratio_since(&before)
}

fn layer_name(marker: Option<u8>) -> &'static str {
    match marker.map(|m| m.wrapping_sub(DOCTOR)) {
        Some(l @ 0..=2) => LAYER_RIDS[usize::from(l)],
        Some(_) => "other",
        None => "none",
    }
}

// Left out of the default run: on a loaded 2-core machine (the CI's, or beside a browser run)
// the unimpaired subscriber's own estimate dips too, and a webrtc-rs audio reader sometimes ends
// at the start (docs/SIMULCAST.md, section 8); it failed 2 runs of 3 there. Run it alone:
// `cargo test --locked --test integration simulcast:: -- --ignored --nocapture`.
#[ignore = "timing-sensitive under CPU load; run alone with --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capped_subscriber_drops_below_the_top_layer_keeps_its_audio_and_climbs_back() {
    let s = TestServer::start_with(|c| c.media.simulcast = true).await;
    let room = s.create_room("Simulcast under a cap").await;
    let proxy = proxy_for(&s, 23).await;
    let doctor = simulcast_peer(&s, &room, "doctor", "doctor", (DOCTOR, true), None).await;
    let specialist =
        simulcast_peer(&s, &room, "specialist", "specialist", (0x91, false), None).await;
    let patient = simulcast_peer(
        &s,
        &room,
        "patient",
        "patient",
        (0xB3, false),
        Some(proxy.local_addr()),
    )
    .await;

    // The doctor's camera was offered in layers, and it answered in layers.
    let offer = doctor
        .history()
        .into_iter()
        .find(|m| m["type"] == "offer")
        .expect("an offer");
    assert_eq!(offer["publish_mids"]["simulcast"], true, "{offer}");
    assert!(
        offer["sdp"]
            .as_str()
            .unwrap()
            .contains("a=simulcast:recv q;h;f")
    );
    for p in [&specialist, &patient] {
        p.assert_receives_from(&doctor, ENOUGH, CONNECT).await;
    }

    // Unimpaired, both subscribers climb to the top layer.
    for p in [&specialist, &patient] {
        let took = wait_layer(p, &doctor, |m| m == TOP, CLIMB, "the top layer").await;
        println!("{} reached f after {took:?}", p.options().name);
    }

    // What the specialist was told while climbing (from the estimator's 300 kbit/s start).
    let specialist_told_before = qualities(&specialist).len();

    // The patient's downlink capped at 300 kbit/s (the doctor's f alone is ~360 kbit/s, and two microphones ~110 kbit/s).
    let h = proxy.handle();
    h.set(
        Direction::Downlink,
        "rate=300kbit,queue=8kB".parse::<Profile>().unwrap(),
    )
    .unwrap();
    let capped_at = Instant::now();
    let took = wait_layer(
        &patient,
        &doctor,
        |m| m != TOP,
        DROP,
        "a lower layer under the cap",
    )
    .await;
    println!("patient left f {took:?} after the cap");
    // Settled (the estimate has caught up with the cap): the patient never gets the top layer,
    // keeps its audio, and the specialist stays on the top layer throughout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (patient_layers, specialist_layers, audio) = tokio::join!(
        layers_over(&patient, &doctor, WATCH),
        layers_over(&specialist, &doctor, WATCH),
        audio_share(&doctor, &patient, WATCH),
    );
    println!(
        "under the cap ({:?} in): patient's layers {:?}, audio delivered {:.1} %, proxy {:?}",
        capped_at.elapsed(),
        patient_layers
            .iter()
            .map(|m| layer_name(*m))
            .collect::<std::collections::BTreeSet<_>>(),
        audio * 100.0,
        h.stats()
    );
    assert!(
        patient_layers.iter().all(|m| *m != Some(TOP)),
        "the capped patient got f again: {patient_layers:?}"
    );
    assert!(
        specialist_layers.iter().all(|m| *m == Some(TOP)),
        "the specialist left f: {specialist_layers:?}"
    );
    // Audio goes on (what the queue drops of it is the link's, not ours to schedule).
    assert!(audio >= 0.8, "patient's audio under the cap: {audio}");
    // And the patient was told why its video is held down.
    let told = qualities(&patient);
    assert!(
        told.iter()
            .any(|(layer, reason)| reason == "bandwidth" && layer != "f"),
        "{told:?}"
    );
    let specialist_told = qualities(&specialist);
    assert!(
        specialist_told[specialist_told_before..]
            .iter()
            .all(|(_, reason)| reason != "bandwidth"),
        "the specialist was held down: {specialist_told:?}"
    );

    // The cap lifts: the patient climbs back to the top layer.
    h.set(Direction::Downlink, Profile::default()).unwrap();
    let took = wait_layer(&patient, &doctor, |m| m == TOP, CLIMB, "f again").await;
    println!("patient back on f {took:?} after the cap lifted");
    assert_eq!(
        patient.connection_state(),
        webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState::Connected
    );
    assert!(!patient.close_info().closed);
    s.stop().await;
}

#[test]
fn a_simulcast_answer_is_cleaned_of_repeated_rid_lines() {
    let sdp = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 96\r\na=rid:q send\r\n\
               a=rid:h send\r\na=simulcast:send q;h\r\na=rid:q send\r\na=rid:h send\r\n\
               a=simulcast:send q;h\r\nm=video 9 X 96\r\na=rid:q send\r\n";
    let clean = dedupe_simulcast_lines(sdp);
    assert_eq!(clean.matches("a=rid:q send").count(), 2, "{clean}");
    assert_eq!(clean.matches("a=simulcast:send q;h").count(), 1, "{clean}");
    assert!(clean.ends_with("m=video 9 X 96\r\na=rid:q send\r\n"));
}
