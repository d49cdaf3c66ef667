//! Clinical records in a live room and after it, over the real server: who may write what,
//! drafts and issuing, immutability and corrections, the prescription's pharmacy path, the
//! summary and its FHIR and PDF exports, and the audit entries they leave. On SQLite and
//! PostgreSQL.

use crate::common;

use std::time::Duration;

use crate::common::{ACCOUNT_PASSWORD, DOCTOR_PASSWORD, TestServer, sample_pdf};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn records_flow(s: &TestServer) {
    let room = s.create_room("心内科远程会诊").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let specialist = s.member(&room, "specialist", "Prof. Zhao").await;
    let patient = s.consenting_patient(&room, "Li Lei").await;
    let observer = s.member(&room, "observer", "Trainee").await;
    let records = format!("/api/v1/rooms/{room}/records");
    let (st, _) = s
        .share(
            &room,
            &doctor.access,
            "ecg.pdf",
            &sample_pdf(),
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201);
    doctor
        .ws
        .send_json(&json!({"type": "chat", "text": "请看心电图"}))
        .await
        .unwrap();
    doctor.ws.next_event("chat", T).await.unwrap();
    // A message that reorders what the others read (a right-to-left override) is refused, and
    // reaches nobody.
    doctor
        .ws
        .send_json(&json!({"type": "chat", "text": "dose: \u{202E}gm 05 ton"}))
        .await
        .unwrap();
    let refused = doctor.ws.next_event("error", T).await.unwrap();
    assert_eq!(refused["code"], "bad_message", "{refused}");

    // The specialist drafts a diagnosis report; clinicians see the draft, the patient does not.
    let report = json!({"findings": "ST elevation V1-V4", "impression": "急性前壁心肌梗死",
                        "recommendation": "Transfer for PCI"});
    let (st, draft) = s
        .api(
            "POST",
            &records,
            Some(&specialist.access),
            Some(json!({"kind": "diagnosis_report", "body": report})),
        )
        .await;
    assert_eq!(st, 201, "{draft}");
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["subject_name"], "Li Lei", "the room's only patient");
    let report_id = draft["id"].as_str().unwrap().to_owned();
    // The doctor's day view lists it as left to sign.
    let (st, pending) = s.api("GET", "/api/v1/me/drafts", None, None).await;
    assert_eq!(st, 200, "{pending}");
    assert_eq!(
        pending["drafts"],
        json!([{"record_id": report_id, "room_id": room, "room_title": "心内科远程会诊",
                "kind": "diagnosis_report", "author_name": draft["author_name"],
                "created_at_ms": draft["created_at_ms"]}])
    );
    let seen = doctor.ws.next_event("record_updated", T).await.unwrap();
    assert_eq!(seen["record"]["id"], report_id.as_str());
    // Editing is the author's alone.
    let edited = json!({"findings": "ST elevation V1-V5", "impression": "急性前壁心肌梗死",
                        "recommendation": "Transfer for primary PCI within 90 minutes"});
    let (st, b) = s
        .api(
            "PUT",
            &format!("{records}/{report_id}"),
            Some(&doctor.access),
            Some(json!({"body": edited})),
        )
        .await;
    assert_eq!((st, code(&b)), (403, "forbidden"));
    let (st, _) = s
        .api(
            "PUT",
            &format!("{records}/{report_id}"),
            Some(&specialist.access),
            Some(json!({"body": edited})),
        )
        .await;
    assert_eq!(st, 200);
    // Issuing a report signs it: without the specialist's password, or with a wrong one,
    // it stays a draft.
    let issue = format!("{records}/{report_id}/issue");
    let (st, b) = s.api("POST", &issue, Some(&specialist.access), None).await;
    assert_eq!((st, code(&b)), (403, "signature_required"), "{b}");
    let (st, b) = s
        .api(
            "POST",
            &issue,
            Some(&specialist.access),
            Some(json!({"password": "not my password"})),
        )
        .await;
    assert_eq!((st, code(&b)), (403, "wrong_password"), "{b}");
    let (st, issued) = s
        .api(
            "POST",
            &issue,
            Some(&specialist.access),
            Some(json!({"password": ACCOUNT_PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{issued}");
    assert_eq!(issued["status"], "issued");
    let (_, pending) = s.api("GET", "/api/v1/me/drafts", None, None).await;
    assert_eq!(pending["drafts"], json!([]), "issued: nothing left to sign");
    assert_eq!(issued["events"][0]["to_status"], "issued");
    // Signed in the account's name, title and institution, whatever name was typed.
    assert_eq!(issued["signature"]["name"], "Prof. Zhao");
    assert_eq!(issued["signature"]["title"], "Chief physician");
    assert_eq!(issued["signature"]["institution"], "Default institution");
    assert!(
        issued["signature"]["by"]
            .as_str()
            .unwrap()
            .starts_with("u_")
    );
    // Now the patient is told, with the issued text.
    let got = patient.ws.next_event("record_updated", T).await.unwrap();
    assert_eq!(got["record"]["status"], "issued");
    assert_eq!(got["record"]["body"]["findings"], "ST elevation V1-V5");
    // Issued means immutable: edits are refused; a correction is a new version.
    let (st, b) = s
        .api(
            "PUT",
            &format!("{records}/{report_id}"),
            Some(&specialist.access),
            Some(json!({"body": report})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"));
    let (st, fixed) = s
        .api(
            "POST",
            &records,
            Some(&specialist.access),
            Some(
                json!({"kind": "diagnosis_report", "body": edited, "issue": true,
                         "supersedes": report_id, "password": ACCOUNT_PASSWORD}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{fixed}");
    assert_eq!(fixed["supersedes"], report_id.as_str());
    let (st, b) = s
        .api(
            "POST",
            &records,
            Some(&specialist.access),
            Some(json!({"kind": "diagnosis_report", "body": edited, "supersedes": report_id})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"));

    // Prescriptions: not by the patient or an observer, nor malformed.
    let rx = json!({"items": [{"medication": "阿司匹林肠溶片", "dose": "100 mg", "route": "oral",
                               "frequency": "once daily", "duration": "30 days"}]});
    for who in [&patient, &observer] {
        let (st, b) = s
            .api(
                "POST",
                &records,
                Some(&who.access),
                Some(json!({"kind": "prescription", "body": rx, "issue": true})),
            )
            .await;
        assert_eq!((st, code(&b)), (403, "forbidden"));
    }
    let (st, b) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(json!({"kind": "prescription", "body": {"items": []}})),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "invalid_request"));
    let (st, p) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(json!({"kind": "prescription", "body": rx, "issue": true,
                        "password": DOCTOR_PASSWORD})),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    let rx_id = p["id"].as_str().unwrap().to_owned();
    // A clinicians' note is never sent to the patient.
    let (st, note) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(
                json!({"kind": "note", "body": {"text": "Family history of CAD."}, "issue": true}),
            ),
        )
        .await;
    assert_eq!(st, 201);
    let (_, list) = s.api("GET", &records, Some(&patient.access), None).await;
    let kinds: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["diagnosis_report", "diagnosis_report", "prescription"]
    );
    let (_, list) = s.api("GET", &records, Some(&observer.access), None).await;
    assert!(list["records"].as_array().unwrap().is_empty());
    assert!(
        !patient
            .ws
            .history()
            .iter()
            .any(|m| m.to_string().contains(note["id"].as_str().unwrap()))
    );

    // A draft prescription the care team is still writing: the pharmacy sees none of it.
    let (st, draft) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(json!({"kind": "prescription", "body": rx})),
        )
        .await;
    assert_eq!(st, 201, "{draft}");
    assert_eq!(draft["status"], "draft", "{draft}");
    let draft_id = draft["id"].as_str().unwrap().to_owned();

    // The pharmacy: only pharmacists; review before dispensing; nothing after a final state.
    let pharmacist = s.account("pharm", AccountRole::Pharmacist).await;
    let (st, e) = s
        .api("GET", "/api/v1/me/drafts", Some(&pharmacist), None)
        .await;
    assert_eq!(st, 403, "not a clinician's list: {e}");
    let (st, _) = s.api("GET", "/api/v1/prescriptions", None, None).await;
    assert_eq!(st, 403);
    let (st, q) = s
        .api("GET", "/api/v1/prescriptions", Some(&pharmacist), None)
        .await;
    assert_eq!(st, 200);
    assert!(
        q["prescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == rx_id.as_str())
    );
    // Drafts belong to the care team: the pharmacy cannot list them, and asking is audited.
    let (st, body) = s
        .api(
            "GET",
            "/api/v1/prescriptions?status=draft",
            Some(&pharmacist),
            None,
        )
        .await;
    assert_eq!(st, 403, "{body}");
    assert!(!body.to_string().contains("\"body\""), "{body}");
    assert!(
        !q.to_string().contains(&draft_id),
        "the queue lists no draft: {q}"
    );
    for action in ["review", "dispense"] {
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/prescriptions/{draft_id}/{action}"),
                Some(&pharmacist),
                Some(json!({"note": "seen early"})),
            )
            .await;
        assert!(
            st == 404 || st == 409,
            "a draft is not the pharmacy's to act on ({action}): {st} {b}"
        );
        assert!(!b.to_string().contains("阿司匹林"), "{b}");
    }
    let auditor = s.account("auditor", AccountRole::NetworkSupervisor).await;
    let (_, trail) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(&auditor), None)
        .await;
    assert!(
        trail.to_string().contains("draft_prescriptions"),
        "the refusal is on the audit trail: {trail}"
    );
    let act = |action: &str| format!("/api/v1/prescriptions/{rx_id}/{action}");
    let (st, b) = s
        .api("POST", &act("dispense"), Some(&pharmacist), None)
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"));
    let (st, b) = s.api("POST", &act("review"), None, None).await;
    assert_eq!((st, code(&b)), (403, "forbidden"));
    let (st, b) = s
        .api(
            "POST",
            &act("review"),
            Some(&pharmacist),
            Some(json!({"note": "dose checked"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["status"], "reviewed");
    let live = doctor
        .ws
        .next_event_of(&["record_updated"], T)
        .await
        .unwrap();
    assert!(live["record"]["id"].is_string());
    let (st, b) = s
        .api("POST", &act("dispense"), Some(&pharmacist), None)
        .await;
    assert_eq!((st, b["status"].as_str()), (200, Some("dispensed")));
    let (st, _) = s.api("POST", &act("reject"), Some(&pharmacist), None).await;
    assert_eq!(st, 409);
    let steps: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["issued", "reviewed", "dispensed"]);
    assert_eq!(b["events"][1]["actor_role"], "pharmacist");
    // A corrected prescription can no longer be dispensed.
    let (_, p2) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(json!({"kind": "prescription", "body": rx, "issue": true,
                        "password": DOCTOR_PASSWORD})),
        )
        .await;
    let p2 = p2["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(
                json!({"kind": "prescription", "body": rx, "issue": true, "supersedes": p2,
                        "password": DOCTOR_PASSWORD}),
            ),
        )
        .await;
    assert_eq!(st, 201);
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/prescriptions/{p2}/review"),
            Some(&pharmacist),
            None,
        )
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"));
    // A pharmacist's note is held to the records' rule: nothing hidden or reordering.
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/prescriptions/{p2}/review"),
            Some(&pharmacist),
            Some(json!({"note": "checked\u{200B}"})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("printable"),
        "{b}"
    );

    // After the call: the summary and its exports, for the room's doctor only.
    let (st, _) = s
        .api("POST", &format!("/api/v1/rooms/{room}/end"), None, None)
        .await;
    assert_eq!(st, 204);
    let (st, sum) = s
        .api("GET", &format!("/api/v1/rooms/{room}/summary"), None, None)
        .await;
    assert_eq!(st, 200, "{sum}");
    assert_eq!(sum["participants"].as_array().unwrap().len(), 4);
    assert!(
        sum["participants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["left_at"].is_number())
    );
    assert_eq!(sum["documents"].as_array().unwrap().len(), 1);
    assert_eq!(sum["chat"][0]["text"], "请看心电图");
    // Six issued or superseded, and the draft prescription the pharmacy could not see.
    assert_eq!(sum["records"].as_array().unwrap().len(), 7);
    assert_eq!(sum["records"][0]["superseded_by"], fixed["id"]);
    let (st, bundle) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/export/fhir"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(bundle["resourceType"], "Bundle");
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let of = |t: &str| {
        resources
            .iter()
            .filter(|r| r["resourceType"] == t)
            .collect::<Vec<_>>()
    };
    assert_eq!(of("Encounter")[0]["status"], "finished");
    assert_eq!(of("DocumentReference").len(), 1);
    let reports = of("DiagnosticReport");
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["status"], "entered-in-error");
    assert_eq!(reports[1]["status"], "corrected");
    let meds = of("MedicationRequest");
    // The draft the pharmacy could not see is in the care team's export, as a draft.
    assert_eq!(meds.len(), 4);
    assert_eq!(meds[0]["status"], "completed");
    assert_eq!(meds[1]["status"], "draft");
    assert!(meds[3]["priorPrescription"].is_object());
    assert_eq!(of("Composition").len(), 1);
    // A colleague of the institution who is not on the care team, and the network's
    // supervisor, may read the summary, but not the draft: drafts are the care team's.
    let colleague = s.account("colleague", AccountRole::Doctor).await;
    let regulator = s.account("regulator", AccountRole::NetworkSupervisor).await;
    for reader in [&colleague, &regulator] {
        let (st, theirs) = s
            .api(
                "GET",
                &format!("/api/v1/rooms/{room}/summary"),
                Some(reader),
                None,
            )
            .await;
        assert_eq!(st, 200, "{theirs}");
        assert_eq!(theirs["records"].as_array().unwrap().len(), 6);
        assert!(!theirs.to_string().contains(&draft_id), "{theirs}");
        let (st, bundle) = s
            .api(
                "GET",
                &format!("/api/v1/rooms/{room}/export/fhir"),
                Some(reader),
                None,
            )
            .await;
        assert_eq!(st, 200);
        let meds: Vec<&Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] == "MedicationRequest")
            .collect();
        assert_eq!(meds.len(), 3, "{meds:?}");
        assert!(meds.iter().all(|m| m["status"] != "draft"), "{meds:?}");
    }
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/export/pdf"),
            &s.doctor_token,
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let pdf = resp.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let fonts = common::pdf::fonts(&pdf);
    assert!(
        !fonts.is_empty() && fonts.iter().all(|f| f.file.is_some() && f.to_unicode),
        "{fonts:?}"
    );
    let text = common::pdf::text(&pdf);
    assert!(
        text.contains("远程会诊记录  Teleconsultation record"),
        "{text}"
    );
    assert!(text.contains("Page 1 of "), "{text}");
    // The care team's accounts by id (as the trail names them), never by sign-in name ("doc"):
    // the summary goes to everyone who may see the consultation.
    assert!(text.contains("账号 Account: u_"), "{text}");
    assert!(!text.contains("Account: doc"), "{text}");
    // A doctor of another institution does not see this consultation; a supervisor does.
    let elsewhere = s.institution("Another county hospital").await;
    let (_, other) = s
        .placed_account(
            "other-doc",
            AccountRole::Doctor,
            common::Place {
                institution: &elsewhere,
                ..common::Place::default()
            },
        )
        .await;
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/summary"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/summary"),
            Some(&sup),
            None,
        )
        .await;
    assert_eq!(st, 200);

    // The audit trail has every step, and still verifies.
    let entries = s.audit_entries(&sup, &room).await;
    let actions = common::action_outcomes(&entries);
    for want in [
        "record.created:ok",
        "record.created:denied",
        "record.draft_updated:ok",
        "record.draft_updated:denied",
        "record.issued:ok",
        "record.issued:denied",
        "record.signed:ok",
        "record.signing_failed:denied",
        "record.corrected:ok",
        "record.corrected:denied",
        "prescription.state_changed:ok",
        "prescription.state_changed:denied",
        "consultation.exported:ok",
        "room.ended:ok",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }
    let (_, v) = s.api("GET", "/api/v1/audit/verify", Some(&sup), None).await;
    assert!(v["first_broken"].is_null(), "{v}");
}

