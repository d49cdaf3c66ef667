//! Screen sharing over the real server, with webrtc-rs peers over real UDP: a doctor's shared
//! screen reaches the others as a third track marked `screen`, with its packets; a patient may
//! not share (typed error, audited); one share per room at a time; a share needs a media
//! connection that is up; stopping (by request, or by leaving) takes the track away from
//! everyone and frees the slot. Every start and stop is on the record.

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, SignalingClient, TestPeer};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);

async fn peer(s: &TestServer, room: &str, role: &str, name: &str, marker: u8) -> TestPeer {
    let p = TestPeer::join(JoinOptions {
        ws_url: s.ws_url.clone(),
        token: s.invite(room, role).await,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    })
    .await
    .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    p.wait_connected(CONNECT).await.unwrap();
    p.start_media();
    p
}

/// Waits until `rx`'s latest offer carries (or no longer carries) `from`'s screen.
async fn screen_offered(rx: &TestPeer, from: &TestPeer, offered: bool) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let has = rx
            .offered_tracks()
            .iter()
            .any(|t| t.participant_id == from.id() && t.kind == "screen");
        if has == offered {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}'s screen offered to {:?}: want {offered}; tracks {:?}",
            from.id(),
            rx.options().name,
            rx.offered_tracks()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Packets `rx` got of `from`'s screen over `window`, after letting in-flight ones land.
async fn screen_arriving(rx: &TestPeer, from: &TestPeer, window: Duration) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rx.received(&from.id(), "screen").packets;
    tokio::time::sleep(window).await;
    rx.received(&from.id(), "screen").packets - before
}

