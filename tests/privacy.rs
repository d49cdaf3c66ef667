//! Privacy by construction: a whole consultation (sign-in, invites, joins, media, resume, end)
//! must leave no token, IP address, display name, patient reference or SDP in the logs, at the
//! most verbose level of our own code.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use common::peer::{JoinOptions, TestPeer};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_hold_no_tokens_addresses_names_or_sdp() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info,huizhen=trace,str0m=info,is=info,webrtc=off,webrtc_ice=off,webrtc_dtls=off,webrtc_sctp=off,webrtc_srtp=off,webrtc_mdns=off,interceptor=off,hyper=off,h2=off,rustls=off,tungstenite=off,tokio_tungstenite=off,reqwest=off,sqlx=info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let s = TestServer::start().await;
    let room = s.create_room("Cardiology follow-up").await;
    let doctor_token = s.invite(&room, "doctor").await;
    let patient_token = s.invite(&room, "patient").await;
    let join = |token: &str, name: &str, marker: u8| JoinOptions {
        ws_url: s.ws_url.clone(),
        token: token.to_owned(),
        name: name.to_owned(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    };
    let doctor = TestPeer::join(join(&doctor_token, "Wang Xiuying", 1))
        .await
        .unwrap();
    let patient = TestPeer::join(join(&patient_token, "Zhang Guilan", 2))
        .await
        .unwrap();
    for p in [&doctor, &patient] {
        p.wait_connected(Duration::from_secs(20)).await.unwrap();
        p.start_media();
    }
    doctor
        .wait_received(&patient.id(), "video", 20, Duration::from_secs(30))
        .await
        .unwrap();
    let resume = patient.resume_token().unwrap();
    patient.close_abruptly();
    let (_, bad) = s
        .api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(serde_json::json!({"username": "doc", "password": "Wrong-Password-123"})),
        )
        .await;
    assert_eq!(bad["error"]["code"], "invalid_credentials");
    let session_token = s.doctor_token.clone();
    s.stop().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("joined"), "the capture works: {logs}");
    for secret in [
        doctor_token.as_str(),
        patient_token.as_str(),
        resume.as_str(),
        session_token.as_str(),
        "Wang Xiuying",
        "Zhang Guilan",
        "MRN-0042",
        "Wrong-Password-123",
        common::DOCTOR_PASSWORD,
        "127.0.0.1",
        "a=fingerprint",
        "a=ice-ufrag",
        "v=0",
    ] {
        if let Some(pos) = logs.find(secret) {
            let start = logs[..pos].rfind('\n').map_or(0, |i| i + 1);
            let end = logs[pos..].find('\n').map_or(logs.len(), |i| pos + i);
            panic!("{secret:?} reached the logs: {}", &logs[start..end]);
        }
    }
}

/// Everything the server keeps under its data directory (database, WAL and shared memory,
/// signing key, stored documents, unfinished uploads, rendered previews) is private to its user;
/// what an earlier run left readable by others is made private at start.
#[cfg(unix)]
#[tokio::test]
async fn data_files_are_readable_by_the_server_user_alone() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stale = data.join("documents").join("left-by-an-old-version");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"patient data").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let data_dir = data.clone();
    let s = TestServer::start_with(move |c| c.storage.data_dir = data_dir).await;
    let room = s.create_room("Permissions").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    // A document shared whole and its first page rendered, and an upload left unfinished.
    let pdf = common::sample_pdf();
    let (st, shared) = s
        .share(
            &room,
            &doctor.access,
            "report.pdf",
            &pdf,
            "everyone",
            1 << 20,
        )
        .await;
    assert_eq!(st, 201, "{shared}");
    let doc = shared["document"]["id"].as_str().unwrap();
    let page = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/documents/{doc}/pages/1"),
            &doctor.access,
            None,
        )
        .await;
    assert_eq!(page.status().as_u16(), 200);
    let whole = b"half of a scan".repeat(10);
    let (st, begun) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/uploads"),
            Some(&doctor.access),
            Some(serde_json::json!({
                "name": "scan.txt",
                "size": whole.len(),
                "sha256": common::sha256_hex(&whole),
                "visibility": "everyone",
            })),
        )
        .await;
    assert_eq!(st, 201, "{begun}");
    let upload = begun["upload_id"].as_str().unwrap();
    let resp = s
        .raw(
            "PUT",
            &format!("/api/v1/rooms/{room}/uploads/{upload}?offset=0"),
            &doctor.access,
            Some(whole[..20].to_vec()),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 200, "the first chunk is stored");
    // The rest never comes: the upload stays, unfinished, in the data directory.

    let mut exposed = Vec::new();
    let mut seen = 0;
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        seen += 1;
        if meta.permissions().mode() & 0o077 != 0 {
            exposed.push(format!(
                "{} {:o}",
                p.display(),
                meta.permissions().mode() & 0o777
            ));
        }
    }
    assert!(
        seen > 6,
        "the walk saw the database, key, documents and uploads ({seen})"
    );
    assert!(exposed.is_empty(), "readable by others: {exposed:?}");
    drop(doctor);
    s.stop().await;
}