/// A draft stays its author's when they come back (a reload is a new participant on the same
/// care-team seat), and nobody else's. An administrator seated as the doctor of a room they
/// made writes, but does not sign: only a doctor's or a specialist's account signs. What a role
/// may not ask for is refused and on the record.
#[tokio::test]
async fn drafts_follow_their_seat_and_only_clinicians_sign() {
    let s = TestServer::start().await;
    let room = s.create_room("复诊").await;
    let _patient = s.consenting_patient(&room, "Li Lei").await;
    let records = format!("/api/v1/rooms/{room}/records");
    let report = json!({"findings": "Sinus rhythm", "impression": "正常心电图",
                        "recommendation": "Follow up in three months"});
    let first = s.member(&room, "doctor", "").await;
    let (st, draft) = s
        .api(
            "POST",
            &records,
            Some(&first.access),
            Some(json!({"kind": "diagnosis_report", "body": report})),
        )
        .await;
    assert_eq!(st, 201, "{draft}");
    let id = draft["id"].as_str().unwrap().to_owned();

    // The doctor reloads: another participant, the same seat. The draft is still theirs.
    let again = s.member(&room, "doctor", "").await;
    assert_ne!(again.id, first.id);
    let (st, b) = s
        .api(
            "PUT",
            &format!("{records}/{id}"),
            Some(&again.access),
            Some(json!({"body": report})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    // Not another clinician's, nor a link's.
    let specialist = s.member(&room, "specialist", "").await;
    let observer = s.member(&room, "observer", "Trainee").await;
    for (who, want) in [(&specialist, 403), (&observer, 403)] {
        let (st, b) = s
            .api(
                "PUT",
                &format!("{records}/{id}"),
                Some(&who.access),
                Some(json!({"body": report})),
            )
            .await;
        assert_eq!(st, want, "{b}");
    }
    // Each caller is told which records are theirs (the client offers to edit and sign those).
    for (who, mine) in [(&again, true), (&specialist, false)] {
        let (st, list) = s.api("GET", &records, Some(&who.access), None).await;
        assert_eq!(st, 200, "{list}");
        let draft = list["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .expect("clinicians see the draft");
        assert_eq!(draft["yours"], mine, "{draft}");
    }
    let (st, issued) = s
        .api(
            "POST",
            &format!("{records}/{id}/issue"),
            Some(&again.access),
            Some(json!({"password": DOCTOR_PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["yours"], true);

    // The network's administrator makes a room and enters it as its doctor: writes a
    // prescription, may not sign it, and the password is not even tried.
    let admin = s.account("netadmin", AccountRole::Admin).await;
    let (st, made) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(&admin),
            Some(json!({"title": "Admin's room", "waiting_room": false})),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let admins_room = made["id"].as_str().unwrap().to_owned();
    let seat = s.enter(&admins_room, Some(&admin)).await;
    let seated = s.member_with(&seat, "").await;
    assert_eq!(seated.joined["you"]["role"], "doctor");
    let patient_token = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{admins_room}/invites"),
            Some(&admin),
            Some(json!({"role": "patient"})),
        )
        .await
        .1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let _their_patient = s.member_with(&patient_token, "Wang Fang").await;
    let rx = json!({"items": [{"medication": "阿司匹林肠溶片", "dose": "100 mg", "route": "oral",
                               "frequency": "once daily", "duration": "30 days"}]});
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{admins_room}/records"),
            Some(&seated.access),
            Some(json!({"kind": "prescription", "body": rx, "issue": true,
                        "password": ACCOUNT_PASSWORD})),
        )
        .await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("doctor's or a specialist's account"),
        "{b}"
    );

    // Roles asking for what is not theirs.
    let pharmacist = s.account("pharm", AccountRole::Pharmacist).await;
    let specialist_account = s.account("spec-acc", AccountRole::Specialist).await;
    let (st, _) = s
        .api("GET", "/api/v1/me/drafts", Some(&pharmacist), None)
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .api("GET", "/api/v1/events", Some(&pharmacist), None)
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .api(
            "PUT",
            "/api/v1/me/availability",
            Some(&pharmacist),
            Some(json!({"accepts_referrals": true})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(&specialist_account),
            Some(json!({"title": "Mine"})),
        )
        .await;
    assert_eq!(st, 403);

    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let trail = s.audit_all(&sup).await;
    let detail = |e: &Value| -> Value {
        serde_json::from_str(e["detail"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
    };
    let denied: Vec<(String, String)> = trail
        .iter()
        .filter(|e| e["action"] == "access.denied" && e["outcome"] == "denied")
        .map(detail)
        .filter(|d| d["attempted"].is_string())
        .map(|d| {
            (
                d["reason"].as_str().unwrap_or("").to_owned(),
                d["attempted"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("not_a_clinician", "list_drafts"),
        ("not_a_clinician", "notifications"),
        ("not_a_clinician", "set_availability"),
        ("may_not_create_rooms", "create_room"),
    ] {
        assert!(
            denied.iter().any(|(r, a)| (r.as_str(), a.as_str()) == want),
            "{want:?} not on the record: {denied:?}"
        );
    }
    let signing: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "record.signing_failed")
        .collect();
    assert_eq!(signing.len(), 1, "{signing:?}");
    assert_eq!(detail(signing[0])["reason"], "not_a_clinician");
    assert_eq!(signing[0]["outcome"], "denied");
    s.stop().await;
}

/// A pharmacy works for its institution: the prescription a county hospital's specialist signs
/// in a township clinic's consultation is in both pharmacies' queues, and in no other's; a third
/// hospital's pharmacist cannot act on it (as if it did not exist), and is on the record.
#[tokio::test]
async fn each_pharmacy_sees_the_prescriptions_that_concern_its_institution() {
    let s = TestServer::start().await;
    let county = s.institution("县人民医院").await;
    let city = s.institution("市中心医院").await;
    let (spec_id, spec) = s
        .placed_account(
            "county-cardiologist",
            AccountRole::Specialist,
            common::Place {
                institution: &county,
                name: Some("赵敏"),
                title: "主任医师",
                ..common::Place::default()
            },
        )
        .await;
    let room = s.create_room("联合会诊").await;
    s.add_to_care_team(&room, &spec_id, None).await;
    let _patient = s.consenting_patient(&room, "Li Lei").await;
    let specialist = s.member_with(&s.enter(&room, Some(&spec)).await, "").await;
    let rx = json!({"items": [{"medication": "美托洛尔缓释片", "dose": "47.5 mg", "route": "oral",
                               "frequency": "once daily", "duration": "4 weeks"}]});
    let (st, issued) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&specialist.access),
            Some(json!({"kind": "prescription", "body": rx, "issue": true,
                        "password": ACCOUNT_PASSWORD})),
        )
        .await;
    assert_eq!(st, 201, "{issued}");
    let id = issued["id"].as_str().unwrap().to_owned();

    let pharmacist = |name: &'static str, institution: String| {
        let s = &s;
        async move {
            s.placed_account(
                name,
                AccountRole::Pharmacist,
                common::Place {
                    institution: &institution,
                    ..common::Place::default()
                },
            )
            .await
            .1
        }
    };
    let township = pharmacist(
        "pharm-township",
        huizhen::domain::organisation::DEFAULT_INSTITUTION.to_owned(),
    )
    .await;
    let county_pharmacy = pharmacist("pharm-county", county.clone()).await;
    let city_pharmacy = pharmacist("pharm-city", city.clone()).await;
    for (who, sees) in [
        (&township, true),
        (&county_pharmacy, true),
        (&city_pharmacy, false),
    ] {
        let (st, q) = s.api("GET", "/api/v1/prescriptions", Some(who), None).await;
        assert_eq!(st, 200, "{q}");
        let listed: Vec<&str> = q["prescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["id"].as_str())
            .collect();
        assert_eq!(listed == [id.as_str()], sees, "{q}");
        if !sees {
            assert_eq!(listed, Vec::<&str>::new());
        }
    }
    let act = |action: &str| format!("/api/v1/prescriptions/{id}/{action}");
    let (st, b) = s
        .api("POST", &act("review"), Some(&city_pharmacy), None)
        .await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");
    // The county's pharmacy reviews it; the township's, a moment later, is told it moved on.
    let (st, b) = s
        .api("POST", &act("review"), Some(&county_pharmacy), None)
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["status"], "reviewed");
    let (st, b) = s.api("POST", &act("review"), Some(&township), None).await;
    assert_eq!((st, code(&b)), (409, "conflict"), "{b}");
    let (st, b) = s.api("POST", &act("dispense"), Some(&township), None).await;
    assert_eq!(st, 200, "{b}");

    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let probes = s
        .audit_entries(&sup, &room)
        .await
        .into_iter()
        .filter(|e| e["action"] == "prescription.state_changed" && e["outcome"] == "denied")
        .count();
    assert_eq!(
        probes, 2,
        "the other hospital's attempt and the late review"
    );
    s.stop().await;
}

/// What is signed is the body the signer saw: a draft edited (from the author's other tab)
/// between reading it and storing the signature is not issued under that signature.
#[tokio::test]
async fn a_signature_covers_the_body_the_signer_saw() {
    use huizhen::domain::ids::RecordId;
    use huizhen::domain::record::RecordStatus;
    use huizhen::storage::{RecordEvent, Signature, StorageError};

    let s = TestServer::start().await;
    let room = s.create_room("复诊").await;
    let _patient = s.member(&room, "patient", "Li Lei").await;
    let doctor = s.member(&room, "doctor", "").await;
    let records = format!("/api/v1/rooms/{room}/records");
    let body = |impression: &str| {
        json!({"findings": "Sinus rhythm", "impression": impression,
               "recommendation": "Follow up in three months"})
    };
    let (st, draft) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(json!({"kind": "diagnosis_report", "body": body("正常心电图")})),
        )
        .await;
    assert_eq!(st, 201, "{draft}");
    let id = RecordId::parse(draft["id"].as_str().unwrap()).unwrap();
    let db = &s.server().db;
    let seen = db.record(&id).await.unwrap().unwrap();
    // The other tab saves an edit.
    let (st, _) = s
        .api(
            "PUT",
            &format!("{records}/{id}"),
            Some(&doctor.access),
            Some(json!({"body": body("窦性心动过缓")})),
        )
        .await;
    assert_eq!(st, 200);
    let step = RecordEvent {
        record_id: id.clone(),
        from_status: RecordStatus::Draft,
        to_status: RecordStatus::Issued,
        actor: doctor.id.clone(),
        actor_role: "doctor".into(),
        note: String::new(),
        at_ms: 1,
    };
    let signature = Signature {
        by: huizhen::domain::ids::UserId::parse(
            s.api("GET", "/api/v1/me", None, None).await.1["id"]
                .as_str()
                .unwrap(),
        )
        .unwrap(),
        name: "Dr. Wang".into(),
        title: String::new(),
        institution: String::new(),
        at_ms: 1,
    };
    let stale = db
        .change_record_status(&step, &seen.body_sha256, Some(&signature), None, Vec::new())
        .await;
    assert!(matches!(stale, Err(StorageError::Conflict)), "{stale:?}");
    let now = db.record(&id).await.unwrap().unwrap();
    assert_eq!(
        now.status,
        RecordStatus::Draft,
        "not issued under the old text"
    );
    assert_ne!(now.body_sha256, seen.body_sha256);
    db.change_record_status(&step, &now.body_sha256, Some(&signature), None, Vec::new())
        .await
        .expect("the text as it stands is signed");
    s.stop().await;
}

/// A pharmacy's queue comes a page at a time, oldest first, with its count in all; a page's
/// `next` still leads on after earlier prescriptions left the queue; bad paging is refused.
async fn the_pharmacy_queue_comes_a_page_at_a_time(s: &TestServer) {
    let room = s.create_room("复诊").await;
    let _patient = s.member(&room, "patient", "Li Lei").await;
    let doctor = s.member(&room, "doctor", "").await;
    let pharmacist = s.account("pharm", AccountRole::Pharmacist).await;
    for n in 0..5 {
        let rx = json!({"items": [{"medication": format!("药品 {n}"), "dose": "10 mg",
                                   "route": "oral", "frequency": "once daily",
                                   "duration": "1 week"}]});
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/records"),
                Some(&doctor.access),
                Some(json!({"kind": "prescription", "body": rx, "issue": true,
                            "password": DOCTOR_PASSWORD})),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }
    let pharmacist = pharmacist.as_str();
    let queue = |query: String| async move {
        s.api(
            "GET",
            &format!("/api/v1/prescriptions?{query}"),
            Some(pharmacist),
            None,
        )
        .await
    };
    let ids = |q: &Value| -> Vec<String> {
        q["prescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (st, all) = queue("status=issued".into()).await;
    assert_eq!(st, 200, "{all}");
    assert_eq!(
        (all["total"].as_i64(), &all["next"]),
        (Some(5), &Value::Null)
    );
    let every = ids(&all);
    assert_eq!(every.len(), 5);

    // Two at a time: 2, 2, 1, and the same five in the same order.
    let mut paged = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let (st, page) = queue(format!("status=issued&limit=2{after}")).await;
        assert_eq!(st, 200, "{page}");
        assert_eq!(page["total"], 5);
        paged.extend(ids(&page));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!((pages, &paged), (3, &every));

    // The first page read, its first prescription reviewed: the next page is still the one
    // after it, and the count says one fewer.
    let (_, first) = queue("status=issued&limit=2".into()).await;
    let next = first["next"].as_str().unwrap().to_owned();
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/prescriptions/{}/review", every[0]),
            Some(pharmacist),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (_, second) = queue(format!("status=issued&limit=2&after={next}")).await;
    assert_eq!(ids(&second), every[2..4]);
    assert_eq!(second["total"], 4);
    let (_, reviewed) = queue("status=reviewed".into()).await;
    assert_eq!(
        (ids(&reviewed), &reviewed["total"]),
        (vec![every[0].clone()], &json!(1))
    );

    for bad in [
        "limit=0",
        "limit=501",
        "after=yesterday",
        "after=-1.rec_x",
        "limit=two",
    ] {
        let (st, b) = queue(format!("status=issued&{bad}")).await;
        assert_eq!((st, code(&b)), (400, "invalid_request"), "{bad}: {b}");
    }
}

common::on_both_databases!(
    #[tokio::test]
    the_pharmacy_queue_comes_a_page_at_a_time,
    |_| {}
);

#[tokio::test]
async fn records_on_sqlite() {
    let s = TestServer::start().await;
    records_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn records_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    records_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
