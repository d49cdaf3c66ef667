//! TURN: each participant is handed short-lived credentials (TURN REST scheme, coturn's
//! `use-auth-secret`) with `joined`, `resumed` and on admission, never while waiting; and a
//! webrtc-rs peer allowed nothing but relay candidates completes a call through a real coturn
//! (Debian's package, installed when missing) to the SFU, on loopback. webrtc-rs relays over UDP
//! only: TURN over TCP and TLS is called through by real browsers in
//! tests/browser/turn-scenario.mjs.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, SignalingClient, TestPeer};
use huizhen::auth::TurnSecret;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(30);
const MEDIA: Duration = Duration::from_secs(30);
/// ~1 s of audio (50 packets/s) and of video (15 fps x 2 packets).
const ENOUGH: u64 = 25;
const TURNSERVER: &str = "/usr/bin/turnserver";

/// Installs Debian's coturn when `turnserver` is missing (the tests run as root).
fn ensure_coturn() {
    if Path::new(TURNSERVER).exists() {
        return;
    }
    eprintln!("installing coturn (apt)…");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "coturn"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .status();
        install();
    }
    assert!(
        Path::new(TURNSERVER).exists(),
        "{TURNSERVER} is missing and `apt-get install coturn` did not provide it"
    );
}

/// A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both).
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1");
}

/// A coturn on 127.0.0.1 that knows `secret`, killed (by its PID) when dropped.
struct Coturn {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Coturn {
    fn start(secret: &str) -> Self {
        ensure_coturn();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // Relays above Linux's ephemeral range (32768 to 60999), so that no socket of this
        // test takes one meanwhile.
        let min_port = 61_000 + (rand::random::<u16>() % 40) * 100;
        let conf = dir.path().join("turnserver.conf");
        // In a file rather than on the command line: the secret stays out of `ps`.
        std::fs::write(
            &conf,
            format!(
                "listening-ip=127.0.0.1\n\
                 relay-ip=127.0.0.1\n\
                 listening-port={port}\n\
                 min-port={min_port}\n\
                 max-port={max_port}\n\
                 use-auth-secret\n\
                 static-auth-secret={secret}\n\
                 realm=huizhen.test\n\
                 fingerprint\n\
                 no-tls\n\
                 no-dtls\n\
                 no-cli\n\
                 no-software-attribute\n\
                 no-multicast-peers\n\
                 allow-loopback-peers\n\
                 allowed-peer-ip=127.0.0.1\n\
                 simple-log\n\
                 verbose\n\
                 log-file={log}\n\
                 pidfile={pid}\n\
                 userdb={db}\n",
                max_port = min_port + 99,
                log = dir.path().join("turn.log").display(),
                pid = dir.path().join("turn.pid").display(),
                db = dir.path().join("turndb").display(),
            ),
        )
        .unwrap();
        let child = Command::new(TURNSERVER)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver starts");
        let mut me = Self { child, port, dir };
        me.wait_ready();
        me
    }

    /// Waits until a STUN binding request on the UDP port is answered.
    fn wait_ready(&mut self) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // Binding request: type 0x0001, length 0, magic cookie, transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&rand::random::<[u8; 12]>());
        let deadline = Instant::now() + T;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("turnserver exited ({status}):\n{}", self.log());
            }
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok(n) = socket.recv(&mut buf)
                && n >= 20
                && buf[8..20] == request[8..20]
            {
                return;
            }
        }
        panic!(
            "turnserver did not answer on {}:\n{}",
            self.port,
            self.log()
        );
    }

    fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// Its log (coturn adds the date to the name it is given).
    fn log(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with("turn")
                && entry.file_name().to_string_lossy().ends_with(".log")
                && let Ok(mut f) = std::fs::File::open(entry.path())
            {
                let _ = f.read_to_string(&mut all);
            }
        }
        all
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A secret file holding `secret` (with a final newline, as `echo` writes it).
fn secret_file(dir: &Path, secret: &str) -> PathBuf {
    let path = dir.join("turn.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// Checks `msg`'s `ice_servers`: one entry with `urls`, a user name `<expiry>:<pseudonym>`
/// expiring `lifetime_s` from now, and the password coturn computes from the same secret.
/// Returns the user name.
fn check_credentials(msg: &Value, urls: &[String], secret: &str, lifetime_s: i64) -> String {
    let servers = msg["ice_servers"]
        .as_array()
        .unwrap_or_else(|| panic!("no ice_servers in {msg}"));
    assert_eq!(servers.len(), 1, "{msg}");
    let server = &servers[0];
    assert_eq!(server["urls"], json!(urls));
    let username = server["username"].as_str().unwrap();
    let (expiry, opaque) = username.split_once(':').unwrap();
    let now = huizhen::domain::clock::now_unix();
    let expiry: i64 = expiry.parse().unwrap();
    assert!(
        (now + lifetime_s - 30..=now + lifetime_s + 5).contains(&expiry),
        "expiry {expiry}, now {now}"
    );
    assert!(
        opaque.len() == 16 && opaque.bytes().all(|b| b.is_ascii_hexdigit()),
        "not a pseudonym: {opaque}"
    );
    let expected = TurnSecret::new(secret.as_bytes().to_vec())
        .unwrap()
        .credential(username);
    assert_eq!(server["credential"], expected.as_str());
    // Nothing about the person: their participant id and name are not in it.
    let id = msg["you"]["id"].as_str().unwrap();
    assert!(!username.contains(id));
    assert!(!username.contains(msg["you"]["name"].as_str().unwrap()));
    username.to_owned()
}

fn options(s: &TestServer, token: String, name: &str, marker: u8) -> JoinOptions {
    JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    }
}

/// `rx` receives both of `from`'s tracks, each carrying only `from`'s marker.
async fn assert_receives(rx: &TestPeer, from: &TestPeer) {
    rx.assert_receives_from(from, ENOUGH, MEDIA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_only_peer_calls_through_coturn() {
    let secret = format!("huizhen-test-{:016x}", rand::random::<u64>());
    let coturn = Coturn::start(&secret);
    let keys = tempfile::tempdir().unwrap();
    let path = secret_file(keys.path(), &secret);
    let url = coturn.url();
    let s = TestServer::start_with(|c| {
        c.turn.urls = vec![url.clone()];
        c.turn.secret_file = path.display().to_string();
        c.turn.credential_lifetime_s = 600;
    })
    .await;
    let room = s.create_room("Relayed consultation").await;

    // The doctor's media goes straight to the SFU; they are given credentials too.
    let doctor = TestPeer::join(options(
        &s,
        s.invite(&room, "doctor").await,
        "Dr. Wang",
        0xA1,
    ))
    .await
    .unwrap();
    doctor.wait_connected(CONNECT).await.unwrap();
    doctor.start_media();
    let doctor_user = check_credentials(
        &doctor.joined_message(),
        std::slice::from_ref(&url),
        &secret,
        600,
    );

    // The patient may use nothing but the relay: ICE, DTLS and media all go through coturn.
    let patient = TestPeer::join_relayed(options(
        &s,
        s.invite(&room, "patient").await,
        "Li Hua",
        0xB2,
    ))
    .await
    .unwrap();
    let patient_user = check_credentials(
        &patient.joined_message(),
        std::slice::from_ref(&url),
        &secret,
        600,
    );
    assert_ne!(doctor_user, patient_user, "each participant has their own");
    patient
        .wait_connected(CONNECT)
        .await
        .unwrap_or_else(|e| panic!("relayed peer connects: {e:#}\n{}", coturn.log()));
    patient.start_media();

    assert_receives(&doctor, &patient).await;
    assert_receives(&patient, &doctor).await;

    // Every candidate the patient offered is a relay's.
    let sdp = patient
        .peer_connection()
        .local_description()
        .await
        .unwrap()
        .sdp;
    let candidates: Vec<&str> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "{sdp}");
    assert!(
        candidates.iter().all(|c| c.contains(" typ relay")),
        "{candidates:?}"
    );
    // coturn let the patient's pseudonym allocate a relay and reach the SFU through it.
    let log = coturn.log();
    let (_, patient_opaque) = patient_user.split_once(':').unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains(patient_opaque) && l.contains("ALLOCATE processed, success")),
        "{log}"
    );
    assert!(!log.contains("Li Hua"));

    s.stop().await;
    drop(coturn);
}

