//! The server's HTTP API and metrics endpoint, as the generator uses them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

pub struct Api {
    base: String,
    http: reqwest::Client,
    /// The server ends a session that is not renewed within its idle window, and a run can be
    /// longer than that: the token is renewed once half its life is over. Held across the
    /// renewal, so that two calls never renew the same token (only one would win).
    session: tokio::sync::Mutex<Session>,
}

struct Session {
    token: String,
    renew_at: Instant,
}

impl Session {
    /// From a sign-in or renewal answer.
    fn from_answer(body: &Value) -> anyhow::Result<Self> {
        let token = body["token"]
            .as_str()
            .context("no token in the answer")?
            .to_owned();
        let life = body["expires_in"].as_u64().unwrap_or(0);
        let last = life >= body["session_expires_in"].as_u64().unwrap_or(u64::MAX);
        Ok(Self {
            token,
            // The last token of a session cannot be extended: no point renewing it.
            renew_at: if last {
                Instant::now() + Duration::from_secs(life.saturating_add(3600))
            } else {
                Instant::now() + Duration::from_secs(life / 2)
            },
        })
    }
}

impl Api {
    /// Signs in as a clinician who may create rooms.
    pub async fn login(base: &str, username: &str, password: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()?;
        let base = base.trim_end_matches('/').to_owned();
        let resp = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .with_context(|| format!("reaching {base}"))?;
        if !resp.status().is_success() {
            bail!("sign-in refused: {}", resp.text().await.unwrap_or_default());
        }
        let body: Value = resp.json().await?;
        let session = tokio::sync::Mutex::new(Session::from_answer(&body)?);
        Ok(Self {
            base,
            http,
            session,
        })
    }

    /// The session token, renewed first when half its life is over.
    async fn token(&self) -> anyhow::Result<String> {
        let mut session = self.session.lock().await;
        if Instant::now() >= session.renew_at {
            let resp = self
                .http
                .post(format!("{}/api/v1/auth/renew", self.base))
                .bearer_auth(&session.token)
                .send()
                .await?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("renewing the session: {status} {body}");
            }
            *session = Session::from_answer(&body)?;
        }
        Ok(session.token.clone())
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let token = self.token().await?;
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {body}");
        }
        Ok(body)
    }

    pub async fn create_room(&self, title: &str) -> anyhow::Result<String> {
        // Load is measured without a waiting room: everyone goes straight in.
        let room = self
            .post(
                "/api/v1/rooms",
                json!({"title": title, "waiting_room": false}),
            )
            .await?;
        Ok(room["id"].as_str().context("room id")?.to_owned())
    }

    /// A token to join `room` as `role`. Clinicians enter as accounts, not links: a doctor's
    /// or specialist's place is taken by this run's own account's care-team seat (in the room
    /// as its doctor), which is all a load test needs of them. One seat is one connection: a
    /// second join on it takes the first's place, so a room has one clinician here.
    pub async fn invite(&self, room: &str, role: &str) -> anyhow::Result<String> {
        if matches!(role, "doctor" | "specialist") {
            let seat = self
                .post(&format!("/api/v1/rooms/{room}/enter"), json!({}))
                .await?;
            return Ok(seat["token"].as_str().context("seat token")?.to_owned());
        }
        let inv = self
            .post(
                &format!("/api/v1/rooms/{room}/invites"),
                json!({"role": role}),
            )
            .await?;
        Ok(inv["token"].as_str().context("invite token")?.to_owned())
    }

    pub async fn end_room(&self, room: &str) -> anyhow::Result<()> {
        self.post(&format!("/api/v1/rooms/{room}/end"), json!({}))
            .await
            .map(|_| ())
    }

    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.base.replacen("https://", "wss://", 1))
    }
}

/// One scrape of the Prometheus endpoint: series name with labels → value.
pub async fn scrape(metrics_url: &str) -> anyhow::Result<HashMap<String, f64>> {
    let text = reqwest::get(metrics_url)
        .await
        .with_context(|| format!("scraping {metrics_url}"))?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect())
}

/// The value of label `name` in a series key such as `x{worker="0",le="0.5"}`.
pub fn label<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = key.split_once(&format!("{name}=\""))?;
    rest.split('"').next()
}

/// Sum of every series of `name` (all label sets).
pub fn sum(m: &HashMap<String, f64>, name: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}
