//! The patient's outcome page over the real server (docs/protocol.md, "The patient's
//! outcome"): with their invitation link, the patient sees exactly the issued reports (a
//! corrected one marked as replaced) and prescriptions (with their pharmacy status in words)
//! and the follow-up of their own consultation, as JSON and as a PDF, past the link's expiry
//! for joining but not past `rooms.outcome_days`; never a draft, a note or another patient's
//! records; an observer's link, a clinician's seat, a forged token and a revoked link are
//! refused with their own codes, and everything is audited. On SQLite and PostgreSQL.

use crate::common;

use crate::common::{ACCOUNT_PASSWORD, DOCTOR_PASSWORD, TestServer};
use huizhen::auth::{Claims, SigningKey, TokenKind};
use huizhen::domain::ids::RoomId;
use huizhen::domain::role::{AccountRole, Role};
use serde_json::{Value, json};
use std::time::Duration;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYY-MM-DD` of the UTC day `days` from today (Howard Hinnant's civil-from-days).
fn day_from_today(days: i64) -> String {
    let z = now_unix().div_euclid(86_400) + days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn outcome(s: &TestServer, token: &str) -> (u16, Value) {
    s.api("GET", "/api/v1/outcome", Some(token), None).await
}

/// Creates a record in `room` with a participant's access token; the created Record.
async fn record(s: &TestServer, room: &str, access: &str, body: Value) -> Value {
    let (st, r) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(access),
            Some(body),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    r
}

/// Moves a room's end back by `days` in the database, as if it had ended that long ago.
async fn end_earlier(db_url: &str, room: &str, days: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    let done = sqlx::query("UPDATE rooms SET ended_at = ended_at - $1 WHERE id = $2")
        .bind(days * 86_400)
        .bind(room)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    pool.close().await;
}

async fn outcome_flow(s: &TestServer, db_url: &str) {
    let room = s.create_room("心内科远程会诊").await;
    let (link, invite_id) = s.invite_with_id(&room, "patient").await;
    let (observer_link, _) = s.invite_with_id(&room, "observer").await;
    let (withdrawn_link, withdrawn_id) = s.invite_with_id(&room, "patient").await;
    let patient = s.member_with(&link, "Li Lei").await;

    // Before anything is issued: the page opens, with nothing on it.
    let (st, empty) = outcome(s, &link).await;
    assert_eq!(st, 200, "{empty}");
    assert_eq!(empty["consultation"]["title"], "心内科远程会诊");
    assert_eq!(empty["consultation"]["status"], "open");
    assert_eq!(empty["institution"]["name"], "Default institution");
    assert!(empty["reports"].as_array().unwrap().is_empty());
    assert!(empty["prescriptions"].as_array().unwrap().is_empty());
    assert!(empty["clinicians"].as_array().unwrap().is_empty());
    let resp = s.raw("GET", "/api/v1/outcome/pdf", &link, None).await;
    assert_eq!(resp.status(), 200);
    let pdf = resp.bytes().await.unwrap();
    let text = common::pdf::text(&pdf);
    assert!(text.contains("Nothing has been issued yet"), "{text}");
    // Times in the institution's zone (display.time_zone), which the web client is told too.
    assert!(
        text.contains("Times are in Asia/Shanghai (UTC+08:00)"),
        "{text}"
    );
    assert!(text.contains(" +08:00"), "{text}");
    let (st, display) = s.api("GET", "/api/v1/display", Some(""), None).await;
    assert_eq!(st, 200, "{display}");
    assert_eq!(
        display,
        json!({"time_zone": "Asia/Shanghai", "utc_offset": "+08:00",
               "branding": {"name": null, "logo_url": null, "accent": null}})
    );

    // The care team writes: the specialist a signed report with follow-up, a draft and a note;
    // a correction replaces the report; the doctor a signed prescription a pharmacist reviews.
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let seat = s.invite(&room, "specialist").await;
    let specialist = s.member_with(&seat, "Prof. Zhao").await;
    let follow_date = day_from_today(14);
    let report = record(
        s,
        &room,
        &specialist.access,
        json!({"kind": "diagnosis_report", "issue": true, "password": ACCOUNT_PASSWORD,
               "body": {"findings": "ST elevation V1-V4", "impression": "急性前壁心肌梗死",
                        "recommendation": "Transfer for PCI",
                        "follow_up_date": follow_date, "follow_up_advice": "两周后复查心电图"}}),
    )
    .await;
    assert_eq!(report["status"], "issued");
    let report_id = report["id"].as_str().unwrap().to_owned();
    // A follow-up date more than two years ahead is refused.
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&specialist.access),
            Some(json!({"kind": "diagnosis_report",
                        "body": {"findings": "f", "impression": "i", "recommendation": "",
                                 "follow_up_date": day_from_today(800)}})),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");
    let draft = record(
        s,
        &room,
        &specialist.access,
        json!({"kind": "diagnosis_report",
               "body": {"findings": "DRAFT-FINDINGS not for the patient", "impression": "tbd",
                        "recommendation": ""}}),
    )
    .await;
    assert_eq!(draft["status"], "draft");
    let note = record(
        s,
        &room,
        &specialist.access,
        json!({"kind": "note", "issue": true, "body": {"text": "NOTE-TEXT family history of CAD"}}),
    )
    .await;
    let correction = record(
        s,
        &room,
        &specialist.access,
        json!({"kind": "diagnosis_report", "issue": true, "password": ACCOUNT_PASSWORD,
               "supersedes": report_id,
               "body": {"findings": "ST elevation V1-V5", "impression": "急性前壁心肌梗死",
                        "recommendation": "Transfer for primary PCI within 90 minutes",
                        "follow_up_date": follow_date,
                        "follow_up_advice": "两周后复查心电图，按时服药"}}),
    )
    .await;
    let correction_id = correction["id"].as_str().unwrap().to_owned();
    let rx = record(
        s,
        &room,
        &doctor.access,
        json!({"kind": "prescription", "issue": true, "password": DOCTOR_PASSWORD,
               "body": {"items": [{"medication": "阿司匹林肠溶片", "dose": "100 mg",
                                   "route": "oral", "frequency": "once daily",
                                   "duration": "30 days"}]}}),
    )
    .await;
    let rx_id = rx["id"].as_str().unwrap().to_owned();
    let pharmacist = s.account("pharm", AccountRole::Pharmacist).await;
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/prescriptions/{rx_id}/review"),
            Some(&pharmacist),
            Some(json!({"note": "dose checked"})),
        )
        .await;
    assert_eq!((st, b["status"].as_str()), (200, Some("reviewed")), "{b}");

    // A second patient link is revoked before the end.
    assert_eq!(s.revoke_invite(&room, &withdrawn_id).await, 204);

    // Another consultation, another patient.
    let other_room = s.create_room("内分泌科复诊").await;
    let (other_link, _) = s.invite_with_id(&other_room, "patient").await;
    let other_doctor = s.member(&other_room, "doctor", "Dr. Wang").await;
    record(
        s,
        &other_room,
        &other_doctor.access,
        json!({"kind": "prescription", "issue": true, "password": DOCTOR_PASSWORD,
               "body": {"items": [{"medication": "二甲双胍缓释片", "dose": "500 mg",
                                   "route": "oral", "frequency": "twice daily",
                                   "duration": "90 days"}]}}),
    )
    .await;

    // The consultation ends; the page goes on.
    let (st, _) = s
        .api("POST", &format!("/api/v1/rooms/{room}/end"), None, None)
        .await;
    assert_eq!(st, 204);
    drop(patient);

    let (st, o) = outcome(s, &link).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(o["consultation"]["status"], "ended");
    assert!(o["consultation"]["ended_at"].is_number());
    let reports = o["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2, "{o}");
    assert_eq!(reports[0]["id"], report_id.as_str());
    assert_eq!(reports[0]["replaced_by"], correction_id.as_str());
    assert_eq!(
        reports[0]["status_words"]["en"],
        "Replaced by a corrected report"
    );
    assert_eq!(reports[1]["id"], correction_id.as_str());
    assert_eq!(reports[1]["supersedes"], report_id.as_str());
    assert!(reports[1]["replaced_by"].is_null());
    assert_eq!(reports[1]["status_words"]["zh"], "已签发");
    assert_eq!(reports[1]["signed_by"]["name"], "Prof. Zhao");
    assert_eq!(reports[1]["signed_by"]["title"], "Chief physician");
    assert_eq!(reports[1]["body"]["follow_up_date"], follow_date.as_str());
    let rxs = o["prescriptions"].as_array().unwrap();
    assert_eq!(rxs.len(), 1, "{o}");
    assert_eq!(rxs[0]["id"], rx_id.as_str());
    assert_eq!(rxs[0]["status"], "reviewed");
    assert_eq!(rxs[0]["status_words"]["en"], "Reviewed by the pharmacist");
    assert_eq!(rxs[0]["status_words"]["zh"], "药师已审核");
    assert_eq!(rxs[0]["body"]["items"][0]["medication"], "阿司匹林肠溶片");
    assert_eq!(rxs[0]["signed_by"]["name"], "Dr. Wang");
    let names: Vec<&str> = o["clinicians"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Prof. Zhao", "Dr. Wang"]);
    // Follow-up from the current report only.
    let follow = o["follow_up"].as_array().unwrap();
    assert_eq!(follow.len(), 1, "{o}");
    assert_eq!(follow[0]["report_id"], correction_id.as_str());
    assert_eq!(follow[0]["date"], follow_date.as_str());
    assert_eq!(follow[0]["advice"], "两周后复查心电图，按时服药");
    // Never the draft or the note, nothing of the other consultation, no account ids.
    let text = o.to_string();
    for hidden in [
        draft["id"].as_str().unwrap(),
        "DRAFT-FINDINGS",
        note["id"].as_str().unwrap(),
        "NOTE-TEXT",
        "二甲双胍",
        "内分泌科复诊",
        "dose checked",
        "MRN-0042",
        "\"u_",
    ] {
        assert!(!text.contains(hidden), "{hidden} leaked: {text}");
    }
    assert!(o["available_until"].as_i64().unwrap() > now_unix() + 29 * 86_400);

    // The other patient sees only their own.
    let (st, other) = outcome(s, &other_link).await;
    assert_eq!(st, 200, "{other}");
    assert_eq!(other["consultation"]["title"], "内分泌科复诊");
    assert_eq!(other["prescriptions"].as_array().unwrap().len(), 1);
    assert_eq!(
        other["prescriptions"][0]["status_words"]["en"],
        "Awaiting the pharmacist's review"
    );
    assert!(other["reports"].as_array().unwrap().is_empty());
    assert!(!other.to_string().contains("阿司匹林"));

    // Past the link's expiry for joining, the page still opens: the same invitation signed
    // with an expiry an hour ago (the server's own key, read from its data directory).
    let key = SigningKey::load_or_create(&s.dir.path().join("data").join("signing.key")).unwrap();
    let expired_link = key.sign(&Claims {
        kind: TokenKind::Invite,
        sub: invite_id.clone(),
        room: RoomId::parse(&room),
        role: Some(Role::Patient),
        sid: None,
        exp: now_unix() - 3600,
        nonce: 1,
    });
    let (st, late) = outcome(s, &expired_link).await;
    assert_eq!(st, 200, "{late}");
    assert_eq!(late["reports"].as_array().unwrap().len(), 2);

    // The PDF: the same, for the patient, as an attachment.
    let resp = s.raw("GET", "/api/v1/outcome/pdf", &link, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let pdf = resp.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let fonts = common::pdf::fonts(&pdf);
    assert!(
        fonts
            .iter()
            .all(|f| f.base_font.contains("NotoSansCJK") && f.file.is_some() && f.to_unicode),
        "{fonts:?}"
    );
    let text = common::pdf::text(&pdf);
    for shown in [
        "阿司匹林肠溶片",
        "处方 Prescription",
        "诊断报告 Diagnosis report",
        "药师已审核",
        "Transfer for primary PCI",
        "两周后复查心电图",
        "Prof. Zhao",
    ] {
        assert!(
            text.contains(shown),
            "{shown} missing from the PDF:\n{text}"
        );
    }
    for hidden in ["DRAFT-FINDINGS", "NOTE-TEXT", "二甲双胍"] {
        assert!(!text.contains(hidden), "{hidden} in the PDF");
    }

    // Refusals, each with its own code.
    let (st, b) = outcome(s, &observer_link).await;
    assert_eq!((st, code(&b)), (403, "not_patient_link"), "{b}");
    let (st, b) = outcome(s, &seat).await;
    assert_eq!((st, code(&b)), (403, "not_patient_link"), "{b}");
    let (st, b) = outcome(s, &withdrawn_link).await;
    assert_eq!((st, code(&b)), (403, "invite_revoked"), "{b}");
    // Forged: another role written into the patient's token, the signature kept.
    let (payload, sig) = link.strip_prefix("hz1.").unwrap().split_once('.').unwrap();
    let forged = format!(
        "hz1.{}.{}",
        {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let claims = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
            b64.encode(claims.replace("\"patient\"", "\"observer\""))
        },
        sig
    );
    for bad in [forged.as_str(), "hz1.nonsense.token", &doctor.access] {
        let (st, b) = outcome(s, bad).await;
        assert_eq!((st, code(&b)), (401, "invalid_token"), "{b}");
    }
    let (st, b) = s.api("GET", "/api/v1/outcome", Some(""), None).await;
    assert_eq!((st, code(&b)), (401, "unauthenticated"), "{b}");
    let resp = s
        .raw("GET", "/api/v1/outcome/pdf", &observer_link, None)
        .await;
    assert_eq!(resp.status(), 403);

    // `rooms.outcome_days` (30) after the end, the link no longer opens it.
    end_earlier(db_url, &room, 31).await;
    let (st, b) = outcome(s, &link).await;
    assert_eq!((st, code(&b)), (410, "outcome_expired"), "{b}");
    let resp = s.raw("GET", "/api/v1/outcome/pdf", &link, None).await;
    assert_eq!(resp.status(), 410);

    // Everything is on the audit trail, which still verifies.
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let entries = s.audit_entries(&sup, &room).await;
    let actions = common::action_outcomes(&entries);
    for want in [
        "outcome.viewed:ok",
        "outcome.downloaded:ok",
        "access.denied:denied",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }
    let viewed = entries
        .iter()
        .find(|e| e["action"] == "outcome.viewed")
        .unwrap();
    assert_eq!(viewed["actor"], invite_id.as_str());
    assert_eq!(viewed["actor_role"], "patient");
    let trail = serde_json::to_string(&entries).unwrap();
    for reason in [
        "outcome_not_patient_link",
        "outcome_revoked_invite",
        "outcome_expired",
    ] {
        assert!(trail.contains(reason), "{reason} not audited");
    }
    let (_, all) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(&sup), None)
        .await;
    assert!(
        all.to_string().contains("outcome_invalid_token"),
        "the forged token is audited"
    );
    let (_, v) = s.api("GET", "/api/v1/audit/verify", Some(&sup), None).await;
    assert!(v["first_broken"].is_null(), "{v}");

    // The page: served at /outcome with a strict content security policy.
    let resp = s.raw("GET", "/outcome", "", None).await;
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("/js/outcome-app.js"));
    for asset in ["/js/outcome-app.js", "/css/outcome.css"] {
        assert_eq!(s.raw("GET", asset, "", None).await.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn outcome_on_sqlite() {
    let s = TestServer::start_with(|c| c.display.time_zone = "Asia/Shanghai".into()).await;
    let url = format!(
        "sqlite://{}",
        s.dir.path().join("data").join("huizhen.db").display()
    );
    outcome_flow(&s, &url).await;
    s.stop().await;
}

#[tokio::test]
async fn outcome_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| {
        c.storage.database_url = url;
        c.display.time_zone = "Asia/Shanghai".into();
    })
    .await;
    outcome_flow(&s, &pg.url).await;
    s.stop().await;
    pg.drop_db().await;
}

/// The ids of the records `access` may read in `room`.
async fn record_ids(s: &TestServer, room: &str, access: &str) -> Vec<String> {
    let (st, b) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/records"),
            Some(access),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Two patients come to one consultation (one after the other from a waiting room, or
/// together): each reads only the reports and prescriptions about them, in the room, live and
/// on their outcome page; a report or a prescription must then say whose it is.
async fn two_patients_flow(s: &TestServer) {
    let room = s.create_room("两位患者的会诊").await;
    let (link_a, _) = s.invite_with_id(&room, "patient").await;
    let (link_b, _) = s.invite_with_id(&room, "patient").await;
    let seat = s.invite(&room, "specialist").await;
    let specialist = s.member_with(&seat, "Prof. Zhao").await;
    let a = s.member_with(&link_a, "Li Lei").await;

    // While only one patient has come, a report is theirs without saying so.
    let first = record(
        s,
        &room,
        &specialist.access,
        json!({"kind": "diagnosis_report", "issue": true, "password": ACCOUNT_PASSWORD,
               "body": {"findings": "A-FINDINGS", "impression": "A-IMPRESSION",
                        "recommendation": ""}}),
    )
    .await;
    assert_eq!(first["status"], "issued");
    a.ws.next_event_where("record_updated", Duration::from_secs(5), |m| {
        m["record"]["id"] == first["id"]
    })
    .await
    .expect("the patient it is about is told");

    let b = s.member_with(&link_b, "Han Meimei").await;
    // Now there are two: whose is it?
    let (st, refused) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&specialist.access),
            Some(
                json!({"kind": "prescription", "issue": true, "password": ACCOUNT_PASSWORD,
                        "body": {"items": [{"medication": "B-MEDICATION", "dose": "1 tablet",
                                            "route": "oral", "frequency": "daily",
                                            "duration": "7 days"}]}}),
            ),
        )
        .await;
    assert_eq!((st, code(&refused)), (409, "patient_required"), "{refused}");
    // Naming someone who is not a patient of this consultation is refused.
    let (st, refused) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&specialist.access),
            Some(json!({"kind": "note", "body": {"text": "x"}, "patient": specialist.id})),
        )
        .await;
    assert_eq!((st, code(&refused)), (400, "invalid_request"), "{refused}");
    let rx = record(
        s,
        &room,
        &specialist.access,
        json!({"kind": "prescription", "issue": true, "password": ACCOUNT_PASSWORD,
               "patient": b.id,
               "body": {"items": [{"medication": "B-MEDICATION", "dose": "1 tablet",
                                   "route": "oral", "frequency": "daily",
                                   "duration": "7 days"}]}}),
    )
    .await;
    b.ws.next_event_where("record_updated", Duration::from_secs(5), |m| {
        m["record"]["id"] == rx["id"]
    })
    .await
    .expect("the second patient is told of theirs");
    // The first patient is told nothing of it (their own report's news came earlier).
    let leaked =
        a.ws.next_event_where("record_updated", Duration::from_millis(800), |m| {
            m["record"]["id"] == rx["id"]
        })
        .await;
    assert!(
        leaked.is_err(),
        "the other patient's prescription reached them: {leaked:?}"
    );

    // Listed in the room: each their own; the care team both.
    let (first_id, rx_id) = (first["id"].as_str().unwrap(), rx["id"].as_str().unwrap());
    assert_eq!(
        record_ids(s, &room, &a.access).await,
        vec![first_id.to_owned()]
    );
    assert_eq!(
        record_ids(s, &room, &b.access).await,
        vec![rx_id.to_owned()]
    );
    assert_eq!(record_ids(s, &room, &specialist.access).await.len(), 2);
    // The care team's list names the patient each is about.
    let (st, list) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&specialist.access),
            None,
        )
        .await;
    assert_eq!(st, 200, "{list}");
    let about = |id: &str| {
        list["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["subject_name"].clone())
    };
    assert_eq!(about(first_id), Some(json!("Li Lei")), "{list}");
    assert_eq!(about(rx_id), Some(json!("Han Meimei")), "{list}");

    // Their outcome pages, likewise.
    let (st, oa) = outcome(s, &link_a).await;
    assert_eq!(st, 200, "{oa}");
    assert_eq!(oa["reports"].as_array().unwrap().len(), 1, "{oa}");
    assert!(oa["prescriptions"].as_array().unwrap().is_empty(), "{oa}");
    assert!(!oa.to_string().contains("B-MEDICATION"));
    let (st, ob) = outcome(s, &link_b).await;
    assert_eq!(st, 200, "{ob}");
    assert!(ob["reports"].as_array().unwrap().is_empty(), "{ob}");
    assert_eq!(ob["prescriptions"].as_array().unwrap().len(), 1, "{ob}");
    assert!(!ob.to_string().contains("A-FINDINGS"));
}

#[tokio::test]
async fn each_patient_reads_only_their_own_records_on_sqlite() {
    let s = TestServer::start().await;
    two_patients_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn each_patient_reads_only_their_own_records_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    two_patients_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
