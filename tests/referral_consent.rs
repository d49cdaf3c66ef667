//! The patient's consent on a consultation request, over the real server, on SQLite and
//! PostgreSQL: a township doctor's request to the county hospital carries no document until
//! the doctor attests that the patient agreed to sharing (in the current words); with it, the
//! county cardiologist reads the documents; a withdrawal withholds them from the county at
//! once (list, bytes, viewer, the request's view, which counts what is withheld without naming
//! it) while the doctor still reads them, and keeps them out of the room the request opens;
//! giving again restores. Copies already in the room are withheld from the county's specialist
//! there too (the doctor still reads them), until the consent is given again or a patient of
//! the room agrees there. Stale words, a purpose a request does not record, the receiving side
//! and an outsider attesting are refused; giving or withdrawing twice changes nothing. A
//! request within one institution needs no consent. Every change and refusal is looked for in
//! the audit trail, with its actor and detail.

use crate::common;

use crate::common::{Place, TestServer, action_outcomes, sample_pdf};
use huizhen::domain::consent::ConsentPurpose;
use huizhen::domain::ids::{DocumentId, RoomId};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const T: std::time::Duration = std::time::Duration::from_secs(10);
const PATIENT: &str = "P-2026-0917";
const WORDS: &str = ConsentPurpose::ExternalSharing.wording().version;

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

async fn request(s: &TestServer, token: &str, department: &str, consent: Option<&str>) -> Value {
    let mut body = json!({
        "target_department_id": department,
        "patient_ref": PATIENT,
        "reason": "Chest pain on exertion",
        "question": "Stable angina?",
        "urgency": "routine",
        "proposed_times": [{"start": now() + DAY, "minutes": 30}],
    });
    if let Some(v) = consent {
        body["external_sharing_consent"] = json!({"wording_version": v});
    }
    s.api("POST", "/api/v1/referrals", Some(token), Some(body))
        .await
        .1
}

