//! Refusals that may be misuse are on the audit trail, and a flood of them cannot flood it:
//! a clinician probing another's room, a non-supervisor reading the trail, a non-pharmacist
//! opening the prescription queue, a participant's token used on another room, forged tokens
//! over HTTP and the WebSocket, and forbidden actions over signaling.

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{SignalingClient, join_message};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

/// The `access.denied` entries of the whole trail, with their parsed detail.
async fn denials(s: &TestServer, supervisor: &str) -> Vec<(String, Value)> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            (
                detail["reason"].as_str().unwrap_or("").to_owned(),
                e.clone(),
            )
        })
        .collect()
}

fn count(d: &[(String, Value)], reason: &str) -> usize {
    d.iter().filter(|(r, _)| r == reason).count()
}

#[tokio::test]
async fn refusals_that_may_be_misuse_are_audited() {
    let s = TestServer::start().await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    // A doctor of another institution (colleagues of the same one see its consultations).
    let elsewhere = s.institution("Another county hospital").await;
    let (_, other_doctor) = s
        .placed_account(
            "dr_b",
            AccountRole::Doctor,
            common::Place {
                institution: &elsewhere,
                ..common::Place::default()
            },
        )
        .await;
    let room = s.create_room("Cardiology").await;
    let second = s.create_room("Dermatology").await;

    // Another institution's consultation: not found, and on the record.
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}"),
            Some(&other_doctor),
            None,
        )
        .await;
    assert_eq!(st, 404);
    // A doctor reading the audit trail, opening the pharmacy's queue.
    let (st, _) = s
        .api("GET", "/api/v1/audit", Some(&other_doctor), None)
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .api("GET", "/api/v1/prescriptions", Some(&other_doctor), None)
        .await;
    assert_eq!(st, 403);

    // A participant's access token used on another consultation, and a forged one.
    let patient = s.member(&room, "patient", "Li Hua").await;
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{second}/documents"),
            Some(&patient.access),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let forged = format!("{}x", patient.access);
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            Some(&forged),
            None,
        )
        .await;
    assert_eq!(st, 401);

    // A tampered session token.
    let tampered = format!("{}x", s.doctor_token);
    let (st, _) = s.api("GET", "/api/v1/me", Some(&tampered), None).await;
    assert_eq!(st, 401);

    // A forged invitation on the WebSocket.
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    c.send_json(&join_message("not-a-token", "Mallory", true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_token", T).await.unwrap();

    // Forbidden actions over signaling: a patient ending the consultation, an observer
    // presenting a document.
    patient
        .ws
        .send_json(&json!({"type": "end_room"}))
        .await
        .unwrap();
    patient.ws.expect_error("forbidden", T).await.unwrap();
    common::consent_to(&patient.ws, &["observer_present"]).await;
    let observer = s.member(&room, "observer", "Student Zhou").await;
    observer
        .ws
        .send_json(&json!({"type": "follow", "document_id": null}))
        .await
        .unwrap();
    observer.ws.expect_error("forbidden", T).await.unwrap();

    let d = denials(&s, &sup).await;
    for reason in [
        "room_not_visible",
        "audit_not_supervisor",
        "prescriptions_not_pharmacist",
        "access_token_other_room",
        "invalid_access_token",
        "invalid_session_token",
        "signaling_invalid_token",
        "end_room_forbidden",
        "present_forbidden",
    ] {
        assert_eq!(count(&d, reason), 1, "{reason}: {d:?}");
    }
    // Entries name no address or token: the client is a pseudonym.
    let all = serde_json::to_string(&d).unwrap();
    assert!(!all.contains("127.0.0.1") && !all.contains(&patient.access));
    s.stop().await;
}

#[tokio::test]
async fn a_flood_of_refusals_is_recorded_up_to_a_limit_and_counted() {
    let s = TestServer::start().await;
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let room = s.create_room("Flood").await;
    let patient = s.member(&room, "patient", "Li Hua").await;
    let forged = format!("{}x", patient.access);
    let documents = format!("/api/v1/rooms/{room}/documents");
    // Fifty forged tokens from one address, twenty at a time.
    for _ in 0..5 {
        let calls = (0..10).map(|_| s.api("GET", &documents, Some(&forged), None));
        for (st, _) in futures_util::future::join_all(calls).await {
            assert_eq!(st, 401);
        }
    }
    let d = denials(&s, &sup).await;
    let recorded = count(&d, "invalid_access_token");
    assert_eq!(
        recorded,
        huizhen::audit::REFUSALS_PER_WINDOW as usize,
        "recorded up to the limit, not fifty"
    );
    const { assert!(huizhen::audit::REFUSALS_PER_WINDOW < 50) };
    s.stop().await;
}
