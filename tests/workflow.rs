//! The whole clinical workflow in one run, over HTTP and signaling, with webrtc-rs peers over
//! real UDP, on SQLite and PostgreSQL: a township doctor asks a county hospital's cardiology for
//! a joint consultation (with the patient's consent to sharing attested); its specialist accepts
//! a time; the patient types the short code of their invitation and waits, receiving no media;
//! the doctor admits them; the clinicians confer privately while the patient stays connected and
//! receives none of their media, then come back; the specialist signs a report and a
//! prescription in their account's name; the doctor ends the consultation; the township's
//! pharmacist reviews and dispenses; the patient reads the outcome; the regulator finds every
//! step on the record. Each part is tested on its own elsewhere, with its refusals; this test
//! shows they make one workflow.

use crate::common;

use std::time::Duration;

use crate::common::peer::{JoinOptions, TestPeer};
use crate::common::{ACCOUNT_PASSWORD, Place, TestServer, sample_pdf};
use huizhen::domain::consent::ConsentPurpose;
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);

fn now() -> i64 {
    huizhen::domain::clock::now_unix()
}

fn opts(s: &TestServer, token: String, name: &str, marker: u8) -> JoinOptions {
    JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    }
}

/// Packets `rx` got from `from` of `kind` over two seconds, after letting in-flight ones land.
async fn arriving(rx: &TestPeer, from: &TestPeer, kind: &str) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rx.received(&from.id(), kind).packets;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rx.received(&from.id(), kind).packets - before
}

/// A clinician in the room issues a signed record; the Record.
async fn issue(s: &TestServer, room: &str, access: &str, kind: &str, body: Value) -> Value {
    let (st, r) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(access),
            Some(json!({"kind": kind, "body": body, "issue": true, "password": ACCOUNT_PASSWORD})),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["status"], "issued");
    r
}

/// Waits until the doctor sees request `referral` in `state` (what a room tells a request is
/// carried on by a task of its own).
async fn until_state(s: &TestServer, referral: &str, state: &str) {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (st, r) = s
            .api("GET", &format!("/api/v1/referrals/{referral}"), None, None)
            .await;
        assert_eq!(st, 200, "{r}");
        if r["state"] == state {
            return;
        }
        last = r;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the request never became {state}: {last}");
}

