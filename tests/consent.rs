//! Consent over the real server: the patient is asked in both languages, with the words'
//! version; an observer is kept out until every patient present agrees, and sent back to wait
//! the moment consent is withdrawn; documents are shared with another institution's clinicians
//! only with the patient's consent; consent is the patient's alone; every step is audited.

use crate::common;

use std::time::Duration;

use crate::common::peer::SignalingClient;
use crate::common::{Place, TestServer, sample_pdf};
use huizhen::domain::clock::now_unix;
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn purposes(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

async fn consent_for_observers_and_for_sharing_with_another_hospital(s: &TestServer) {
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let room = s.create_room("Follow-up").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    assert!(
        joined["consent"].get("asked").is_none(),
        "only patients are asked"
    );
    let patient = SignalingClient::connect(&s.ws_url).await.unwrap();
    let welcome = patient
        .join(&s.invite(&room, "patient").await, "Li Hua", false, false)
        .await
        .unwrap();
    let asked = welcome["consent"]["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 3);
    for a in asked {
        assert!(a["zh"].as_str().unwrap().chars().any(|c| c > '\u{4e00}'));
        assert!(
            !a["en"].as_str().unwrap().is_empty() && !a["version"].as_str().unwrap().is_empty()
        );
    }
    assert_eq!(welcome["consent"]["yours"], json!([]));

    // No observer without the patient's consent.
    let observer_link = s.invite(&room, "observer").await;
    let observer = SignalingClient::connect(&s.ws_url).await.unwrap();
    observer
        .send_json(
            &json!({"type": "join", "v": 1, "token": observer_link, "name": "Trainee",
                           "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    observer.expect_error("consent_required", T).await.unwrap();
    // Consent is the patient's: a clinician cannot give it.
    doctor
        .send_json(&json!({"type": "consent", "purpose": "observer_present", "given": true}))
        .await
        .unwrap();
    doctor.expect_error("forbidden", T).await.unwrap();
    // Sent back to wait, the patient is still the consultation's: an observer stays out
    // while the clinicians talk without them.
    let patient_id = welcome["you"]["id"].as_str().unwrap().to_owned();
    doctor
        .send_json(&json!({"type": "send_back", "participant_id": patient_id}))
        .await
        .unwrap();
    patient.next_event("waiting", T).await.unwrap();
    let early = SignalingClient::connect(&s.ws_url).await.unwrap();
    early
        .send_json(
            &json!({"type": "join", "v": 1, "token": s.invite(&room, "observer").await,
                    "name": "Trainee", "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    early.expect_error("consent_required", T).await.unwrap();
    doctor
        .send_json(&json!({"type": "admit", "participant_id": patient_id}))
        .await
        .unwrap();
    patient.next_event("joined", T).await.unwrap();

    // Agreeing to words that are not the current ones records nothing.
    patient
        .send_json(
            &json!({"type": "consent", "purpose": "observer_present", "given": true,
                           "wording_version": "1999-01-01"}),
        )
        .await
        .unwrap();
    let e = patient.expect_error("wording_changed", T).await.unwrap();
    assert_eq!(e["fatal"], false, "{e}");
    let shown = asked
        .iter()
        .find(|a| a["purpose"] == "observer_present")
        .unwrap()["version"]
        .clone();

    // The patient agrees to the words shown: everyone is told, and the observer comes in.
    patient
        .send_json(
            &json!({"type": "consent", "purpose": "observer_present", "given": true,
                           "wording_version": shown}),
        )
        .await
        .unwrap();
    // (The doctor heard of consent when the patient came too: nothing was in force then.)
    let c = doctor
        .next_event_where("consent", T, |m| !purposes(&m["in_force"]).is_empty())
        .await
        .unwrap();
    assert_eq!(purposes(&c["in_force"]), ["observer_present"]);
    let c = patient
        .next_event_where("consent", T, |m| !purposes(&m["yours"]).is_empty())
        .await
        .unwrap();
    assert_eq!(purposes(&c["yours"]), ["observer_present"]);
    let observer = SignalingClient::connect(&s.ws_url).await.unwrap();
    let seen = observer
        .join(&s.invite(&room, "observer").await, "Trainee", false, false)
        .await
        .unwrap();
    assert_eq!(purposes(&seen["consent"]["in_force"]), ["observer_present"]);
    let observer_id = seen["you"]["id"].as_str().unwrap().to_owned();

    // Withdrawn: at once, the observer waits again, told why; the clinicians cannot let them
    // back in until the patient agrees again.
    patient
        .send_json(&json!({"type": "consent", "purpose": "observer_present", "given": false}))
        .await
        .unwrap();
    let w = observer.next_event("waiting", T).await.unwrap();
    assert!(
        w["sent_back"].as_str().unwrap().contains("not agreed"),
        "{w}"
    );
    // As a code too, for the client to say in the observer's language; no clinician's words.
    assert_eq!(w["sent_back_why"], "awaits_consent", "{w}");
    assert!(w["clinic_reason"].is_null(), "{w}");
    let left = doctor
        .next_event_where("participant_left", T, |m| {
            m["participant_id"] == observer_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(left["reason"], "sent_back");
    doctor
        .send_json(&json!({"type": "admit", "participant_id": observer_id}))
        .await
        .unwrap();
    doctor.expect_error("consent_required", T).await.unwrap();
    patient
        .send_json(&json!({"type": "consent", "purpose": "observer_present", "given": true}))
        .await
        .unwrap();
    doctor
        .next_event_where("consent", T, |m| !purposes(&m["in_force"]).is_empty())
        .await
        .unwrap();
    doctor
        .send_json(&json!({"type": "admit", "participant_id": observer_id}))
        .await
        .unwrap();
    observer.next_event("joined", T).await.unwrap();

    // A specialist of another hospital on the care team: sharing documents needs consent.
    let county = s.institution("County hospital").await;
    let (specialist, _) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            Place {
                institution: &county,
                ..Place::default()
            },
        )
        .await;
    s.add_to_care_team(&room, &specialist, None).await;
    let access = welcome["access_token"].as_str().unwrap();
    let pdf = sample_pdf();
    let (st, b) = s
        .begin_upload(&room, access, "血常规.pdf", &pdf, "everyone")
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (403, Some("consent_required")),
        "{b}"
    );
    patient
        .send_json(&json!({"type": "consent", "purpose": "external_sharing", "given": true}))
        .await
        .unwrap();
    patient
        .next_event_where("consent", T, |m| {
            purposes(&m["yours"]).contains(&"external_sharing".to_owned())
        })
        .await
        .unwrap();
    // Written through the audit writer: give it a moment to commit.
    let mut status = 0;
    for _ in 0..50 {
        status = s
            .begin_upload(&room, access, "血常规.pdf", &pdf, "everyone")
            .await
            .0;
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 201);

    let actions = common::action_outcomes(&s.audit_entries(&sup, &room).await);
    for want in [
        "consent.given:ok",
        "consent.withdrawn:ok",
        "access.denied:denied",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }
    assert!(
        actions.iter().any(|a| a == "document.rejected:denied"),
        "the refused share is on the record: {actions:?}"
    );
}

/// A patient's reload (a join that replaces their previous self) changes nothing they agreed
/// to: their new self is told it, observers stay, and withdrawing it afterwards takes effect,
/// for sharing too.
async fn a_reload_keeps_what_the_patient_agreed_to(s: &TestServer) {
    let room = s.create_room("Follow-up").await;
    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    let link = s.invite(&room, "patient").await;
    let patient = SignalingClient::connect(&s.ws_url).await.unwrap();
    let welcome = patient.join(&link, "Li Hua", false, false).await.unwrap();
    for purpose in ["observer_present", "external_sharing"] {
        patient
            .send_json(&json!({"type": "consent", "purpose": purpose, "given": true}))
            .await
            .unwrap();
    }
    patient
        .next_event_where("consent", T, |m| purposes(&m["yours"]).len() == 2)
        .await
        .unwrap();

    // The page reloads.
    let again = SignalingClient::connect(&s.ws_url).await.unwrap();
    let rejoined = again
        .rejoin(&link, "Li Hua", false, false, &welcome)
        .await
        .unwrap();
    assert_eq!(
        purposes(&rejoined["consent"]["yours"]),
        ["observer_present", "external_sharing"],
        "{rejoined}"
    );
    assert_eq!(
        purposes(&rejoined["consent"]["in_force"]),
        ["observer_present", "external_sharing"]
    );
    let observer = SignalingClient::connect(&s.ws_url).await.unwrap();
    observer
        .join(&s.invite(&room, "observer").await, "Trainee", false, false)
        .await
        .unwrap();

    // Withdrawn by the new self: sharing with another hospital is refused again.
    let county = s.institution("County hospital").await;
    let (specialist, _) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            Place {
                institution: &county,
                ..Place::default()
            },
        )
        .await;
    s.add_to_care_team(&room, &specialist, None).await;
    again
        .send_json(&json!({"type": "consent", "purpose": "external_sharing", "given": false}))
        .await
        .unwrap();
    again
        .next_event_where("consent", T, |m| {
            purposes(&m["yours"]) == ["observer_present"]
        })
        .await
        .unwrap();
    let access = rejoined["access_token"].as_str().unwrap();
    let pdf = sample_pdf();
    let mut status = 0;
    for _ in 0..50 {
        status = s
            .begin_upload(&room, access, "血常规.pdf", &pdf, "everyone")
            .await
            .0;
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 403, "the withdrawal took effect");
}

common::on_both_databases!(
    #[tokio::test]
    consent_for_observers_and_for_sharing_with_another_hospital,
    |_| {}
);

common::on_both_databases!(
    #[tokio::test]
    a_reload_keeps_what_the_patient_agreed_to,
    |_| {}
);

/// What the consultation's own side shared reaches another hospital's clinician only while a
/// patient of the consultation agrees, whenever that clinician came onto the care team: kept
/// from them in `joined`, over HTTP and in the summary; given with the consent, taken at once
/// with its withdrawal. The room's own clinicians and its patient read it throughout.
async fn the_rooms_documents_reach_another_hospital_only_with_consent(s: &TestServer) {
    let room = s.create_room("Follow-up").await;
    let doctor = s.member(&room, "doctor", "").await;
    let patient = s.member(&room, "patient", "Li Lei").await;
    // Shared while nobody of another hospital is on the care team.
    let (st, shared) = s
        .share(
            &room,
            &doctor.access,
            "血常规.pdf",
            &sample_pdf(),
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{shared}");
    let doc = shared["document"]["id"].as_str().unwrap().to_owned();

    // Then a county specialist is put on the care team, and enters.
    let county = s.institution("County hospital").await;
    let (zhao_id, zhao) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            Place {
                institution: &county,
                name: Some("赵敏"),
                ..Place::default()
            },
        )
        .await;
    s.add_to_care_team(&room, &zhao_id, None).await;
    let specialist = s.member_with(&s.enter(&room, Some(&zhao)).await, "").await;
    let listed = |joined: &Value| {
        joined["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&specialist.joined), Vec::<String>::new());
    assert_eq!(specialist.joined["documents_withheld"], json!([doc]));
    assert!(!specialist.joined.to_string().contains("血常规"));
    let reads = |access: String| {
        let (list, content) = (
            format!("/api/v1/rooms/{room}/documents"),
            format!("/api/v1/rooms/{room}/documents/{doc}/content"),
        );
        async move {
            let (st, b) = s.api("GET", &list, Some(&access), None).await;
            assert_eq!(st, 200, "{b}");
            let n = b["documents"].as_array().unwrap().len();
            let resp = s.raw("GET", &content, &access, None).await;
            (n, resp.status().as_u16())
        }
    };
    assert_eq!(reads(specialist.access.clone()).await, (0, 403));
    assert_eq!(reads(doctor.access.clone()).await, (1, 200));
    assert_eq!(reads(patient.access.clone()).await, (1, 200));
    let (st, summary) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/summary"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 200, "{summary}");
    assert_eq!(summary["documents"], json!([]), "{summary}");

    // The patient agrees: the specialist is given it, and reads it.
    patient
        .ws
        .send_json(&json!({"type": "consent", "purpose": "external_sharing", "given": true}))
        .await
        .unwrap();
    let given = specialist
        .ws
        .next_event("document_shared", T)
        .await
        .unwrap();
    assert_eq!(given["document"]["id"], doc.as_str());
    assert_eq!(reads(specialist.access.clone()).await, (1, 200));
    // Withdrawn: taken from them at once; the doctor is told nothing.
    patient
        .ws
        .send_json(&json!({"type": "consent", "purpose": "external_sharing", "given": false}))
        .await
        .unwrap();
    let taken = specialist
        .ws
        .next_event("document_withheld", T)
        .await
        .unwrap();
    assert_eq!(taken["document_id"], doc.as_str());
    assert_eq!(reads(specialist.access.clone()).await, (0, 403));
    assert_eq!(reads(doctor.access.clone()).await, (1, 200));
    assert!(
        !doctor
            .ws
            .history()
            .iter()
            .any(|m| m["type"] == "document_withheld")
    );
    // Each refused read is on the record.
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let refused = s
        .audit_entries(&sup, &room)
        .await
        .into_iter()
        .filter(|e| e["action"] == "document.viewed" && e["outcome"] == "denied")
        .count();
    assert!(refused >= 2, "refused reads on the record: {refused}");

    // Nor can the specialist copy it out through a request of their own (to their own
    // hospital, where no consent is asked): the room's withheld documents are not offered
    // from the patient's record, and attaching one is refused as if it were not there.
    let cardiology = s.department(&county, "Cardiology").await;
    let (st, request) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&zhao),
            Some(json!({
                "target_department_id": cardiology,
                "patient_ref": "MRN-0042",
                "reason": "Second opinion",
                "question": "Anything missed?",
                "urgency": "routine",
                "proposed_times": [{"start": now_unix() + 3600, "minutes": 30}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{request}");
    let r = request["id"].as_str().unwrap();
    let candidates = format!("/api/v1/referrals/{r}/documents/candidates");
    let offered = || async {
        let (st, offered) = s.api("GET", &candidates, Some(&zhao), None).await;
        assert_eq!(st, 200, "{offered}");
        offered["documents"].clone()
    };
    assert_eq!(offered().await, json!([]));
    let (st, e) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/documents/from-consultation"),
            Some(&zhao),
            Some(json!({"room_id": room, "document_id": doc})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{e}"
    );
    // With the patient's consent it is theirs to read, and to attach.
    patient
        .ws
        .send_json(&json!({"type": "consent", "purpose": "external_sharing", "given": true}))
        .await
        .unwrap();
    specialist
        .ws
        .next_event("document_shared", T)
        .await
        .unwrap();
    let offered = offered().await;
    assert_eq!(offered[0]["document"]["id"], doc.as_str(), "{offered}");
}

common::on_both_databases!(
    #[tokio::test]
    the_rooms_documents_reach_another_hospital_only_with_consent,
    |_| {}
);
