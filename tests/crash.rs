//! Durability across a crash: the real `huizhen` binary is killed and started again on the same
//! data directory (and database).
//!
//! - Uploads: killed with SIGKILL in the middle of one. Everything that was acknowledged must
//!   still be there (the finished document, every acknowledged chunk) and nothing partial may
//!   be visible.
//! - Webhooks: aborted right after a room's end was committed (`HUIZHEN_TEST_ABORT_AT`), on
//!   SQLite and PostgreSQL; after the restart the institution's receiver, on 127.0.0.1, gets
//!   `consultation.ended` (at least once).

use crate::common;

use std::time::Duration;

use crate::common::process::{self, PASSWORD, Proc, begin_upload, call, configure, http, start};
use crate::common::sample_pdf;
use futures_util::StreamExt;
use serde_json::json;

const CHUNK: usize = 64 * 1024;

/// Sends chunk `i` (of `CHUNK` bytes) of `data`; returns the HTTP status.
async fn put_chunk(http: &reqwest::Client, url: String, token: &str, data: &[u8], i: usize) -> u16 {
    http.put(url)
        .bearer_auth(token)
        .body(data[i * CHUNK..(i + 1) * CHUNK].to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sigkill_during_an_upload_loses_nothing_acknowledged_and_shows_nothing_partial() {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = configure(dir.path(), 1);
    let http = http();
    let mut server = start(&cfg);
    let api = |p: &Proc, path: &str| p.api(path);
    let (st, login) = call(
        &http,
        "POST",
        api(&server, "/auth/login"),
        "",
        Some(json!({"username": "doc", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    let session = login["token"].as_str().unwrap().to_owned();
    let (_, room) = call(
        &http,
        "POST",
        api(&server, "/rooms"),
        &session,
        Some(json!({"title": "Crash", "waiting_room": false})),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let (_, invite) = call(
        &http,
        "POST",
        api(&server, &format!("/rooms/{room}/enter")),
        &session,
        None,
    )
    .await;
    let invite = invite["token"].as_str().unwrap().to_owned();
    let ws_url = |p: &Proc| p.ws_url();
    let ws = common::peer::SignalingClient::connect(&ws_url(&server))
        .await
        .unwrap();
    let joined = ws.join(&invite, "Dr. Wang", false, false).await.unwrap();
    let access = joined["access_token"].as_str().unwrap().to_owned();

    // Document A: complete and acknowledged before the crash.
    let pdf = sample_pdf();
    let uploads = format!("/rooms/{room}/uploads");
    let up_a = begin_upload(&http, &server, &room, &access, "a.pdf", &pdf).await;
    assert_eq!(
        process::put_chunk(&http, &server, &room, &access, &up_a, 0, &pdf).await,
        201
    );

    // Document B: 16 chunks; 5 acknowledged, the 6th in flight when the server dies.
    let data: Vec<u8> = (0..16 * CHUNK)
        .map(|i| b"0123456789abcdef\n"[i % 17])
        .collect();
    let up_b = begin_upload(&http, &server, &room, &access, "b.txt", &data).await;
    for i in 0..5 {
        let url = api(&server, &format!("{uploads}/{up_b}?offset={}", i * CHUNK));
        assert_eq!(put_chunk(&http, url, &access, &data, i).await, 200);
    }
    // Half a chunk is sent, then the stream stalls: the request is mid-body at the kill.
    let half = bytes::Bytes::copy_from_slice(&data[5 * CHUNK..5 * CHUNK + CHUNK / 2]);
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(half)])
        .chain(futures_util::stream::pending());
    let in_flight = tokio::spawn(
        http.put(api(
            &server,
            &format!("{uploads}/{up_b}?offset={}", 5 * CHUNK),
        ))
        .bearer_auth(access.clone())
        .header("content-length", CHUNK.to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the in-flight chunk cannot have succeeded"
    );
    ws.abort();

    // Restart on the same data; the same person comes back with the same invite.
    let server2 = start(&cfg);
    let ws = common::peer::SignalingClient::connect(&ws_url(&server2))
        .await
        .unwrap();
    let joined = ws.join(&invite, "Dr. Wang", false, false).await.unwrap();
    let access = joined["access_token"].as_str().unwrap().to_owned();
    // Only the finished document is there, intact.
    let docs = joined["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["name"], "a.pdf");
    let content = http
        .get(api(
            &server2,
            &format!(
                "/rooms/{room}/documents/{}/content",
                docs[0]["id"].as_str().unwrap()
            ),
        ))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(content.bytes().await.unwrap().as_ref(), pdf.as_slice());
    // Every acknowledged chunk of B survived; nothing of the half-sent one counts.
    let (st, status) = call(
        &http,
        "GET",
        api(&server2, &format!("{uploads}/{up_b}")),
        &access,
        None,
    )
    .await;
    assert_eq!(st, 200, "{status}");
    assert_eq!(status["offset"].as_u64(), Some(5 * CHUNK as u64));
    for i in 5..16 {
        let url = api(&server2, &format!("{uploads}/{up_b}?offset={}", i * CHUNK));
        let want = if i == 15 { 201 } else { 200 };
        assert_eq!(put_chunk(&http, url, &access, &data, i).await, want);
    }
    let (_, list) = call(
        &http,
        "GET",
        api(&server2, &format!("/rooms/{room}/documents")),
        &access,
        None,
    )
    .await;
    let sizes: Vec<u64> = list["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [pdf.len() as u64, data.len() as u64]);
    ws.abort();
    let mut server2 = server2;
    server2.child.kill().unwrap();
    server2.child.wait().unwrap();
}

/// What a webhook receiver on 127.0.0.1 got: (signature header, body) in arrival order.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A receiver on 127.0.0.1 that answers 200 to every POST and keeps what it got; its URL.
async fn webhook_receiver() -> (Received, String) {
    async fn receive(
        axum::extract::State(got): axum::extract::State<Received>,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> axum::http::StatusCode {
        let signature = headers
            .get("huizhen-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        got.lock().unwrap().push((signature, body));
        axum::http::StatusCode::OK
    }
    let got = Received::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

/// `consultation.ended` survives a crash at the worst moment: the process dies (abort, as a
/// crash: nothing flushed, nothing answered) right after the room's end was committed and
/// before anything else ran. The event was committed with the end (the outbox row in the audit
/// writer's commit), so after a restart the receiver gets it: at least once, signed, with the
/// consultation's sequence. An event queued after the end, in a transaction of its own, would
/// be lost here, and this test would time out.
async fn consultation_ended_survives_a_crash(database_url: Option<&str>) {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::configure_on(dir.path(), 1, database_url);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&cfg).unwrap();
        f.write_all(
            b"[webhooks]\nallow_http_loopback = true\nbackoff_base_ms = 20\nbackoff_max_s = 1\n\
              poll_interval_ms = 20\ntimeout_s = 2\nmax_attempts = 100\n",
        )
        .unwrap();
    }
    let (got, url) = webhook_receiver().await;
    // The doctor's institution (the default one) gets the room's events.
    let set = process::huizhen(&cfg)
        .args(["webhook", "set", "--institution"])
        .arg(huizhen::domain::organisation::DEFAULT_INSTITUTION)
        .args(["--url", &url])
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let printed = String::from_utf8(set.stdout).unwrap();
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret\t"))
        .expect("the secret is printed once")
        .to_owned();

    let http = http();
    let mut server = process::start_with_env(&cfg, &[("HUIZHEN_TEST_ABORT_AT", "room_ended")]);
    let (session, room, seat) = process::room_with_seat(&http, &server, "Crash at the end").await;
    // Someone in the room: the end goes through the room's task and the audit writer.
    let ws = common::peer::SignalingClient::connect(&server.ws_url())
        .await
        .unwrap();
    ws.join(&seat, "", false, false).await.unwrap();

    let ended = http
        .post(server.api(&format!("/rooms/{room}/end")))
        .bearer_auth(&session)
        .send()
        .await;
    assert!(
        ended.is_err(),
        "the process died before answering: {ended:?}"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server aborted");
    assert!(!status.success(), "{status:?}");
    ws.abort();

    let mut server2 = start(&cfg);
    let mut ended = Vec::new();
    for _ in 0..400 {
        ended = got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains("consultation.ended"))
            .cloned()
            .collect();
        if !ended.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !ended.is_empty(),
        "consultation.ended never arrived after the restart"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let first: serde_json::Value = serde_json::from_str(&ended[0].1).unwrap();
    for (signature, body) in &ended {
        assert!(
            huizhen::webhooks::signature::verify(&secret, signature, body.as_bytes(), now, 300),
            "{body}"
        );
        // Copies (at least once) are the same event: the receiver deduplicates by its id.
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["id"], first["id"]);
    }
    assert_eq!(first["type"], "consultation.ended");
    assert_eq!(first["data"]["room_id"], room.as_str());
    assert_eq!(first["consultation"]["id"], room.as_str());
    assert_eq!(first["consultation"]["sequence"], 1);
    assert_eq!(
        first["institution_id"],
        huizhen::domain::organisation::DEFAULT_INSTITUTION
    );
    // The end itself stood too.
    let (st, login) = call(
        &http,
        "POST",
        server2.api("/auth/login"),
        "",
        Some(json!({"username": "doc", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    let (st, shown) = call(
        &http,
        "GET",
        server2.api(&format!("/rooms/{room}")),
        login["token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        (st, shown["status"].as_str()),
        (200, Some("ended")),
        "{shown}"
    );
    server2.child.kill().unwrap();
    server2.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consultation_ended_survives_a_crash_on_sqlite() {
    consultation_ended_survives_a_crash(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consultation_ended_survives_a_crash_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    consultation_ended_survives_a_crash(Some(&pg.url)).await;
    pg.drop_db().await;
}

/// The `action` entries of the trail, through `huizhen audit export` (the server stopped).
fn exported(cfg: &std::path::Path, action: &str) -> Vec<serde_json::Value> {
    let out = process::huizhen(cfg)
        .args(["audit", "export"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["action"] == action)
        .collect()
}

/// A consultation request's audit entry survives a crash at the worst moment: the process dies
/// right after the request was committed and before its entry was appended. The entry was
/// queued in the request's own transaction (`audit_pending`), so the restart appends it, says
/// it was late and when its step was, and a second restart does not append it again; the
/// chain verifies. An entry appended after the commit alone would be lost here.
async fn a_requests_audit_entry_survives_a_crash(database_url: Option<&str>) {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::configure_on(dir.path(), 1, database_url);
    let added = process::huizhen(&cfg)
        .args(["department", "add", "--institution"])
        .arg(huizhen::domain::organisation::DEFAULT_INSTITUTION)
        .args(["--name", "Cardiology"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let printed = String::from_utf8(added.stdout).unwrap();
    let department = printed
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .expect("the department's id is printed")
        .0
        .to_owned();

    let http = http();
    let mut server =
        process::start_with_env(&cfg, &[("HUIZHEN_TEST_ABORT_AT", "referral_created")]);
    let session = process::sign_in(&http, &server).await;
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sent = http
        .post(server.api("/referrals"))
        .bearer_auth(&session)
        .json(&json!({
            "target_department_id": department,
            "patient_ref": "MRN-0815",
            "reason": "Palpitations",
            "question": "AF?",
            "urgency": "routine",
            "proposed_times": [{"start": before_ms / 1000 + 86_400, "minutes": 30}],
        }))
        .send()
        .await;
    assert!(sent.is_err(), "the process died before answering: {sent:?}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server aborted");
    assert!(!status.success(), "{status:?}");
    assert!(
        exported(&cfg, "referral.created").is_empty(),
        "the crash came before the entry's append"
    );

    // Twice: the first start appends what was owed, the second finds nothing owed.
    for _ in 0..2 {
        let mut again = start(&cfg);
        again.child.kill().unwrap();
        again.child.wait().unwrap();
        let created = exported(&cfg, "referral.created");
        assert_eq!(created.len(), 1, "{created:?}");
        let detail: serde_json::Value =
            serde_json::from_str(created[0]["detail"].as_str().unwrap()).unwrap();
        let step_at = detail["recorded_late"]["step_at_ms"].as_i64().unwrap();
        assert!(step_at >= before_ms, "{detail}");
        assert_eq!(created[0]["actor_role"], "doctor");
        assert_eq!(created[0]["object_type"], "referral");
    }
    let verified = process::huizhen(&cfg)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_audit_entry_survives_a_crash_on_sqlite() {
    a_requests_audit_entry_survives_a_crash(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_audit_entry_survives_a_crash_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    a_requests_audit_entry_survives_a_crash(Some(&pg.url)).await;
    pg.drop_db().await;
}

/// A clinical record issued as it is written owes two entries (`record.created` for its
/// draft, `record.issued`), queued in the transactions that stored it: the process dies right
/// after, before either is appended, and the restart appends both, once.
async fn an_issued_records_entries_survive_a_crash(database_url: Option<&str>) {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::configure_on(dir.path(), 1, database_url);
    let http = http();
    let mut server = process::start_with_env(&cfg, &[("HUIZHEN_TEST_ABORT_AT", "record_created")]);
    let (_, room, seat) = process::room_with_seat(&http, &server, "Crash at a record").await;
    let ws = common::peer::SignalingClient::connect(&server.ws_url())
        .await
        .unwrap();
    let joined = ws.join(&seat, "", false, false).await.unwrap();
    let access = joined["access_token"].as_str().unwrap().to_owned();
    let sent = http
        .post(server.api(&format!("/rooms/{room}/records")))
        .bearer_auth(&access)
        .json(&json!({"kind": "note", "issue": true, "body": {"text": "Review in two weeks"}}))
        .send()
        .await;
    assert!(sent.is_err(), "the process died before answering: {sent:?}");
    server
        .wait_exit(Duration::from_secs(10))
        .expect("the server aborted");
    ws.abort();
    assert!(exported(&cfg, "record.issued").is_empty());
    for _ in 0..2 {
        let mut again = start(&cfg);
        again.child.kill().unwrap();
        again.child.wait().unwrap();
        for action in ["record.created", "record.issued"] {
            let found = exported(&cfg, action);
            assert_eq!(found.len(), 1, "{action}: {found:?}");
            assert!(
                found[0]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("recorded_late"),
                "{found:?}"
            );
            assert_eq!(found[0]["room_id"], room.as_str());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_records_entries_survive_a_crash_on_sqlite() {
    an_issued_records_entries_survive_a_crash(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_records_entries_survive_a_crash_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    an_issued_records_entries_survive_a_crash(Some(&pg.url)).await;
    pg.drop_db().await;
}