async fn the_whole_workflow(s: &TestServer) {
    // The network: the doctor's township clinic (the default institution) and the county
    // hospital's cardiology, with its specialist.
    let county = s.institution("县人民医院").await;
    let cardiology = s.department(&county, "心血管内科").await;
    let (_, cardio) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            Place {
                institution: &county,
                department: Some(&cardiology),
                name: Some("赵敏"),
                title: "主任医师",
                specialty: "Cardiology",
            },
        )
        .await;

    // 1. The doctor asks the county's cardiology, the patient's consent attested, an ECG attached.
    let words = ConsentPurpose::ExternalSharing.wording().version;
    let (st, request) = s
        .api(
            "POST",
            "/api/v1/referrals",
            None,
            Some(json!({
                "target_department_id": cardiology,
                "patient_ref": "MRN-7731",
                "reason": "Palpitations and a faint",
                "question": "Paroxysmal AF? Anticoagulation?",
                "urgency": "urgent",
                "proposed_times": [{"start": now() + 60, "minutes": 30}],
                "external_sharing_consent": {"wording_version": words},
            })),
        )
        .await;
    assert_eq!(st, 201, "{request}");
    let referral = request["id"].as_str().unwrap().to_owned();
    let resp = s
        .raw(
            "POST",
            &format!("/api/v1/referrals/{referral}/documents?name=ecg.pdf"),
            &s.doctor_token,
            Some(sample_pdf()),
        )
        .await;
    assert_eq!(resp.status(), 201);

    // 2. The specialist accepts the proposed time: the consultation exists, the ECG in it.
    let (st, scheduled) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{referral}/accept"),
            Some(&cardio),
            Some(json!({"start": now() + 60, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{scheduled}");
    assert_eq!(scheduled["state"], "scheduled", "{scheduled}");
    let room = scheduled["room_id"].as_str().unwrap().to_owned();

    // 3. The doctor makes the patient's invitation; the patient types its short code.
    let (st, invitation) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 201, "{invitation}");
    let code = invitation["code"].as_str().unwrap();
    let redeemed = s
        .http
        .post(format!("{}/api/v1/invitations/redeem", s.base))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), 200);
    let redeemed: Value = redeemed.json().await.unwrap();
    let url = redeemed["url"].as_str().unwrap();
    let link = url.split_once("/join#").expect("a join link").1.to_owned();

    // 4. The clinicians enter as their accounts; the patient waits, and no media reaches them.
    let doctor = TestPeer::join(opts(s, s.enter(&room, None).await, "", 0xA1))
        .await
        .unwrap();
    doctor.wait_connected(CONNECT).await.unwrap();
    doctor.start_media();
    assert_eq!(doctor.joined_message()["you"]["role"], "doctor");
    let specialist = TestPeer::join(opts(s, s.enter(&room, Some(&cardio)).await, "", 0xB2))
        .await
        .unwrap();
    specialist.wait_connected(CONNECT).await.unwrap();
    specialist.start_media();
    let me = &specialist.joined_message()["you"];
    assert!(
        me["name"].as_str().unwrap().contains("赵敏"),
        "the account's name, not a typed one: {me}"
    );
    let (mut patient, waiting) = TestPeer::join_waiting(opts(s, link, "Li Hua", 0xC3))
        .await
        .unwrap();
    assert_eq!(waiting["position"], 1);
    assert!(
        patient
            .next_event("offer", Duration::from_secs(2))
            .await
            .is_err(),
        "an offer reached someone waiting"
    );
    assert!(patient.received_all().is_empty());
    let queue = doctor
        .next_event_where("waiting_room", T, |q| {
            q["waiting"]
                .as_array()
                .is_some_and(|w| w.iter().any(|p| p["name"] == "Li Hua"))
        })
        .await
        .unwrap();
    let waiting_id = queue["waiting"][0]["id"].as_str().unwrap().to_owned();

    // 5. Admitted: media both ways.
    doctor
        .send_json(json!({"type": "admit", "participant_id": waiting_id}))
        .await
        .unwrap();
    patient.admitted(T).await.unwrap();
    // The request shows the consultation under way: nobody pressed Start.
    until_state(s, &referral, "in_consultation").await;
    patient.wait_connected(CONNECT).await.unwrap();
    patient.start_media();
    for (rx, from) in [
        (&patient, &doctor),
        (&patient, &specialist),
        (&doctor, &patient),
    ] {
        for kind in ["audio", "video"] {
            let got = rx.wait_received(&from.id(), kind, 25, MEDIA).await.unwrap();
            assert!(got.only_marker(from.options().marker));
        }
    }

    // 6. The clinicians confer privately: the patient is told, stays connected, and receives
    //    none of their media; back to the patient, it flows again.
    doctor
        .send_json(json!({"type": "huddle", "active": true}))
        .await
        .unwrap();
    assert_eq!(
        patient.next_event("huddle", T).await.unwrap()["active"],
        true
    );
    for from in [&doctor, &specialist] {
        for kind in ["audio", "video"] {
            assert_eq!(
                arriving(&patient, from, kind).await,
                0,
                "{kind} in the huddle"
            );
        }
    }
    assert!(
        arriving(&doctor, &specialist, "audio").await > 0,
        "they hear each other"
    );
    doctor
        .send_json(json!({"type": "huddle", "active": false}))
        .await
        .unwrap();
    assert_eq!(
        patient.next_event("huddle", T).await.unwrap()["active"],
        false
    );
    for from in [&doctor, &specialist] {
        let before = patient.received(&from.id(), "audio").packets;
        patient
            .wait_received(&from.id(), "audio", before + 25, MEDIA)
            .await
            .unwrap();
    }

    // 7. The specialist signs a report and a prescription in their account's name.
    let access = specialist.joined_message()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = issue(
        s,
        &room,
        &access,
        "diagnosis_report",
        json!({"findings": "Holter: paroxysmal AF, longest run 40 s",
               "impression": "阵发性心房颤动", "recommendation": "Rate control"}),
    )
    .await;
    assert_eq!(report["signature"]["name"], "赵敏");
    assert_eq!(report["signature"]["institution"], "县人民医院");
    let rx = issue(
        s,
        &room,
        &access,
        "prescription",
        json!({"items": [{"medication": "美托洛尔缓释片", "dose": "47.5 mg", "route": "oral",
                          "frequency": "once daily", "duration": "4 weeks"}]}),
    )
    .await;
    let rx_id = rx["id"].as_str().unwrap().to_owned();

    // 8. The doctor ends the consultation.
    doctor.send_json(json!({"type": "end_room"})).await.unwrap();
    patient.next_event("room_ended", T).await.unwrap();
    // With its report issued, ending the consultation completes the request.
    until_state(s, &referral, "closed").await;

    // 9. The township's pharmacy (the consultation's institution) reviews and dispenses.
    let pharmacist = s.account("pharm", AccountRole::Pharmacist).await;
    let (st, q) = s
        .api("GET", "/api/v1/prescriptions", Some(&pharmacist), None)
        .await;
    assert_eq!(st, 200, "{q}");
    let queued = q["prescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == rx_id.as_str())
        .expect("in the pharmacy's queue");
    assert_eq!(
        queued["signature"]["name"], "赵敏",
        "the pharmacist sees who signed"
    );
    for action in ["review", "dispense"] {
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/prescriptions/{rx_id}/{action}"),
                Some(&pharmacist),
                None,
            )
            .await;
        assert_eq!(st, 200, "{action}: {b}");
    }

    // 10. The patient's outcome: the report and the prescription, dispensed, signed by the
    //     specialist.
    let link = patient.options().token.clone();
    let (st, o) = s.api("GET", "/api/v1/outcome", Some(&link), None).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["consultation"]["status"], "ended");
    assert_eq!(o["reports"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(o["reports"][0]["signed_by"]["name"], "赵敏");
    assert_eq!(o["prescriptions"][0]["status"], "dispensed", "{o}");

    // 11. Every step on the record, in the order it happened.
    let regulator = s.account("regulator", AccountRole::NetworkSupervisor).await;
    let trail = s.audit_all(&regulator).await;
    let steps = [
        "referral.created",
        "referral.document_attached",
        "referral.accepted",
        "invite.issued",
        "invitation.code_redeemed",
        "waiting.admitted",
        // Nobody pressed Start or Close: admitting the patient started the request, the
        // report signed in the room issued its report, and ending the consultation closed it.
        "referral.started",
        "huddle.started",
        "huddle.ended",
        "record.signed",
        "referral.report_issued",
        "room.ended",
        "referral.closed",
        "prescription.state_changed",
        "outcome.viewed",
    ];
    let mut at = 0;
    for step in steps {
        let found = trail[at..]
            .iter()
            .position(|e| e["action"] == step)
            .unwrap_or_else(|| panic!("{step} not on the record after entry {at}"));
        at += found + 1;
    }
    let (_, verified) = s
        .api("GET", "/api/v1/audit/verify", Some(&regulator), None)
        .await;
    assert!(verified["first_broken"].is_null(), "{verified}");
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    the_whole_workflow,
    |_| {}
);
