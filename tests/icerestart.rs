//! ICE restart (docs/protocol.md, "ICE restart"): a participant whose path changes mid-call
//! (Wi-Fi to 4G: another proxy, so the server sees a new source address, while the old path
//! goes dead) asks for an ICE restart over signaling; media comes back on the same peer
//! connection, with the same participant id and no rejoin, and the others see the participant
//! reconnecting, then connected, never leaving. Real server, real webrtc-rs peers over UDP on
//! 127.0.0.1, the impairment proxy standing for each network.

use std::time::Duration;

use crate::common::TestServer;
use crate::common::impaired::{Count, peer_via, proxy_for};
use crate::common::peer::TestPeer;
use huizhen::domain::role::AccountRole;
use huizhen::sfu::worker_of_ufrag;
use serde_json::{Value, json};

/// Packets that show a path works (~1 s of audio and of video).
const ENOUGH: u64 = 25;
const MEDIA: Duration = Duration::from_secs(30);
const EVENT: Duration = Duration::from_secs(20);

/// Messages of `kind` that `p` has received so far.
fn received_messages(p: &TestPeer, kind: &str) -> usize {
    p.history().iter().filter(|m| m["type"] == kind).count()
}

/// The ICE ufrag an SDP names.
fn ufrag(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("an a=ice-ufrag line")
        .trim()
}

/// A `participant_updated` about `id` saying `connection`.
fn update_about(id: &str, connection: &'static str) -> impl Fn(&Value) -> bool {
    let id = id.to_owned();
    move |m: &Value| {
        m["participant"]["id"] == id.as_str() && m["participant"]["connection"] == connection
    }
}

