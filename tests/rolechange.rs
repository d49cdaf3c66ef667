//! Role changes over the real server, with webrtc-rs peers over real UDP: the care team lets an
//! observer speak (they become a guest) and makes a guest only watch again. The person is told,
//! the others see the new role, the media follows by renegotiation (a guest's audio and video
//! reach the others; an observer's never do), and only the care team changes only those roles.
//! Every change, and every refusal that may be misuse, is on the record; the participant's row
//! keeps the role they ended with, and the person's link the role it lets in next (a join from
//! another tab or device comes in with the changed role).

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, SignalingClient, TestPeer, join_message};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);

async fn peer(
    s: &TestServer,
    room: &str,
    role: &str,
    name: &str,
    marker: u8,
    sends: bool,
) -> TestPeer {
    let p = TestPeer::join(JoinOptions {
        ws_url: s.ws_url.clone(),
        token: s.invite(room, role).await,
        name: name.into(),
        publish_audio: sends,
        publish_video: sends,
        marker,
        h264: false,
    })
    .await
    .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    p.wait_connected(CONNECT).await.unwrap();
    if sends {
        p.start_media();
    }
    p
}

/// Packets `rx` got from `from` of `kind` over `window`, after letting in-flight ones land.
async fn arriving(rx: &TestPeer, from: &TestPeer, kind: &str, window: Duration) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rx.received(&from.id(), kind).packets;
    tokio::time::sleep(window).await;
    rx.received(&from.id(), kind).packets - before
}

