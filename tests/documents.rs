//! Documents shared in a live room over the real server: resumable upload, who sees what,
//! viewing versus downloading, integrity, bad input, chat, follow mode and annotations, and the
//! audit trail they leave. The main flow runs on SQLite and on PostgreSQL.

use crate::common;

use huizhen::documents::render::pdf_of_objects as build_pdf;
use std::time::Duration;

use crate::common::{Member, TestServer, sample_pdf, sample_png, sha256_hex};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

/// Nothing of `type_name` about `doc` reached this client (checked after a later message that
/// was sent after it, so ordering makes the absence meaningful).
fn never_saw(m: &Member, type_name: &str, doc: &str) -> bool {
    !m.ws
        .history()
        .iter()
        .any(|msg| msg["type"] == type_name && msg.to_string().contains(doc))
}

async fn consultation_flow(s: &TestServer, db_url: &str) {
    let room = s.create_room("Joint consultation").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let specialist = s.member(&room, "specialist", "Prof. Zhao").await;
    let patient = s.consenting_patient(&room, "Li Lei").await;
    let observer = s.member(&room, "observer", "Trainee").await;

    // A clinicians-only PDF in several chunks, then an image for everyone.
    let pdf = sample_pdf();
    let (status, body) = s
        .share(&room, &doctor.access, "血常规.pdf", &pdf, "clinicians", 300)
        .await;
    assert_eq!(status, 201, "{body}");
    let pdf_id = body["document"]["id"].as_str().unwrap().to_owned();
    assert_eq!(body["document"]["kind"], "pdf");
    assert_eq!(body["document"]["sha256"], sha256_hex(&pdf));
    let png = sample_png();
    let (status, body) = s
        .share(&room, &doctor.access, "xray.png", &png, "everyone", 1 << 20)
        .await;
    assert_eq!(status, 201, "{body}");
    let png_id = body["document"]["id"].as_str().unwrap().to_owned();

    // The specialist is told about both; the patient and observer only about the image.
    let first = specialist
        .ws
        .next_event("document_shared", T)
        .await
        .unwrap();
    assert_eq!(first["document"]["id"], pdf_id.as_str());
    specialist
        .ws
        .next_event("document_shared", T)
        .await
        .unwrap();
    for m in [&patient, &observer] {
        let got = m.ws.next_event("document_shared", T).await.unwrap();
        assert_eq!(got["document"]["id"], png_id.as_str());
        assert!(never_saw(m, "document_shared", &pdf_id));
    }

    // Listing follows the same rule.
    let (_, list) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            Some(&patient.access),
            None,
        )
        .await;
    let ids: Vec<&str> = list["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [png_id.as_str()]);

    // Viewing: the specialist gets the exact bytes, inline, never cached, sandboxed.
    let content = format!("/api/v1/rooms/{room}/documents/{pdf_id}/content");
    let resp = s.raw("GET", &content, &specialist.access, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), pdf.as_slice());
    // The viewer's pages: rendered on the server as PNG.
    let (st, pages) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{pdf_id}/pages"),
            Some(&specialist.access),
            None,
        )
        .await;
    assert_eq!((st, pages["pages"].as_u64()), (200, Some(1)));
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{pdf_id}/pages/1?scale=1"),
            &specialist.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert!(resp.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{pdf_id}/pages/2"),
            &specialist.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 404);
    // A DICOM slice: its header fields and its image.
    let dcm = huizhen::documents::dicom::sample(64, 64);
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "chest-ct.dcm",
            &dcm,
            "clinicians",
            1 << 20,
        )
        .await;
    assert_eq!(
        (st, body["document"]["kind"].as_str()),
        (201, Some("dicom")),
        "{body}"
    );
    let dcm_id = body["document"]["id"].as_str().unwrap().to_owned();
    let (st, info) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{dcm_id}/dicom"),
            Some(&specialist.access),
            None,
        )
        .await;
    assert_eq!(st, 200, "{info}");
    assert_eq!(info["fields"]["Modality"], "CT");
    assert!(info["image_unavailable"].is_null());
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{dcm_id}/pages/1"),
            &specialist.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap().starts_with(b"\x89PNG"));
    specialist
        .ws
        .next_event("document_shared", T)
        .await
        .unwrap();
    // An ECG strip as CSV: recognised by content, served as samples for the viewer.
    let ecg = b"# sample_rate_hz=250\nI,II,V1\n0.1,0.2,0.0\n0.3,0.9,0.1\n0.1,0.2,0.0\n".to_vec();
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "ecg-12lead.csv",
            &ecg,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(
        (st, body["document"]["kind"].as_str()),
        (201, Some("ecg")),
        "{body}"
    );
    let ecg_id = body["document"]["id"].as_str().unwrap().to_owned();
    let (st, strip) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{ecg_id}/ecg"),
            Some(&patient.access),
            None,
        )
        .await;
    assert_eq!(st, 200, "{strip}");
    assert_eq!(strip["sample_rate_hz"], 250.0);
    assert_eq!(strip["leads"][1]["name"], "II");
    assert_eq!(strip["leads"][1]["samples"].as_array().unwrap().len(), 3);
    for m in [&specialist, &patient, &observer] {
        m.ws.next_event("document_shared", T).await.unwrap();
    }
    // The patient may not read a clinicians-only document, by any route.
    for path in [
        content.clone(),
        format!("/api/v1/rooms/{room}/documents/{pdf_id}"),
    ] {
        let resp = s.raw("GET", &path, &patient.access, None).await;
        assert_eq!(resp.status(), 403, "{path}");
    }
    // Downloading is a separate right: the observer may view the image but not download it.
    let png_content = format!("/api/v1/rooms/{room}/documents/{png_id}/content");
    assert_eq!(
        s.raw("GET", &png_content, &observer.access, None)
            .await
            .status(),
        200
    );
    let dl = format!("{png_content}?download=1");
    assert_eq!(
        s.raw("GET", &dl, &observer.access, None).await.status(),
        403
    );
    let resp = s.raw("GET", &dl, &patient.access, None).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );

    // Chat is persisted and reaches everyone.
    patient
        .ws
        .send_json(&json!({"type": "chat", "text": "我今天早上有点胸闷"}))
        .await
        .unwrap();
    for m in [&doctor, &specialist, &patient, &observer] {
        let c = m.ws.next_event("chat", T).await.unwrap();
        assert_eq!(c["message"]["text"], "我今天早上有点胸闷");
        assert_eq!(c["message"]["role"], "patient");
    }

    // Follow mode on the clinicians-only PDF: the specialist follows; the patient is not told.
    doctor
        .ws
        .send_json(
            &json!({"type": "follow", "document_id": pdf_id, "page": 1, "zoom": 2.0,
                           "center": [0.5, 0.4], "pointer": [0.25, 0.75]}),
        )
        .await
        .unwrap();
    let f = specialist.ws.next_event("follow", T).await.unwrap();
    assert_eq!(f["presenter"], doctor.id.as_str());
    assert_eq!(f["zoom"], 2.0);
    assert_eq!(f["pointer"], json!([0.25, 0.75]));
    // An annotation on the PDF: stored, relayed to clinicians, visible to late readers.
    specialist
        .ws
        .send_json(&json!({"type": "annotate", "document_id": pdf_id, "page": 1,
                           "shape": {"type": "arrow", "from": [0.1, 0.1], "to": [0.3, 0.3], "color": "#d00000"}}))
        .await
        .unwrap();
    let a = doctor.ws.next_event("annotation_added", T).await.unwrap();
    assert_eq!(a["annotation"]["shape"]["type"], "arrow");
    let (status, anns) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{pdf_id}/annotations"),
            Some(&doctor.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(anns["annotations"].as_array().unwrap().len(), 1);
    // Then follow on the image, which the patient does see.
    doctor
        .ws
        .send_json(
            &json!({"type": "follow", "document_id": png_id, "page": 1, "zoom": 1.0,
                           "center": [0.5, 0.5], "pointer": null}),
        )
        .await
        .unwrap();
    let f = patient.ws.next_event("follow", T).await.unwrap();
    assert_eq!(f["document_id"], png_id.as_str());
    assert!(never_saw(&patient, "follow", &pdf_id));
    assert!(never_saw(&patient, "annotation_added", &pdf_id));
    // Patients neither present nor annotate.
    patient
        .ws
        .send_json(&json!({"type": "follow", "document_id": png_id}))
        .await
        .unwrap();
    patient.ws.expect_error("forbidden", T).await.unwrap();
    patient
        .ws
        .send_json(
            &json!({"type": "annotate", "document_id": png_id, "page": 1,
                           "shape": {"type": "circle", "center": [0.5, 0.5], "radius": 0.1}}),
        )
        .await
        .unwrap();
    patient.ws.expect_error("forbidden", T).await.unwrap();
    specialist
        .ws
        .send_json(
            &json!({"type": "annotate", "document_id": png_id, "page": 1,
                           "shape": {"type": "script", "src": "x"}}),
        )
        .await
        .unwrap();
    specialist.ws.expect_error("bad_message", T).await.unwrap();

    // A late joiner gets what they may see of the documents and the chat in `joined`.
    let late = s.member(&room, "patient", "Li Lei (phone)").await;
    assert_eq!(late.joined["documents"].as_array().unwrap().len(), 2);
    assert_eq!(late.joined["chat"][0]["text"], "我今天早上有点胸闷");
    assert_eq!(late.joined["follow"]["document_id"], png_id.as_str());

    // The audit trail holds all of it and verifies.
    let sup = s
        .account("sup", huizhen::domain::role::AccountRole::NetworkSupervisor)
        .await;
    let (status, v) = s.api("GET", "/api/v1/audit/verify", Some(&sup), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["first_broken"].is_null(), "{v}");
    let entries = s.audit_entries(&sup, &room).await;
    let actions = common::action_outcomes(&entries);
    for want in [
        "room.created:ok",
        "invite.issued:ok",
        "participant.joined:ok",
        "document.shared:ok",
        "document.viewed:ok",
        "document.downloaded:ok",
        "document.downloaded:denied",
        "access.denied:denied",
        "document.annotated:ok",
        "document.annotated:denied",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "missing {want} in {actions:?}"
        );
    }
    let shared = entries
        .iter()
        .find(|e| e["action"] == "document.shared")
        .unwrap();
    assert_eq!(shared["object_sha256"], sha256_hex(&pdf));
    // Clinicians cannot read the audit trail.
    let (status, _) = s.api("GET", "/api/v1/audit", None, None).await;
    assert_eq!(status, 403);

    // Someone with database access rewrites history: the viewing of the PDF becomes a denial.
    let viewed = entries
        .iter()
        .find(|e| e["action"] == "document.viewed")
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = $1")
        .bind(viewed)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (_, v) = s.api("GET", "/api/v1/audit/verify", Some(&sup), None).await;
    assert_eq!(v["first_broken"]["seq"].as_i64(), Some(viewed), "{v}");
    assert_eq!(v["first_broken"]["kind"], "hash_mismatch");
    // The command line says the same, with a failing exit status. (Waited for off the test's
    // runtime, which the server runs on too: see `cli` in tests/sessions.rs.)
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_huizhen"));
    command
        .args(["audit", "verify"])
        .env("HUIZHEN_STORAGE_DATABASE_URL", db_url)
        .env("HUIZHEN_STORAGE_DATA_DIR", s.dir.path().join("data"));
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("BROKEN at entry {viewed}")),
        "{text}"
    );
}

