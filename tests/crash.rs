//! Durability of uploads across a crash: the real `huizhen` binary is killed with SIGKILL in the
//! middle of an upload and started again on the same data directory. Everything that was
//! acknowledged must still be there (the finished document, every acknowledged chunk) and nothing
//! partial may be visible.

mod common;

use std::time::Duration;

use common::process::{self, PASSWORD, Proc, begin_upload, call, configure, http, start};
use common::sample_pdf;
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
