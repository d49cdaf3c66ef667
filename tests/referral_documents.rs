//! A consultation request's documents over the real server, on SQLite and PostgreSQL: a
//! township doctor attaches a lab report (uploaded) and an ECG from the patient's earlier
//! consultation to a request; the county cardiologist reads them before answering; when the
//! request is scheduled they are clinicians-only documents of its room, and one attached later
//! joins the open room at once. The refusals: a file of a kind the server does not take, a bad
//! name, the receiving side attaching or removing, a document of another patient or of a
//! consultation the requester is not on, the same document twice, removing one already in the
//! room, attaching to a cancelled request, a clinician of another institution reading; and the
//! per-request limits, raced. Both sides also see the attachments in the console's viewer
//! before any room exists (a PDF's page, an ECG, a CT's frame and header), within the room's
//! render limits. Each step and refusal is looked for in the audit trail.

use crate::common;

use std::time::Duration;

use crate::common::{Place, TestServer, action_outcomes, sample_pdf, sample_png};
use huizhen::domain::consent::ConsentPurpose;
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const PATIENT: &str = "P-2026-0117";
/// The version of the words for sharing documents with another hospital.
const SHARING_WORDS: &str = ConsentPurpose::ExternalSharing.wording().version;
const T: std::time::Duration = std::time::Duration::from_secs(10);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn place<'a>(institution: &'a str, department: Option<&'a str>, name: &'a str) -> Place<'a> {
    Place {
        institution,
        department,
        name: Some(name),
        ..Default::default()
    }
}

