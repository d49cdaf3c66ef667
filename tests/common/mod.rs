//! Shared integration-test harness: the real server on port 0 (HTTPS + UDP on loopback, a
//! fresh SQLite database in a temp dir), an API client, and headless WebRTC peers (`peer`).
#![allow(dead_code)]

pub mod impaired;
pub mod pdf;
pub mod peer;
pub mod process;

use std::time::Duration;

use huizhen::auth::hash_password;

use huizhen::config::Config;
use huizhen::domain::role::AccountRole;
use huizhen::server::Server;
use serde_json::{Value, json};

pub const DOCTOR_PASSWORD: &str = "correct horse battery";
/// The password of accounts made by [`TestServer::account`] and [`TestServer::placed_account`].
pub const ACCOUNT_PASSWORD: &str = "a long enough password";

/// Numbers the specialist accounts that [`TestServer::invite`] makes.
static SPECIALISTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where a test account belongs and how it is shown.
#[derive(Clone, Copy, Default)]
pub struct Place<'a> {
    pub institution: &'a str,
    pub department: Option<&'a str>,
    pub name: Option<&'a str>,
    pub title: &'a str,
    pub specialty: &'a str,
}

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub ws_url: String,
    pub http: reqwest::Client,
    pub doctor_token: String,
    /// The server's database, for a test that holds its locks from another connection.
    pub database_url: String,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with test defaults, adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.cert_dir = dir.path().join("certs");
        config.server.shutdown_grace_s = 1;
        config.storage.data_dir = dir.path().join("data");
        config.media.udp_bind = "127.0.0.1:0".parse().unwrap();
        config.media.announce = vec!["127.0.0.1".parse().unwrap()];
        config.log.filter =
            "warn,huizhen=info,webrtc=error,webrtc_ice=error,webrtc_sctp=error,webrtc_srtp=error,webrtc_dtls=error".into();
        config.metrics.listen = "127.0.0.1:0".into();
        tweak(&mut config);
        huizhen::telemetry::init(&config.log);
        let database_url = config.database_url();
        let server = Server::start(config).await.expect("server starts");
        let hash = hash_password(DOCTOR_PASSWORD).unwrap();
        server
            .db
            .create_user("doc", "Dr. Wang", AccountRole::Doctor, &hash)
            .await
            .unwrap();
        let base = format!("https://127.0.0.1:{}", server.https_addr.port());
        let ws_url = format!("wss://127.0.0.1:{}/ws", server.https_addr.port());
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let mut me = Self {
            server: Some(server),
            dir,
            base,
            ws_url,
            http,
            doctor_token: String::new(),
            database_url,
        };
        let (status, body) = me.login("doc", DOCTOR_PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        me.doctor_token = body["token"].as_str().unwrap().to_owned();
        me
    }

    /// Calls the JSON API; `token` None means the signed-in doctor, Some("") none at all.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.parse().unwrap(), url);
        let token = token.unwrap_or(&self.doctor_token);
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A room without a waiting room (those with a link go straight in), as the signed-in
    /// doctor; [`TestServer::create_room_waiting`] makes one with.
    pub async fn create_room(&self, title: &str) -> String {
        self.create_room_opts(title, false).await
    }

    pub async fn create_room_waiting(&self, title: &str) -> String {
        self.create_room_opts(title, true).await
    }

    async fn create_room_opts(&self, title: &str, waiting_room: bool) -> String {
        let (status, body) = self
            .api(
                "POST",
                "/api/v1/rooms",
                None,
                Some(json!({"title": title, "patient_ref": "MRN-0042", "waiting_room": waiting_room})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// A token to join `room` as `role`: a link invite for patients and observers; for
    /// clinicians, who enter as their accounts, a care-team seat's entry token (the signed-in
    /// doctor's for "doctor"; for "specialist", a fresh specialist account put on the care team).
    pub async fn invite(&self, room: &str, role: &str) -> String {
        match role {
            "doctor" => return self.enter(room, None).await,
            "specialist" => {
                let n = SPECIALISTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (id, token) = self
                    .placed_account(
                        &format!("specialist{n}"),
                        AccountRole::Specialist,
                        Place {
                            institution: huizhen::domain::organisation::DEFAULT_INSTITUTION,
                            name: Some("Prof. Zhao"),
                            title: "Chief physician",
                            ..Place::default()
                        },
                    )
                    .await;
                self.add_to_care_team(room, &id, None).await;
                return self.enter(room, Some(&token)).await;
            }
            _ => {}
        }
        let (status, body) = self
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/invites"),
                None,
                Some(json!({"role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// A fresh invite for `role`: its token and its id (to revoke it).
    pub async fn invite_with_id(&self, room: &str, role: &str) -> (String, String) {
        let (status, body) = self
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/invites"),
                None,
                Some(json!({ "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["token"].as_str().unwrap().to_owned(),
            body["invite_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Revokes an invite as the signed-in doctor; the HTTP status.
    pub async fn revoke_invite(&self, room: &str, invite_id: &str) -> u16 {
        self.api(
            "DELETE",
            &format!("/api/v1/rooms/{room}/invites/{invite_id}"),
            None,
            None,
        )
        .await
        .0
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// A PostgreSQL database of its own for one test, dropped by [`PgTestDb::drop_db`].
pub struct PgTestDb {
    pub url: String,
    admin: sqlx::AnyPool,
    name: String,
}

impl PgTestDb {
    /// Creates a fresh database on the server at HUIZHEN_TEST_POSTGRES_URL (default
    /// postgres://root@127.0.0.1:5432/test). `None`, with a SKIPPED line, when none answers and
    /// HUIZHEN_REQUIRE_POSTGRES is not 1; a panic when it is.
    pub async fn create() -> Option<Self> {
        use sqlx::Executor;
        let admin_url = std::env::var("HUIZHEN_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
        let required = std::env::var("HUIZHEN_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        sqlx::any::install_default_drivers();
        let admin = match sqlx::AnyPool::connect(&admin_url).await {
            Ok(p) => p,
            Err(e) if !required => {
                eprintln!(
                    "SKIPPED: PostgreSQL not reachable at {admin_url} ({e}); set HUIZHEN_REQUIRE_POSTGRES=1 to fail instead"
                );
                return None;
            }
            Err(e) => panic!("PostgreSQL required but not reachable at {admin_url}: {e}"),
        };
        // A database of its own, so runs never see each other's rows.
        let name = format!(
            "huizhen_test_{}",
            huizhen::domain::ids::RoomId::generate().as_str()[2..].to_ascii_lowercase()
        );
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("bad URL {admin_url}"),
        };
        Some(Self { url, admin, name })
    }

    pub async fn drop_db(self) {
        use sqlx::Executor;
        self.admin
            .execute(format!("DROP DATABASE {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

/// A patient on `c` agrees to `purposes` (`observer_present`, `external_sharing`, ...) and
/// waits until the room says so.
pub async fn consent_to(c: &peer::SignalingClient, purposes: &[&str]) {
    for purpose in purposes {
        c.send_json(&json!({"type": "consent", "purpose": purpose, "given": true}))
            .await
            .unwrap();
        c.next_event_where("consent", Duration::from_secs(10), |m| {
            m["yours"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| p == purpose))
        })
        .await
        .unwrap_or_else(|e| panic!("consent to {purpose}: {e:#}"));
    }
}

/// A participant connected over signaling only (no media), with their HTTP access token.
pub struct Member {
    pub ws: peer::SignalingClient,
    pub joined: Value,
    pub id: String,
    pub access: String,
}

impl TestServer {
    /// Creates an account with `role` and signs it in; returns its session token.
    pub async fn account(&self, name: &str, role: AccountRole) -> String {
        let hash = hash_password(ACCOUNT_PASSWORD).unwrap();
        self.server()
            .db
            .create_user(name, name, role, &hash)
            .await
            .unwrap();
        let (st, b) = self.login(name, ACCOUNT_PASSWORD).await;
        assert_eq!(st, 200, "{b}");
        b["token"].as_str().unwrap().to_owned()
    }

    /// `POST /auth/login` without a token: its status and body.
    pub async fn login(&self, username: &str, password: &str) -> (u16, Value) {
        self.api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    /// Creates a clinician account placed in the network (institution and department ids from
    /// the API) and signs it in: its id and session token. The password is
    /// [`ACCOUNT_PASSWORD`].
    pub async fn placed_account(
        &self,
        username: &str,
        role: AccountRole,
        place: Place<'_>,
    ) -> (String, String) {
        // Argon2 is slow in a debug build: one hash serves every account.
        static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let hash = HASH.get_or_init(|| hash_password(ACCOUNT_PASSWORD).unwrap());
        let db = &self.server().db;
        let institution =
            huizhen::domain::ids::InstitutionId::parse(place.institution).expect("institution id");
        let department = place
            .department
            .map(|d| huizhen::domain::ids::DepartmentId::parse(d).expect("department id"));
        let user = db
            .create_account(&huizhen::storage::NewAccount {
                username,
                display_name: place.name.unwrap_or(username),
                role,
                password_hash: hash,
                institution: &institution,
                department: department.as_ref(),
                title: place.title,
                specialty: place.specialty,
            })
            .await
            .unwrap();
        let (st, b) = self.login(username, ACCOUNT_PASSWORD).await;
        assert_eq!(st, 200, "{b}");
        (user.id.to_string(), b["token"].as_str().unwrap().to_owned())
    }

    /// Creates an institution (as the server's own, not through the API): its id.
    pub async fn institution(&self, name: &str) -> String {
        self.server()
            .db
            .create_institution(
                name,
                huizhen::domain::organisation::InstitutionKind::Hospital,
            )
            .await
            .unwrap()
            .id
            .to_string()
    }

    /// Creates a department of `institution`: its id.
    pub async fn department(&self, institution: &str, name: &str) -> String {
        let institution = huizhen::domain::ids::InstitutionId::parse(institution).unwrap();
        self.server()
            .db
            .create_department(&institution, name)
            .await
            .unwrap()
            .id
            .to_string()
    }

    /// Puts an account on a room's care team, as the signed-in doctor (`by`: None) or another.
    pub async fn add_to_care_team(&self, room: &str, user: &str, by: Option<&str>) {
        let (st, b) = self
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/care-team"),
                by,
                Some(json!({"user_id": user})),
            )
            .await;
        assert_eq!(st, 201, "{b}");
    }

    /// A care-team seat's entry token for the account of `session` (None: the doctor).
    pub async fn enter(&self, room: &str, session: Option<&str>) -> String {
        let (st, b) = self
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/enter"),
                session,
                None,
            )
            .await;
        assert_eq!(st, 200, "{b}");
        b["token"].as_str().unwrap().to_owned()
    }

    /// A room's attendance as `token` reads it, once `ready` holds: joins are written through
    /// the batched writer and the waiting room's snapshot is taken as the queue is told, so
    /// either may trail the room by a moment.
    pub async fn attendance_where(
        &self,
        room: &str,
        token: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let url = format!("/api/v1/rooms/{room}/attendance");
        let mut last = Value::Null;
        for _ in 0..50 {
            let (st, a) = self.api("GET", &url, Some(token), None).await;
            assert_eq!(st, 200, "{a}");
            if ready(&a) {
                return a;
            }
            last = a;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("attendance never got there: {last}")
    }

    /// Every audit entry of `room`, oldest first, read with a supervisor's token.
    pub async fn audit_entries(&self, supervisor: &str, room: &str) -> Vec<Value> {
        let (st, page) = self
            .api(
                "GET",
                &format!("/api/v1/audit?room={room}&limit=1000"),
                Some(supervisor),
                None,
            )
            .await;
        assert_eq!(st, 200, "{page}");
        page["entries"].as_array().unwrap().clone()
    }

    /// Every audit entry so far (the first 1,000), oldest first, read with a supervisor's token.
    pub async fn audit_all(&self, supervisor: &str) -> Vec<Value> {
        let (st, page) = self
            .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
            .await;
        assert_eq!(st, 200, "{page}");
        page["entries"].as_array().unwrap().clone()
    }

    /// Joins `room` with a fresh invite for `role`, signaling only.
    pub async fn member(&self, room: &str, role: &str, name: &str) -> Member {
        let invite = self.invite(room, role).await;
        self.member_with(&invite, name).await
    }

    /// Joins as a patient and agrees to observers being present (tests with an observer).
    pub async fn consenting_patient(&self, room: &str, name: &str) -> Member {
        let patient = self.member(room, "patient", name).await;
        consent_to(&patient.ws, &["observer_present"]).await;
        patient
    }

    pub async fn member_with(&self, invite: &str, name: &str) -> Member {
        let ws = peer::SignalingClient::connect(&self.ws_url).await.unwrap();
        let joined = ws.join(invite, name, false, false).await.unwrap();
        Member {
            id: joined["you"]["id"].as_str().unwrap().to_owned(),
            access: joined["access_token"].as_str().unwrap().to_owned(),
            joined,
            ws,
        }
    }

    /// A raw HTTP request with a bearer token and an optional byte body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.expect("request sent")
    }

    /// Starts an upload of `bytes` as `name` with `visibility`; the status and the body
    /// (201 and `{"upload_id", ..}` on success).
    pub async fn begin_upload(
        &self,
        room: &str,
        access: &str,
        name: &str,
        bytes: &[u8],
        visibility: &str,
    ) -> (u16, Value) {
        self.api(
            "POST",
            &format!("/api/v1/rooms/{room}/uploads"),
            Some(access),
            Some(json!({
                "name": name,
                "size": bytes.len(),
                "sha256": sha256_hex(bytes),
                "visibility": visibility,
            })),
        )
        .await
    }

    /// Uploads `bytes` as a document in chunks of `chunk` bytes; returns the final status and
    /// body (201 and `{"document": ..}` on success).
    pub async fn share(
        &self,
        room: &str,
        access: &str,
        name: &str,
        bytes: &[u8],
        visibility: &str,
        chunk: usize,
    ) -> (u16, Value) {
        let (status, begun) = self
            .begin_upload(room, access, name, bytes, visibility)
            .await;
        if status != 201 {
            return (status, begun);
        }
        let upload = begun["upload_id"].as_str().unwrap().to_owned();
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(bytes.len());
            let resp = self
                .raw(
                    "PUT",
                    &format!("/api/v1/rooms/{room}/uploads/{upload}?offset={offset}"),
                    access,
                    Some(bytes[offset..end].to_vec()),
                )
                .await;
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status != 200 || end == bytes.len() {
                return (status, body);
            }
            offset = end;
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small but real one-page PDF.
pub fn sample_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        "<< /Length 44 >>\nstream\nBT /F1 18 Tf 30 100 Td (Lab results) Tj ET\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The start of a PNG (signature, IHDR, IEND): enough for the server's content check, not
/// for an image decoder.
pub fn sample_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[
        0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0xFD, 0xD4,
        0x9A, 0x73,
    ]);
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    png
}

/// Audit entries as "action:outcome", to check which steps were recorded.
pub fn action_outcomes(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

/// Makes `$name` (an `async fn(&TestServer)`) two tests, `$name::on_sqlite` and
/// `$name::on_postgres`, each on a server of its own started with `$tweak` (a `fn(&mut
/// Config)`): the flow runs unchanged on both stores. The PostgreSQL one has a fresh database
/// ([`PgTestDb`]) and is skipped, with a SKIPPED line, where none answers and
/// HUIZHEN_REQUIRE_POSTGRES is not 1. The two run in parallel like any two tests of a binary.
#[allow(unused_macros)] // Not every test binary has a flow for both stores.
macro_rules! on_both_databases {
    ($(#[$attr:meta])+ $name:ident, $tweak:expr $(,)?) => {
        mod $name {
            $(#[$attr])+
            async fn on_sqlite() {
                let tweak: fn(&mut huizhen::config::Config) = $tweak;
                let s = $crate::common::TestServer::start_with(tweak).await;
                super::$name(&s).await;
                s.stop().await;
            }

            $(#[$attr])+
            async fn on_postgres() {
                let Some(pg) = $crate::common::PgTestDb::create().await else {
                    return;
                };
                let tweak: fn(&mut huizhen::config::Config) = $tweak;
                let url = pg.url.clone();
                let s = $crate::common::TestServer::start_with(move |c| {
                    tweak(c);
                    c.storage.database_url = url;
                })
                .await;
                super::$name(&s).await;
                s.stop().await;
                pg.drop_db().await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_databases;