#[tokio::test]
async fn consultation_documents_on_sqlite() {
    let s = TestServer::start().await;
    let url = format!(
        "sqlite://{}",
        s.dir.path().join("data/huizhen.db").display()
    );
    consultation_flow(&s, &url).await;
    s.stop().await;
}

#[tokio::test]
async fn consultation_documents_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url.clone()).await;
    consultation_flow(&s, &url).await;
    s.stop().await;
    pg.drop_db().await;
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_and_leave_nothing() {
    let s = TestServer::start_with(|c| {
        c.documents.max_upload_bytes = 200_000;
        c.documents.max_chunk_bytes = 65_536;
    })
    .await;
    let room = s.create_room("Bad input").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let patient = s.consenting_patient(&room, "Li Lei").await;
    let observer = s.member(&room, "observer", "Trainee").await;
    let uploads = format!("/api/v1/rooms/{room}/uploads");
    let begin = |name: &str, size: usize, sha: String, vis: &str| json!({"name": name, "size": size, "sha256": sha, "visibility": vis});
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_owned();

    // Oversize, declared up front.
    let (st, b) = s
        .api(
            "POST",
            &uploads,
            Some(&doctor.access),
            Some(begin("big.pdf", 300_000, "a".repeat(64), "everyone")),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (413, "too_large"));
    // Path tricks and hidden characters in names.
    for name in [
        "../../etc/passwd",
        "a/b.pdf",
        ".htaccess",
        "x\u{202e}fdp.exe",
    ] {
        let (st, b) = s
            .api(
                "POST",
                &uploads,
                Some(&doctor.access),
                Some(begin(name, 10, "a".repeat(64), "everyone")),
            )
            .await;
        assert_eq!((st, code(&b).as_str()), (400, "invalid_request"), "{name}");
    }
    // Roles that may not share, or not with that audience.
    let (st, _) = s
        .api(
            "POST",
            &uploads,
            Some(&patient.access),
            Some(begin("a.pdf", 10, "a".repeat(64), "clinicians")),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .api(
            "POST",
            &uploads,
            Some(&observer.access),
            Some(begin("a.pdf", 10, "a".repeat(64), "everyone")),
        )
        .await;
    assert_eq!(st, 403);
    // No token, a forged one, a session token in place of an access token.
    assert_eq!(s.raw("POST", &uploads, "", None).await.status(), 401);
    let forged = format!("{}x", &doctor.access[..doctor.access.len() - 1]);
    assert_eq!(
        s.raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            &forged,
            None
        )
        .await
        .status(),
        401
    );
    assert_eq!(
        s.raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            &s.doctor_token,
            None
        )
        .await
        .status(),
        401
    );

    // An executable renamed .pdf: refused on its content, and nothing is kept.
    let elf = [b"\x7fELF\x02\x01\x01\0".as_slice(), &[0u8; 100]].concat();
    let (st, b) = s
        .share(
            &room,
            &doctor.access,
            "report.pdf",
            &elf,
            "everyone",
            65_536,
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (415, "unsupported_type"), "{b}");
    // A PDF named as an image.
    let (st, b) = s
        .share(
            &room,
            &doctor.access,
            "xray.png",
            &sample_pdf(),
            "everyone",
            65_536,
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (415, "unsupported_type"), "{b}");
    // Declared hash does not match what arrives.
    let (st, b) = s
        .api(
            "POST",
            &uploads,
            Some(&doctor.access),
            Some(begin("n.txt", 5, sha256_hex(b"other"), "everyone")),
        )
        .await;
    assert_eq!(st, 201);
    let up = b["upload_id"].as_str().unwrap().to_owned();
    let resp = s
        .raw(
            "PUT",
            &format!("{uploads}/{up}?offset=0"),
            &doctor.access,
            Some(b"hello".to_vec()),
        )
        .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(
        s.raw("GET", &format!("{uploads}/{up}"), &doctor.access, None)
            .await
            .status(),
        404
    );

    // Offsets: a chunk that does not start where the upload stands is told where it does.
    let text = b"Referral: please assess the ECG.".to_vec();
    let (_, b) = s
        .api(
            "POST",
            &uploads,
            Some(&doctor.access),
            Some(begin(
                "referral.txt",
                text.len(),
                sha256_hex(&text),
                "everyone",
            )),
        )
        .await;
    let up = b["upload_id"].as_str().unwrap().to_owned();
    let put = |off: usize, data: &[u8]| {
        let path = format!("{uploads}/{up}?offset={off}");
        let data = data.to_vec();
        let (s, access) = (&s, doctor.access.clone());
        async move { s.raw("PUT", &path, &access, Some(data)).await }
    };
    assert_eq!(put(0, &text[..10]).await.status(), 200);
    let resp = put(4, &text[4..12]).await;
    assert_eq!(resp.status(), 409);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(
        (code(&b).as_str(), b["error"]["offset"].as_u64()),
        ("offset_mismatch", Some(10))
    );
    // Past the declared size.
    let resp = put(10, &[b'x'; 100]).await;
    assert_eq!(resp.status(), 400);
    // Somebody else's upload is not found, even in the same room.
    assert_eq!(
        s.raw("GET", &format!("{uploads}/{up}"), &patient.access, None)
            .await
            .status(),
        404
    );
    // A chunk above the chunk limit.
    let (_, b) = s
        .api(
            "POST",
            &uploads,
            Some(&doctor.access),
            Some(begin("big.txt", 150_000, "a".repeat(64), "everyone")),
        )
        .await;
    let big = b["upload_id"].as_str().unwrap().to_owned();
    let resp = s
        .raw(
            "PUT",
            &format!("{uploads}/{big}?offset=0"),
            &doctor.access,
            Some(vec![b'a'; 100_000]),
        )
        .await;
    assert_eq!(resp.status(), 413);
    // Too many open uploads for one person.
    let mut last = 0;
    for i in 0..4 {
        let (st, _) = s
            .api(
                "POST",
                &uploads,
                Some(&doctor.access),
                Some(begin(&format!("n{i}.txt"), 5, "a".repeat(64), "everyone")),
            )
            .await;
        last = st;
    }
    assert_eq!(last, 409);
    // Finish the referral; nothing of the refused uploads is listed.
    assert_eq!(put(10, &text[10..]).await.status(), 201);
    let (_, list) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            Some(&doctor.access),
            None,
        )
        .await;
    let names: Vec<&str> = list["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["referral.txt"]);
    let doc = list["documents"][0]["id"].as_str().unwrap().to_owned();

    // A document id through another room, and a token for another room.
    let other = s.create_room("Other").await;
    let stranger = s.member(&other, "doctor", "Dr. Other").await;
    assert_eq!(
        s.raw(
            "GET",
            &format!("/api/v1/rooms/{other}/documents/{doc}/content"),
            &stranger.access,
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        s.raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{doc}/content"),
            &stranger.access,
            None
        )
        .await
        .status(),
        403
    );
    // Someone who left loses access at once.
    patient
        .ws
        .send_json(&json!({"type": "leave"}))
        .await
        .unwrap();
    let _ = patient.ws.wait_closed(T).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            &patient.access,
            None
        )
        .await
        .status(),
        403
    );

    // Integrity: a byte flipped on disk is caught when the document is served.
    let data = s.dir.path().join("data/documents");
    let sha = sha256_hex(&text);
    let path = data.join(&sha[..2]).join(&sha);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{doc}/content"),
            &doctor.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 500);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(code(&b), "integrity_failed");
    s.stop().await;
}

