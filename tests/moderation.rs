//! Huddles and moderation over the real server, with webrtc-rs peers over real UDP: while the
//! clinicians confer, the patient stays connected but receives none of their media and is
//! told; a participant muted by the care team is forwarded to nobody and is told; someone
//! removed is out and their link admits nobody more; none of it is open to a patient; every
//! step is audited. A clinician who loses their connection mid-huddle does not end it; the
//! last clinician leaving does. A reload does not undo a mute.

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, SignalingClient, TestPeer};
use huizhen::domain::role::AccountRole;
use serde_json::json;

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

/// Packets `rx` got from `from` of `kind` over `window`, after letting in-flight ones land.
async fn arriving(rx: &TestPeer, from: &TestPeer, kind: &str, window: Duration) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rx.received(&from.id(), kind).packets;
    tokio::time::sleep(window).await;
    rx.received(&from.id(), kind).packets - before
}

async fn huddle_hold_and_remove(s: &TestServer) {
    // A dropped connection is given 3 s to come back, so the test sees it gone in time.
    let room = s.create_room("Joint consultation").await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let doctor = peer(s, &room, "doctor", "", 0xA1).await;
    let specialist = peer(s, &room, "specialist", "", 0xB2).await;
    let patient = peer(s, &room, "patient", "Li Hua", 0xC3).await;
    patient
        .send_json(json!({"type": "consent", "purpose": "observer_present", "given": true}))
        .await
        .unwrap();
    patient
        .next_event_where("consent", T, |m| m["yours"] == json!(["observer_present"]))
        .await
        .unwrap();
    for (rx, from) in [
        (&patient, &doctor),
        (&patient, &specialist),
        (&doctor, &patient),
    ] {
        for kind in ["audio", "video"] {
            rx.wait_received(&from.id(), kind, 25, MEDIA).await.unwrap();
        }
    }

    // The patient may not start a huddle, mute or remove anyone.
    for msg in [
        json!({"type": "huddle", "active": true}),
        json!({"type": "hold", "participant_id": doctor.id(), "audio": true, "video": true}),
        json!({"type": "remove", "participant_id": doctor.id()}),
    ] {
        patient.send_json(msg).await.unwrap();
        patient.next_event("error", T).await.unwrap();
    }

    // A huddle: the patient is told, stays connected, and receives nothing of the clinicians,
    // who keep hearing each other and the patient.
    doctor
        .send_json(json!({"type": "huddle", "active": true}))
        .await
        .unwrap();
    let told = patient.next_event("huddle", T).await.unwrap();
    assert_eq!(
        (told["active"].as_bool(), told["by"].as_str()),
        (Some(true), Some(doctor.id().as_str()))
    );
    specialist.next_event("huddle", T).await.unwrap();
    for from in [&doctor, &specialist] {
        for kind in ["audio", "video"] {
            assert_eq!(
                arriving(&patient, from, kind, Duration::from_secs(2)).await,
                0,
                "{kind} of a clinician reached the patient during the huddle"
            );
        }
    }
    assert!(arriving(&specialist, &doctor, "audio", Duration::from_secs(1)).await > 10);
    assert!(arriving(&doctor, &patient, "audio", Duration::from_secs(1)).await > 10);
    // Someone joining during the huddle hears it in their welcome and gets nothing either.
    let observer = TestPeer::join(JoinOptions {
        ws_url: s.ws_url.clone(),
        token: s.invite(&room, "observer").await,
        name: "Trainee".into(),
        publish_audio: false,
        publish_video: false,
        marker: 0xD4,
        h264: false,
    })
    .await
    .unwrap();
    assert_eq!(observer.joined_message()["huddle"], true);
    observer.wait_connected(CONNECT).await.unwrap();
    observer
        .wait_received(&patient.id(), "audio", 25, MEDIA)
        .await
        .unwrap();
    assert_eq!(observer.received(&doctor.id(), "audio").packets, 0);

    // In writing as aloud: what a clinician writes during the huddle reaches the clinicians
    // only, marked so; the patient and the observer get nothing of it, now or on joining. The
    // patient's own message still reaches everyone.
    specialist
        .send_json(json!({"type": "chat", "text": "Troponin is borderline; admit?"}))
        .await
        .unwrap();
    let private = doctor.next_event("chat", T).await.unwrap();
    assert_eq!(
        (
            private["message"]["text"].as_str(),
            private["message"]["huddle"].as_bool()
        ),
        (Some("Troponin is borderline; admit?"), Some(true)),
        "{private}"
    );
    for outside in [&patient, &observer] {
        assert!(
            outside
                .next_event("chat", Duration::from_secs(1))
                .await
                .is_err(),
            "a huddle's message reached someone outside the care team"
        );
    }
    let late = SignalingClient::connect(&s.ws_url).await.unwrap();
    let welcome = late
        .join(
            &s.invite(&room, "guest").await,
            "Li's daughter",
            false,
            false,
        )
        .await
        .unwrap();
    assert_eq!(welcome["chat"], json!([]), "{welcome}");
    drop(late);
    patient
        .send_json(json!({"type": "chat", "text": "Can you hear me?"}))
        .await
        .unwrap();
    let from_patient = doctor
        .next_event_where("chat", T, |m| m["message"]["text"] == "Can you hear me?")
        .await
        .unwrap();
    assert_eq!(from_patient["message"]["huddle"], false);

    // A clinician whose connection drops does not end the huddle. (A second specialist: the
    // doctor's own seat entering again would take over from the doctor's connection.)
    // (The seat's token first: making it signs in, which must not eat the join deadline.)
    let seat = s.invite(&room, "specialist").await;
    let reconnecting = SignalingClient::connect(&s.ws_url).await.unwrap();
    reconnecting.join(&seat, "", false, false).await.unwrap();
    drop(reconnecting);
    assert!(
        patient
            .next_event("huddle", Duration::from_secs(2))
            .await
            .is_err(),
        "the huddle ended with a dropped clinician"
    );

    // Back to the patient with one action: media flows again, video from a keyframe.
    specialist
        .send_json(json!({"type": "huddle", "active": false}))
        .await
        .unwrap();
    let told = patient.next_event("huddle", T).await.unwrap();
    assert_eq!(told["active"], false);
    for from in [&doctor, &specialist] {
        for kind in ["audio", "video"] {
            assert!(
                arriving(&patient, from, kind, Duration::from_secs(2)).await > 5,
                "{kind} did not come back after the huddle"
            );
        }
    }

    // Muted by the care team: nobody receives the patient's audio; they and the others are
    // told; released, it flows again.
    doctor
        .send_json(
            json!({"type": "hold", "participant_id": patient.id(), "audio": true, "video": false}),
        )
        .await
        .unwrap();
    let held = patient.next_event("held", T).await.unwrap();
    assert_eq!(
        (held["audio"].as_bool(), held["video"].as_bool()),
        (Some(true), Some(false))
    );
    let seen = specialist
        .next_event_where("participant_updated", T, |m| {
            m["participant"]["id"] == patient.id().as_str()
        })
        .await
        .unwrap();
    assert_eq!(
        seen["participant"]["held"],
        json!({"audio": true, "video": false})
    );
    for rx in [&doctor, &specialist] {
        assert_eq!(
            arriving(rx, &patient, "audio", Duration::from_secs(2)).await,
            0
        );
        assert!(arriving(rx, &patient, "video", Duration::from_secs(1)).await > 5);
    }
    doctor
        .send_json(
            json!({"type": "hold", "participant_id": patient.id(), "audio": false, "video": false}),
        )
        .await
        .unwrap();
    patient.next_event("held", T).await.unwrap();
    assert!(arriving(&doctor, &patient, "audio", Duration::from_secs(2)).await > 10);

    // Removed: told, closed, gone for the others; the same link does not bring them back.
    // A clinician is not removed this way (they leave the care team).
    doctor
        .send_json(json!({"type": "remove", "participant_id": specialist.id()}))
        .await
        .unwrap();
    let e = doctor.next_event("error", T).await.unwrap();
    assert_eq!(
        (&e["code"], &e["fatal"]),
        (&json!("forbidden"), &json!(false)),
        "{e}"
    );
    // Someone not (or no longer) there: said so, in its own words.
    for ask in [
        json!({"type": "hold", "participant_id": "p_gone000000000000", "audio": true, "video": true}),
        json!({"type": "remove", "participant_id": "p_gone000000000000"}),
        json!({"type": "set_role", "participant_id": "p_gone000000000000", "role": "guest"}),
    ] {
        doctor.send_json(ask.clone()).await.unwrap();
        let e = doctor.next_event("error", T).await.unwrap();
        assert_eq!(
            (&e["code"], &e["fatal"]),
            (&json!("not_present"), &json!(false)),
            "{ask}: {e}"
        );
    }
    // A link good for several (a family's): what refuses them is the removal, not the uses.
    let (st, made) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient", "max_uses": 5})),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let link = made["token"].as_str().unwrap().to_owned();
    let visitor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = visitor.join(&link, "Visitor", false, false).await.unwrap();
    let visitor_id = joined["you"]["id"].as_str().unwrap().to_owned();
    // The specialist consulted may hold them, but removing revokes the doctor's link: the
    // doctor's alone. Refused, told and on the record; the visitor stays.
    specialist
        .send_json(json!({"type": "remove", "participant_id": visitor_id}))
        .await
        .unwrap();
    let e = specialist.next_event("error", T).await.unwrap();
    assert_eq!(
        (&e["code"], &e["fatal"]),
        (&json!("forbidden"), &json!(false)),
        "{e}"
    );
    assert!(
        visitor
            .next_event("error", Duration::from_millis(300))
            .await
            .is_err(),
        "the visitor was not removed"
    );
    doctor
        .send_json(json!({"type": "remove", "participant_id": visitor_id, "reason": "Not part of this visit"}))
        .await
        .unwrap();
    let e = visitor.expect_error("removed", T).await.unwrap();
    assert_eq!(e["message"], "Not part of this visit");
    assert_eq!(e["clinic_reason"], "Not part of this visit");
    assert_eq!(visitor.wait_closed(T).await.unwrap(), Some(4009));
    let left = doctor
        .next_event_where("participant_left", T, |m| {
            m["participant_id"] == visitor_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(left["reason"], "removed_by_care_team");
    let again = SignalingClient::connect(&s.ws_url).await.unwrap();
    again
        .send_json(
            &json!({"type": "join", "v": 1, "token": link, "name": "Visitor",
                           "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    again.expect_error("invite_revoked", T).await.unwrap();
    // Revoked in storage too, not only in the live room: the console lists it as revoked, and
    // a room that stops and starts again (empty for a while, a restart) still refuses it.
    let (st, list) = s
        .api("GET", &format!("/api/v1/rooms/{room}/invites"), None, None)
        .await;
    assert_eq!(st, 200, "{list}");
    let listed = list["invites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["invite_id"] == made["invite_id"])
        .expect("the link is listed");
    assert_eq!(listed["state"], "revoked", "{listed}");
    let db = &s.server().db;
    let room_id = huizhen::domain::ids::RoomId::parse(&room).unwrap();
    let revoked = db.revoked_invites(&room_id).await.unwrap();
    assert!(
        revoked.iter().any(|i| i.as_str() == made["invite_id"]),
        "{revoked:?}"
    );

    // The last clinician leaving ends a huddle, and the patient is told (the clinician whose
    // connection dropped is gone by now: their resume window has passed).
    tokio::time::sleep(Duration::from_secs(3)).await;
    doctor
        .send_json(json!({"type": "huddle", "active": true}))
        .await
        .unwrap();
    patient.next_event("huddle", T).await.unwrap();
    doctor.leave().await.unwrap();
    specialist.leave().await.unwrap();
    let told = patient
        .next_event_where("huddle", T, |m| m["active"] == false)
        .await
        .unwrap();
    assert!(told["by"].is_null());

    let entries = s.audit_entries(&sup, &room).await;
    assert!(
        entries.iter().any(|e| e["action"] == "access.denied"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains(r#""reason":"removal_forbidden""#))
            && e["actor"] == specialist.id().as_str()),
        "the specialist's removal refused on the record: {entries:?}"
    );
    // The removal revoked the visitor's link, under the invitation's own action too.
    assert!(
        entries.iter().any(|e| e["action"] == "invite.revoked"
            && e["object_id"] == made["invite_id"]
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains(visitor_id.as_str()))),
        "the link revoked by the removal on the record: {entries:?}"
    );
    let actions = common::action_outcomes(&entries);
    for want in [
        "huddle.started:ok",
        "huddle.ended:ok",
        "participant.held:ok",
        "participant.removed:ok",
        "invite.revoked:ok",
        "access.denied:denied",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    huddle_hold_and_remove,
    |c| c.rooms.resume_window_s = 3
);

/// Muted by the care team, a patient reloads the page (a join that replaces their earlier
/// self with its resume token): they come back muted, told so in their welcome, and the others
/// see them muted; only the care team releases them.
async fn a_reload_keeps_the_care_teams_mute(s: &TestServer) {
    let room = s.create_room("Follow-up").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    let link = s.invite(&room, "patient").await;
    let patient = SignalingClient::connect(&s.ws_url).await.unwrap();
    let welcome = patient.join(&link, "Li Hua", true, true).await.unwrap();
    let patient_id = welcome["you"]["id"].as_str().unwrap().to_owned();
    doctor
        .send_json(
            &json!({"type": "hold", "participant_id": patient_id, "audio": true, "video": true}),
        )
        .await
        .unwrap();
    patient.next_event("held", T).await.unwrap();

    // The page reloads.
    let again = SignalingClient::connect(&s.ws_url).await.unwrap();
    let rejoined = again
        .rejoin(&link, "Li Hua", true, true, &welcome)
        .await
        .unwrap();
    assert_eq!(
        rejoined["you"]["held"],
        json!({"audio": true, "video": true}),
        "{rejoined}"
    );
    let new_id = rejoined["you"]["id"].as_str().unwrap().to_owned();
    let seen = doctor
        .next_event_where("participant_joined", T, |m| {
            m["participant"]["id"] == new_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(
        seen["participant"]["held"],
        json!({"audio": true, "video": true}),
        "{seen}"
    );
    // Released by the doctor, on their new self.
    doctor
        .send_json(
            &json!({"type": "hold", "participant_id": new_id, "audio": false, "video": false}),
        )
        .await
        .unwrap();
    let held = again.next_event("held", T).await.unwrap();
    assert_eq!(
        (held["audio"].as_bool(), held["video"].as_bool()),
        (Some(false), Some(false))
    );
}

common::on_both_databases!(
    #[tokio::test]
    a_reload_keeps_the_care_teams_mute,
    |_| {}
);