async fn attach(s: &TestServer, token: &str, r: &str, name: &str) -> (u16, Value) {
    let resp = s
        .raw(
            "POST",
            &format!("/api/v1/referrals/{r}/documents?name={name}"),
            token,
            Some(sample_pdf()),
        )
        .await;
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

async fn give(s: &TestServer, token: &str, r: &str, purpose: &str, version: &str) -> (u16, Value) {
    s.api(
        "POST",
        &format!("/api/v1/referrals/{r}/consent"),
        Some(token),
        Some(json!({"purpose": purpose, "wording_version": version})),
    )
    .await
}

async fn withdraw(s: &TestServer, token: &str, r: &str) -> (u16, Value) {
    s.api(
        "POST",
        &format!("/api/v1/referrals/{r}/consent/withdraw"),
        Some(token),
        Some(json!({"purpose": "external_sharing"})),
    )
    .await
}

/// The receiving specialist accepts `r` for a time soon (the patient's invitation is valid
/// from a while before it): its room, and the room document its one attachment became.
async fn schedule_soon(s: &TestServer, specialist: &str, r: &str) -> (String, String) {
    let (st, scheduled) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/accept"),
            Some(specialist),
            Some(json!({"start": now() + 60, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{scheduled}");
    let room = scheduled["room_id"].as_str().unwrap().to_owned();
    let copy = scheduled["documents"][0]["room_document_id"]
        .as_str()
        .expect("copied into the room")
        .to_owned();
    (room, copy)
}

/// The `document_shared` that shows `doc` to `who` again, once it is no longer withheld.
async fn released(who: &common::Member, doc: &str) -> Value {
    who.ws
        .next_event_where("document_shared", T, |m| m["document"]["id"] == doc)
        .await
        .unwrap()
}

/// The ids of the documents a `joined` lists.
fn listed(joined: &Value) -> Vec<String> {
    joined["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn detail(s: &TestServer, token: &str, r: &str) -> Value {
    let (st, d) = s
        .api("GET", &format!("/api/v1/referrals/{r}"), Some(token), None)
        .await;
    assert_eq!(st, 200, "{d}");
    d
}

/// The status of each way the receiving side reads attachment `a` of `r`: the list, the
/// bytes, the viewer's page count.
async fn reads(s: &TestServer, token: &str, r: &str, a: &str) -> [(u16, String); 3] {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/referrals/{r}/documents"),
        format!("/api/v1/referrals/{r}/documents/{a}/content"),
        format!("/api/v1/referrals/{r}/documents/{a}/pages"),
    ] {
        let resp = s.raw("GET", &path, token, None).await;
        let st = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        out.push((st, code(&body).to_owned()));
    }
    out.try_into().unwrap()
}

const REFUSED: [(u16, &str); 3] = [
    (403, "consent_required"),
    (403, "consent_required"),
    (403, "consent_required"),
];

fn refused() -> [(u16, String); 3] {
    REFUSED.map(|(st, c)| (st, c.to_owned()))
}

fn served() -> [(u16, String); 3] {
    [
        (200, String::new()),
        (200, String::new()),
        (200, String::new()),
    ]
}

/// Audit entries about `object`, oldest first.
async fn entries(s: &TestServer, supervisor: &str, object: &str) -> Vec<Value> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object_id"] == object)
        .cloned()
        .collect()
}

fn detail_of(e: &Value) -> Value {
    serde_json::from_str(e["detail"].as_str().unwrap()).unwrap()
}

async fn consent_on_requests(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let town_medicine = s.department(&town, "General medicine").await;
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
    let (_, town_spec) = s
        .placed_account(
            "town_spec",
            AccountRole::Specialist,
            place(&town, Some(town_medicine.as_str()), "Dr. Wu"),
        )
        .await;
    let (cardio_id, cardio) = s
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

    // To another institution, without consent: nothing can be attached.
    let r = request(s, &doc, &cardiology, None).await;
    let r = r["id"].as_str().expect("created").to_owned();
    let d = detail(s, &doc, &r).await;
    assert_eq!(d["consent"]["required"], true, "{d}");
    assert_eq!(d["consent"]["in_force"], false);
    assert_eq!(d["consent"]["allowed"], false);
    assert_eq!(d["consent"]["current_wording"]["version"], WORDS);
    assert!(
        d["consent"]["current_wording"]["zh"]
            .as_str()
            .unwrap()
            .contains("其他医院")
    );
    let (st, e) = attach(s, &doc, &r, "troponin.pdf").await;
    assert_eq!((st, code(&e)), (403, "consent_required"), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has not agreed"),
        "{e}"
    );
    // Taken from an earlier consultation: refused alike (before the source is even looked at).
    let (st, e) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/documents/from-consultation"),
            Some(&doc),
            Some(json!({"room_id": RoomId::generate(), "document_id": DocumentId::generate()})),
        )
        .await;
    assert_eq!((st, code(&e)), (403, "consent_required"), "{e}");

    // Who may not attest: the receiving side (told), an outsider (the request does not exist).
    let (st, e) = give(s, &cardio, &r, "external_sharing", WORDS).await;
    assert_eq!((st, code(&e)), (403, "forbidden"), "{e}");
    let (st, e) = withdraw(s, &cardio, &r).await;
    assert_eq!((st, code(&e)), (403, "forbidden"), "{e}");
    let (st, e) = give(s, &far, &r, "external_sharing", WORDS).await;
    assert_eq!((st, code(&e)), (404, "not_found"), "{e}");
    // Words the server no longer shows, a purpose a request does not record, no body.
    let (st, e) = give(s, &doc, &r, "external_sharing", "2025-01-01").await;
    assert_eq!((st, code(&e)), (409, "wording_changed"), "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains(WORDS),
        "{e}"
    );
    let recording = ConsentPurpose::Recording.wording().version;
    let (st, e) = give(s, &doc, &r, "recording", recording).await;
    assert_eq!((st, code(&e)), (400, "invalid_purpose"), "{e}");
    let (st, e) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/consent"),
            Some(&doc),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    // None of that gave anything.
    assert_eq!(detail(s, &doc, &r).await["consent"]["in_force"], false);

    // The doctor attests; twice changes nothing.
    let (st, d) = give(s, &doc, &r, "external_sharing", WORDS).await;
    assert_eq!(st, 200, "{d}");
    let c = &d["consent"];
    assert_eq!(
        (c["in_force"].clone(), c["allowed"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(c["wording_version"], WORDS);
    assert_eq!(c["attested_by"]["id"], doc_id.as_str());
    assert_eq!(c["attested_by"]["display_name"], "Dr. Li");
    let given_at = c["given_at"].as_i64().unwrap();
    assert!((given_at - now()).abs() < 60);
    let (st, again) = give(s, &doc, &r, "external_sharing", WORDS).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["consent"]["given_at"], given_at);

    // With it: the doctor attaches, the cardiologist reads (and sees the consent).
    let (st, a) = attach(s, &doc, &r, "troponin.pdf").await;
    assert_eq!(st, 201, "{a}");
    let a = a["document"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reads(s, &cardio, &r, &a).await, served());
    let seen = detail(s, &cardio, &r).await;
    assert_eq!(seen["documents"].as_array().unwrap().len(), 1);
    assert_eq!(seen["documents_withheld"], 0);
    assert_eq!(seen["consent"]["in_force"], true);
    assert_eq!(seen["consent"]["attested_by"]["id"], doc_id.as_str());

    // Withdrawn: at once, the county reads nothing, and is told how many are withheld,
    // without their names; the doctor still reads; nothing more is attached.
    let (st, d) = withdraw(s, &doc, &r).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["consent"]["in_force"], false);
    assert_eq!(d["consent"]["withdrawn_by"]["id"], doc_id.as_str());
    assert!(d["consent"]["withdrawn_at"].as_i64().is_some());
    assert_eq!(
        d["documents"].as_array().unwrap().len(),
        1,
        "the doctor's own"
    );
    assert_eq!(reads(s, &cardio, &r, &a).await, refused());
    let seen = detail(s, &cardio, &r).await;
    assert_eq!(seen["documents"], json!([]));
    assert_eq!(seen["documents_withheld"], 1);
    assert_eq!(seen["consent"]["in_force"], false);
    assert_eq!(seen["consent"]["withdrawn_by"]["id"], doc_id.as_str());
    assert!(!seen.to_string().contains("troponin"), "{seen}");
    assert_eq!(reads(s, &doc, &r, &a).await, served());
    let (st, e) = attach(s, &doc, &r, "later.pdf").await;
    assert_eq!((st, code(&e)), (403, "consent_required"), "{e}");
    // Withdrawing again changes nothing.
    let (st, again) = withdraw(s, &doc, &r).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(
        again["consent"]["withdrawn_at"],
        d["consent"]["withdrawn_at"]
    );

    // Given again: a new consent, and the county reads again.
    let (st, d) = give(s, &doc, &r, "external_sharing", WORDS).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["consent"]["in_force"], true);
    assert_eq!(d["consent"]["withdrawn_at"], Value::Null);
    assert_eq!(reads(s, &cardio, &r, &a).await, served());

    // Withdrawn before the request is scheduled: its room opens without the document.
    let (st, d) = withdraw(s, &doc, &r).await;
    assert_eq!(st, 200);
    let proposed = &d["proposed_times"][0];
    let (st, accepted) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{r}/accept"),
            Some(&cardio),
            Some(json!({"start": proposed["start"], "minutes": proposed["minutes"]})),
        )
        .await;
    assert_eq!(st, 200, "{accepted}");
    assert_eq!(accepted["state"], "scheduled", "{accepted}");
    assert!(accepted["room_id"].as_str().is_some());
    assert_eq!(accepted["documents_withheld"], 1);
    let mine = detail(s, &doc, &r).await;
    assert_eq!(
        mine["documents"][0]["room_document_id"],
        Value::Null,
        "{mine}"
    );
    // Given again while that room is open (six times at once: a double tap, a retry): the
    // attachment kept out joins it now, once, a share on the room's trail, which the county's
    // specialist lists there.
    let gives = futures_util::future::join_all(
        (0..6).map(|_| give(s, &doc, &r, "external_sharing", WORDS)),
    )
    .await;
    assert!(gives.iter().all(|(st, _)| *st == 200), "{gives:?}");
    let d = detail(s, &doc, &r).await;
    let kept_room = accepted["room_id"].as_str().unwrap().to_owned();
    let joined_late = d["documents"][0]["room_document_id"]
        .as_str()
        .unwrap_or_else(|| panic!("copied in when consent was given again: {d}"))
        .to_owned();
    let county = s
        .member_with(&s.enter(&kept_room, Some(&cardio)).await, "Prof. Zhao")
        .await;
    assert_eq!(listed(&county.joined), vec![joined_late.clone()]);
    let kept_trail = s.audit_entries(&supervisor, &kept_room).await;
    let shares = kept_trail
        .iter()
        .filter(|e| {
            e["action"] == "document.shared"
                && e["actor"] == doc_id.as_str()
                && detail_of(e)["consent_given_again"] == true
        })
        .collect::<Vec<_>>();
    assert_eq!(shares.len(), 1, "{:?}", action_outcomes(&kept_trail));
    assert_eq!(shares[0]["object_id"], joined_late.as_str());
    // Giving it again copies nothing twice.
    let (st, again) = give(s, &doc, &r, "external_sharing", WORDS).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(
        again["documents"][0]["room_document_id"],
        joined_late.as_str()
    );
    drop(county);

    // A request given with the consent from the start: attached and read at once.
    let given = request(s, &doc, &cardiology, Some(WORDS)).await;
    assert_eq!(given["consent"]["in_force"], true, "{given}");
    assert_eq!(given["consent"]["attested_by"]["id"], doc_id.as_str());
    let r2 = given["id"].as_str().unwrap().to_owned();
    let (st, a2) = attach(s, &doc, &r2, "ecg.pdf").await;
    assert_eq!(st, 201, "{a2}");
    let a2 = a2["document"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reads(s, &cardio, &r2, &a2).await, served());

    // Its room opens with the document; the county's specialist reads it there only while the
    // consent is in force; the doctor (the room's own institution) always does.
    let (room, copy) = schedule_soon(s, &cardio, &r2).await;
    let specialist = s
        .member_with(&s.enter(&room, Some(&cardio)).await, "Prof. Zhao")
        .await;
    let doctor = s
        .member_with(&s.enter(&room, Some(&doc)).await, "Dr. Li")
        .await;
    let in_room = |access: String| {
        let (list, content) = (
            format!("/api/v1/rooms/{room}/documents"),
            format!("/api/v1/rooms/{room}/documents/{copy}/content"),
        );
        async move {
            let (st, b) = s.api("GET", &list, Some(&access), None).await;
            assert_eq!(st, 200, "{b}");
            let listed = b["documents"].as_array().unwrap().len();
            let resp = s.raw("GET", &content, &access, None).await;
            let st = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (listed, st, code(&body).to_owned())
        }
    };
    let read = (1, 200, String::new());
    assert_eq!(in_room(specialist.access.clone()).await, read);
    assert_eq!(listed(&specialist.joined), vec![copy.clone()]);
    let (st, _) = withdraw(s, &doc, &r2).await;
    assert_eq!(st, 200);
    // Over signaling, the specialist is told to drop it; the doctor is told nothing.
    let dropped = specialist
        .ws
        .next_event("document_withheld", T)
        .await
        .unwrap();
    assert_eq!(dropped["document_id"], copy.as_str());
    assert_eq!(
        in_room(specialist.access.clone()).await,
        (0, 403, "consent_required".to_owned())
    );
    assert_eq!(in_room(doctor.access.clone()).await, read);
    // Nothing of it reaches the county's specialist now: entering again (which takes over the
    // seat), the `joined` leaves it out, and the doctor presenting and annotating it shows
    // them nothing (the chat message after it arrives, so the room handled both).
    let specialist = s
        .member_with(&s.enter(&room, Some(&cardio)).await, "Prof. Zhao")
        .await;
    assert_eq!(listed(&specialist.joined), Vec::<String>::new());
    assert_eq!(specialist.joined["documents_withheld"], json!([copy]));
    assert_eq!(doctor.joined["documents_withheld"], json!([]));
    for msg in [
        json!({"type": "follow", "document_id": copy, "page": 1, "zoom": 1.0,
               "center": [0.5, 0.5], "pointer": null}),
        json!({"type": "annotate", "document_id": copy, "page": 1,
               "shape": {"type": "arrow", "from": [0.1, 0.1], "to": [0.3, 0.3], "color": "#d00000"}}),
        json!({"type": "chat", "text": "ECG attached"}),
    ] {
        doctor.ws.send_json(&msg).await.unwrap();
    }
    doctor
        .ws
        .next_event("annotation_added", T)
        .await
        .expect("the doctor annotated it");
    specialist
        .ws
        .next_event_where("chat", T, |m| m["message"]["text"] == "ECG attached")
        .await
        .unwrap();
    // (Only the `joined` counted it, by its id.)
    let heard = specialist.ws.history();
    assert!(
        !heard
            .iter()
            .filter(|m| m["type"] != "joined")
            .any(|m| m.to_string().contains(copy.as_str())),
        "{heard:#?}"
    );
    assert!(
        !doctor
            .ws
            .history()
            .iter()
            .any(|m| m["type"] == "document_withheld")
    );
    // Nor the consultation's summary and its exports: the county's specialist reads them
    // without the copy (named nowhere); the doctor, of the room's institution, with it.
    for (reader, sees) in [(&cardio, false), (&doc, true)] {
        for export in ["summary", "export/fhir"] {
            let (st, b) = s
                .api(
                    "GET",
                    &format!("/api/v1/rooms/{room}/{export}"),
                    Some(reader),
                    None,
                )
                .await;
            assert_eq!(st, 200, "{b}");
            let text = b.to_string();
            assert_eq!(
                text.contains(copy.as_str()) || text.contains("ecg.pdf"),
                sees,
                "{export}: {b}"
            );
        }
    }
    // A patient of the room agrees there to sharing with the care team's other hospital: that
    // consent covers the room's copies too.
    let (st, invite) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&doc),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 201, "{invite}");
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
    patient.next_event("joined", T).await.unwrap();
    common::consent_to(&patient, &["external_sharing"]).await;
    // Released: the specialist is told of it again.
    let back = released(&specialist, &copy).await;
    assert_eq!(back["document"]["visibility"], "clinicians");
    // The room's consent is written behind the room's answer (its audit writer): soon.
    let mut seen = in_room(specialist.access.clone()).await;
    for _ in 0..50 {
        if seen == read {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        seen = in_room(specialist.access.clone()).await;
    }
    assert_eq!(seen, read);
    // The patient withdraws it there: withheld again at once; the doctor then records the
    // request's consent again: released again.
    patient
        .send_json(&json!({"type": "consent", "purpose": "external_sharing", "given": false}))
        .await
        .unwrap();
    let dropped = specialist
        .ws
        .next_event("document_withheld", T)
        .await
        .unwrap();
    assert_eq!(dropped["document_id"], copy.as_str());
    assert_eq!(
        in_room(specialist.access.clone()).await,
        (0, 403, "consent_required".to_owned())
    );
    let (st, _) = give(s, &doc, &r2, "external_sharing", WORDS).await;
    assert_eq!(st, 200);
    released(&specialist, &copy).await;
    assert_eq!(in_room(specialist.access.clone()).await, read);
    // With stale words the request itself is refused, not made without the consent.
    let stale = request(s, &doc, &cardiology, Some("2025-01-01")).await;
    assert_eq!(code(&stale), "wording_changed", "{stale}");
    let (_, outbox) = s
        .api("GET", "/api/v1/referrals?box=outbox", Some(&doc), None)
        .await;
    assert_eq!(outbox["referrals"].as_array().unwrap().len(), 2, "{outbox}");
    let room_trail = s.audit_entries(&supervisor, &room).await;
    assert!(
        room_trail.iter().any(|e| e["action"] == "document.viewed"
            && e["outcome"] == "denied"
            && e["object_id"] == copy.as_str()
            && detail_of(e)["reason"] == "consent_required"),
        "{:?}",
        action_outcomes(&room_trail)
    );

    // Within one institution: no consent needed, nothing withheld.
    let local = request(s, &doc, &town_medicine, None).await;
    assert_eq!(local["consent"]["required"], false, "{local}");
    assert_eq!(local["consent"]["allowed"], true);
    let r3 = local["id"].as_str().unwrap().to_owned();
    let (st, a3) = attach(s, &doc, &r3, "letter.pdf").await;
    assert_eq!(st, 201, "{a3}");
    let a3 = a3["document"]["id"].as_str().unwrap().to_owned();
    assert_eq!(reads(s, &town_spec, &r3, &a3).await, served());

    // The trail: each change by the doctor, with what was agreed to; each refusal.
    let trail = entries(s, &supervisor, &r).await;
    let given: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "consent.given" && e["outcome"] == "ok")
        .collect();
    assert_eq!(
        given.len(),
        3,
        "given three times (the repeats recorded nothing)"
    );
    for e in &given {
        assert_eq!(e["actor"], doc_id.as_str());
        assert_eq!(e["object_type"], "referral");
        let d = detail_of(e);
        assert_eq!(d["purpose"], "external_sharing");
        assert_eq!(d["wording_version"], WORDS);
        assert_eq!(d["attested"], true);
        assert_eq!(d["on"], "referral");
    }
    let withdrawn: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "consent.withdrawn" && e["outcome"] == "ok")
        .collect();
    assert_eq!(withdrawn.len(), 2, "{trail:#?}");
    assert!(withdrawn.iter().all(|e| e["actor"] == doc_id.as_str()));
    let outcomes = action_outcomes(&trail);
    let denied = |action: &str, actor: &str, reason: &str| {
        trail.iter().any(|e| {
            e["action"] == action
                && e["outcome"] == "denied"
                && e["actor"] == actor
                && detail_of(e)["reason"] == reason
        })
    };
    assert!(
        denied("referral.document_attached", &doc_id, "consent_required"),
        "{outcomes:?}"
    );
    assert!(
        denied("referral.document_read", &cardio_id, "consent_required"),
        "{outcomes:?}"
    );
    assert!(
        denied("consent.given", &cardio_id, "forbidden"),
        "{outcomes:?}"
    );
    assert!(
        denied("consent.withdrawn", &cardio_id, "forbidden"),
        "{outcomes:?}"
    );
    assert!(
        denied("consent.given", &doc_id, "wording_changed"),
        "{outcomes:?}"
    );
    assert!(
        denied("consent.given", &doc_id, "invalid_purpose"),
        "{outcomes:?}"
    );
    assert!(
        trail
            .iter()
            .any(|e| e["action"] == "access.denied" && detail_of(e)["attempted"] == "consent.given"),
        "the outsider: {outcomes:?}"
    );
    // The request attested at creation has its entry too.
    let trail2 = entries(s, &supervisor, &r2).await;
    assert!(
        trail2
            .iter()
            .any(|e| e["action"] == "consent.given" && e["actor"] == doc_id.as_str()),
        "{:?}",
        action_outcomes(&trail2)
    );

    // Twelve attestations of one request at once (a double tap, a retry), then twelve
    // withdrawals at once: each answered as it stands, and the record holds one consent, in
    // force, then withdrawn (the row is written only where none is in force, by the one
    // writer, in order).
    let r3 = request(s, &doc, &cardiology, None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gives = futures_util::future::join_all(
        (0..12).map(|_| give(s, &doc, &r3, "external_sharing", WORDS)),
    )
    .await;
    for (st, b) in &gives {
        assert_eq!(*st, 200, "{b}");
    }
    assert_eq!(detail(s, &doc, &r3).await["consent"]["in_force"], true);
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&s.database_url).await.unwrap();
    let rows = |open: bool| {
        let db = db.clone();
        let r3 = r3.clone();
        async move {
            let sql = if open {
                "SELECT COUNT(*) FROM referral_consents WHERE referral_id = $1 \
                 AND withdrawn_at IS NULL"
            } else {
                "SELECT COUNT(*) FROM referral_consents WHERE referral_id = $1"
            };
            sqlx::query_scalar::<_, i64>(sql)
                .bind(r3)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!((rows(false).await, rows(true).await), (1, 1), "one consent");
    let withdrawals = futures_util::future::join_all((0..12).map(|_| withdraw(s, &doc, &r3))).await;
    for (st, b) in &withdrawals {
        assert_eq!(*st, 200, "{b}");
    }
    assert_eq!(detail(s, &doc, &r3).await["consent"]["in_force"], false);
    assert_eq!((rows(false).await, rows(true).await), (1, 0), "withdrawn");
    // And the trail says so: one consent given, one withdrawn (an attestation that found
    // another's already in force, or a withdrawal another had made, recorded nothing).
    let trail3 = entries(s, &supervisor, &r3).await;
    let count = |action: &str| {
        trail3
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == "ok")
            .count()
    };
    assert_eq!(
        (count("consent.given"), count("consent.withdrawn")),
        (1, 1),
        "{:?}",
        action_outcomes(&trail3)
    );
}