/// The `screen_share` announcement naming `sharer` (or nobody).
async fn announced(p: &TestPeer, sharer: Option<&TestPeer>) {
    let want = sharer.map_or(Value::Null, |s| json!(s.id()));
    p.next_event_where("screen_share", T, |m| m["sharer"] == want)
        .await
        .unwrap_or_else(|e| panic!("{:?} told of {want}: {e:#}", p.options().name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clinician_shares_a_screen_one_at_a_time() {
    let s = TestServer::start().await;
    let room = s.create_room("Imaging review").await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let doctor = peer(&s, &room, "doctor", "", 0x21).await;
    let specialist = peer(&s, &room, "specialist", "", 0x32).await;
    let patient = peer(&s, &room, "patient", "Li Hua", 0x43).await;
    for (rx, from) in [(&patient, &doctor), (&doctor, &specialist)] {
        rx.assert_receives_from(from, 10, MEDIA).await;
    }
    assert!(doctor.joined_message()["screen_share"].is_null());

    // A patient may not share: a typed refusal, on the record; nobody is told of a share.
    patient
        .send_json(json!({"type": "screen_share", "active": true}))
        .await
        .unwrap();
    let refused = patient.next_event("error", T).await.unwrap();
    assert_eq!(
        (refused["code"].as_str(), refused["fatal"].as_bool()),
        (Some("forbidden"), Some(false))
    );

    // The doctor shares: everyone is told, and the others get a third track, marked screen,
    // carrying the doctor's screen (its own marker), besides the doctor's camera and microphone.
    doctor.share_screen().await.unwrap();
    for p in [&doctor, &specialist, &patient] {
        announced(p, Some(&doctor)).await;
    }
    for rx in [&patient, &specialist] {
        screen_offered(rx, &doctor, true).await;
        let stats = rx
            .wait_received(&doctor.id(), "screen", 20, MEDIA)
            .await
            .unwrap();
        assert!(
            stats.only_marker(doctor.screen_marker()),
            "{:?} got foreign payloads on the doctor's screen: {stats:?}",
            rx.options().name
        );
        let from_doctor: Vec<String> = rx
            .offered_tracks()
            .into_iter()
            .filter(|t| t.participant_id == doctor.id())
            .map(|t| t.kind)
            .collect();
        assert_eq!(from_doctor.len(), 3, "{from_doctor:?}");
        rx.assert_receives_from(&doctor, 10, MEDIA).await;
    }
    assert!(
        doctor.received(&doctor.id(), "screen").packets == 0,
        "the sharer is not sent their own screen"
    );

    // One share at a time: the specialist is refused while the doctor shares, and gets no slot.
    specialist
        .send_json(json!({"type": "screen_share", "active": true}))
        .await
        .unwrap();
    let busy = specialist.next_event("error", T).await.unwrap();
    assert_eq!(
        (busy["code"].as_str(), busy["fatal"].as_bool()),
        (Some("screen_share_busy"), Some(false))
    );
    // Someone who joins meanwhile hears of the share in their welcome, and receives it.
    let late = peer(&s, &room, "specialist", "", 0x54).await;
    assert_eq!(late.joined_message()["screen_share"], json!(doctor.id()));
    late.wait_received(&doctor.id(), "screen", 10, MEDIA)
        .await
        .unwrap();

    // The doctor stops: everyone is told, the screen's m-line is stopped for the others and
    // its media stops; camera and microphone carry on.
    doctor.stop_screen().await.unwrap();
    for p in [&doctor, &specialist, &patient, &late] {
        announced(p, None).await;
    }
    for rx in [&patient, &specialist, &late] {
        screen_offered(rx, &doctor, false).await;
        assert!(rx.received(&doctor.id(), "screen").mline_stopped);
        assert_eq!(
            screen_arriving(rx, &doctor, Duration::from_secs(1)).await,
            0
        );
        rx.assert_receives_from(&doctor, 10, MEDIA).await;
    }

    // A clinician whose media connection is not up yet (signaling only) is told to wait
    // (once nobody shares: while someone does, the answer is `screen_share_busy`).
    // The token first: a connection must join within 10 s, and making the account takes a
    // password hash.
    let token = s.invite(&room, "specialist").await;
    let bare = SignalingClient::connect(&s.ws_url).await.unwrap();
    bare.join(&token, "", false, false).await.unwrap();
    bare.send_json(&json!({"type": "screen_share", "active": true}))
        .await
        .unwrap();
    bare.expect_error("media_not_ready", T).await.unwrap();

    // The slot is free again: the specialist shares; leaving ends it for everyone.
    specialist.share_screen().await.unwrap();
    for p in [&doctor, &patient] {
        announced(p, Some(&specialist)).await;
        p.wait_received(&specialist.id(), "screen", 10, MEDIA)
            .await
            .unwrap();
    }
    specialist.leave().await.unwrap();
    for p in [&doctor, &patient] {
        announced(p, None).await;
        screen_offered(p, &specialist, false).await;
    }
    // Two clinicians asking at the same instant: the room's task hands out its one slot once.
    // The doctor (who shared before: the transport's screen slot is free again) and the late
    // specialist race; exactly one is announced, the other is told `screen_share_busy`, and the
    // winner's screen reaches the patient.
    let seen = patient.history().len();
    // The doctor's earlier share already reached the patient: the loser is judged by what
    // arrives from now on.
    let screen_before = |p: &TestPeer| patient.received(&p.id(), "screen").packets;
    let (doctor_before, late_before) = (screen_before(&doctor), screen_before(&late));
    let (a, b) = tokio::join!(doctor.share_screen(), late.share_screen());
    a.unwrap();
    b.unwrap();
    let first = patient
        .next_event_where("screen_share", T, |m| !m["sharer"].is_null())
        .await
        .unwrap();
    let (winner, loser) = if first["sharer"] == json!(doctor.id()) {
        (&doctor, &late)
    } else {
        assert_eq!(first["sharer"], json!(late.id()));
        (&late, &doctor)
    };
    let busy = loser
        .next_event_where("error", T, |m| m["code"] == "screen_share_busy")
        .await;
    assert!(busy.is_ok(), "the second asker is told: {busy:?}");
    patient
        .wait_received(&winner.id(), "screen", 10, MEDIA)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !patient.history()[seen..]
            .iter()
            .any(|m| m["type"] == "screen_share" && m["sharer"] == json!(loser.id())),
        "the loser was never announced"
    );
    let loser_before = if loser.id() == doctor.id() {
        doctor_before
    } else {
        late_before
    };
    assert_eq!(
        patient.received(&loser.id(), "screen").packets,
        loser_before,
        "nothing of the loser's screen reached the patient"
    );

    let entries = s.audit_entries(&sup, &room).await;
    let actions = common::action_outcomes(&entries);
    for want in [
        "screen_share.started:ok",
        "screen_share.stopped:ok",
        "access.denied:denied",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    let reasons: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str()?).ok()?;
            Some((
                e["action"].as_str()?.to_owned(),
                detail["reason"].as_str()?.to_owned(),
            ))
        })
        .collect();
    for want in [
        ("access.denied", "screen_share_forbidden"),
        ("screen_share.stopped", "stopped"),
        ("screen_share.stopped", "left"),
    ] {
        assert!(
            reasons
                .iter()
                .any(|(a, r)| (a.as_str(), r.as_str()) == want),
            "{want:?} in {reasons:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "screen_share.started:ok")
            .count(),
        3
    );
}
