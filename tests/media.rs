//! Media end to end: headless webrtc-rs participants (a second, independent WebRTC stack)
//! publish synthetic Opus and VP8 over real ICE/DTLS-SRTP/UDP on loopback through the SFU.

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, TestPeer};

const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);
/// ~1 s of audio (50 packets/s) and of video (15 fps x 2 packets).
const ENOUGH: u64 = 25;

async fn peer(s: &TestServer, room: &str, role: &str, name: &str, marker: u8) -> TestPeer {
    peer_with(s, room, role, name, marker, false).await
}

async fn peer_with(
    s: &TestServer,
    room: &str,
    role: &str,
    name: &str,
    marker: u8,
    h264: bool,
) -> TestPeer {
    let token = s.invite(room, role).await;
    let p = TestPeer::join(JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264,
    })
    .await
    .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    p.wait_connected(CONNECT)
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e:#}"));
    p.start_media();
    p
}

/// `rx` receives both of `from`'s tracks, each carrying only `from`'s marker.
async fn assert_receives(rx: &TestPeer, from: &TestPeer) {
    rx.assert_receives_from(from, ENOUGH, MEDIA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_participants_late_joiner_and_leaver() {
    let s = TestServer::start().await;
    let room = s.create_room("Joint consultation").await;

    let doctor = peer(&s, &room, "doctor", "Dr. Wang", 0xA1).await;
    let patient = peer(&s, &room, "patient", "Li Hua", 0xB2).await;
    let specialist = peer(&s, &room, "specialist", "Dr. Zhao", 0xC3).await;
    let everyone = [&doctor, &patient, &specialist];

    for rx in everyone {
        for from in everyone {
            if rx.id() != from.id() {
                assert_receives(rx, from).await;
            }
        }
        // Nothing of one's own comes back, and nothing unattributed.
        for ((pid, kind), stats) in rx.received_all() {
            assert_ne!(
                pid,
                rx.id(),
                "{} received its own {kind}",
                rx.options().name
            );
            assert!(
                !pid.starts_with("unknown-mid"),
                "unattributed track {pid} {kind}: {stats:?}"
            );
        }
    }

    // A late joiner gets everyone already there, and they get the late joiner. (Another
    // clinician: the doctor's own seat entering again would take over from the doctor.)
    let late = peer(&s, &room, "specialist", "Dr. Chen", 0xD4).await;
    for from in everyone {
        assert_receives(&late, from).await;
    }
    // The late joiner's video started with a keyframe the SFU asked the publishers for.
    for from in everyone {
        let rtcp = from.rtcp_stats();
        assert!(
            rtcp.pli + rtcp.fir > 0,
            "{} got no keyframe request: {rtcp:?}",
            from.options().name
        );
    }
    let joined = late.joined_message();
    assert_eq!(joined["participants"].as_array().unwrap().len(), 3);

    // The specialist leaves: their tracks end for the others, everything else keeps flowing.
    specialist.leave().await.unwrap();
    for rx in [&doctor, &patient, &late] {
        let left = rx.next_event("participant_left", MEDIA).await.unwrap();
        assert_eq!(left["participant_id"], specialist.id().as_str());
        assert_eq!(left["reason"], "left");
        for kind in ["audio", "video"] {
            rx.wait_ended(&specialist.id(), kind, MEDIA)
                .await
                .unwrap_or_else(|e| panic!("{}: {e:#}", rx.options().name));
        }
    }
    let before = doctor.received(&patient.id(), "video").packets;
    let after = doctor
        .wait_received(&patient.id(), "video", before + ENOUGH, MEDIA)
        .await
        .unwrap();
    assert!(after.packets > before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_state_reaches_the_others_and_the_sfu_counts_packets() {
    let s = TestServer::start().await;
    let room = s.create_room("Follow-up").await;
    let doctor = peer(&s, &room, "doctor", "Dr. Wang", 0x11).await;
    let patient = peer(&s, &room, "patient", "Li Hua", 0x22).await;
    assert_receives(&doctor, &patient).await;

    patient.send_media_state(true, false).await.unwrap();
    let upd = doctor
        .next_event_where("participant_updated", MEDIA, |m| {
            m["participant"]["audio_muted"] == true
        })
        .await
        .unwrap();
    assert_eq!(upd["participant"]["id"], patient.id().as_str());

    let stats = s.server().media.workers()[0].stats().await.unwrap();
    assert!(stats.sfu.rtp_in > 0 && stats.sfu.rtp_out > 0, "{stats:?}");
    assert_eq!(stats.sfu.transports, 2);
    assert_eq!(stats.sfu.producers, 4);
    assert_eq!(stats.sfu.consumers, 4);

    // The same, as Prometheus sees it on the metrics listener.
    patient.send_raw("not json").await.unwrap();
    patient.next_event("error", MEDIA).await.unwrap();
    let addr = s.server().metrics_addr.expect("metrics listener");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    };
    assert_eq!(value("huizhen_rooms "), 1.0);
    assert_eq!(value("huizhen_participants "), 2.0);
    assert_eq!(value("huizhen_signaling_connections "), 2.0);
    assert_eq!(
        value("huizhen_signaling_errors_total{code=\"bad_message\"}"),
        1.0
    );
    assert_eq!(value("huizhen_join_seconds_count "), 2.0);
    assert!(value("huizhen_media_packets_out_total{worker=\"0\"}") > 0.0);
    assert_eq!(value("huizhen_media_consumers{worker=\"0\"}"), 4.0);
    assert_eq!(value("huizhen_media_rooms{worker=\"0\"}"), 1.0);
    // The worker timed its turns; every one is under +Inf, so the last bucket is the count.
    let turns = value("huizhen_media_turn_seconds_count{worker=\"0\"}");
    assert!(turns > 0.0);
    assert_eq!(
        value("huizhen_media_turn_seconds_bucket{le=\"+Inf\",worker=\"0\"}"),
        turns
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h264_from_one_participant_reaches_a_vp8_participant() {
    let s = TestServer::start().await;
    let room = s.create_room("Safari patient").await;
    let doctor = peer(&s, &room, "doctor", "Dr. Wang", 0x31).await;
    let patient = peer_with(&s, &room, "patient", "Li Hua", 0x42, true).await;
    assert_receives(&doctor, &patient).await;
    assert_receives(&patient, &doctor).await;
    let h264 = doctor.received(&patient.id(), "video");
    assert_eq!(
        h264.mime_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("video/h264"),
        "{h264:?}"
    );
    let vp8 = patient.received(&doctor.id(), "video");
    assert_eq!(
        vp8.mime_type
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("video/vp8"),
        "{vp8:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_on_different_media_workers_each_flow_on_their_own_port() {
    let s = TestServer::start_with(|c| c.media.workers = 3).await;
    let media = &s.server().media;
    let ports: std::collections::HashSet<u16> =
        media.local_addrs().iter().map(|a| a.port()).collect();
    assert_eq!(ports.len(), 3, "one UDP port per worker");
    // A room opens on the least busy worker: two rooms, two workers.
    let mut peers = Vec::new();
    for marker in [0x10, 0x20] {
        let room = s.create_room("Follow-up").await;
        let doctor = peer(&s, &room, "doctor", "Dr. Wang", marker).await;
        let patient = peer(&s, &room, "patient", "Li Hua", marker + 1).await;
        peers.push((doctor, patient));
    }
    // Each participant's ICE reached its room's worker's port, or nothing would flow.
    for (doctor, patient) in &peers {
        assert_receives(doctor, patient).await;
        assert_receives(patient, doctor).await;
    }
    let mut transports = Vec::new();
    for w in media.workers() {
        let stats = w.stats().await.unwrap();
        transports.push(stats.sfu.transports);
        assert_eq!(stats.rooms > 0, stats.sfu.rtp_out > 0, "{stats:?}");
    }
    transports.sort();
    assert_eq!(transports, [0, 2, 2], "a room per worker, the third idle");
    s.stop().await;
}

/// `video_sizes` → the media core → `video_quality`, end to end: a video shown at 0 × 0 stops
/// reaching the participant (and they are told), and comes back once shown again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hidden_video_is_not_sent_and_comes_back_when_shown() {
    let s = TestServer::start().await;
    let room = s.create_room("Follow-up").await;
    let doctor = peer(&s, &room, "doctor", "Dr. Wang", 0x31).await;
    let patient = peer(&s, &room, "patient", "Li Hua", 0x32).await;
    assert_receives(&doctor, &patient).await;
    let mid = doctor
        .offered_tracks()
        .into_iter()
        .find(|t| t.participant_id == patient.id() && t.kind == "video")
        .expect("the patient's video is offered")
        .mid;
    let sizes = |w: u32, h: u32| {
        serde_json::json!({"type": "video_sizes", "sizes": [
            {"mid": mid, "width": w, "height": h},
            {"mid": "not-a-mid", "width": 0, "height": 0},
        ]})
    };

    doctor.send_json(sizes(0, 0)).await.unwrap();
    let told = doctor.next_event("video_quality", MEDIA).await.unwrap();
    assert_eq!(
        (&told["mid"], &told["layer"], &told["reason"]),
        (
            &serde_json::json!(mid),
            &serde_json::Value::Null,
            &serde_json::json!("hidden")
        )
    );
    // What was in flight, then nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hidden = doctor.received(&patient.id(), "video").packets;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(doctor.received(&patient.id(), "video").packets, hidden);
    // Audio was never touched.
    let heard = doctor.received(&patient.id(), "audio").packets;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(doctor.received(&patient.id(), "audio").packets > heard);

    doctor.send_json(sizes(640, 360)).await.unwrap();
    let told = doctor.next_event("video_quality", MEDIA).await.unwrap();
    assert_eq!(
        (&told["layer"], &told["reason"]),
        (&serde_json::json!("f"), &serde_json::json!("display"))
    );
    doctor
        .wait_received(&patient.id(), "video", hidden + ENOUGH, MEDIA)
        .await
        .unwrap();
    // Too many sizes at once is a bad message, not the end of the session.
    let many: Vec<_> = (0..65)
        .map(|_| serde_json::json!({"mid": mid, "width": 1, "height": 1}))
        .collect();
    doctor
        .send_json(serde_json::json!({"type": "video_sizes", "sizes": many}))
        .await
        .unwrap();
    let e = doctor.next_event("error", MEDIA).await.unwrap();
    assert_eq!(e["code"], "bad_message");
    s.stop().await;
}
