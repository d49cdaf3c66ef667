//! The HTTPS listener against clients that hold connections without using them (security
//! review, high finding 1): the handshake, header and idle deadlines close them, the caps
//! refuse them, and meanwhile everyone else is served; a quiet WebSocket and a slow but steady
//! upload are left alone. Deadlines are set short here; the assertions are about what happens
//! (closed or not, which counter moved, which status), never about how fast.
//!
//! Other client addresses: 127.0.0.2 and 127.0.0.3 are loopback too on Linux, so a client
//! socket bound to one of them reaches the server on 127.0.0.1 from "another address".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::insecure_tls_config;
use bytes::Bytes;
use huizhen::config::Config;
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Far beyond every deadline configured below: whatever should happen has happened by then.
const PATIENCE: Duration = Duration::from_secs(30);
/// A deadline the test does not exercise: long enough never to be the one that fires.
const NEVER_S: u64 = 300;

const ATTACKER: &str = "127.0.0.2";
const BYSTANDER: &str = "127.0.0.3";

/// A server with `tweak` applied, after the harness's own sign-in connection is gone, so that
/// the connection gauge and counters start from nothing.
async fn server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut s = TestServer::start_with(tweak).await;
    // Dropping the client closes its pooled connection; the server sees it end.
    s.http = client(None);
    wait_for(&s, "huizhen_http_connections", 0.0).await;
    s
}

/// An HTTPS client that accepts the development certificate, from `local` if given.
fn client(local: Option<&str>) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .local_address(local.map(|a| a.parse::<IpAddr>().unwrap()))
        .build()
        .unwrap()
}

/// One sample of the server's Prometheus exposition, e.g.
/// `huizhen_http_connections_timed_out_total{deadline="idle"}`.
async fn metric(s: &TestServer, series: &str) -> f64 {
    let url = format!("http://{}/metrics", s.server().metrics_addr.unwrap());
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in the metrics"))
}

async fn wait_for(s: &TestServer, series: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let now = metric(s, series).await;
        if now == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {now}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn timed_out(deadline: &str) -> String {
    format!("huizhen_http_connections_timed_out_total{{deadline=\"{deadline}\"}}")
}

fn refused(cap: &str) -> String {
    format!("huizhen_http_connections_refused_total{{cap=\"{cap}\"}}")
}

/// A TCP connection to the server from `from`.
async fn tcp(s: &TestServer, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(s.server().https_addr).await.unwrap()
}

/// A TLS connection to the server from `from`: `Err` if the server closes it before the
/// handshake is done.
async fn tls(s: &TestServer, from: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = TlsConnector::from(insecure_tls_config().unwrap());
    let name = ServerName::try_from("localhost").unwrap();
    let tcp = tcp(s, from).await;
    tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("the handshake ends one way or the other")
}

/// Whether the server closes `stream` within `within` (end of stream or an error), reading
/// and discarding whatever it sends.
async fn closed_within(stream: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0; 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok()
}

/// `GET /healthz` over an open connection; the status code.
async fn healthz(stream: &mut TlsStream<TcpStream>) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0; 1024];
    // The answer is small: its head and the body "ok".
    while !response.ends_with(b"ok") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before answering");
        response.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&response);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

/// `GET /healthz` from `from` on a fresh connection, through reqwest.
async fn healthz_from(s: &TestServer, from: &str) -> u16 {
    let resp = client(Some(from))
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("served");
    resp.status().as_u16()
}

#[tokio::test]
async fn connections_that_never_speak_are_closed_by_the_handshake_and_idle_deadlines() {
    let s = server(|c| {
        c.server.tls_handshake_timeout_s = 2;
        c.server.idle_timeout_s = 2;
        c.server.header_read_timeout_s = NEVER_S;
    })
    .await;

    // (b) TCP, and never a TLS handshake.
    let mut raw = tcp(&s, ATTACKER).await;
    // (a) A TLS handshake, then nothing.
    let mut silent = tls(&s, ATTACKER).await.expect("handshake");

    assert!(
        closed_within(&mut raw, PATIENCE).await,
        "the handshake deadline closes it"
    );
    assert!(
        closed_within(&mut silent, PATIENCE).await,
        "the idle deadline closes it"
    );
    assert_eq!(metric(&s, &timed_out("handshake")).await, 1.0);
    assert_eq!(metric(&s, &timed_out("idle")).await, 1.0);
    assert_eq!(metric(&s, &timed_out("header")).await, 0.0);
    wait_for(&s, "huizhen_http_connections", 0.0).await;
    s.stop().await;
}

