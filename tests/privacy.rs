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

    // TURN relays configured: neither the shared secret nor anyone's credentials are logged.
    let keys = tempfile::tempdir().unwrap();
    let turn_secret = "Shared-Turn-Secret-5e1f";
    let secret_path = keys.path().join("turn.secret");
    std::fs::write(&secret_path, format!("{turn_secret}\n")).unwrap();
    let s = TestServer::start_with(|c| {
        c.turn.urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        c.turn.secret_file = secret_path.display().to_string();
    })
    .await;
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
    let turn_credential = patient.joined_message()["ice_servers"][0]["credential"]
        .as_str()
        .unwrap()
        .to_owned();
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
        turn_secret,
        turn_credential.as_str(),
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