#[tokio::test]
async fn credentials_come_with_a_welcome_never_while_waiting() {
    let secret = "north-wind-shared-secret";
    let keys = tempfile::tempdir().unwrap();
    let path = secret_file(keys.path(), secret);
    // UDP, TCP and TLS (tests/browser/turn-scenario.mjs calls through each in browsers): handed
    // out as configured, in order.
    let urls = vec![
        "turn:turn.example.org:3478?transport=udp".to_owned(),
        "turn:turn.example.org:3478?transport=tcp".to_owned(),
        "turns:turn.example.org:443?transport=tcp".to_owned(),
    ];
    let s = TestServer::start_with(|c| {
        c.turn.urls = urls.clone();
        c.turn.secret_file = path.display().to_string();
    })
    .await;
    let room = s.create_room_waiting("Follow-up").await;

    let doctor = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    check_credentials(&joined, &urls, secret, 3600);

    // Waiting: nothing of the room, no TURN credentials either.
    let patient = SignalingClient::connect(&s.ws_url).await.unwrap();
    patient
        .send_json(
            &json!({"type": "join", "v": 1, "token": s.invite(&room, "patient").await,
                           "name": "Li Hua", "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    let waiting = patient
        .next_event_of(&["waiting", "joined", "error"], T)
        .await
        .unwrap();
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    assert!(waiting.get("ice_servers").is_none(), "{waiting}");
    let text = waiting.to_string();
    for word in ["credential", "username", "turn:"] {
        assert!(!text.contains(word), "{word} in {text}");
    }

    // Admitted: the welcome brings them.
    let queue = doctor
        .next_event_where("waiting_room", T, |q| {
            q["waiting"].as_array().is_some_and(|w| !w.is_empty())
        })
        .await
        .unwrap();
    let id = queue["waiting"][0]["id"].as_str().unwrap().to_owned();
    doctor
        .send_json(&json!({"type": "admit", "participant_id": id}))
        .await
        .unwrap();
    let admitted = patient.next_event("joined", T).await.unwrap();
    // Nothing but the welcome came before it.
    for msg in patient.history() {
        if msg["type"] == "joined" {
            break;
        }
        assert!(msg.get("ice_servers").is_none(), "{msg}");
    }
    let first = check_credentials(&admitted, &urls, secret, 3600);

    // Resuming brings fresh ones, for the same pseudonym.
    let token = admitted["resume_token"].as_str().unwrap().to_owned();
    patient.abort();
    let again = SignalingClient::connect(&s.ws_url).await.unwrap();
    let resumed = again.resume(&token).await.unwrap();
    let second = check_credentials(&resumed, &urls, secret, 3600);
    assert_eq!(
        first.split_once(':').unwrap().1,
        second.split_once(':').unwrap().1
    );
    s.stop().await;
}

#[tokio::test]
async fn without_turn_the_list_is_empty() {
    let s = TestServer::start().await;
    let room = s.create_room("Direct").await;
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = c
        .join(&s.invite(&room, "patient").await, "Li Hua", false, false)
        .await
        .unwrap();
    assert_eq!(joined["ice_servers"], json!([]));
    s.stop().await;
}
