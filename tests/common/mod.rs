//! Shared integration-test harness: the real server on port 0 (HTTPS + UDP on loopback, a
//! fresh SQLite database in a temp dir), an API client, and headless WebRTC peers (`peer`).
#![allow(dead_code)]

pub mod peer;

use std::time::Duration;

use huizhen::auth::{AccountRole, hash_password};
use huizhen::config::Config;
use huizhen::server::Server;
use serde_json::{Value, json};

pub const DOCTOR_PASSWORD: &str = "correct horse battery";

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub ws_url: String,
    pub http: reqwest::Client,
    pub doctor_token: String,
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
        };
        let (status, body) = me
            .api(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "doc", "password": DOCTOR_PASSWORD})),
            )
            .await;
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

    pub async fn create_room(&self, title: &str) -> String {
        let (status, body) = self
            .api(
                "POST",
                "/api/v1/rooms",
                None,
                Some(json!({"title": title, "patient_ref": "MRN-0042"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn invite(&self, room: &str, role: &str) -> String {
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

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}
