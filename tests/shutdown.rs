//! A clean shutdown: the real `huizhen` binary gets SIGTERM in the middle of a call and of an
//! upload. Everyone in the call is told the consultation ended (`room_ended`, close 4000), the
//! process exits by itself within its deadlines, and after a restart on the same data nothing
//! acknowledged is lost: the chunks, the finished document, the leaves, and an audit trail
//! whose chain verifies.

use crate::common;

use std::time::Duration;

use crate::common::peer::{JoinOptions, TestPeer};
use crate::common::process::{
    PASSWORD, begin_upload, call, configure, http, huizhen, put_chunk, room_with_seat, start,
};
use crate::common::sample_pdf;
use futures_util::StreamExt;
use serde_json::json;

const CHUNK: usize = 64 * 1024;
const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_call_and_an_upload_ends_cleanly_and_loses_nothing() {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = configure(dir.path(), 3);
    let http = http();
    let mut server = start(&cfg);
    let (session, room, seat) = room_with_seat(&http, &server, "Shutdown").await;
    let (_, patient) = call(
        &http,
        "POST",
        server.api(&format!("/rooms/{room}/invites")),
        &session,
        Some(json!({"role": "patient"})),
    )
    .await;
    let doctor_invite = seat;
    let patient_invite = patient["token"].as_str().unwrap().to_owned();

    // A call: two WebRTC peers with media flowing.
    let join = |token: String, name: &str, marker: u8| JoinOptions {
        ws_url: server.ws_url(),
        token,
        name: name.to_owned(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    };
    let doctor = TestPeer::join(join(doctor_invite, "Dr. Wang", 1))
        .await
        .unwrap();
    let patient = TestPeer::join(join(patient_invite, "Li Hua", 2))
        .await
        .unwrap();
    for p in [&doctor, &patient] {
        p.wait_connected(T).await.unwrap();
        p.start_media();
    }
    let access = doctor.joined_message()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // An upload: one document finished, then three chunks of another acknowledged and the
    // fourth on its way, slowly, when the signal comes.
    let uploads = format!("/rooms/{room}/uploads");
    let pdf = sample_pdf();
    let up_a = begin_upload(&http, &server, &room, &access, "a.pdf", &pdf).await;
    assert_eq!(
        put_chunk(&http, &server, &room, &access, &up_a, 0, &pdf).await,
        201
    );
    let data: Vec<u8> = (0..8 * CHUNK)
        .map(|i| b"abcdefghijklmnop"[i % 16])
        .collect();
    let up_b = begin_upload(&http, &server, &room, &access, "b.txt", &data).await;
    for i in 0..3 {
        let chunk = &data[i * CHUNK..(i + 1) * CHUNK];
        let status = put_chunk(&http, &server, &room, &access, &up_b, i * CHUNK, chunk).await;
        assert_eq!(status, 200);
    }
    // The fourth chunk: half now, the rest after the signal (within the grace period).
    let (first, second) = (
        bytes::Bytes::copy_from_slice(&data[3 * CHUNK..3 * CHUNK + CHUNK / 2]),
        bytes::Bytes::copy_from_slice(&data[3 * CHUNK + CHUNK / 2..4 * CHUNK]),
    );
    let (more_tx, more_rx) = tokio::sync::oneshot::channel::<()>();
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(first)]).chain(
        futures_util::stream::once(async move {
            let _ = more_rx.await;
            Ok(second)
        }),
    );
    let in_flight = tokio::spawn(
        http.put(server.api(&format!("{uploads}/{up_b}?offset={}", 3 * CHUNK)))
            .bearer_auth(access.clone())
            .header("content-length", CHUNK.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // SIGTERM.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The chunk in flight finishes within the grace period and is acknowledged.
    let _ = more_tx.send(());
    let fourth = in_flight.await.unwrap().map(|r| r.status().as_u16());
    // Everyone in the call hears that it ended, then the socket closes with 4000.
    for p in [&doctor, &patient] {
        let ended = p.next_event("room_ended", T).await.unwrap();
        assert_eq!(ended["reason"], "server_shutdown");
        assert_eq!(p.wait_closed(T).await.unwrap(), Some(4000));
    }
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server exits by itself after SIGTERM");
    assert!(status.success(), "{status:?}");

    // Restart: nothing acknowledged is lost.
    let server2 = start(&cfg);
    let (_, login) = call(
        &http,
        "POST",
        server2.api("/auth/login"),
        "",
        Some(json!({"username": "doc", "password": PASSWORD})),
    )
    .await;
    let session = login["token"].as_str().unwrap().to_owned();
    let (st, summary) = call(
        &http,
        "GET",
        server2.api(&format!("/rooms/{room}/summary")),
        &session,
        None,
    )
    .await;
    assert_eq!(st, 200, "{summary}");
    let docs = summary["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["name"], "a.pdf");
    let participants = summary["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 2);
    assert!(
        participants.iter().all(|p| p["left_at"].is_i64()),
        "every leave was recorded: {participants:?}"
    );
    let acknowledged = if matches!(fourth, Ok(200)) { 4 } else { 3 };
    // The unfinished upload holds exactly the acknowledged chunks, byte for byte (its
    // holder resumes from there).
    let part = dir.path().join("data/uploads").join(format!("{up_b}.part"));
    let stored = std::fs::read(&part).unwrap();
    assert_eq!(
        stored.len(),
        acknowledged * CHUNK,
        "fourth chunk: {fourth:?}"
    );
    assert_eq!(stored, data[..acknowledged * CHUNK]);
    // The audit trail's chain is intact across the shutdown.
    let mut server2 = server2;
    server2.child.kill().unwrap();
    server2.child.wait().unwrap();
    let verify = huizhen(&cfg).args(["audit", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