#[tokio::test]
async fn a_request_head_sent_a_line_at_a_time_is_cut_at_the_header_deadline() {
    let s = server(|c| {
        c.server.header_read_timeout_s = 2;
        c.server.idle_timeout_s = NEVER_S;
        c.server.tls_handshake_timeout_s = NEVER_S;
    })
    .await;

    let stream = tls(&s, ATTACKER).await.expect("handshake");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let closed = tokio::spawn(async move { closed_within(&mut reader, PATIENCE).await });
    writer
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // One header line every half second: the connection is never idle, but the head never ends.
    for i in 0.. {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let line = format!("X-Slow-{i}: still here\r\n");
        if closed.is_finished() || writer.write_all(line.as_bytes()).await.is_err() {
            break;
        }
        assert!(i < 120, "still open after a minute of header lines");
    }
    assert!(closed.await.unwrap(), "the server closed it");
    assert_eq!(metric(&s, &timed_out("header")).await, 1.0);
    assert_eq!(metric(&s, &timed_out("idle")).await, 0.0);

    // A request that arrives at once is served as ever.
    assert_eq!(healthz_from(&s, BYSTANDER).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn an_upload_whose_body_stops_arriving_is_cut_at_the_idle_deadline() {
    let s = server(|c| {
        c.server.idle_timeout_s = 3;
        // Idle keep-alive connections of the API client end by this one instead.
        c.server.header_read_timeout_s = 1;
    })
    .await;
    let room = s.create_room("Slow POST").await;
    let patient = s.member(&room, "patient", "Li Lei").await;
    let text = b"Referral note: please review the ECG before the call.\n".repeat(20);
    let (status, begun) = s
        .begin_upload(&room, &patient.access, "referral.txt", &text, "everyone")
        .await;
    assert_eq!(status, 201, "{begun}");
    let upload = begun["upload_id"].as_str().unwrap();

    // A chunk announced whole, a tenth of it sent, then nothing: the slow-POST attack.
    let mut stream = tls(&s, ATTACKER).await.expect("handshake");
    let head = format!(
        "PUT /api/v1/rooms/{room}/uploads/{upload}?offset=0 HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        patient.access,
        text.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&text[..text.len() / 10]).await.unwrap();
    assert!(
        closed_within(&mut stream, PATIENCE).await,
        "cut when the body stalls"
    );
    assert_eq!(metric(&s, &timed_out("idle")).await, 1.0);

    // Nothing of it was kept: the client resumes from the start.
    let resp = s
        .raw(
            "GET",
            &format!("/api/v1/rooms/{room}/uploads/{upload}"),
            &patient.access,
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let status: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status["offset"], 0, "{status}");
    assert!(!patient.ws.is_closed(), "the WebSocket was never at risk");
    s.stop().await;
}

#[tokio::test]
async fn an_address_at_its_cap_is_refused_while_other_addresses_are_served() {
    const CAP: usize = 3;
    let s = server(|c| {
        c.limits.max_connections_per_address = CAP;
        c.limits.max_http_connections = 50;
        // Only the cap may close anything here.
        c.server.tls_handshake_timeout_s = NEVER_S;
        c.server.header_read_timeout_s = NEVER_S;
        c.server.idle_timeout_s = 3600;
    })
    .await;

    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(tls(&s, ATTACKER).await.expect("admitted under the cap"));
    }
    // One more from the same address: closed at once, before any handshake.
    let mut extra = tcp(&s, ATTACKER).await;
    assert!(closed_within(&mut extra, PATIENCE).await);
    assert!(tls(&s, ATTACKER).await.is_err(), "refused again");
    assert_eq!(metric(&s, &refused("per_address")).await, 2.0);
    assert_eq!(metric(&s, &refused("global")).await, 0.0);

    // The admitted connections work, and so does everyone else.
    assert_eq!(healthz(&mut held[0]).await, 200);
    assert_eq!(healthz_from(&s, BYSTANDER).await, 200);
    assert_eq!(healthz_from(&s, "127.0.0.1").await, 200);

    // A place freed is a place taken again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        if let Ok(stream) = tls(&s, ATTACKER).await {
            again = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut again = again.expect("admitted once a connection of its own closed");
    assert_eq!(healthz(&mut again).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn the_global_cap_refuses_new_connections_until_one_closes() {
    const CAP: usize = 4;
    let s = server(|c| {
        c.limits.max_http_connections = CAP;
        c.limits.max_connections_per_address = CAP;
        c.server.tls_handshake_timeout_s = NEVER_S;
        c.server.header_read_timeout_s = NEVER_S;
        c.server.idle_timeout_s = 3600;
    })
    .await;

    // The cap is for everyone together: two addresses fill it.
    let mut held = Vec::new();
    for from in [ATTACKER, ATTACKER, BYSTANDER, BYSTANDER] {
        held.push(tls(&s, from).await.expect("admitted under the cap"));
    }
    let mut extra = tcp(&s, "127.0.0.4").await;
    assert!(closed_within(&mut extra, PATIENCE).await);
    assert_eq!(metric(&s, &refused("global")).await, 1.0);
    assert_eq!(metric(&s, &refused("per_address")).await, 0.0);
    assert_eq!(metric(&s, "huizhen_http_connections").await, CAP as f64);

    assert_eq!(healthz(&mut held[3]).await, 200);
    drop(held.remove(0));
    wait_for(&s, "huizhen_http_connections", (CAP - 1) as f64).await;
    assert_eq!(healthz_from(&s, "127.0.0.4").await, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_quiet_websocket_and_a_slow_steady_upload_outlive_the_idle_deadline() {
    const IDLE_S: u64 = 3;
    let s = server(|c| {
        c.server.idle_timeout_s = IDLE_S;
        // Below the idle deadline, so that idle keep-alive connections end by it, and the idle
        // counter below can only have moved for a connection it was wrong to cut.
        c.server.header_read_timeout_s = 2;
    })
    .await;
    let room = s.create_room("Long quiet consultation").await;
    let patient = s.member(&room, "patient", "Li Lei").await;

    // Three idle deadlines and more without a word on the WebSocket.
    tokio::time::sleep(Duration::from_secs(IDLE_S * 3 + 1)).await;
    assert!(!patient.ws.is_closed(), "{:?}", patient.ws.close_info());
    patient
        .ws
        .send_json(&json!({"type": "ping", "id": 7}))
        .await
        .unwrap();
    let pong = patient
        .ws
        .next_event("pong", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(pong["id"], 7);

    // An upload chunk whose body trickles in for longer than the idle deadline, a piece at a
    // time: it is making progress, so it completes.
    let text: Vec<u8> = "Referral note: please review the ECG before the call.\n"
        .repeat(20)
        .into_bytes();
    let (status, begun) = s
        .begin_upload(&room, &patient.access, "referral.txt", &text, "everyone")
        .await;
    assert_eq!(status, 201, "{begun}");
    let upload = begun["upload_id"].as_str().unwrap();
    let pieces: Vec<Bytes> = text
        .chunks(text.len() / 15 + 1)
        .map(Bytes::copy_from_slice)
        .collect();
    assert!(
        pieces.len() as u64 * 300 > IDLE_S * 1000,
        "the trickle outlasts the deadline"
    );
    let body = futures_util::stream::unfold(pieces.into_iter(), |mut rest| async move {
        let piece = rest.next()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Some((Ok::<_, std::io::Error>(piece), rest))
    });
    let resp = s
        .http
        .put(format!(
            "{}/api/v1/rooms/{room}/uploads/{upload}?offset=0",
            s.base
        ))
        .bearer_auth(&patient.access)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("the upload is not cut");
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );

    assert!(!patient.ws.is_closed());
    assert_eq!(metric(&s, &timed_out("idle")).await, 0.0);
    s.stop().await;
}

/// The same server, attacked from one address with connections that hold their place: the
/// attacker reaches its cap and no further; another address signs in, and its WebSocket joins.
#[tokio::test]
async fn an_attack_from_one_address_locks_nobody_else_out() {
    const CAP: usize = 20;
    let s = server(|c| {
        c.limits.max_connections_per_address = CAP;
        c.limits.max_http_connections = CAP + 10;
        c.server.tls_handshake_timeout_s = NEVER_S;
        c.server.header_read_timeout_s = NEVER_S;
        c.server.idle_timeout_s = 3600;
    })
    .await;
    let attack: Vec<_> = futures_util::future::join_all((0..CAP * 2).map(|_| {
        let s = &s;
        async move { tls(s, ATTACKER).await.ok() }
    }))
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(attack.len(), CAP, "the attacker gets its cap and no more");
    assert_eq!(metric(&s, &refused("per_address")).await, CAP as f64);

    // Everyone else, through the API and the WebSocket, from the default address.
    let room = s.create_room("During an attack").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    assert!(!doctor.ws.is_closed());
    drop(attack);
    s.stop().await;
}