/// The role `link` lets in next, as the join page is told (`POST /invitations/check`).
async fn role_of_link(s: &TestServer, link: &str) -> String {
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/invitations/check",
            Some(""),
            Some(json!({"token": link})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["role"].as_str().unwrap().to_owned()
}

/// The `participant_updated` telling `rx` that `who` has `role`.
async fn update_about(rx: &TestPeer, who: &TestPeer, role: &str) -> Value {
    let id = who.id();
    rx.next_event_where("participant_updated", T, |m| {
        m["participant"]["id"] == id.as_str() && m["participant"]["role"] == role
    })
    .await
    .unwrap()["participant"]
        .clone()
}

async fn an_observer_let_speak_and_made_to_watch_again(s: &TestServer) {
    let room = s.create_room("Teaching consultation").await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let doctor = peer(s, &room, "doctor", "", 0xA1, true).await;
    let patient = peer(s, &room, "patient", "Li Hua", 0xC3, true).await;
    patient
        .send_json(json!({"type": "consent", "purpose": "observer_present", "given": true}))
        .await
        .unwrap();
    patient
        .next_event_where("consent", T, |m| m["yours"] == json!(["observer_present"]))
        .await
        .unwrap();
    let trainee = peer(s, &room, "observer", "Trainee Zhang", 0xD4, false).await;
    trainee
        .wait_received(&doctor.id(), "audio", 25, MEDIA)
        .await
        .unwrap();

    // Refused: a patient changing anyone, the care team making a patient an observer or an
    // observer a doctor, anyone changing a clinician. Each is told why, nothing changes.
    for (who, target, role) in [
        (&patient, &trainee, "guest"),
        (&doctor, &patient, "observer"),
        (&doctor, &trainee, "doctor"),
        (&doctor, &trainee, "specialist"),
    ] {
        who.send_json(json!({"type": "set_role", "participant_id": target.id(), "role": role}))
            .await
            .unwrap();
        let e = who.next_event("error", T).await.unwrap();
        assert_eq!(e["code"], "forbidden", "{role}: {e}");
        assert_eq!(e["fatal"], false);
    }
    // A role that does not exist is not understood at all.
    doctor
        .send_json(json!({"type": "set_role", "participant_id": trainee.id(), "role": "admin"}))
        .await
        .unwrap();
    assert_eq!(
        doctor.next_event("error", T).await.unwrap()["code"],
        "bad_message"
    );

    // Let speak: the trainee is told, the others see a guest who publishes, the trainee's next
    // offer names the m-lines for their microphone and camera, and their media reaches the
    // doctor and the patient.
    trainee.publish_late().await.unwrap();
    doctor
        .send_json(json!({"type": "set_role", "participant_id": trainee.id(), "role": "guest"}))
        .await
        .unwrap();
    let told = trainee.next_event("role_changed", T).await.unwrap();
    assert_eq!(
        (told["role"].as_str(), told["by"].as_str()),
        (Some("guest"), Some(doctor.id().as_str()))
    );
    let seen = update_about(&patient, &trainee, "guest").await;
    assert_eq!(seen["publishing"], json!({"audio": true, "video": true}));
    let offer = trainee
        .next_event_where("offer", T, |m| m.get("publish_mids").is_some())
        .await
        .unwrap();
    assert!(
        offer["publish_mids"]["audio"].is_string() && offer["publish_mids"]["video"].is_string()
    );
    for rx in [&doctor, &patient] {
        for kind in ["audio", "video"] {
            rx.wait_received(&trainee.id(), kind, 25, MEDIA)
                .await
                .unwrap_or_else(|e| panic!("the guest's {kind}: {e:#}"));
        }
    }
    // Asked again (a second clinician's click): nothing more happens.
    doctor
        .send_json(json!({"type": "set_role", "participant_id": trainee.id(), "role": "guest"}))
        .await
        .unwrap();
    assert!(
        trainee
            .next_event("role_changed", Duration::from_secs(1))
            .await
            .is_err()
    );

    // Made to only watch: told, seen as an observer who publishes nothing, their media stops
    // reaching anyone, and they still receive everyone.
    doctor
        .send_json(json!({"type": "set_role", "participant_id": trainee.id(), "role": "observer"}))
        .await
        .unwrap();
    assert_eq!(
        trainee.next_event("role_changed", T).await.unwrap()["role"],
        "observer"
    );
    let seen = update_about(&patient, &trainee, "observer").await;
    assert_eq!(seen["publishing"], json!({"audio": false, "video": false}));
    for rx in [&doctor, &patient] {
        for kind in ["audio", "video"] {
            assert_eq!(
                arriving(rx, &trainee, kind, Duration::from_secs(2)).await,
                0,
                "an observer's {kind} was forwarded"
            );
        }
    }
    assert!(arriving(&trainee, &doctor, "audio", Duration::from_secs(1)).await > 10);

    // Let speak once more: new m-lines, media again.
    trainee.stop_media();
    trainee.publish_late().await.unwrap();
    doctor
        .send_json(json!({"type": "set_role", "participant_id": trainee.id(), "role": "guest"}))
        .await
        .unwrap();
    trainee.next_event("role_changed", T).await.unwrap();
    // Two renegotiations come first (the trainee's publishing, the doctor's receiving): wait
    // for the packets rather than counting over a fixed window.
    let before = doctor.received(&trainee.id(), "audio").packets;
    doctor
        .wait_received(&trainee.id(), "audio", before + 10, MEDIA)
        .await
        .expect("the trainee's audio again");

    // On the record: both kinds of change, with from and to, and the refusals.
    let entries = s.audit_entries(&sup, &room).await;
    let changes: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e["action"] == "participant.role_changed")
        .map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            (
                detail["from"].as_str().unwrap_or("").to_owned(),
                detail["to"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("observer", "guest"),
            ("guest", "observer"),
            ("observer", "guest")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let actions = common::action_outcomes(&entries);
    assert!(
        actions.iter().any(|a| a == "access.denied:denied"),
        "{actions:?}"
    );

    // The consultation's record names the role they ended with.
    let (st, _) = s
        .api("POST", &format!("/api/v1/rooms/{room}/end"), None, None)
        .await;
    assert_eq!(st, 204);
    let (st, sum) = s
        .api("GET", &format!("/api/v1/rooms/{room}/summary"), None, None)
        .await;
    assert_eq!(st, 200, "{sum}");
    let row = sum["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == trainee.id().as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["role"], "guest", "{row}");
}

/// A guest who reloads the page (a join that replaces them, on the same link) stays a guest; one
/// made to only watch stays an observer and publishes nothing, whatever their client offers.
async fn a_reload_keeps_the_role_the_care_team_gave(s: &TestServer) {
    let room = s.create_room("Follow-up").await;
    let doctor = peer(s, &room, "doctor", "", 0xA1, true).await;
    let token = s.invite(&room, "guest").await;
    let opts = |sends: bool| JoinOptions {
        ws_url: s.ws_url.clone(),
        token: token.clone(),
        name: "Interpreter Wang".into(),
        publish_audio: sends,
        publish_video: sends,
        marker: 0xE5,
        h264: false,
    };
    // Invited as a guest: heard and seen from the start, and no patient here to object.
    let guest = TestPeer::join(opts(true)).await.unwrap();
    assert_eq!(guest.joined_message()["you"]["role"], "guest");
    guest.wait_connected(CONNECT).await.unwrap();
    guest.start_media();
    doctor
        .wait_received(&guest.id(), "audio", 25, MEDIA)
        .await
        .unwrap();

    // Made to only watch, then the page reloads with its camera and microphone on.
    doctor
        .send_json(json!({"type": "set_role", "participant_id": guest.id(), "role": "observer"}))
        .await
        .unwrap();
    guest.next_event("role_changed", T).await.unwrap();
    let resume = guest.resume_token().unwrap();
    let again = TestPeer::join_replacing(opts(true), &resume).await.unwrap();
    drop(guest);
    let you = &again.joined_message()["you"];
    assert_eq!(you["role"], "observer", "{you}");
    assert_eq!(you["publishing"], json!({"audio": false, "video": false}));
    again.wait_connected(CONNECT).await.unwrap();
    again.start_media();
    assert_eq!(
        arriving(&doctor, &again, "audio", Duration::from_secs(2)).await,
        0
    );

    // Let speak, then another reload: still a guest.
    again.stop_media();
    again.publish_late().await.unwrap();
    doctor
        .send_json(json!({"type": "set_role", "participant_id": again.id(), "role": "guest"}))
        .await
        .unwrap();
    again.next_event("role_changed", T).await.unwrap();
    let resume = again.resume_token().unwrap();
    let third = TestPeer::join_replacing(opts(true), &resume).await.unwrap();
    drop(again);
    assert_eq!(third.joined_message()["you"]["role"], "guest");
    third.wait_connected(CONNECT).await.unwrap();
    third.start_media();
    doctor
        .wait_received(&third.id(), "audio", 25, MEDIA)
        .await
        .unwrap();
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    an_observer_let_speak_and_made_to_watch_again,
    |_| {}
);

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_reload_keeps_the_role_the_care_team_gave,
    |_| {}
);

/// A guest let speak whose page reloads at once, before the change is written (a busy or slow
/// database): the join reads the older "observer" from the link, but the room, which made the
/// change, decides. They come back a guest whose microphone and camera are received, and the
/// doctor hears them. (This raced: signaling dropped what the client offered because storage
/// still said "observer", and the room then gave back the role but not the media, a guest
/// nobody could hear. `a_reload_keeps_the_role_the_care_team_gave` met it one run in four on
/// PostgreSQL; holding the write here makes it happen every time.)
async fn a_reload_before_the_change_is_written_keeps_the_new_role(s: &TestServer) {
    let room = s.create_room("Follow-up").await;
    let doctor = peer(s, &room, "doctor", "", 0xA1, true).await;
    // An interpreter's own link, with a use for a second device (so the link can be asked
    // which role it lets in next).
    let (st, made) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "guest", "max_uses": 2})),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    let opts = || JoinOptions {
        ws_url: s.ws_url.clone(),
        token: token.clone(),
        name: "Interpreter Wang".into(),
        publish_audio: true,
        publish_video: true,
        marker: 0xE6,
        h264: false,
    };
    let guest = TestPeer::join(opts()).await.unwrap();
    guest.wait_connected(CONNECT).await.unwrap();

    // Made to only watch, and that is on the record.
    doctor
        .send_json(json!({"type": "set_role", "participant_id": guest.id(), "role": "observer"}))
        .await
        .unwrap();
    guest.next_event("role_changed", T).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while role_of_link(s, &token).await != "observer" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never reached the link"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The database is held (another connection's write on the invitations), so letting them
    // speak is not written before the reload reads the link.
    let mut busy = {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::AnyConnection::connect(&s.database_url).await.unwrap();
        conn.execute("BEGIN").await.unwrap();
        conn.execute("UPDATE invites SET uses = uses")
            .await
            .unwrap();
        conn
    };
    doctor
        .send_json(json!({"type": "set_role", "participant_id": guest.id(), "role": "guest"}))
        .await
        .unwrap();
    guest.next_event("role_changed", T).await.unwrap();
    let resume = guest.resume_token().unwrap();
    let reopened = opts();
    let reload = tokio::spawn(async move { TestPeer::join_replacing(reopened, &resume).await });
    // Long enough for the join to read the link, short of SQLite's busy timeout (5 s).
    tokio::time::sleep(Duration::from_millis(700)).await;
    {
        use sqlx::Executor;
        busy.execute("ROLLBACK").await.unwrap();
    }
    let again = reload.await.unwrap().unwrap();
    drop(guest);
    let you = &again.joined_message()["you"];
    assert_eq!(you["role"], "guest", "{you}");
    assert_eq!(
        you["publishing"],
        json!({"audio": true, "video": true}),
        "{you}"
    );
    again.wait_connected(CONNECT).await.unwrap();
    again.start_media();
    doctor
        .wait_received(&again.id(), "audio", 25, MEDIA)
        .await
        .unwrap();
    assert_eq!(role_of_link(s, &token).await, "guest");
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_reload_before_the_change_is_written_keeps_the_new_role,
    |_| {}
);

