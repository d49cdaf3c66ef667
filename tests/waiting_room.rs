//! The waiting room over the real server: people who come with an invitation wait until a
//! clinician admits them and receive nothing of the consultation meanwhile (no participants,
//! documents, chat, access token, peer connection, media); the clinicians see the queue with
//! each pre-call check, message it, admit, decline, send back and lock; two clinicians
//! admitting the same person: one wins, the other is told. The edges: a clinician whose
//! connection drops while people wait, one clinician on two tabs, a clinician lost mid-huddle.
//! Media is checked with webrtc-rs peers over real UDP.

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, SignalingClient, TestPeer};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);

async fn waiter(s: &TestServer, room: &str, name: &str) -> (SignalingClient, Value) {
    let token = s.invite(room, "patient").await;
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    c.send_json(
        &json!({"type": "join", "v": 1, "token": token, "name": name,
                        "publish": {"audio": false, "video": false}}),
    )
    .await
    .unwrap();
    let waiting = c
        .next_event_of(&["waiting", "joined", "error"], T)
        .await
        .unwrap();
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    (c, waiting)
}

fn waiting_names(queue: &Value) -> Vec<String> {
    queue["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect()
}

fn waiting_id(queue: &Value, name: &str) -> String {
    queue["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {queue}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The latest `waiting_room` message a clinician has, after the change awaited.
async fn queue_where(c: &SignalingClient, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let q = c
            .next_event("waiting_room", left)
            .await
            .expect("a waiting_room update");
        if what(&q) {
            return q;
        }
    }
}

async fn waiting_admitting_declining_sending_back_and_locking(s: &TestServer) {
    let room = s.create_room_waiting("Follow-up, hypertension").await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;

    // The doctor enters with their seat: straight in, and sees the (empty) queue.
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    assert_eq!(joined["waiting_room"]["waiting"], json!([]));
    assert_eq!(joined["waiting_room"]["locked"], false);

    // Two patients arrive and wait, in order; they are given nothing of the room.
    let (li, w) = waiter(s, &room, "Li Hua").await;
    assert_eq!(
        (w["position"].as_u64(), w["of"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(w["room"]["title"], "Follow-up, hypertension");
    assert!(
        w["estimated_wait_s"].is_null(),
        "no admissions yet: no guess"
    );
    for absent in [
        "access_token",
        "resume_token",
        "participants",
        "documents",
        "chat",
    ] {
        assert!(
            w.get(absent).is_none(),
            "{absent} given to someone waiting: {w}"
        );
    }
    let (wang, w) = waiter(s, &room, "Wang Fang").await;
    assert_eq!(
        (w["position"].as_u64(), w["of"].as_u64()),
        (Some(2), Some(2))
    );
    // The first in line is told that the line grew.
    let w = li.next_event("waiting", T).await.unwrap();
    assert_eq!(
        (w["position"].as_u64(), w["of"].as_u64()),
        (Some(1), Some(2))
    );
    let q = queue_where(&doctor, |q| q["waiting"].as_array().unwrap().len() == 2).await;
    assert_eq!(waiting_names(&q), ["Li Hua", "Wang Fang"]);
    let li_id = waiting_id(&q, "Li Hua");
    let wang_id = waiting_id(&q, "Wang Fang");

    // The care team's consoles read who waits by name and since when (the day view); a
    // colleague who may see the consultation but is not on its team reads only how many.
    let a = s
        .attendance_where(&room, &s.doctor_token, |a| {
            a["waiting_people"].as_array().map_or(0, Vec::len) == 2
        })
        .await;
    let people: Vec<(&str, &str, bool)> = a["waiting_people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["role"].as_str().unwrap(),
                p["sent_back"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        people,
        [
            ("Li Hua", "patient", false),
            ("Wang Fang", "patient", false)
        ]
    );
    assert!(
        a["waiting_people"][0]["since"].as_i64() <= a["waiting_people"][1]["since"].as_i64(),
        "{a}"
    );
    let colleague = s.account("colleague", AccountRole::Doctor).await;
    let (st, seen) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/attendance"),
            Some(&colleague),
            None,
        )
        .await;
    assert_eq!(st, 200, "{seen}");
    assert_eq!(
        (&seen["patients"]["waiting"], &seen["waiting_people"]),
        (&json!(2), &json!([]))
    );
    assert!(!seen.to_string().contains("Li Hua"), "{seen}");

    // A pre-call check reaches the clinicians.
    li.send_json(
        &json!({"type": "precall", "camera": true, "microphone": false,
                         "connection": "poor", "rtt_ms": 420}),
    )
    .await
    .unwrap();
    let q = queue_where(&doctor, |q| !q["waiting"][0]["precall"].is_null()).await;
    assert_eq!(
        q["waiting"][0]["precall"],
        json!({"camera": true, "microphone": false, "connection": "poor", "rtt_ms": 420})
    );
    li.send_json(
        &json!({"type": "precall", "camera": true, "microphone": true, "connection": "bad"}),
    )
    .await
    .unwrap();
    li.expect_error("bad_message", T).await.unwrap();
    // The device check's details: a blocked microphone, and whether the test sound was heard.
    li.send_json(
        &json!({"type": "precall", "camera": true, "microphone": false,
                         "connection": "good", "rtt_ms": 12, "camera_state": "ok",
                         "microphone_state": "denied", "speaker": "not_heard"}),
    )
    .await
    .unwrap();
    let q = queue_where(&doctor, |q| {
        q["waiting"][0]["precall"]["microphone_state"] == "denied"
    })
    .await;
    assert_eq!(
        q["waiting"][0]["precall"],
        json!({"camera": true, "microphone": false, "connection": "good", "rtt_ms": 12,
               "camera_state": "ok", "microphone_state": "denied", "speaker": "not_heard"})
    );
    for bad in [
        json!({"camera_state": "blocked"}),
        json!({"microphone_state": "OK"}),
        json!({"speaker": "yes"}),
        json!({"speaker": 1}),
    ] {
        let mut msg = json!({"type": "precall", "camera": false, "microphone": false,
                             "connection": "unknown"});
        for (k, v) in bad.as_object().unwrap() {
            msg[k] = v.clone();
        }
        li.send_json(&msg).await.unwrap();
        li.expect_error("bad_message", T).await.unwrap();
    }

    // Someone waiting cannot let themselves in, nor chat into the room; a second clinician
    // arriving is not announced to them.
    li.send_json(&json!({"type": "admit", "participant_id": li_id}))
        .await
        .unwrap();
    li.expect_error("forbidden", T).await.unwrap();
    li.send_json(&json!({"type": "chat", "text": "hello?"}))
        .await
        .unwrap();
    let seat = s.invite(&room, "specialist").await;
    let specialist = SignalingClient::connect(&s.ws_url).await.unwrap();
    let specialist_id = specialist.join(&seat, "", false, false).await.unwrap()["you"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    doctor.next_event("participant_joined", T).await.unwrap();
    assert!(
        doctor
            .next_event("chat", Duration::from_millis(300))
            .await
            .is_err()
    );

    // The clinic tells everyone waiting that the doctor runs late.
    doctor
        .send_json(&json!({"type": "waiting_message", "text": "医生晚到10分钟 / The doctor is running 10 minutes late"}))
        .await
        .unwrap();
    for c in [&li, &wang] {
        let w = c.next_event("waiting", T).await.unwrap();
        assert_eq!(
            w["message"],
            "医生晚到10分钟 / The doctor is running 10 minutes late"
        );
    }

    // From the console, without entering: changed, then too long (refused, nothing changes).
    let path = format!("/api/v1/rooms/{room}/waiting-message");
    let (st, b) = s
        .api(
            "PUT",
            &path,
            None,
            Some(json!({"text": "医生晚到20分钟 / The doctor is running 20 minutes late"})),
        )
        .await;
    assert_eq!(st, 204, "{b}");
    for c in [&li, &wang] {
        let w = c.next_event("waiting", T).await.unwrap();
        assert_eq!(
            w["message"],
            "医生晚到20分钟 / The doctor is running 20 minutes late"
        );
    }
    let (st, b) = s
        .api("PUT", &path, None, Some(json!({"text": "x".repeat(501)})))
        .await;
    assert_eq!(st, 400, "{b}");
    // Not on the care team: refused.
    let outsider = s.account("outsider", AccountRole::Doctor).await;
    let (st, b) = s
        .api("PUT", &path, Some(&outsider), Some(json!({"text": "hi"})))
        .await;
    assert!(st == 403 || st == 404, "{st} {b}");

    // Admit the next: Li Hua is in, with everything a join gives; Wang Fang moves up.
    doctor.send_json(&json!({"type": "admit"})).await.unwrap();
    let welcome = li.next_event("joined", T).await.unwrap();
    assert_eq!(welcome["you"]["id"], li_id.as_str());
    assert!(welcome["access_token"].is_string());
    assert_eq!(welcome["participants"].as_array().unwrap().len(), 2);
    assert!(
        welcome.get("waiting_room").is_none(),
        "the queue is for clinicians"
    );
    let arrived = doctor.next_event("participant_joined", T).await.unwrap();
    assert_eq!(arrived["participant"]["id"], li_id.as_str());
    let w = wang.next_event("waiting", T).await.unwrap();
    assert_eq!(
        (w["position"].as_u64(), w["of"].as_u64()),
        (Some(1), Some(1))
    );
    let q = queue_where(&doctor, |q| q["waiting"].as_array().unwrap().len() == 1).await;
    assert_eq!(waiting_names(&q), ["Wang Fang"]);
    // An admitted patient may not manage the waiting room either.
    li.send_json(&json!({"type": "admit", "participant_id": wang_id}))
        .await
        .unwrap();
    li.expect_error("forbidden", T).await.unwrap();

    // Two clinicians admit Wang Fang at once: one wins, the other is told.
    let admit = json!({"type": "admit", "participant_id": wang_id});
    let (a, b) = tokio::join!(doctor.send_json(&admit), specialist.send_json(&admit));
    a.unwrap();
    b.unwrap();
    wang.next_event("joined", T).await.unwrap();
    let told = tokio::select! {
        e = doctor.next_event("error", T) => e.unwrap(),
        e = specialist.next_event("error", T) => e.unwrap(),
    };
    assert_eq!(told["code"], "not_waiting", "{told}");
    assert_eq!(told["fatal"], false);

    // Send Li Hua back: the others see them leave, they see why they wait; their access
    // token no longer reaches the consultation's documents.
    let access = welcome["access_token"].as_str().unwrap();
    let documents = format!("/api/v1/rooms/{room}/documents");
    assert_eq!(s.api("GET", &documents, Some(access), None).await.0, 200);
    let queues = |c: &SignalingClient| {
        c.history()
            .iter()
            .filter(|m| m["type"] == "waiting_room")
            .count()
    };
    // The doctor's queue after Wang Fang's admission first (it may still be on its way),
    // so that only the send-back's is counted below.
    queue_where(&doctor, |q| waiting_names(q).is_empty()).await;
    let queues_before = queues(&doctor);
    doctor
        .send_json(&json!({"type": "send_back", "participant_id": li_id,
                           "reason": "The doctors are conferring"}))
        .await
        .unwrap();
    let left = wang.next_event("participant_left", T).await.unwrap();
    assert_eq!(
        (left["participant_id"].as_str(), left["reason"].as_str()),
        (Some(li_id.as_str()), Some("sent_back"))
    );
    let w = li.next_event("waiting", T).await.unwrap();
    assert_eq!(w["sent_back"], "The doctors are conferring");
    assert_eq!(w["sent_back_why"], "care_team", "{w}");
    assert_eq!(w["clinic_reason"], "The doctors are conferring", "{w}");
    assert_eq!(w["position"], 1);
    assert_eq!(s.api("GET", &documents, Some(access), None).await.0, 403);
    let q = queue_where(&doctor, |q| waiting_names(q) == ["Li Hua"]).await;
    assert_eq!(q["waiting"][0]["sent_back"], true);
    s.attendance_where(&room, &s.doctor_token, |a| {
        a["waiting_people"][0]["sent_back"] == true
    })
    .await;
    // Each is told once: the queue's clinicians, and the person where they wait.
    let again = li.next_event("waiting", Duration::from_millis(500)).await;
    assert!(again.is_err(), "told twice where they wait: {again:?}");
    assert_eq!(
        queues(&doctor) - queues_before,
        1,
        "the queue told more than once"
    );
    // A clinician cannot be sent back.
    doctor
        .send_json(&json!({"type": "send_back", "participant_id": specialist_id}))
        .await
        .unwrap();
    doctor.expect_error("not_waiting", T).await.unwrap();

    // Decline: told why, and closed.
    doctor
        .send_json(&json!({"type": "decline", "participant_id": li_id,
                           "reason": "Please book a visit in person"}))
        .await
        .unwrap();
    let e = li.expect_error("declined", T).await.unwrap();
    assert_eq!(e["message"], "Please book a visit in person");
    assert_eq!(e["clinic_reason"], "Please book a visit in person");
    assert_eq!(li.wait_closed(T).await.unwrap(), Some(4006));

    // Locked: nobody more with a link; a clinician's seat still enters.
    doctor
        .send_json(&json!({"type": "lock", "locked": true}))
        .await
        .unwrap();
    queue_where(&doctor, |q| q["locked"] == true).await;
    let late = SignalingClient::connect(&s.ws_url).await.unwrap();
    late.send_json(
        &json!({"type": "join", "v": 1, "token": s.invite(&room, "patient").await,
                           "name": "Late", "publish": {"audio": false, "video": false}}),
    )
    .await
    .unwrap();
    late.expect_error("room_locked", T).await.unwrap();
    assert_eq!(late.wait_closed(T).await.unwrap(), Some(4007));
    // (Another clinician's: the doctor's own seat entering again would take over from the
    // doctor's connection, see `one_clinician_on_two_tabs_is_one_presence`.)
    let seat = s.invite(&room, "specialist").await;
    SignalingClient::connect(&s.ws_url)
        .await
        .unwrap()
        .join(&seat, "", false, false)
        .await
        .expect("a seat enters a locked room");
    doctor
        .send_json(&json!({"type": "lock", "locked": false}))
        .await
        .unwrap();

    // Someone who leaves the queue, or whose connection drops, is gone from it.
    let (zhou, _) = waiter(s, &room, "Zhou").await;
    queue_where(&doctor, |q| waiting_names(q) == ["Zhou"]).await;
    zhou.send_json(&json!({"type": "leave"})).await.unwrap();
    queue_where(&doctor, |q| waiting_names(q).is_empty()).await;
    let (zhao, _) = waiter(s, &room, "Zhao").await;
    queue_where(&doctor, |q| waiting_names(q) == ["Zhao"]).await;
    drop(zhao);
    queue_where(&doctor, |q| waiting_names(q).is_empty()).await;

    // A single-use link: whoever's connection drops while waiting (never let in) may come back
    // with it; the use is given back as the leave is written.
    let link = s.invite(&room, "patient").await;
    let first = SignalingClient::connect(&s.ws_url).await.unwrap();
    let join = json!({"type": "join", "v": 1, "token": link, "name": "Sun",
                      "publish": {"audio": false, "video": false}});
    first.send_json(&join).await.unwrap();
    first.next_event("waiting", T).await.unwrap();
    queue_where(&doctor, |q| waiting_names(q) == ["Sun"]).await;
    drop(first);
    queue_where(&doctor, |q| waiting_names(q).is_empty()).await;
    let mut back = None;
    for _ in 0..50 {
        let c = SignalingClient::connect(&s.ws_url).await.unwrap();
        c.send_json(&join).await.unwrap();
        let m = c.next_event_of(&["waiting", "error"], T).await.unwrap();
        if m["type"] == "waiting" {
            back = Some(c);
            break;
        }
        assert_eq!(m["code"], "invite_used_up", "{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        back.is_some(),
        "the single-use link did not let them back in line"
    );

    // Every step is on the record.
    let actions = common::action_outcomes(&s.audit_entries(&sup, &room).await);
    for want in [
        "waiting.message:ok",
        "waiting.admitted:ok",
        "waiting.sent_back:ok",
        "waiting.declined:ok",
        "room.locked:ok",
        "room.unlocked:ok",
        "access.denied:denied",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }
}

common::on_both_databases!(
    #[tokio::test]
    waiting_admitting_declining_sending_back_and_locking,
    |_| {}
);

/// A waiting webrtc-rs peer is given no peer connection, so no media reaches it or leaves
/// it; once admitted it sends and receives like anyone; sent back, it stops.
async fn no_media_while_waiting(s: &TestServer) {
    let room = s.create_room_waiting("Media and the waiting room").await;
    let opts = |token: String, name: &str, marker: u8| JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    };
    let doctor = TestPeer::join(opts(s.invite(&room, "doctor").await, "", 0xA1))
        .await
        .unwrap();
    doctor.wait_connected(CONNECT).await.unwrap();
    doctor.start_media();
    let (mut patient, waiting) =
        TestPeer::join_waiting(opts(s.invite(&room, "patient").await, "Li Hua", 0xB2))
            .await
            .unwrap();
    assert_eq!(waiting["position"], 1);
    // Nothing to connect to: no offer comes while waiting.
    assert!(
        patient
            .next_event("offer", Duration::from_secs(2))
            .await
            .is_err(),
        "an offer reached someone waiting"
    );
    let q = doctor.next_event("waiting_room", T).await.unwrap();
    let id = q["waiting"][0]["id"].as_str().unwrap().to_owned();

    doctor
        .send_json(json!({"type": "admit", "participant_id": id}))
        .await
        .unwrap();
    patient.admitted(T).await.unwrap();
    patient.wait_connected(CONNECT).await.unwrap();
    patient.start_media();
    for (rx, from) in [(&patient, &doctor), (&doctor, &patient)] {
        for kind in ["audio", "video"] {
            let got = rx.wait_received(&from.id(), kind, 25, MEDIA).await.unwrap();
            assert!(got.only_marker(from.options().marker));
        }
    }

    // Sent back: the doctor's media stops reaching them (their peer connection is gone).
    doctor
        .send_json(json!({"type": "send_back", "participant_id": patient.id()}))
        .await
        .unwrap();
    let w = patient.next_event("waiting", T).await.unwrap();
    // No words of the doctor's: the client says why in the patient's language, from the code.
    assert_eq!(
        (w["sent_back_why"].as_str(), w["clinic_reason"].as_str()),
        (Some("care_team"), None),
        "{w}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = patient.received(&doctor.id(), "audio").packets;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = patient.received(&doctor.id(), "audio").packets;
    assert_eq!(before, after, "media reached someone sent back to wait");
}

/// The `waiting` messages `c` has had so far, as (position, of).
fn places_told(c: &SignalingClient) -> Vec<(u64, u64)> {
    c.history()
        .iter()
        .filter(|m| m["type"] == "waiting")
        .map(|m| (m["position"].as_u64().unwrap(), m["of"].as_u64().unwrap()))
        .collect()
}

/// A clinician's connection drops (no `leave`) while two patients wait: the patients keep their
/// places and are told nothing changed, the queue outlives the clinician's time in the room,
/// and another clinician of the care team admits the first.
async fn a_clinician_who_drops_leaves_the_queue_as_it_was(s: &TestServer) {
    let room = s.create_room_waiting("Follow-up").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let doctor_id = doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap()["you"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (li, _) = waiter(s, &room, "Li Hua").await;
    let (wang, _) = waiter(s, &room, "Wang Fang").await;
    let q = queue_where(&doctor, |q| waiting_names(q).len() == 2).await;
    let li_id = waiting_id(&q, "Li Hua");

    // The specialist's seat and connection are made first, so that its join comes as soon
    // after the drop as it can.
    let seat = s.invite(&room, "specialist").await;
    let specialist = SignalingClient::connect(&s.ws_url).await.unwrap();
    doctor.abort();
    // Another clinician of the care team comes in: the queue is as it was, in order.
    let joined = specialist.join(&seat, "", false, false).await.unwrap();
    assert_eq!(
        waiting_names(&joined["waiting_room"]),
        ["Li Hua", "Wang Fang"]
    );
    // The doctor does not come back within the resume window: they are gone, the queue stays.
    // The specialist is told so, unless the window was over before its own join was in (a
    // loaded machine): then the doctor is no longer among the participants it was given.
    let reconnecting = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == doctor_id.as_str());
    if reconnecting {
        let left = specialist
            .next_event_where("participant_left", T, |m| {
                m["participant_id"] == doctor_id.as_str()
            })
            .await
            .unwrap();
        assert_eq!(left["reason"], "disconnected");
    }
    assert_eq!(
        places_told(&li),
        [(1, 1), (1, 2)],
        "Li Hua kept first place"
    );
    assert_eq!(places_told(&wang), [(2, 2)], "Wang Fang kept second place");

    specialist
        .send_json(&json!({"type": "admit"}))
        .await
        .unwrap();
    let welcome = li.next_event("joined", T).await.unwrap();
    assert_eq!(welcome["you"]["id"], li_id.as_str());
    let others: Vec<&str> = welcome["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        others,
        ["specialist"],
        "the dropped doctor is not in the room"
    );
    let w = wang.next_event("waiting", T).await.unwrap();
    assert_eq!(
        (w["position"].as_u64(), w["of"].as_u64()),
        (Some(1), Some(1))
    );
    let q = queue_where(&specialist, |q| waiting_names(q) == ["Wang Fang"]).await;
    assert_eq!(q["waiting"].as_array().unwrap().len(), 1);
}

common::on_both_databases!(
    #[tokio::test]
    a_clinician_who_drops_leaves_the_queue_as_it_was,
    |c| c.rooms.resume_window_s = 2
);

/// One clinician signed in on two tabs: their seat joined twice, the second time with no
/// resume token. One account is one presence: the second tab takes over (the first is closed
/// with 4003, `replaced`, the code a reload gets), and neither the room, the queue nor the
/// attendance holds them twice.
async fn one_clinician_on_two_tabs_is_one_presence(s: &TestServer) {
    let room = s.create_room_waiting("Two tabs").await;
    let first = SignalingClient::connect(&s.ws_url).await.unwrap();
    let first_joined = first
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    let first_id = first_joined["you"]["id"].as_str().unwrap().to_owned();
    let (li, _) = waiter(s, &room, "Li Hua").await;
    queue_where(&first, |q| waiting_names(q) == ["Li Hua"]).await;

    let second = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = second
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    assert_eq!(
        first.wait_closed(T).await.unwrap(),
        Some(4003),
        "the first tab is told it was replaced"
    );
    assert_ne!(joined["you"]["id"], first_id.as_str());
    assert_eq!(
        joined["participants"],
        json!([]),
        "the first tab is not a second doctor in the room"
    );
    assert_eq!(waiting_names(&joined["waiting_room"]), ["Li Hua"]);
    // Nothing moved in the queue.
    assert_eq!(places_told(&li), [(1, 1)]);

    second.send_json(&json!({"type": "admit"})).await.unwrap();
    let welcome = li.next_event("joined", T).await.unwrap();
    let doctors: Vec<&Value> = welcome["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "doctor")
        .collect();
    assert_eq!(doctors.len(), 1, "{welcome}");
    assert_eq!(doctors[0]["id"], joined["you"]["id"]);

    // The attendance: the doctor is there once, the patient in, nobody waiting.
    let path = format!("/api/v1/rooms/{room}/attendance");
    let deadline = tokio::time::Instant::now() + T;
    let now = loop {
        let (st, a) = s.api("GET", &path, None, None).await;
        assert_eq!(st, 200, "{a}");
        if a["patients"]["present"] == 1 && a["patients"]["waiting"] == 0 {
            break a;
        }
        assert!(tokio::time::Instant::now() < deadline, "{a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(now["clinicians"].as_array().unwrap().len(), 1, "{now}");
    assert_eq!(now["clinicians"][0]["present"], true, "{now}");
}

common::on_both_databases!(
    #[tokio::test]
    one_clinician_on_two_tabs_is_one_presence,
    |_| {}
);

/// A clinician's connection drops mid-huddle. The huddle goes on while they may come back
/// (the patient still hears none of the clinicians, and is told nothing new): a resume finds it
/// on. When they do not come back and no clinician is left, the huddle ends: the patient is
/// told (by nobody), and it is on the record as ended by the server.
async fn a_clinician_lost_mid_huddle(s: &TestServer) {
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let room = s.create_room("Huddle").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    let doctor_id = joined["you"]["id"].as_str().unwrap().to_owned();
    let resume_token = joined["resume_token"].as_str().unwrap().to_owned();
    let patient = SignalingClient::connect(&s.ws_url).await.unwrap();
    patient
        .join(&s.invite(&room, "patient").await, "Li Hua", false, false)
        .await
        .unwrap();
    doctor.next_event("participant_joined", T).await.unwrap();
    doctor
        .send_json(&json!({"type": "huddle", "active": true}))
        .await
        .unwrap();
    let h = patient.next_event("huddle", T).await.unwrap();
    assert_eq!(
        (h["active"].as_bool(), h["by"].as_str()),
        (Some(true), Some(doctor_id.as_str()))
    );

    // Dropped, and back within the window: the huddle is still on.
    doctor.abort();
    let upd = patient
        .next_event_where("participant_updated", T, |m| {
            m["participant"]["id"] == doctor_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(upd["participant"]["connection"], "reconnecting");
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let resumed = doctor.resume(&resume_token).await.unwrap();
    assert_eq!(resumed["huddle"], true, "{resumed}");
    assert!(
        patient
            .next_event("huddle", Duration::from_millis(300))
            .await
            .is_err(),
        "the huddle did not end while the doctor could come back"
    );

    // Dropped for good: once they are gone, the huddle ends with them.
    doctor.abort();
    let left = patient
        .next_event_where("participant_left", T, |m| {
            m["participant_id"] == doctor_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(left["reason"], "disconnected");
    let h = patient.next_event("huddle", T).await.unwrap();
    assert_eq!(h["active"], false);
    assert!(h["by"].is_null(), "{h}");

    let entries = s.audit_entries(&sup, &room).await;
    let ended: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "huddle.ended")
        .collect();
    assert_eq!(ended.len(), 1, "{entries:?}");
    assert_eq!(ended[0]["actor"], "system", "{}", ended[0]);
}

common::on_both_databases!(
    #[tokio::test]
    a_clinician_lost_mid_huddle,
    |c| c.rooms.resume_window_s = 2
);

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    no_media_while_waiting,
    |_| {}
);

/// The care team moves the consultation while someone waits: they are told the new time at
/// once (the page then asks the server whether its link still opens now), and whoever comes
/// next is told it too. The time they were told first is the one the consultation had.
async fn people_waiting_are_told_when_the_consultation_moves(s: &TestServer) {
    let start = huizhen::domain::clock::now_unix() + 10 * 60;
    let (st, room) = s
        .api(
            "POST",
            "/api/v1/rooms",
            None,
            Some(json!({"title": "Follow-up", "waiting_room": true,
                        "slot": {"start": start, "minutes": 20}})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let (patient, waiting) = waiter(s, &room, "Wang Fang").await;
    assert_eq!(
        (&waiting["slot_start"], &waiting["slot_minutes"]),
        (&json!(start), &json!(20)),
        "{waiting}"
    );
    // Early, before anyone was admitted: the wait is the time until the agreed start.
    let estimate = |w: &serde_json::Value| w["estimated_wait_s"].as_i64().unwrap_or(-1);
    assert!(
        (9 * 60..=10 * 60).contains(&estimate(&waiting)),
        "{waiting}"
    );

    // Fifteen minutes later: links made now still open at once (30 minutes before).
    let later = start + 15 * 60;
    let (st, b) = s
        .api(
            "PUT",
            &format!("/api/v1/rooms/{room}/slot"),
            None,
            Some(json!({"start": later, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let told = patient.next_event("waiting", T).await.unwrap();
    assert_eq!(
        (&told["slot_start"], &told["slot_minutes"]),
        (&json!(later), &json!(30)),
        "{told}"
    );
    // Still in the line, in the same place: the clinic decides what happens next.
    assert_eq!((&told["position"], &told["of"]), (&json!(1), &json!(1)));
    assert!(
        (24 * 60..=25 * 60).contains(&estimate(&told)),
        "the wait follows the new time: {told}"
    );

    let (_second, waiting) = waiter(s, &room, "Li Lei").await;
    assert_eq!(waiting["slot_start"], json!(later), "{waiting}");

    // A consultation request's room moves with the request's new agreed time: the same.
    let county = s.institution("County hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            common::Place {
                institution: &county,
                department: Some(&cardiology),
                name: Some("Prof. Zhao"),
                ..common::Place::default()
            },
        )
        .await;
    let (st, r) = s
        .api(
            "POST",
            "/api/v1/referrals",
            None,
            Some(json!({
                "target_department_id": cardiology, "patient_ref": "P-7", "reason": "Angina",
                "question": "Stable?", "urgency": "routine",
                "proposed_times": [{"start": start, "minutes": 20}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let rid = r["id"].as_str().unwrap().to_owned();
    let (st, r) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{rid}/accept"),
            Some(&cardio),
            Some(json!({"start": start, "minutes": 20})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let referred = r["room_id"].as_str().unwrap().to_owned();
    let (referred_patient, waiting) = waiter(s, &referred, "Chen Jie").await;
    assert_eq!(waiting["slot_start"], json!(start), "{waiting}");
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{rid}/propose"),
            Some(&cardio),
            Some(json!({"start": later, "minutes": 40})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{rid}/accept"),
            None,
            None,
        )
        .await;
    assert_eq!((st, &b["state"]), (200, &json!("scheduled")), "{b}");
    let told = referred_patient.next_event("waiting", T).await.unwrap();
    assert_eq!(
        (&told["slot_start"], &told["slot_minutes"]),
        (&json!(later), &json!(40)),
        "{told}"
    );

    // A room without a time says so, and guesses no wait before any admission.
    let plain = s.create_room_waiting("Walk-in").await;
    let (_c, waiting) = waiter(s, &plain, "Zhao Min").await;
    assert!(
        waiting["slot_start"].is_null()
            && waiting["slot_minutes"].is_null()
            && waiting["estimated_wait_s"].is_null(),
        "{waiting}"
    );
}

common::on_both_databases!(
    #[tokio::test]
    people_waiting_are_told_when_the_consultation_moves,
    |_| {}
);

/// A patient let in who reloads the page (a join on the same link that replaces their previous
/// connection) comes straight back in, even with the room locked since, and does not go to the
/// back of the queue behind someone who came later; the person waiting keeps their place. A
/// join on another link that names the same resume token gains nothing: it waits.
async fn an_admitted_patient_who_reloads_comes_straight_back_in(s: &TestServer) {
    let room = s.create_room_waiting("Follow-up, reload").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    let token = s.invite(&room, "patient").await;
    let join = |resume: Option<&str>| {
        let mut msg = json!({"type": "join", "v": 1, "token": token, "name": "Li Hua",
                             "publish": {"audio": false, "video": false}});
        if let Some(r) = resume {
            msg["replaces"] = json!(r);
        }
        msg
    };
    let li = SignalingClient::connect(&s.ws_url).await.unwrap();
    li.send_json(&join(None)).await.unwrap();
    li.next_event("waiting", T).await.unwrap();
    let q = queue_where(&doctor, |q| waiting_names(q) == ["Li Hua"]).await;
    doctor
        .send_json(&json!({"type": "admit", "participant_id": waiting_id(&q, "Li Hua")}))
        .await
        .unwrap();
    let welcome = li.next_event("joined", T).await.unwrap();
    let resume = welcome["resume_token"].as_str().unwrap().to_owned();
    let (wang, w) = waiter(s, &room, "Wang Fang").await;
    assert_eq!(
        (w["position"].as_u64(), w["of"].as_u64()),
        (Some(1), Some(1))
    );
    // The attendance counts Li Hua in and Wang Fang waiting, not both in.
    let path = format!("/api/v1/rooms/{room}/attendance");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (st, a) = s.api("GET", &path, None, None).await;
        assert_eq!(st, 200, "{a}");
        let p = &a["patients"];
        if p["waiting"] == 1 {
            assert_eq!(p["present"], 1, "{a}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doctor
        .send_json(&json!({"type": "lock", "locked": true}))
        .await
        .unwrap();
    queue_where(&doctor, |q| q["locked"] == true).await;

    // The reload: in at once, the old connection closed as replaced.
    let again = SignalingClient::connect(&s.ws_url).await.unwrap();
    again.send_json(&join(Some(&resume))).await.unwrap();
    let back = again
        .next_event_of(&["waiting", "joined", "error"], T)
        .await
        .unwrap();
    assert_eq!(back["type"], "joined", "a reload waits again: {back}");
    assert_eq!(li.wait_closed(T).await.unwrap(), Some(4003));
    let left = doctor.next_event("participant_left", T).await.unwrap();
    assert_eq!(left["reason"], "replaced");
    doctor.next_event("participant_joined", T).await.unwrap();
    // The queue is as it was: Wang Fang alone in it, first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let told = places_told(&wang);
    assert!(
        told.iter().all(|p| *p == (1, 1)),
        "Wang Fang kept first place: {told:?}"
    );
    let q = doctor
        .next_event("waiting_room", Duration::from_millis(500))
        .await;
    if let Ok(q) = q {
        assert_eq!(waiting_names(&q), ["Wang Fang"], "{q}");
    }

    // Another link naming the reloaded patient's resume token: no way past the lock for it.
    let other = s.invite(&room, "patient").await;
    let stranger = SignalingClient::connect(&s.ws_url).await.unwrap();
    stranger
        .send_json(
            &json!({"type": "join", "v": 1, "token": other, "name": "Li Hua",
                           "publish": {"audio": false, "video": false},
                           "replaces": back["resume_token"]}),
        )
        .await
        .unwrap();
    let turned = stranger
        .next_event_of(&["waiting", "joined", "error"], T)
        .await
        .unwrap();
    assert_eq!(turned["type"], "error", "{turned}");
    assert_eq!(turned["code"], "room_locked", "{turned}");
}

common::on_both_databases!(
    #[tokio::test]
    an_admitted_patient_who_reloads_comes_straight_back_in,
    |_| {}
);
