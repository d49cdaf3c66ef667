//! The real `huizhen` binary as a separate process, for the tests that kill it or signal it
//! (tests/crash.rs, tests/shutdown.rs): its configuration on loopback, its first account, its
//! address, and JSON calls to it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery";

/// A running server process.
pub struct Proc {
    pub child: Child,
    pub base: String,
}

impl Proc {
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.base.replace("https://", "wss://"))
    }

    /// Waits up to `limit` for the process to exit on its own; its status, or `None` if it is
    /// still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("wait on the server") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

pub fn huizhen(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_huizhen"));
    c.arg("--config").arg(config);
    c
}

/// Writes a configuration for a server on loopback with its data under `dir`, and creates the
/// doctor account `doc` (password [`PASSWORD`]); returns the configuration's path.
pub fn configure(dir: &Path, grace_s: u64) -> PathBuf {
    configure_on(dir, grace_s, None)
}

/// The same, with the database at `database_url` (PostgreSQL) instead of SQLite in `dir`.
pub fn configure_on(dir: &Path, grace_s: u64, database_url: Option<&str>) -> PathBuf {
    let cfg = dir.join("huizhen.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ncert_dir = \"{0}/certs\"\nshutdown_grace_s = {grace_s}\n\
             [storage]\ndata_dir = \"{0}/data\"\ndatabase_url = \"{1}\"\n\
             [media]\nudp_bind = \"127.0.0.1:0\"\nannounce = [\"127.0.0.1\"]\n\
             [metrics]\nlisten = \"\"\n[log]\nfilter = \"warn\"\n",
            dir.display(),
            database_url.unwrap_or("")
        ),
    )
    .unwrap();
    let mut add = huizhen(&cfg)
        .args([
            "user",
            "add",
            "--username",
            "doc",
            "--display-name",
            "Dr. Wang",
        ])
        .args(["--role", "doctor", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
    cfg
}

/// Starts `huizhen serve` and reads its HTTPS address from what it prints.
pub fn start(config: &Path) -> Proc {
    start_with_env(config, &[])
}

/// The same, with `env` set for the process (e.g. `HUIZHEN_TEST_ABORT_AT`).
pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Proc {
    let mut child = huizhen(config)
        .envs(env.iter().copied())
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("server binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(rest) = line.split("https://").nth(1) {
            break format!("https://{}", rest.trim_end_matches('/'));
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc { child, base }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A JSON call with a bearer token (none when empty); the status and the JSON body.
pub async fn call(
    http: &reqwest::Client,
    method: &str,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method.parse().unwrap(), url);
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// The doctor ("doc", made by `configure`) signs in on `p`: their session's token.
pub async fn sign_in(http: &reqwest::Client, p: &Proc) -> String {
    let (st, login) = call(
        http,
        "POST",
        p.api("/auth/login"),
        "",
        Some(serde_json::json!({"username": "doc", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    login["token"].as_str().unwrap().to_owned()
}

/// The doctor's new consultation `title` on `p`, with no waiting room: the doctor's session
/// token, the room's id and the token of the doctor's seat in it.
pub async fn room_with_seat(
    http: &reqwest::Client,
    p: &Proc,
    title: &str,
) -> (String, String, String) {
    let session = sign_in(http, p).await;
    let (st, room) = call(
        http,
        "POST",
        p.api("/rooms"),
        &session,
        Some(serde_json::json!({"title": title, "waiting_room": false})),
    )
    .await;
    assert_eq!(st, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let (st, seat) = call(
        http,
        "POST",
        p.api(&format!("/rooms/{room}/enter")),
        &session,
        None,
    )
    .await;
    assert_eq!(st, 200, "{seat}");
    let seat = seat["token"].as_str().unwrap().to_owned();
    (session, room, seat)
}

/// Starts an upload of `bytes` as `name` (visible to everyone) in `room`; its id.
pub async fn begin_upload(
    http: &reqwest::Client,
    p: &Proc,
    room: &str,
    access: &str,
    name: &str,
    bytes: &[u8],
) -> String {
    let (st, b) = call(
        http,
        "POST",
        p.api(&format!("/rooms/{room}/uploads")),
        access,
        Some(serde_json::json!({
            "name": name,
            "size": bytes.len(),
            "sha256": super::sha256_hex(bytes),
            "visibility": "everyone",
        })),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    b["upload_id"].as_str().unwrap().to_owned()
}

/// Sends `bytes` as the chunk of `upload` starting at `offset`; the HTTP status.
pub async fn put_chunk(
    http: &reqwest::Client,
    p: &Proc,
    room: &str,
    access: &str,
    upload: &str,
    offset: usize,
    bytes: &[u8],
) -> u16 {
    http.put(p.api(&format!("/rooms/{room}/uploads/{upload}?offset={offset}")))
        .bearer_auth(access)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