/// A role change follows the person, who is their link: the same observer link (a trainee's,
/// with a few uses) opened again on another device (a fresh join, no resume token) comes in with the role the care team gave,
/// and the join page is told that role; made to only watch again, the next device comes in as
/// an observer publishing nothing, whatever its client (whose page may have been told "guest"
/// just before) offers. Every change is on the record.
async fn a_role_change_follows_the_person_to_another_device(s: &TestServer) {
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let room = s.create_room("Teaching round").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    // A trainee's own observer link, with a use for each of their devices.
    let (st, made) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "observer", "max_uses": 3})),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let link = made["token"].as_str().unwrap().to_owned();
    let laptop = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = laptop
        .join(&link, "Trainee Zhou", false, false)
        .await
        .unwrap();
    assert_eq!(joined["you"]["role"], "observer");
    let id = joined["you"]["id"].as_str().unwrap().to_owned();
    assert_eq!(role_of_link(s, &link).await, "observer");

    doctor
        .send_json(&json!({"type": "set_role", "participant_id": id, "role": "guest"}))
        .await
        .unwrap();
    let changed = laptop.next_event("role_changed", T).await.unwrap();
    assert_eq!(changed["role"], "guest");
    // On the record with the change before the next join can read it: wait for it there.
    let deadline = tokio::time::Instant::now() + T;
    while role_of_link(s, &link).await != "guest" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never reached the link"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let phone = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = phone
        .join(&link, "Trainee Zhou", false, false)
        .await
        .unwrap();
    assert_eq!(joined["you"]["role"], "guest", "{}", joined["you"]);

    // Made to only watch again (on the phone): the next device, offering to send, watches.
    let phone_id = joined["you"]["id"].as_str().unwrap().to_owned();
    doctor
        .send_json(&json!({"type": "set_role", "participant_id": phone_id, "role": "observer"}))
        .await
        .unwrap();
    phone.next_event("role_changed", T).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while role_of_link(s, &link).await != "observer" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change never reached the link"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tablet = SignalingClient::connect(&s.ws_url).await.unwrap();
    tablet
        .send_json(&join_message(&link, "Trainee Zhou", true, true, None))
        .await
        .unwrap();
    let joined = tablet.next_event_of(&["joined", "error"], T).await.unwrap();
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["you"]["role"], "observer");
    assert_eq!(
        joined["you"]["publishing"],
        json!({"audio": false, "video": false})
    );

    // A class's link (unlimited uses) is not one person: letting one trainee speak leaves the
    // next one who opens it an observer.
    let class = s.invite(&room, "observer").await;
    let first = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = first
        .join(&class, "Trainee Li", false, false)
        .await
        .unwrap();
    let first_id = joined["you"]["id"].as_str().unwrap().to_owned();
    doctor
        .send_json(&json!({"type": "set_role", "participant_id": first_id, "role": "guest"}))
        .await
        .unwrap();
    assert_eq!(
        first.next_event("role_changed", T).await.unwrap()["role"],
        "guest"
    );
    let next = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = next
        .join(&class, "Trainee Sun", false, false)
        .await
        .unwrap();
    assert_eq!(joined["you"]["role"], "observer", "{}", joined["you"]);

    let entries = s.audit_entries(&sup, &room).await;
    let changes = entries
        .iter()
        .filter(|e| e["action"] == "participant.role_changed")
        .count();
    assert_eq!(changes, 3, "{entries:?}");
}

common::on_both_databases!(
    #[tokio::test]
    a_role_change_follows_the_person_to_another_device,
    |_| {}
);