/// Upgrading a server whose database predates migration 0015 (README, "Upgrading"): requests
/// sent to another hospital with documents have no consent on record, so the receiving side
/// reads none of them, on the request or in its room, until the requesting doctor records the
/// patient's consent; nothing is deleted. The old database is made as the previous release
/// left it: a request made, given documents and scheduled here, then migration 0015 undone (its
/// table dropped and its row in `_sqlx_migrations` deleted; it only adds that table), and the
/// schema brought up to date again, as a new release does when it starts.
async fn the_upgrade_withholds_until_consent_is_recorded(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, doc) = s
        .placed_account(
            "town_doc",
            AccountRole::Doctor,
            place(&town, None, "Dr. Li"),
        )
        .await;
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let made = request(s, &doc, &cardiology, Some(WORDS)).await;
    let r = made["id"].as_str().expect("created").to_owned();
    let (st, a) = attach(s, &doc, &r, "troponin.pdf").await;
    assert_eq!(st, 201, "{a}");
    let a = a["document"]["id"].as_str().unwrap().to_owned();
    let (room, copy) = schedule_soon(s, &cardio, &r).await;

    // The previous release's database, brought up to date.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.database_url).await.unwrap();
    for statement in [
        "DROP TABLE referral_consents",
        "DELETE FROM _sqlx_migrations WHERE version = 15",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    huizhen::storage::Db::connect(&s.database_url)
        .await
        .expect("the schema is brought up to date")
        .close()
        .await;

    // The receiving side: the request's documents withheld, counted, not named.
    assert_eq!(reads(s, &cardio, &r, &a).await, refused());
    let seen = detail(s, &cardio, &r).await;
    assert_eq!(seen["consent"]["required"], true, "{seen}");
    assert_eq!(seen["consent"]["in_force"], false);
    assert_eq!(seen["consent"]["given_at"], Value::Null);
    assert_eq!(seen["documents_withheld"], 1);
    assert!(!seen.to_string().contains("troponin"), "{seen}");
    // In the room too: the specialist neither lists nor reads the copy (nor does signaling
    // name it); the doctor, of the room's hospital, does.
    let specialist = s
        .member_with(&s.enter(&room, Some(&cardio)).await, "Prof. Zhao")
        .await;
    assert_eq!(listed(&specialist.joined), Vec::<String>::new());
    assert_eq!(specialist.joined["documents_withheld"], json!([copy]));
    let content = format!("/api/v1/rooms/{room}/documents/{copy}/content");
    let resp = s.raw("GET", &content, &specialist.access, None).await;
    assert_eq!(resp.status().as_u16(), 403);
    let doctor = s
        .member_with(&s.enter(&room, Some(&doc)).await, "Dr. Li")
        .await;
    assert_eq!(listed(&doctor.joined), vec![copy.clone()]);
    // Nothing was deleted: the doctor still reads the request's documents, and the request's
    // dialog offers to record the consent, which gives the receiving side everything back, in
    // the live room at once.
    assert_eq!(reads(s, &doc, &r, &a).await, served());
    let mine = detail(s, &doc, &r).await;
    assert_eq!(mine["consent"]["allowed"], false, "{mine}");
    assert_eq!(mine["documents"].as_array().unwrap().len(), 1);
    let (st, given) = give(s, &doc, &r, "external_sharing", WORDS).await;
    assert_eq!(st, 200, "{given}");
    assert_eq!(given["consent"]["in_force"], true);
    assert_eq!(reads(s, &cardio, &r, &a).await, served());
    let back = released(&specialist, &copy).await;
    assert_eq!(back["document"]["name"], "troponin.pdf");
    let resp = s.raw("GET", &content, &specialist.access, None).await;
    assert_eq!(resp.status().as_u16(), 200);
}

common::on_both_databases!(
    #[tokio::test]
    the_upgrade_withholds_until_consent_is_recorded,
    |_| {}
);

common::on_both_databases!(
    #[tokio::test]
    consent_on_requests,
    |_| {}
);