#[tokio::test]
async fn an_upload_resumes_after_a_reload() {
    let s = TestServer::start().await;
    let room = s.create_room("Weak link").await;
    let invite = s.invite(&room, "doctor").await;
    let first = s.member_with(&invite, "Dr. Wang").await;
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let uploads = format!("/api/v1/rooms/{room}/uploads");
    let (st, b) = s
        .api(
            "POST",
            &uploads,
            Some(&first.access),
            Some(json!({"name": "samples.txt", "size": data.len(), "sha256": sha256_hex(&data), "visibility": "everyone"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let up = b["upload_id"].as_str().unwrap().to_owned();
    let half = data.len() / 2;
    let resp = s
        .raw(
            "PUT",
            &format!("{uploads}/{up}?offset=0"),
            &first.access,
            Some(data[..half].to_vec()),
        )
        .await;
    assert_eq!(resp.status(), 200);
    // The page reloads: a new participant (same invite) replaces the old one.
    let ws = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    ws.send_json(&common::peer::join_message(
        &invite,
        "Dr. Wang",
        false,
        false,
        first.joined["resume_token"].as_str(),
    ))
    .await
    .unwrap();
    let joined = ws.next_event("joined", T).await.unwrap();
    let access = joined["access_token"].as_str().unwrap();
    // The old access token died with the old participant; the new one finds the upload.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        s.raw("GET", &format!("{uploads}/{up}"), &first.access, None)
            .await
            .status(),
        403
    );
    let (st, status) = s
        .api("GET", &format!("{uploads}/{up}"), Some(access), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(status["offset"].as_u64(), Some(half as u64));
    let resp = s
        .raw(
            "PUT",
            &format!("{uploads}/{up}?offset={half}"),
            access,
            Some(data[half..].to_vec()),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["document"]["sha256"], sha256_hex(&data));
    s.stop().await;
}

fn dict(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut o = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
    o.extend_from_slice(data);
    o.extend_from_slice(b"\nendstream");
    o
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A zlib stream of `mib` MiB of zeros: one compressed MiB, made byte-aligned by a full flush,
/// repeated (so that building it costs one MiB of compression), then an empty final block and
/// the checksum (Adler-32 of n zeros is n mod 65521 << 16 | 1).
fn zeros_bomb(mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::best(), false);
    let mut chunk = Vec::with_capacity(64 * 1024);
    c.compress_vec(&vec![0u8; 1 << 20], &mut chunk, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), 1 << 20);
    let mut out = vec![0x78, 0x9C];
    for _ in 0..mib {
        out.extend_from_slice(&chunk);
    }
    out.extend_from_slice(&[0x03, 0x00]);
    let adler = (((mib as u64) << 20) % 65521) << 16 | 1;
    out.extend_from_slice(&(adler as u32).to_be_bytes());
    out
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// GET of a page image: the status, and the image's size or the error code.
async fn get_page(s: &TestServer, token: &str, path: &str) -> (u16, Result<(u32, u32), String>) {
    let resp = s.raw("GET", path, token, None).await;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").is_some();
    let bytes = resp.bytes().await.unwrap();
    if status == 200 {
        return (status, Ok(png_size(&bytes)));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(!retry_after || status == 503);
    (
        status,
        Err(body["error"]["code"].as_str().unwrap_or("").to_owned()),
    )
}

/// Files in the render cache about the document with hash `sha`.
fn previews_of(s: &TestServer, sha: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s.dir.path().join("data/previews"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(sha))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn pdf_pages_are_bounded_in_pixels_and_cached_at_few_scales() {
    // The default limits: 4096 pixels a side, 8 MiP a page.
    let s = TestServer::start().await;
    let room = s.create_room("Hostile PDFs").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;

    // A tall page (600 × 14400 pt) and a wide one: any scale, however large, gives an image
    // within both sides and the pixel budget, and the cache holds at most four per page.
    let square = b"0 0 1 rg 10 10 100 100 re f".to_vec();
    let tall = build_pdf(
        &[
            dict("<< /Type /Catalog /Pages 2 0 R >>"),
            dict("<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>"),
            dict("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 14400] /Contents 5 0 R >>"),
            dict("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 600] /Contents 5 0 R >>"),
            stream("", &square),
        ],
        "",
    );
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "strip.pdf",
            &tall,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["document"]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/rooms/{room}/documents/{id}");
    let (st, pages) = s
        .api("GET", &format!("{base}/pages"), Some(&doctor.access), None)
        .await;
    assert_eq!((st, pages["pages"].as_u64()), (200, Some(2)), "{pages}");
    for page in [1, 2] {
        for scale in [
            0.1, 0.5, 1.0, 1.2, 1.5, 1.75, 2.0, 2.2, 3.0, 4.0, 8.0, 100.0, 1e6,
        ] {
            let (st, size) = get_page(
                &s,
                &doctor.access,
                &format!("{base}/pages/{page}?scale={scale}"),
            )
            .await;
            let (w, h) = size.unwrap_or_else(|e| panic!("page {page} at {scale}: {st} {e}"));
            assert!(w <= 4096 && h <= 4096 && u64::from(w) * u64::from(h) <= 8 << 20);
            let long = if page == 1 { h } else { w };
            assert!(long >= 4095, "page {page} at {scale}: {w} × {h}");
        }
    }
    let sha = sha256_hex(&tall);
    let images: Vec<String> = previews_of(&s, &sha)
        .into_iter()
        .filter(|n| n.ends_with(".png"))
        .collect();
    assert_eq!(images.len(), 8, "{images:?}");

    s.stop().await;
}

#[tokio::test]
async fn a_pdf_that_inflates_far_past_the_limit_is_refused() {
    // The default limit: 64 MiB a stream.
    let s = TestServer::start().await;
    let room = s.create_room("Inflating PDF").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    // A half-megabyte PDF whose page content inflates to 512 MiB: refused, by the page count
    // and the page alike, and again from the cache.
    let bomb = zeros_bomb(512);
    // The generator is right: a small one inflates to exactly its size.
    let mut small = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::ZlibDecoder::new(&zeros_bomb(2)[..]),
        &mut small,
    )
    .unwrap();
    assert_eq!(small.len(), 2 << 20);
    let inflating = build_pdf(
        &[
            dict("<< /Type /Catalog /Pages 2 0 R >>"),
            dict("<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
            dict("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>"),
            stream("/Filter /FlateDecode", &bomb),
        ],
        "",
    );
    assert!(inflating.len() < 600 * 1024, "{}", inflating.len());
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "bomb.pdf",
            &inflating,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["document"]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/rooms/{room}/documents/{id}");
    let (st, b) = s
        .api("GET", &format!("{base}/pages"), Some(&doctor.access), None)
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (422, Some("too_large_to_render")),
        "{b}"
    );
    for _ in 0..2 {
        let (st, code) = get_page(&s, &doctor.access, &format!("{base}/pages/1?scale=2")).await;
        assert_eq!((st, code), (422, Err("too_large_to_render".to_owned())));
    }
    s.stop().await;
}

#[tokio::test]
async fn pdf_pages_over_the_memory_budget_are_refused() {
    let s = TestServer::start_with(|c| {
        c.documents.max_inflated_stream_bytes = 1 << 20;
        c.documents.max_inflated_page_bytes = 2 << 20;
    })
    .await;
    let room = s.create_room("Heavy pages").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    // Page 1 is light. Page 2's three content streams are each under the stream limit and
    // together over the page's. Page 3 draws a 100000 × 100000 image that is a few bytes
    // stored and 40 GB drawn.
    let part = zlib(&vec![b' '; 900 * 1024]);
    let heavy = build_pdf(
        &[
            dict("<< /Type /Catalog /Pages 2 0 R >>"),
            dict("<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >>"),
            dict("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 6 0 R >>"),
            dict(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents [7 0 R 8 0 R 9 0 R] >>",
            ),
            dict(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 10 0 R /Resources << /XObject << /Im1 11 0 R >> >> >>",
            ),
            stream("", b"0 0 1 rg 10 10 100 100 re f"),
            stream("/Filter /FlateDecode", &part),
            stream("/Filter /FlateDecode", &part),
            stream("/Filter /FlateDecode", &part),
            stream("", b"q 300 0 0 200 0 0 cm /Im1 Do Q"),
            stream(
                "/Type /XObject /Subtype /Image /Width 100000 /Height 100000 /ImageMask true /BitsPerComponent 1",
                &[0u8; 16],
            ),
        ],
        "",
    );
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "heavy.pdf",
            &heavy,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["document"]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/rooms/{room}/documents/{id}");
    let (st, pages) = s
        .api("GET", &format!("{base}/pages"), Some(&doctor.access), None)
        .await;
    assert_eq!((st, pages["pages"].as_u64()), (200, Some(3)), "{pages}");
    let (st, size) = get_page(&s, &doctor.access, &format!("{base}/pages/1")).await;
    assert_eq!((st, size.is_ok()), (200, true), "{size:?}");
    for page in [2, 3] {
        for _ in 0..2 {
            let (st, code) = get_page(&s, &doctor.access, &format!("{base}/pages/{page}")).await;
            assert_eq!(
                (st, code),
                (422, Err("too_large_to_render".to_owned())),
                "page {page}"
            );
        }
    }
    // Refusals are remembered: the document's verdict and one file per refused page.
    let sha = sha256_hex(&heavy);
    let cached = previews_of(&s, &sha);
    for want in [
        format!("{sha}-2.refused"),
        format!("{sha}-3.refused"),
        format!("{sha}.pdf"),
    ] {
        assert!(cached.contains(&want), "{want} not in {cached:?}");
    }
    for page in [2, 3] {
        let path = s
            .dir
            .path()
            .join(format!("data/previews/{sha}-{page}.refused"));
        let why = std::fs::read_to_string(path).unwrap();
        assert!(why.contains("more than 2 MiB"), "page {page}: {why}");
    }

    // An encrypted PDF is not opened on the server at all.
    let encrypted = build_pdf(
        &[
            dict("<< /Type /Catalog /Pages 2 0 R >>"),
            dict("<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
            dict("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] >>"),
            dict("<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 /O <00> /U <00> >>"),
        ],
        "/Encrypt 4 0 R /ID [<00> <00>]",
    );
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "locked.pdf",
            &encrypted,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["document"]["id"].as_str().unwrap();
    let (st, b) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{id}/pages"),
            Some(&doctor.access),
            None,
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("encrypted"),
        "{b}"
    );
    s.stop().await;
}

/// Sets a 16-bit (0028,eeee) US element of an explicit-VR file to `value`.
fn set_us(dcm: &mut [u8], element: u16, value: u16) {
    let mut tag = vec![0x28, 0x00];
    tag.extend_from_slice(&element.to_le_bytes());
    tag.extend_from_slice(b"US\x02\x00");
    let at = dcm.windows(8).position(|w| w == tag.as_slice()).unwrap() + 8;
    dcm[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

#[tokio::test]
async fn dicom_frames_are_bounded_shrunk_and_cached() {
    let s = TestServer::start_with(|c| c.documents.max_dicom_pixels = 1 << 20).await;
    let room = s.create_room("Imaging").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;

    // A 2048 × 2048 16-bit frame (4 MiP) against a 1 MiP budget: shown at half size, once.
    let big = huizhen::documents::dicom::sample(2048, 2048);
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "plate.dcm",
            &big,
            "clinicians",
            4 << 20,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["document"]["id"].as_str().unwrap().to_owned();
    let page = format!("/api/v1/rooms/{room}/documents/{id}/pages/1");
    let first = s.raw("GET", &page, &doctor.access, None).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    assert_eq!(png_size(&first), (1024, 1024));
    let sha = sha256_hex(&big);
    assert_eq!(previews_of(&s, &sha), [format!("{sha}-dicom.png")]);
    let again = s.raw("GET", &page, &doctor.access, None).await;
    assert_eq!(again.bytes().await.unwrap(), first);

    // A header that claims 20000 × 20000: the header is shown, the image refused.
    let mut huge = huizhen::documents::dicom::sample(8, 8);
    set_us(&mut huge, 0x0010, 20000);
    set_us(&mut huge, 0x0011, 20000);
    let (st, body) = s
        .share(
            &room,
            &doctor.access,
            "huge.dcm",
            &huge,
            "clinicians",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["document"]["id"].as_str().unwrap().to_owned();
    let (st, info) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{id}/dicom"),
            Some(&doctor.access),
            None,
        )
        .await;
    assert_eq!((st, info["rows"].as_u64()), (200, Some(20000)), "{info}");
    assert!(
        info["image_unavailable"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{info}"
    );
    let (st, code) = get_page(
        &s,
        &doctor.access,
        &format!("/api/v1/rooms/{room}/documents/{id}/pages/1"),
    )
    .await;
    assert_eq!((st, code), (422, Err("too_large_to_render".to_owned())));
    s.stop().await;
}

/// One of the DICOM fixtures (tests/fixtures/dicom/README.md says how each was made).
fn dicom_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/dicom")
            .join(name),
    )
    .unwrap()
}

#[tokio::test]
async fn compressed_dicom_is_shown_and_jpeg_ls_is_refused_by_name() {
    let s = TestServer::start().await;
    let room = s.create_room("Imaging").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let share = async |name: &str| {
        let (st, body) = s
            .share(
                &room,
                &doctor.access,
                name,
                &dicom_fixture(name),
                "clinicians",
                1 << 20,
            )
            .await;
        assert_eq!(st, 201, "{body}");
        body["document"]["id"].as_str().unwrap().to_owned()
    };
    let page = |id: &str| format!("/api/v1/rooms/{room}/documents/{id}/pages/1");
    let original = share("ct.dcm").await;
    let original = s.raw("GET", &page(&original), &doctor.access, None).await;
    assert_eq!(original.status(), 200);
    let original = original.bytes().await.unwrap();
    // Each lossless syntax is shown as the uncompressed original is, to the byte.
    for name in ["ct-jpeg-lossless.dcm", "ct-rle.dcm", "ct-j2k.dcm"] {
        let id = share(name).await;
        let resp = s.raw("GET", &page(&id), &doctor.access, None).await;
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.bytes().await.unwrap(), original, "{name}");
    }
    // JPEG-LS: the header is shown with the reason there is no image; the page is refused.
    let id = share("ct-jpegls.dcm").await;
    let (st, info) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{id}/dicom"),
            Some(&doctor.access),
            None,
        )
        .await;
    assert_eq!(
        (st, info["fields"]["Modality"].as_str()),
        (200, Some("CT")),
        "{info}"
    );
    assert_eq!(info["transfer_syntax"], "1.2.840.10008.1.2.4.80");
    let why = info["image_unavailable"].as_str().unwrap();
    assert!(
        why.contains("JPEG-LS") && why.contains("1.2.840.10008.1.2.4.80"),
        "{why}"
    );
    let (st, code) = get_page(&s, &doctor.access, &page(&id)).await;
    assert_eq!((st, code), (400, Err("invalid_request".to_owned())));
    s.stop().await;
}

/// `n` bytes of UTF-8 text, different for every `tag` (so every document has its own hash).
fn text_of(tag: &str, n: usize) -> Vec<u8> {
    let mut t = format!("{tag}\n").into_bytes();
    t.resize(n, b'.');
    t
}

/// Starts an upload of `bytes`; the status and body.
async fn begin(s: &TestServer, room: &str, access: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    s.api(
        "POST",
        &format!("/api/v1/rooms/{room}/uploads"),
        Some(access),
        Some(json!({
            "name": name,
            "size": bytes.len(),
            "sha256": sha256_hex(bytes),
            "visibility": "everyone",
        })),
    )
    .await
}

/// A `limit_reached` refusal naming `limit`; its message for a closer look.
fn refused_by(status: u16, body: &Value, limit: &str) -> String {
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "limit_reached", "{body}");
    assert_eq!(body["error"]["limit"], limit, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// The `document.rejected` entries' details, for the limits they name.
async fn rejected_limits(s: &TestServer, room: &str) -> Vec<String> {
    let sup = s
        .account("sup", huizhen::domain::role::AccountRole::NetworkSupervisor)
        .await;
    s.audit_entries(&sup, room)
        .await
        .iter()
        .filter(|e| e["action"] == "document.rejected")
        .map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            assert_eq!(detail["reason"], "limit_reached", "{detail}");
            detail["limit"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Security review, finding 11: the open-upload limit was checked, then the upload inserted,
/// so 20 starts at once got 6 of 4 places. Now it is one atomic step.
async fn twenty_upload_starts_at_once(s: &TestServer) {
    // The default documents.max_open_uploads: 4.
    let room = s.create_room("Impatient").await;
    let patient = s.member(&room, "patient", "Li Lei").await;
    let files: Vec<Vec<u8>> = (0..20).map(|i| text_of(&format!("{i}"), 100)).collect();
    let answers = futures_util::future::join_all(
        files
            .iter()
            .map(|f| begin(s, &room, &patient.access, "lab.txt", f)),
    )
    .await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(st, _)| *st == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(accepted.len(), 4, "{answers:?}");
    for (st, body) in answers.iter().filter(|(st, _)| *st != 201) {
        let message = refused_by(*st, body, "open_uploads");
        assert!(message.contains("at most 4 uploads under way"), "{message}");
    }
    // Cancelling one frees its place, and only one.
    let first = accepted[0]["upload_id"].as_str().unwrap();
    let resp = s
        .raw(
            "DELETE",
            &format!("/api/v1/rooms/{room}/uploads/{first}"),
            &patient.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 204);
    let (st, b) = begin(s, &room, &patient.access, "again.txt", &files[0]).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = begin(s, &room, &patient.access, "more.txt", &files[1]).await;
    refused_by(st, &b, "open_uploads");
    // The refusals are on the trail, naming the limit (at most 10 a minute per caller).
    let limits = rejected_limits(s, &room).await;
    assert!(!limits.is_empty() && limits.iter().all(|l| l == "open_uploads"));
}

#[tokio::test]
async fn twenty_upload_starts_at_once_open_exactly_the_limit_on_sqlite() {
    let s = TestServer::start().await;
    twenty_upload_starts_at_once(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn twenty_upload_starts_at_once_open_exactly_the_limit_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    twenty_upload_starts_at_once(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

/// Security review, finding 10: one patient could fill the room's 200 documents. Each person
/// has quotas of their own, which a reload does not reset, and patients together cannot take
/// the places kept for the clinicians.
#[tokio::test]
async fn a_patient_cannot_lock_the_clinicians_out() {
    let s = TestServer::start_with(|c| {
        c.documents.max_per_room = 6;
        c.documents.max_per_room_non_clinicians = 3;
        c.documents.max_documents_per_person = 2;
    })
    .await;
    let room = s.create_room("Busy patient").await;
    // Usable twice: a second tab joins with it below.
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient", "max_uses": 2})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let invite = b["token"].as_str().unwrap().to_owned();
    let patient = s.member_with(&invite, "Li Lei").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let specialist = s.member(&room, "specialist", "Prof. Zhao").await;
    let share = |access: String, tag: &'static str| {
        let s = &s;
        let room = room.clone();
        async move {
            let bytes = text_of(tag, 64);
            s.share(
                &room,
                &access,
                &format!("{tag}.txt"),
                &bytes,
                "everyone",
                1 << 16,
            )
            .await
        }
    };

    for tag in ["p1", "p2"] {
        let (st, b) = share(patient.access.clone(), tag).await;
        assert_eq!(st, 201, "{b}");
    }
    let (st, b) = share(patient.access.clone(), "p3").await;
    let message = refused_by(st, &b, "documents_per_person");
    assert!(message.contains("at most 2 documents"), "{message}");
    // A second tab (or a reload) is a new participant with the same invite: same quota.
    let again = s.member_with(&invite, "Li Lei").await;
    assert_ne!(again.id, patient.id);
    let (st, b) = share(again.access.clone(), "p3").await;
    refused_by(st, &b, "documents_per_person");

    // Another patient invite has a quota of its own, but patients together have 3 places.
    let relative = s.member(&room, "patient", "Li Mei").await;
    let (st, b) = share(relative.access.clone(), "r1").await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = share(relative.access.clone(), "r2").await;
    let message = refused_by(st, &b, "non_clinician_documents_per_room");
    assert!(message.contains("kept for the doctors"), "{message}");

    // The clinicians still share: the other 3 places are theirs.
    for (who, tag) in [(&doctor, "d1"), (&doctor, "d2"), (&specialist, "s1")] {
        let (st, b) = share(who.access.clone(), tag).await;
        assert_eq!(st, 201, "{b}");
    }
    let (st, b) = share(specialist.access.clone(), "s2").await;
    let message = refused_by(st, &b, "documents_per_room");
    assert!(message.contains("at most 6 documents"), "{message}");
    let (_, list) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            Some(&doctor.access),
            None,
        )
        .await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 6);
    let limits = rejected_limits(&s, &room).await;
    for want in [
        "documents_per_person",
        "non_clinician_documents_per_room",
        "documents_per_room",
    ] {
        assert!(limits.iter().any(|l| l == want), "{want}: {limits:?}");
    }
    s.stop().await;
}

/// A person's byte budget counts what they shared and what their open uploads will bring.
#[tokio::test]
async fn a_persons_byte_budget_counts_shared_and_open_uploads() {
    let s = TestServer::start_with(|c| {
        c.documents.max_upload_bytes = 1000;
        c.documents.max_bytes_per_person = 2500;
    })
    .await;
    let room = s.create_room("Large files").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let patient = s.member(&room, "patient", "Li Lei").await;
    for tag in ["a", "b"] {
        let (st, b) = s
            .share(
                &room,
                &doctor.access,
                &format!("{tag}.txt"),
                &text_of(tag, 1000),
                "everyone",
                1 << 16,
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }
    let (st, b) = begin(&s, &room, &doctor.access, "c.txt", &text_of("c", 1000)).await;
    let message = refused_by(st, &b, "bytes_per_person");
    assert!(
        message.contains("at most 2.4 KiB") && message.contains("1.9 KiB are used"),
        "{message}"
    );
    // An open upload holds its declared size until it is cancelled.
    let (st, b) = begin(&s, &room, &doctor.access, "d.txt", &text_of("d", 400)).await;
    assert_eq!(st, 201, "{b}");
    let open = b["upload_id"].as_str().unwrap().to_owned();
    let (st, b) = begin(&s, &room, &doctor.access, "e.txt", &text_of("e", 200)).await;
    refused_by(st, &b, "bytes_per_person");
    let resp = s
        .raw(
            "DELETE",
            &format!("/api/v1/rooms/{room}/uploads/{open}"),
            &doctor.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 204);
    let (st, b) = begin(&s, &room, &doctor.access, "e.txt", &text_of("e", 200)).await;
    assert_eq!(st, 201, "{b}");
    // The budget is the doctor's own: the patient has theirs.
    let (st, b) = s
        .share(
            &room,
            &patient.access,
            "mine.txt",
            &text_of("mine", 1000),
            "everyone",
            1 << 16,
        )
        .await;
    assert_eq!(st, 201, "{b}");
    s.stop().await;
}

/// At the edge of the room's quota, uploads started at once by several people get exactly the
/// places left, and finishing them all at once makes exactly that many documents.
#[tokio::test]
async fn uploads_finishing_together_at_the_room_limit_never_pass_it() {
    let s = TestServer::start_with(|c| {
        c.documents.max_per_room = 5;
        c.documents.max_per_room_non_clinicians = 2;
    })
    .await;
    let room = s.create_room("Last places").await;
    let people = [
        s.member(&room, "doctor", "Dr. Wang").await,
        s.member(&room, "specialist", "Prof. Zhao").await,
        s.member(&room, "patient", "Li Lei").await,
    ];
    let mut files = Vec::new();
    for (p, who) in people.iter().enumerate() {
        for i in 0..4 {
            files.push((who, text_of(&format!("{p}-{i}"), 100)));
        }
    }
    let answers = futures_util::future::join_all(
        files
            .iter()
            .map(|(who, bytes)| begin(&s, &room, &who.access, "lab.txt", bytes)),
    )
    .await;
    let mut accepted = Vec::new();
    for ((who, bytes), (st, body)) in files.iter().zip(&answers) {
        if *st == 201 {
            accepted.push((who, bytes, body["upload_id"].as_str().unwrap().to_owned()));
        } else {
            assert_eq!(body["error"]["code"], "limit_reached", "{body}");
        }
    }
    assert_eq!(accepted.len(), 5, "{answers:?}");
    let patients = accepted
        .iter()
        .filter(|(who, _, _)| who.id == people[2].id)
        .count();
    assert!(patients <= 2, "{patients}");

    // Every accepted upload sends its one chunk at once: all become documents.
    let finished = futures_util::future::join_all(accepted.iter().map(|(who, bytes, id)| {
        let path = format!("/api/v1/rooms/{room}/uploads/{id}?offset=0");
        let s = &s;
        async move { s.raw("PUT", &path, &who.access, Some(bytes.to_vec())).await }
    }))
    .await;
    assert!(finished.iter().all(|r| r.status() == 201));
    let (_, list) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/documents"),
            Some(&people[0].access),
            None,
        )
        .await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 5);
    let (st, b) = begin(
        &s,
        &room,
        &people[0].access,
        "late.txt",
        &text_of("late", 10),
    )
    .await;
    refused_by(st, &b, "documents_per_room");
    s.stop().await;
}