/// Uploads `bytes` as `name` to request `r`: the status and the body.
async fn attach(s: &TestServer, token: &str, r: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let resp = s
        .raw(
            "POST",
            &format!("/api/v1/referrals/{r}/documents?name={}", urlencode(name)),
            token,
            Some(bytes.to_vec()),
        )
        .await;
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn request(s: &TestServer, token: &str, department: &str, reason: &str) -> String {
    let (st, r) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(token),
            Some(json!({
                "target_department_id": department,
                "patient_ref": PATIENT,
                "reason": reason,
                "question": "Exercise ECG and troponin attached: stable angina?",
                "urgency": "urgent",
                "proposed_times": [{"start": now() + DAY, "minutes": 30}],
                // To another institution: its documents need the patient's consent
                // (tests/referral_consent.rs tests it).
                "external_sharing_consent": {"wording_version": SHARING_WORDS},
            })),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

/// A consultation about `patient` held by the account of `token`, with one document shared
/// in it by that clinician: the room's and the document's ids.
async fn earlier_visit(
    s: &TestServer,
    token: &str,
    patient: &str,
    name: &str,
    bytes: &[u8],
) -> (String, String) {
    let (st, room) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(token),
            Some(json!({"title": "Follow-up visit", "patient_ref": patient})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let seat = s.enter(&room, Some(token)).await;
    let me = s.member_with(&seat, "Dr. Li").await;
    let (st, doc) = s
        .share(&room, &me.access, name, bytes, "everyone", 1 << 20)
        .await;
    assert_eq!(st, 201, "{doc}");
    (room, doc["document"]["id"].as_str().unwrap().to_owned())
}

async fn detail(s: &TestServer, token: &str, r: &str) -> Value {
    let (st, d) = s
        .api("GET", &format!("/api/v1/referrals/{r}"), Some(token), None)
        .await;
    assert_eq!(st, 200, "{d}");
    d
}

/// Audit entries about one request, oldest first, as "action:outcome".
async fn trail(s: &TestServer, supervisor: &str, r: &str) -> Vec<String> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    let about: Vec<Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object_id"] == r)
        .cloned()
        .collect();
    action_outcomes(&about)
}

async fn documents_flow(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let city = s.institution("City Central Hospital").await;
    let city_cardiology = s.department(&city, "Cardiology").await;
    let (doc_id, doc) = s
        .placed_account(
            "town_doc",
            AccountRole::Doctor,
            place(&town, None, "Dr. Li"),
        )
        .await;
    let (colleague_id, colleague) = s
        .placed_account(
            "town_doc2",
            AccountRole::Doctor,
            place(&town, None, "Dr. Wu"),
        )
        .await;
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let (_, far) = s
        .placed_account(
            "far",
            AccountRole::Specialist,
            place(&city, Some(city_cardiology.as_str()), "Dr. Zhou"),
        )
        .await;
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;

    // The patient's earlier visit, with an ECG; another patient's; and a visit of this patient
    // held by a colleague, which the referring doctor is not on.
    let pdf = sample_pdf();
    let png = sample_png();
    let (visit, ecg) = earlier_visit(s, &doc, PATIENT, "exercise-ecg.pdf", &pdf).await;
    let (other_visit, other_doc) = earlier_visit(s, &doc, "P-OTHER-9", "other.png", &png).await;
    let (colleague_visit, colleague_doc) =
        earlier_visit(s, &colleague, PATIENT, "colleague.png", &png).await;

    let r = request(s, &doc, &cardiology, "Chest pain on exertion").await;

    // An upload: checked as a room's documents are.
    let (st, lab) = attach(s, &doc, &r, "troponin 肌钙蛋白.pdf", &pdf).await;
    assert_eq!(st, 201, "{lab}");
    let lab = &lab["document"];
    assert_eq!(lab["kind"], "pdf");
    assert_eq!(lab["source"], "upload");
    assert_eq!(lab["name"], "troponin 肌钙蛋白.pdf");
    assert_eq!(lab["size"], pdf.len());
    assert_eq!(lab["room_document_id"], Value::Null);
    let lab_id = lab["id"].as_str().unwrap().to_owned();
    let (st, e) = attach(s, &doc, &r, "setup.exe", b"MZ\x90\x00binary").await;
    assert_eq!((st, code(&e)), (415, "unsupported_type"), "{e}");
    let (st, e) = attach(s, &doc, &r, "../../etc/passwd.pdf", &pdf).await;
    assert_eq!((st, code(&e)), (400, "invalid_request"), "{e}");
    let (st, e) = attach(s, &doc, &r, "empty.pdf", b"").await;
    assert_eq!((st, code(&e)), (400, "invalid_request"), "{e}");
    let resp = s
        .raw(
            "POST",
            &format!("/api/v1/referrals/{r}/documents"),
            &doc,
            Some(pdf.clone()),
        )
        .await;
    assert_eq!(resp.status(), 400, "no name");
    let e: Value = resp.json().await.unwrap();
    assert_eq!(code(&e), "invalid_request", "{e}");

    // From the patient's record: only this patient's consultations that the doctor is on,
    // and a document at most once.
    let (st, offered) = s
        .api(
            "GET",
            &format!("/api/v1/referrals/{r}/documents/candidates"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 200, "{offered}");
    let offered = offered["documents"].as_array().unwrap();
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert_eq!(offered[0]["document"]["id"], ecg.as_str());
    assert_eq!(offered[0]["room_id"], visit.as_str());
    let from = |room: &str, document: &str| {
        let body = json!({"room_id": room, "document_id": document});
        let path = format!("/api/v1/referrals/{r}/documents/from-consultation");
        let token = doc.clone();
        async move { s.api("POST", &path, Some(&token), Some(body)).await }
    };
    let (st, taken) = from(&visit, &ecg).await;
    assert_eq!(st, 201, "{taken}");
    assert_eq!(taken["document"]["source"], "consultation");
    assert_eq!(taken["document"]["source_document_id"], ecg.as_str());
    assert_eq!(taken["document"]["name"], "exercise-ecg.pdf");
    let (st, e) = from(&visit, &ecg).await;
    assert_eq!((st, code(&e)), (409, "already_attached"), "{e}");
    let (st, e) = from(&other_visit, &other_doc).await;
    assert_eq!((st, code(&e)), (409, "other_patient"), "{e}");
    let (st, e) = from(&colleague_visit, &colleague_doc).await;
    assert_eq!((st, code(&e)), (404, "not_found"), "{e}");
    let (st, e) = s
        .api(
            "GET",
            &format!("/api/v1/referrals/{r}/documents/candidates"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(e["documents"].as_array().unwrap().is_empty(), "{e}");

    // The receiving side reads them before answering, but neither attaches nor removes.
    let seen = detail(s, &cardio, &r).await;
    let docs = seen["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 2, "{seen}");
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/referrals/{r}/documents/{lab_id}/content?download=1"),
            &cardio,
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), pdf.as_slice());
    let (st, e) = attach(s, &cardio, &r, "mine.pdf", &pdf).await;
    assert_eq!((st, code(&e)), (403, "forbidden"), "{e}");
    let (st, e) = s
        .api(
            "DELETE",
            &format!("/api/v1/referrals/{r}/documents/{lab_id}"),
            Some(&cardio),
            None,
        )
        .await;
    assert_eq!((st, code(&e)), (403, "forbidden"), "{e}");

    // Another institution's clinician learns nothing, and the attempt is on the record.
    for path in [
        format!("/api/v1/referrals/{r}/documents"),
        format!("/api/v1/referrals/{r}/documents/{lab_id}/content"),
    ] {
        let (st, e) = s.api("GET", &path, Some(&far), None).await;
        assert_eq!((st, code(&e)), (404, "not_found"), "{path}: {e}");
    }
    let (st, e) = attach(s, &far, &r, "probe.pdf", &pdf).await;
    assert_eq!((st, code(&e)), (404, "not_found"), "{e}");

    // The requester removes one and attaches it again.
    let (st, _) = s
        .api(
            "DELETE",
            &format!("/api/v1/referrals/{r}/documents/{lab_id}"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        detail(s, &doc, &r).await["documents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (st, lab) = attach(s, &doc, &r, "troponin.pdf", &pdf).await;
    assert_eq!(st, 201, "{lab}");

    // Scheduled: the room opens with both documents, for the clinicians only.
    let (st, scheduled) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/accept"),
            Some(&cardio),
            // Soon: the patient's invitation is valid from a while before the time.
            Some(json!({"start": now() + 60, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{scheduled}");
    assert_eq!(scheduled["state"], "scheduled");
    let room = scheduled["room_id"].as_str().unwrap().to_owned();
    let in_room: Vec<Value> = scheduled["documents"].as_array().unwrap().to_vec();
    assert!(
        in_room.iter().all(|d| d["room_document_id"].is_string()),
        "{scheduled}"
    );
    let seat = s.enter(&room, Some(&cardio)).await;
    let specialist = s.member_with(&seat, "Prof. Zhao").await;
    let room_docs = |access: String| {
        let path = format!("/api/v1/rooms/{room}/documents");
        async move {
            let (st, b) = s.api("GET", &path, Some(&access), None).await;
            assert_eq!(st, 200, "{b}");
            b["documents"].as_array().unwrap().clone()
        }
    };
    let listed = room_docs(specialist.access.clone()).await;
    let mut names: Vec<&str> = listed.iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["exercise-ecg.pdf", "troponin.pdf"]);
    assert!(listed.iter().all(|d| d["visibility"] == "clinicians"));
    let (st, invite) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&doc),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 201, "{invite}");
    // The patient waits, is admitted, and sees none of them.
    let patient = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    patient
        .send_json(&common::peer::join_message(
            invite["token"].as_str().unwrap(),
            "Wang",
            false,
            false,
            None,
        ))
        .await
        .unwrap();
    patient.next_event("waiting", T).await.unwrap();
    specialist
        .ws
        .send_json(&json!({"type": "admit"}))
        .await
        .unwrap();
    let welcome = patient.next_event("joined", T).await.unwrap();
    assert!(
        welcome["documents"].as_array().unwrap().is_empty(),
        "{welcome}"
    );
    let access = welcome["access_token"].as_str().unwrap().to_owned();
    assert!(room_docs(access).await.is_empty());

    // Attached while the room is open: it joins the room at once.
    let (st, late) = attach(s, &doc, &r, "echo.png", &png).await;
    assert_eq!(st, 201, "{late}");
    let late_doc = late["document"]["room_document_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = room_docs(specialist.access.clone()).await;
    assert!(
        listed.iter().any(|d| d["id"] == late_doc.as_str()),
        "{listed:?}"
    );
    // In the room, it stays in the request too.
    let late_id = late["document"]["id"].as_str().unwrap();
    let (st, e) = s
        .api(
            "DELETE",
            &format!("/api/v1/referrals/{r}/documents/{late_id}"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!((st, code(&e)), (409, "attachment_in_room"), "{e}");

    // The requester hands the consultation to a colleague and leaves its care team: what they
    // attach now stays with the request (no seat of the care team shares it in the room),
    // where the receiving side still reads it.
    s.add_to_care_team(&room, &colleague_id, Some(&doc)).await;
    let (st, b) = s
        .api(
            "DELETE",
            &format!("/api/v1/rooms/{room}/care-team/{doc_id}"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    let (st, off) = attach(s, &doc, &r, "ward-note.png", &png).await;
    assert_eq!(st, 201, "{off}");
    assert_eq!(off["document"]["room_document_id"], Value::Null, "{off}");
    let off_id = off["document"]["id"].as_str().unwrap();
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/referrals/{r}/documents/{off_id}/content"),
            Some(&cardio),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let listed = room_docs(specialist.access.clone()).await;
    assert!(
        !listed.iter().any(|d| d["name"] == "ward-note.png"),
        "{listed:?}"
    );

    // Closed without a report (the patient's admission started the consultation, so it is
    // closed, no longer cancelled): nothing more is attached.
    let mut state = Value::Null;
    for _ in 0..100 {
        let (_, r) = s
            .api("GET", &format!("/api/v1/referrals/{r}"), Some(&doc), None)
            .await;
        state = r["state"].clone();
        if state == "in_consultation" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(state, "in_consultation");
    let (st, closed) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/close"),
            Some(&doc),
            Some(json!({"reason": "Patient admitted to the county hospital"})),
        )
        .await;
    assert_eq!(st, 200, "{closed}");
    let (st, e) = attach(s, &doc, &r, "late.pdf", &pdf).await;
    assert_eq!((st, code(&e)), (409, "referral_not_open"), "{e}");

    let entries = trail(s, &supervisor, &r).await;
    for expected in [
        "referral.document_attached:ok",
        "referral.document_attached:denied",
        "referral.document_read:ok",
        "referral.document_removed:ok",
        "referral.document_removed:denied",
        "access.denied:denied",
    ] {
        assert!(
            entries.iter().any(|e| e == expected),
            "{expected} not in {entries:?}"
        );
    }
    // Each document in the room's trail: the two it opened with, and the one that joined.
    let room_trail = action_outcomes(&s.audit_entries(&supervisor, &room).await);
    assert_eq!(
        room_trail
            .iter()
            .filter(|e| *e == "document.shared:ok")
            .count(),
        3,
        "{room_trail:?}"
    );
}

/// A township doctor (signed in: their token) and a county hospital with a cardiology
/// department: the county and the department's ids.
async fn township_and_county(s: &TestServer) -> (String, String, String) {
    let town = s.institution("Township").await;
    let county = s.institution("County").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, doc) = s
        .placed_account(
            "town_doc",
            AccountRole::Doctor,
            place(&town, None, "Dr. Li"),
        )
        .await;
    (county, cardiology, doc)
}

/// The per-request limits hold when uploads race: of many at once, exactly as many as fit.
async fn limits_flow(s: &TestServer, max_documents: usize) {
    let (county, cardiology, doc) = township_and_county(s).await;
    let png = sample_png();
    let pdf = sample_pdf();

    let r = request(s, &doc, &cardiology, "Palpitations").await;
    let attempts = (0..max_documents * 3).map(|i| {
        let (r, doc, png) = (r.clone(), doc.clone(), png.clone());
        async move { attach(s, &doc, &r, &format!("strip-{i}.png"), &png).await }
    });
    let results = futures_util::future::join_all(attempts).await;
    let accepted = results.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(accepted, max_documents, "{results:?}");
    for (st, e) in results.iter().filter(|(st, _)| *st != 201) {
        assert_eq!((*st, code(e)), (409, "limit_reached"), "{e}");
        assert_eq!(e["error"]["limit"], "documents_per_request");
    }

    // Bytes: two PDFs fit, the third does not.
    let r = request(s, &doc, &cardiology, "Syncope").await;
    for _ in 0..2 {
        let (st, b) = attach(s, &doc, &r, "report.pdf", &pdf).await;
        assert_eq!(st, 201, "{b}");
    }
    let (st, e) = attach(s, &doc, &r, "report.pdf", &pdf).await;
    assert_eq!((st, code(&e)), (409, "limit_reached"), "{e}");
    assert_eq!(e["error"]["limit"], "bytes_per_request");

    // Attached while the request is being scheduled: whichever commits second sees the
    // other's work, so the document is in the room either way, and only once.
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    for round in 0..4 {
        let r = request(s, &doc, &cardiology, "Dyspnoea").await;
        let path = format!("/api/v1/referrals/{r}/accept");
        let accept = s.api(
            "POST",
            &path,
            Some(&cardio),
            Some(json!({"start": now() + DAY, "minutes": 30})),
        );
        let (accepted, attached) = tokio::join!(accept, attach(s, &doc, &r, "ecg.png", &png));
        assert_eq!(accepted.0, 200, "{}", accepted.1);
        assert_eq!(attached.0, 201, "{}", attached.1);
        let after = detail(s, &doc, &r).await;
        let docs = after["documents"].as_array().unwrap();
        assert_eq!(docs.len(), 1, "round {round}: {after}");
        let in_room = docs[0]["room_document_id"].as_str();
        assert!(in_room.is_some(), "round {round}: {after}");
        let room = after["room_id"].as_str().unwrap();
        let seat = s.enter(room, Some(&cardio)).await;
        let member = s.member_with(&seat, "Prof. Zhao").await;
        let (st, listed) = s
            .api(
                "GET",
                &format!("/api/v1/rooms/{room}/documents"),
                Some(&member.access),
                None,
            )
            .await;
        assert_eq!(st, 200, "{listed}");
        let ids: Vec<&str> = listed["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [in_room.unwrap()], "round {round}");
    }
}

fn limited(c: &mut huizhen::config::Config, max_documents: usize) {
    c.documents.max_referral_documents = max_documents;
    c.documents.max_referral_bytes = (sample_pdf().len() * 5 / 2) as u64;
    // The files sent at once are another limit (`whole_files_at_once`): out of the way here.
    c.documents.max_open_uploads = max_documents * 4;
}

/// Files one account sends whole at once are bounded (`documents.max_open_uploads`, 2 here):
/// each is written to disk before it can be checked, so without a bound a few clients could
/// fill the disk with files still arriving. While two are arriving, a third is refused with
/// the limit's name, and the refusal is on the record; when one ends its place is free again;
/// the held ones complete.
async fn whole_files_at_once(s: &TestServer) {
    let (_, cardiology, doc) = township_and_county(s).await;
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;
    let png = sample_png();
    let r = request(s, &doc, &cardiology, "Palpitations").await;

    // Two files whose bodies stop after their first bytes, until told to go on.
    let mut held = Vec::new();
    for i in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        tx.send(Ok(png[..16].to_vec())).await.unwrap();
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
        let req = s
            .http
            .post(format!(
                "{}/api/v1/referrals/{r}/documents?name=held-{i}.png",
                s.base
            ))
            .bearer_auth(&doc)
            .body(body);
        let sent = tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let st = resp.status().as_u16();
            (st, resp.json::<Value>().await.unwrap_or(Value::Null))
        });
        held.push((tx, sent));
    }
    // Both are being received once both are staged on disk.
    let incoming = s.dir.path().join("data").join("incoming");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&incoming).unwrap().count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held files never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (st, e) = attach(s, &doc, &r, "third.png", &png).await;
    assert_eq!((st, code(&e)), (409, "limit_reached"), "{e}");
    assert_eq!(e["error"]["limit"], "open_uploads");

    let mut held = held.into_iter();
    let (tx, sent) = held.next().unwrap();
    tx.send(Ok(png[16..].to_vec())).await.unwrap();
    drop(tx);
    let (st, b) = sent.await.unwrap();
    assert_eq!(st, 201, "{b}");
    // Its place is free again.
    let (st, b) = attach(s, &doc, &r, "fourth.png", &png).await;
    assert_eq!(st, 201, "{b}");
    let (tx, sent) = held.next().unwrap();
    tx.send(Ok(png[16..].to_vec())).await.unwrap();
    drop(tx);
    let (st, b) = sent.await.unwrap();
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        detail(s, &doc, &r).await["documents"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        trail(s, &supervisor, &r)
            .await
            .iter()
            .filter(|a| *a == "referral.document_attached:denied")
            .count(),
        1
    );
}

/// GET of an attachment's view: the status, and the body as JSON (null for a PNG, whose
/// signature and headers are checked here).
async fn view(s: &TestServer, token: &str, path: &str) -> (u16, Value) {
    let resp = s.raw("GET", path, token, None).await;
    let st = resp.status().as_u16();
    let png = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "image/png");
    if png {
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
        let bytes = resp.bytes().await.unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{path}");
        return (st, Value::Null);
    }
    (st, resp.json().await.unwrap_or(Value::Null))
}

/// The views of each `referral.document_read` entry about request `r`, in order ("pages",
/// "page 1", "ecg", "dicom_header"; "content" for the bytes).
async fn views_read(s: &TestServer, supervisor: &str, r: &str) -> Vec<String> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    let mut views: Vec<String> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object_id"] == r && e["action"] == "referral.document_read")
        .filter(|e| e["outcome"] == "ok")
        .map(|e| {
            let d: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            match (d["view"].as_str(), d["page"].as_u64()) {
                (Some(v), Some(n)) => format!("{v} {n}"),
                (Some(v), None) => v.to_owned(),
                (None, _) => "content".to_owned(),
            }
        })
        .collect();
    views.sort();
    views
}

fn dicom_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dicom")
            .join(name),
    )
    .unwrap()
}

/// The receiving specialist (and the requester) see a request's attachments in the console's
/// viewer before any room exists: a lab PDF's page, an ECG's leads, a CT's frame and header,
/// each view on the record; a clinician of a third institution learns nothing, and the probe
/// is on the record.
async fn viewing_flow(s: &TestServer) {
    let (county, cardiology, doc) = township_and_county(s).await;
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let city = s.institution("City").await;
    let (_, far) = s
        .placed_account(
            "far",
            AccountRole::Specialist,
            place(&city, None, "Dr. Zhou"),
        )
        .await;
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;
    let r = request(s, &doc, &cardiology, "Chest pain on exertion").await;
    let ecg_csv = b"# sample_rate_hz=250\nI,II,V1\n0.1,0.2,0.0\n0.3,0.9,0.1\n0.1,0.2,0.0\n";
    let mut ids = Vec::new();
    for (name, bytes) in [
        ("troponin.pdf", sample_pdf()),
        ("ecg-12lead.csv", ecg_csv.to_vec()),
        ("chest-ct.dcm", dicom_fixture("ct.dcm")),
    ] {
        let (st, a) = attach(s, &doc, &r, name, &bytes).await;
        assert_eq!(st, 201, "{a}");
        ids.push(a["document"]["id"].as_str().unwrap().to_owned());
    }
    let [pdf, ecg, ct] = [&ids[0], &ids[1], &ids[2]];
    let base = format!("/api/v1/referrals/{r}/documents");

    for token in [&cardio, &doc] {
        let (st, pages) = view(s, token, &format!("{base}/{pdf}/pages")).await;
        assert_eq!((st, pages["pages"].as_u64()), (200, Some(1)), "{pages}");
        let (st, _) = view(s, token, &format!("{base}/{pdf}/pages/1?scale=2")).await;
        assert_eq!(st, 200);
        let (st, e) = view(s, token, &format!("{base}/{pdf}/pages/2")).await;
        assert_eq!((st, code(&e)), (404, "not_found"), "{e}");
        let (st, leads) = view(s, token, &format!("{base}/{ecg}/ecg")).await;
        assert_eq!(st, 200, "{leads}");
        assert_eq!(leads["sample_rate_hz"], 250.0);
        assert_eq!(leads["leads"].as_array().unwrap().len(), 3, "{leads}");
        // The views a kind has not are refused as in a room.
        let (st, e) = view(s, token, &format!("{base}/{pdf}/ecg")).await;
        assert_eq!((st, code(&e)), (400, "invalid_request"), "{e}");
    }
    let (st, _) = view(s, &cardio, &format!("{base}/{ct}/pages/1")).await;
    assert_eq!(st, 200);
    let (st, info) = view(s, &cardio, &format!("{base}/{ct}/dicom")).await;
    assert_eq!((st, info["fields"]["Modality"].as_str()), (200, Some("CT")));

    // Each view that showed something is on the record, with what it showed.
    let mut want: Vec<String> = ["pages", "page 1", "ecg"]
        .iter()
        .flat_map(|v| [v.to_string(), v.to_string()])
        .chain(["page 1".into(), "dicom_header".into()])
        .collect();
    want.sort();
    assert_eq!(views_read(s, &supervisor, &r).await, want);

    // Another institution's clinician learns nothing, not even that the attachment exists,
    // and each attempt is on the record.
    let before = trail(s, &supervisor, &r)
        .await
        .iter()
        .filter(|a| *a == "access.denied:denied")
        .count();
    for path in [
        format!("{base}/{pdf}/pages"),
        format!("{base}/{pdf}/pages/1"),
        format!("{base}/{ecg}/ecg"),
        format!("{base}/{ct}/dicom"),
    ] {
        let (st, e) = view(s, &far, &path).await;
        assert_eq!((st, code(&e)), (404, "not_found"), "{path}: {e}");
    }
    let denied = trail(s, &supervisor, &r)
        .await
        .iter()
        .filter(|a| *a == "access.denied:denied")
        .count();
    // Rate-limited per account and reason: at least the first is there.
    assert!(denied > before, "{before} -> {denied}");
    assert_eq!(views_read(s, &supervisor, &r).await, want);
    // An unknown attachment of a request one is on: not found, and nothing read.
    let (st, e) = view(s, &cardio, &format!("{base}/rd-nonexistent/pages")).await;
    assert_eq!((st, code(&e)), (404, "not_found"), "{e}");
}

/// An attachment's pages are rendered within the room's limits: a page whose streams inflate
/// past `documents.max_inflated_page_bytes` is refused with the typed error (and nothing is
/// recorded as read), the light page beside it is shown.
async fn viewing_limits_flow(s: &TestServer) {
    use huizhen::documents::render::pdf_of_objects;
    let (county, cardiology, doc) = township_and_county(s).await;
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;
    let zlib = |data: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let stream = |dict: &str, data: &[u8]| {
        let mut o = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        o.extend_from_slice(data);
        o.extend_from_slice(b"\nendstream");
        o
    };
    // Page 2's three content streams are each under the stream limit, together over the page's.
    let part = zlib(&vec![b' '; 900 * 1024]);
    let heavy = pdf_of_objects(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 5 0 R >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents [6 0 R 7 0 R 8 0 R] >>"
                .to_vec(),
            stream("", b"0 0 1 rg 10 10 100 100 re f"),
            stream("/Filter /FlateDecode", &part),
            stream("/Filter /FlateDecode", &part),
            stream("/Filter /FlateDecode", &part),
        ],
        "",
    );
    let r = request(s, &doc, &cardiology, "Syncope").await;
    let (st, a) = attach(s, &doc, &r, "holter-report.pdf", &heavy).await;
    assert_eq!(st, 201, "{a}");
    let id = a["document"]["id"].as_str().unwrap();
    let base = format!("/api/v1/referrals/{r}/documents/{id}");
    let (st, pages) = view(s, &cardio, &format!("{base}/pages")).await;
    assert_eq!((st, pages["pages"].as_u64()), (200, Some(2)), "{pages}");
    let (st, _) = view(s, &cardio, &format!("{base}/pages/1")).await;
    assert_eq!(st, 200);
    for _ in 0..2 {
        let (st, e) = view(s, &cardio, &format!("{base}/pages/2")).await;
        assert_eq!((st, code(&e)), (422, "too_large_to_render"), "{e}");
    }
    assert_eq!(
        views_read(s, &supervisor, &r).await,
        ["page 1".to_owned(), "pages".to_owned()]
    );
}

fn render_limited(c: &mut huizhen::config::Config) {
    c.documents.max_inflated_stream_bytes = 1 << 20;
    c.documents.max_inflated_page_bytes = 2 << 20;
}

#[tokio::test]
async fn referral_document_views_on_sqlite() {
    let s = TestServer::start().await;
    viewing_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn referral_document_views_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    viewing_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

#[tokio::test]
async fn referral_document_view_limits_on_sqlite() {
    let s = TestServer::start_with(render_limited).await;
    viewing_limits_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn whole_files_at_once_on_sqlite() {
    let s = TestServer::start_with(|c| c.documents.max_open_uploads = 2).await;
    whole_files_at_once(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn referral_documents_on_sqlite() {
    let s = TestServer::start().await;
    documents_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn referral_documents_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    documents_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

#[tokio::test]
async fn referral_document_limits_on_sqlite() {
    let s = TestServer::start_with(|c| limited(c, 3)).await;
    limits_flow(&s, 3).await;
    s.stop().await;
}

#[tokio::test]
async fn referral_document_limits_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| {
        c.storage.database_url = url;
        limited(c, 3);
    })
    .await;
    limits_flow(&s, 3).await;
    s.stop().await;
    pg.drop_db().await;
}