/// Waits until `to` has received `more` packets of `kind` from `from` beyond `since`.
async fn flows_again(from: &TestPeer, to: &TestPeer, kind: &str, since: &Count, more: u64) {
    to.wait_received(&from.id(), kind, since.received + more, MEDIA)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} -> {} {kind} after the restart: {e:#}",
                from.options().name,
                to.options().name
            )
        });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_path_change_restarts_ice_and_media_continues_without_a_rejoin() {
    let s = TestServer::start().await;
    let room = s.create_room("Patient on the move").await;
    let wifi = proxy_for(&s, 31).await;
    let cellular = proxy_for(&s, 32).await;
    let doctor = peer_via(&s, &room, "doctor", "doctor", 0x41, None).await;
    let patient = peer_via(
        &s,
        &room,
        "patient",
        "patient",
        0x52,
        Some(wifi.local_addr()),
    )
    .await;
    patient.assert_receives_from(&doctor, ENOUGH, MEDIA).await;
    doctor.assert_receives_from(&patient, ENOUGH, MEDIA).await;
    let id = patient.id();
    let joined_before = received_messages(&patient, "joined");
    let offers_before = received_messages(&patient, "offer");
    let first_offer = patient
        .history()
        .into_iter()
        .find(|m| m["type"] == "offer")
        .unwrap();
    let old_ufrag = ufrag(first_offer["sdp"].as_str().unwrap()).to_owned();

    // The Wi-Fi path dies; from now on the patient's network is the cellular one.
    wifi.handle().blackout(Duration::from_secs(600));
    patient.set_media_via(cellular.local_addr());
    patient
        .send_json(json!({"type": "ice_restart"}))
        .await
        .unwrap();

    // The doctor sees the patient reconnecting (a state, not a leave)...
    doctor
        .next_event_where(
            "participant_updated",
            EVENT,
            update_about(&id, "reconnecting"),
        )
        .await
        .expect("the doctor is told the patient is reconnecting");
    // ...the patient gets the restart's offer (answered on its own) on the same peer
    // connection...
    let offer = patient
        .next_event_where("offer", EVENT, |m| {
            m["offer_id"]
                .as_u64()
                .is_some_and(|o| o > offers_before as u64)
        })
        .await
        .expect("an offer restarting ICE");
    // Fresh credentials, still naming the media worker (ICE-TCP routes by it).
    let new_ufrag = ufrag(offer["sdp"].as_str().unwrap());
    assert_ne!(new_ufrag, old_ufrag);
    assert_eq!(worker_of_ufrag(new_ufrag), worker_of_ufrag(&old_ufrag));
    assert!(worker_of_ufrag(new_ufrag).is_some(), "{new_ufrag}");
    // ...and once ICE is up on the new path, the doctor sees the patient connected again.
    doctor
        .next_event_where("participant_updated", EVENT, update_about(&id, "connected"))
        .await
        .expect("the doctor is told the patient is connected again");

    // Media flows both ways again, all of it over the new path.
    let since = [
        Count::of(&doctor, &patient, "audio"),
        Count::of(&doctor, &patient, "video"),
        Count::of(&patient, &doctor, "audio"),
        Count::of(&patient, &doctor, "video"),
    ];
    flows_again(&doctor, &patient, "audio", &since[0], ENOUGH).await;
    flows_again(&doctor, &patient, "video", &since[1], ENOUGH).await;
    flows_again(&patient, &doctor, "audio", &since[2], ENOUGH).await;
    flows_again(&patient, &doctor, "video", &since[3], ENOUGH).await;
    let new_path = cellular.handle().stats();
    assert!(new_path.clients >= 1, "{new_path:?}");
    assert!(
        new_path.uplink.sent > ENOUGH && new_path.downlink.sent > ENOUGH,
        "the media took the new path: {new_path:?}"
    );

    // The same participant, in the same call: no rejoin, no leave, no failure.
    assert_eq!(patient.id(), id);
    assert_eq!(received_messages(&patient, "joined"), joined_before);
    assert_eq!(received_messages(&patient, "resumed"), 0);
    assert!(
        patient.offer_errors().is_empty(),
        "{:?}",
        patient.offer_errors()
    );
    assert!(!patient.close_info().closed, "{:?}", patient.close_info());
    let errors: Vec<Value> = patient
        .history()
        .into_iter()
        .filter(|m| m["type"] == "error")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let left = doctor
        .history()
        .into_iter()
        .filter(|m| m["type"] == "participant_left")
        .count();
    assert_eq!(left, 0, "the doctor was told someone left");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ice_restarts_past_the_limit_are_refused_and_the_call_carries_on() {
    let s = TestServer::start().await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let room = s.create_room("Flaky network").await;
    let doctor = peer_via(&s, &room, "doctor", "doctor", 0x43, None).await;
    let patient = peer_via(&s, &room, "patient", "patient", 0x54, None).await;
    patient.assert_receives_from(&doctor, ENOUGH, MEDIA).await;

    for _ in 0..huizhen::rooms::MAX_ICE_RESTARTS {
        patient
            .send_json(json!({"type": "ice_restart"}))
            .await
            .unwrap();
    }
    patient
        .send_json(json!({"type": "ice_restart"}))
        .await
        .unwrap();
    let refusal = patient
        .next_event("error", EVENT)
        .await
        .expect("the restart past the limit is refused");
    assert_eq!(refusal["code"], "ice_restart_limited", "{refusal}");
    assert_eq!(refusal["fatal"], false, "{refusal}");

    // The granted restarts completed: media flows, and the socket stays open.
    let id = patient.id();
    doctor
        .next_event_where("participant_updated", EVENT, update_about(&id, "connected"))
        .await
        .expect("connected again after the restarts");
    let since = Count::of(&doctor, &patient, "audio");
    flows_again(&doctor, &patient, "audio", &since, ENOUGH).await;
    let since = Count::of(&patient, &doctor, "video");
    flows_again(&patient, &doctor, "video", &since, ENOUGH).await;
    assert!(!patient.close_info().closed, "{:?}", patient.close_info());

    // The refusal is in the audit trail as possible misuse, with the participant named.
    let denied: Vec<Value> = s
        .audit_entries(&sup, &room)
        .await
        .into_iter()
        .filter(|e| {
            e["action"] == "access.denied"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("ice_restart_limited"))
        })
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].to_string().contains(&id), "{}", denied[0]);
    s.stop().await;
}
