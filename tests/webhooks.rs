//! Institutions' outgoing webhooks against the real server, on SQLite and PostgreSQL, with a
//! receiver on 127.0.0.1 that checks every signature: a referral's steps reach both
//! institutions in order, each with its sequence; a receiver that fails the first attempts
//! gets them again, never a later event before an earlier one; a dead endpoint's event is given
//! up after the limit, shown failed and audited, and the consultation's next event goes on; a
//! rotated secret signs from then on; another institution's administrator can neither read nor
//! set the webhook (recorded); events left undelivered at shutdown are delivered after a
//! restart. A receiver over HTTPS with a certificate from a hospital's own CA (made here with
//! rcgen): refused in the handshake (retried, recorded) until `webhooks.ca_file` names the CA,
//! then delivered; an unusable CA file stops the start. A room ended from the room (signaling)
//! tells its institution once. And the outbox's limit, hammered by
//! concurrent events at the storage level: exactly the limit queued, the rest dropped with
//! their numbers skipped.

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Place, TestServer};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use huizhen::config::Config;
use huizhen::domain::role::AccountRole;
use huizhen::server::Server;
use huizhen::webhooks::signature;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    signature: String,
    body: String,
    json: Value,
    answered: u16,
}

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Got>>,
    /// Per path: how many requests still to answer 500.
    fail_first: Mutex<HashMap<String, u32>>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let answered = if path == "dead" {
        503
    } else {
        let mut fail = r.fail_first.lock().unwrap();
        match fail.get_mut(&path) {
            Some(n) if *n > 0 => {
                *n -= 1;
                500
            }
            _ => 200,
        }
    };
    r.got.lock().unwrap().push(Got {
        path,
        signature: headers
            .get("huizhen-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        body,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

/// A receiver on 127.0.0.1 (on `port`, or any): its state and address.
async fn receiver_on(port: u16) -> (Arc<Receiver>, SocketAddr) {
    let state = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, addr)
}

impl Receiver {
    fn got(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }

    /// The delivered (answered 2xx) events of `path` for one consultation, in arrival order.
    fn delivered(&self, path: &str, consultation: &str) -> Vec<Got> {
        self.got(path)
            .into_iter()
            .filter(|g| g.answered == 200 && g.json["consultation"]["id"] == consultation)
            .collect()
    }

    async fn wait_for(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        for _ in 0..400 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.got.lock().unwrap()
        );
    }
}

fn types(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| g.json["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// Every request of `path` carries a signature that verifies with one of `secrets` (the one
/// in force when it was sent), and a consultation's requests come in sequence order: a later
/// event only once the earlier one was answered 2xx (or given up, where `given_up` lists it).
fn check_order_and_signatures(got: &[Got], secrets: &[&str]) {
    let mut last: HashMap<String, (i64, bool)> = HashMap::new();
    for g in got {
        assert!(
            secrets.iter().any(|s| signature::verify(
                s,
                &g.signature,
                g.body.as_bytes(),
                now(),
                300
            )),
            "signature does not verify: {g:?}"
        );
        let c = g.json["consultation"]["id"].as_str().unwrap().to_owned();
        let seq = g.json["consultation"]["sequence"].as_i64().unwrap();
        if let Some(&(prev, prev_ok)) = last.get(&c)
            && seq != prev
        {
            assert!(seq > prev, "sequence went back: {prev} then {seq}");
            assert!(prev_ok, "event {seq} sent before {prev} was delivered");
        }
        last.insert(c, (seq, g.answered == 200));
    }
}

fn tweak(c: &mut Config) {
    c.webhooks.allow_http_loopback = true;
    c.webhooks.backoff_base_ms = 20;
    c.webhooks.backoff_max_s = 1;
    c.webhooks.max_attempts = 4;
    c.webhooks.poll_interval_ms = 20;
    c.webhooks.timeout_s = 5;
}

struct Network {
    town: String,
    county: String,
    cardiology: String,
    doctor: String,
    specialist: String,
    town_admin: String,
    county_admin: String,
    supervisor: String,
}

async fn network(s: &TestServer) -> Network {
    let town = s.institution("Township clinic").await;
    let county = s.institution("County hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    fn at(institution: &str) -> Place<'_> {
        Place {
            institution,
            ..Place::default()
        }
    }
    let (_, doctor) = s
        .placed_account("town-doc", AccountRole::Doctor, at(&town))
        .await;
    let (_, specialist) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            Place {
                institution: &county,
                department: Some(&cardiology),
                ..Place::default()
            },
        )
        .await;
    let (_, town_admin) = s
        .placed_account("town-admin", AccountRole::InstitutionAdmin, at(&town))
        .await;
    let (_, county_admin) = s
        .placed_account("county-admin", AccountRole::InstitutionAdmin, at(&county))
        .await;
    let (_, supervisor) = s
        .placed_account("regulator", AccountRole::NetworkSupervisor, at(&town))
        .await;
    Network {
        town,
        county,
        cardiology,
        doctor,
        specialist,
        town_admin,
        county_admin,
        supervisor,
    }
}

async fn set_webhook(s: &TestServer, admin: &str, institution: &str, body: Value) -> (u16, Value) {
    s.api(
        "PUT",
        &format!("/api/v1/institutions/{institution}/webhook"),
        Some(admin),
        Some(body),
    )
    .await
}

async fn refer(s: &TestServer, n: &Network) -> String {
    let (st, r) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&n.doctor),
            Some(json!({
                "target_department_id": n.cardiology,
                "patient_ref": "P-77",
                "reason": "Chest pain on exertion",
                "question": "Stable angina? Mr Zhang San asks.",
                "urgency": "urgent",
                "proposed_times": [{"start": now() + DAY, "minutes": 30}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    r["id"].as_str().unwrap().to_owned()
}

async fn step(
    s: &TestServer,
    token: &str,
    referral: &str,
    action: &str,
    body: Option<Value>,
) -> Value {
    let (st, r) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{referral}/{action}"),
            Some(token),
            body,
        )
        .await;
    assert_eq!(st, 200, "{action}: {r}");
    r
}

async fn deliveries(s: &TestServer, admin: &str, institution: &str, q: &str) -> Vec<Value> {
    let (st, b) = s
        .api(
            "GET",
            &format!("/api/v1/institutions/{institution}/webhook/deliveries{q}"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["deliveries"].as_array().unwrap().clone()
}

async fn audit_actions(s: &TestServer, supervisor: &str) -> Vec<Value> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

async fn scenario(s: &TestServer) {
    let n = network(s).await;
    let (rx, addr) = receiver_on(0).await;
    let url = |path: &str| format!("http://{addr}/{path}");

    // Configuration: each institution's administrator their own; the secret once.
    let (st, town_hook) = set_webhook(s, &n.town_admin, &n.town, json!({"url": url("town")})).await;
    assert_eq!(st, 201, "{town_hook}");
    let town_secret = town_hook["secret"].as_str().unwrap().to_owned();
    assert!(town_secret.starts_with("whsec_"));
    let (st, county_hook) =
        set_webhook(s, &n.county_admin, &n.county, json!({"url": url("county")})).await;
    assert_eq!(st, 201, "{county_hook}");
    let county_secret = county_hook["secret"].as_str().unwrap().to_owned();
    let (st, read) = s
        .api(
            "GET",
            &format!("/api/v1/institutions/{}/webhook", n.town),
            Some(&n.town_admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{read}");
    assert!(read.get("secret").is_none(), "the secret is shown once");
    assert_eq!(read["enabled"], true);
    // Refused: bad URLs.
    for (bad, code) in [
        ("https://user:pw@his.example.org/h", "url_credentials"),
        ("ftp://his.example.org/h", "url_not_https"),
        ("https://169.254.169.254/latest", "url_address_not_allowed"),
    ] {
        let (st, b) = set_webhook(s, &n.town_admin, &n.town, json!({"url": bad})).await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (400, Some(code)),
            "{bad}: {b}"
        );
    }
    // Another institution's administrator: as if there were none, and recorded; a clinician:
    // forbidden, and recorded.
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/institutions/{}/webhook", n.county),
            Some(&n.town_admin),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = set_webhook(s, &n.town_admin, &n.county, json!({"url": url("evil")})).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/institutions/{}/webhook/rotate", n.county),
            Some(&n.town_admin),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/institutions/{}/webhook", n.town),
            Some(&n.doctor),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let entries = audit_actions(s, &n.supervisor).await;
    let denied: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "access.denied" && e["object_id"] == n.county.as_str())
        .collect();
    assert!(denied.len() >= 3, "refusals recorded: {denied:?}");
    assert!(
        entries
            .iter()
            .filter(|e| e["action"] == "webhook.configured")
            .count()
            >= 2
    );
    let (st, still) = s
        .api(
            "GET",
            &format!("/api/v1/institutions/{}/webhook", n.county),
            Some(&n.county_admin),
            None,
        )
        .await;
    assert_eq!(
        (st, still["url"].as_str()),
        (200, Some(url("county").as_str()))
    );

    // The town's receiver fails its first three requests: retried, in order.
    rx.fail_first.lock().unwrap().insert("town".into(), 3);
    let referral = refer(s, &n).await;
    step(
        s,
        &n.specialist,
        &referral,
        "propose",
        Some(json!({"start": now() + 2 * DAY, "minutes": 30})),
    )
    .await;
    let scheduled = step(s, &n.doctor, &referral, "accept", None).await;
    let room = scheduled["room_id"].as_str().unwrap().to_owned();
    step(s, &n.doctor, &referral, "start", None).await;
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/end"),
            Some(&n.doctor),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    let expected = [
        "referral.created",
        "referral.counter_proposed",
        "referral.scheduled",
        "consultation.started",
        "consultation.ended",
    ];
    for path in ["town", "county"] {
        rx.wait_for(path, |r| {
            r.delivered(path, &referral).len() == expected.len()
        })
        .await;
        let got = rx.delivered(path, &referral);
        assert_eq!(types(&got), expected, "{path}");
        let seqs: Vec<i64> = got
            .iter()
            .map(|g| g.json["consultation"]["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{path}");
        let institution = if path == "town" { &n.town } else { &n.county };
        for g in &got {
            assert_eq!(g.json["institution_id"], institution.as_str());
            // Ids, states, times and the pseudonymous reference; no text, no names.
            for secret_text in ["Chest pain", "Zhang", "angina", "town-doc", "cardio\""] {
                assert!(!g.body.contains(secret_text), "{secret_text} in {}", g.body);
            }
        }
        assert_eq!(got[2].json["data"]["state"], "scheduled");
        assert_eq!(got[2].json["data"]["room_id"], room.as_str());
        assert_eq!(got[0].json["data"]["patient_ref"], "P-77");
    }
    let town_all = rx.got("town");
    assert_eq!(town_all.iter().filter(|g| g.answered == 500).count(), 3);
    check_order_and_signatures(&town_all, &[&town_secret]);
    check_order_and_signatures(&rx.got("county"), &[&county_secret]);
    // The same event again after a failure: same id and body (idempotency).
    assert_eq!(town_all[0].body, town_all[3].body);
    let listed = deliveries(s, &n.town_admin, &n.town, "").await;
    assert!(
        listed.iter().all(|d| d["state"] == "delivered"),
        "{listed:?}"
    );
    assert!(listed.iter().any(|d| d["attempts"] == 4), "{listed:?}");

    // Rotation: the new secret signs, the old no longer does.
    let (st, rotated) = s
        .api(
            "POST",
            &format!("/api/v1/institutions/{}/webhook/rotate", n.county),
            Some(&n.county_admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, county_secret);

    // A dead endpoint: given up after the limit, shown failed, audited; the consultation's
    // next event still goes.
    let (st, b) = set_webhook(s, &n.town_admin, &n.town, json!({"url": url("dead")})).await;
    assert_eq!(st, 200, "{b}");
    assert!(b.get("secret").is_none());
    let second = refer(s, &n).await;
    rx.wait_for("the dead endpoint's attempts", |r| r.got("dead").len() == 4)
        .await;
    let failed = {
        let mut failed = Vec::new();
        for _ in 0..200 {
            failed = deliveries(s, &n.town_admin, &n.town, "?state=failed").await;
            if !failed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        failed
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["consultation_id"], second.as_str());
    assert_eq!(failed[0]["attempts"], 4);
    assert_eq!(failed[0]["last_status"], 503);
    let (st, b) = set_webhook(s, &n.town_admin, &n.town, json!({"url": url("town")})).await;
    assert_eq!(st, 200, "{b}");
    step(
        s,
        &n.doctor,
        &second,
        "cancel",
        Some(json!({"reason": "Mr Zhang improved"})),
    )
    .await;
    rx.wait_for("the cancellation", |r| {
        types(&r.delivered("town", &second)) == ["referral.cancelled"]
            && r.delivered("county", &second).len() == 2
    })
    .await;
    assert_eq!(
        rx.delivered("town", &second)[0].json["consultation"]["sequence"],
        2
    );
    // The endpoint works again: the administrator sends the failed event once more. It keeps
    // its sequence (the receiver orders by it), and only a failed event can be sent again,
    // only by its institution's administrator.
    let retry = format!(
        "/api/v1/institutions/{}/webhook/deliveries/{}/retry",
        n.town,
        failed[0]["id"].as_str().unwrap()
    );
    let (st, e) = s.api("POST", &retry, Some(&n.county_admin), None).await;
    assert_eq!(st, 404, "another institution's administrator: {e}");
    let (st, again) = s.api("POST", &retry, Some(&n.town_admin), None).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(
        (again["state"].as_str(), again["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    rx.wait_for("the failed event, sent again", |r| {
        types(&r.delivered("town", &second)) == ["referral.cancelled", "referral.created"]
    })
    .await;
    assert_eq!(
        rx.delivered("town", &second)[1].json["consultation"]["sequence"],
        1
    );
    let (st, e) = s.api("POST", &retry, Some(&n.town_admin), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (404, Some("not_found")),
        "delivered: {e}"
    );
    let county_second = rx.delivered("county", &second);
    for g in &county_second {
        assert!(signature::verify(
            &new_secret,
            &g.signature,
            g.body.as_bytes(),
            now(),
            300
        ));
        assert!(!signature::verify(
            &county_secret,
            &g.signature,
            g.body.as_bytes(),
            now(),
            300
        ));
        assert!(!g.body.contains("Zhang"));
    }
    let entries = audit_actions(s, &n.supervisor).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "webhook.delivery_failed" && e["object_id"] == failed[0]["id"])
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "webhook.retried" && e["object_id"] == failed[0]["id"])
    );
    assert!(entries.iter().any(|e| e["action"] == "webhook.secret_rotated"
        && e["object_id"] == n.county.as_str()));
    for e in &entries {
        let text = e.to_string();
        assert!(
            !text.contains("whsec_"),
            "a secret in the audit trail: {text}"
        );
    }

    // Disabled: nothing queued for it.
    let (st, b) = set_webhook(s, &n.county_admin, &n.county, json!({"enabled": false})).await;
    assert_eq!((st, b["enabled"].as_bool()), (200, Some(false)), "{b}");
    let third = refer(s, &n).await;
    rx.wait_for("the town's copy", |r| {
        r.delivered("town", &third).len() == 1
    })
    .await;
    assert!(
        rx.got("county")
            .iter()
            .all(|g| g.json["consultation"]["id"] != third.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_sqlite() {
    let s = TestServer::start_with(tweak).await;
    scenario(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| {
        tweak(c);
        c.storage.database_url = url;
    })
    .await;
    scenario(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

/// The configuration `TestServer` uses, on a data directory that outlives one server.
fn config_in(dir: &std::path::Path, database_url: Option<&str>) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.cert_dir = dir.join("certs");
    c.server.shutdown_grace_s = 1;
    c.storage.data_dir = dir.join("data");
    c.media.udp_bind = "127.0.0.1:0".parse().unwrap();
    c.media.announce = vec!["127.0.0.1".parse().unwrap()];
    c.log.filter = "warn,huizhen=info".into();
    c.metrics.listen = "127.0.0.1:0".into();
    tweak(&mut c);
    // Many attempts: the endpoint is down for the whole first run.
    c.webhooks.max_attempts = 100;
    if let Some(url) = database_url {
        c.storage.database_url = url.to_owned();
    }
    c
}

async fn serve(dir: &tempfile::TempDir, database_url: Option<&str>) -> TestServer {
    let config = config_in(dir.path(), database_url);
    let database_url = config.database_url();
    let server = Server::start(config).await.expect("server starts");
    let port = server.https_addr.port();
    TestServer {
        server: Some(server),
        // Not used: the data directory is the caller's.
        dir: tempfile::tempdir().unwrap(),
        base: format!("https://127.0.0.1:{port}"),
        ws_url: format!("wss://127.0.0.1:{port}/ws"),
        http: reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        doctor_token: String::new(),
        database_url,
    }
}

async fn survives_restart(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = serve(&dir, database_url).await;
    let n = network(&s).await;
    let url = format!("http://127.0.0.1:{port}/town");
    let (st, hook) = set_webhook(&s, &n.town_admin, &n.town, json!({"url": url})).await;
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let referral = refer(&s, &n).await;
    step(&s, &n.specialist, &referral, "accept", None).await;
    // Attempted (refused connections) but not delivered.
    for _ in 0..200 {
        let d = deliveries(&s, &n.town_admin, &n.town, "").await;
        if d.len() == 2 && d.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pending = deliveries(&s, &n.town_admin, &n.town, "?state=pending").await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    s.stop().await;

    let (rx, _) = receiver_on(port).await;
    let s = serve(&dir, database_url).await;
    rx.wait_for("delivery after the restart", |r| {
        r.delivered("town", &referral).len() == 2
    })
    .await;
    let got = rx.delivered("town", &referral);
    assert_eq!(types(&got), ["referral.created", "referral.accepted"]);
    check_order_and_signatures(&rx.got("town"), &[&secret]);
    // The session survives the restart (sessions and the signing key are stored).
    let admin = n.town_admin.clone();
    for _ in 0..100 {
        if deliveries(&s, &admin, &n.town, "?state=delivered")
            .await
            .len()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        deliveries(&s, &admin, &n.town, "?state=delivered")
            .await
            .len(),
        2
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_a_restart_on_sqlite() {
    survives_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_events_survive_a_restart_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    survives_restart(Some(&pg.url)).await;
    pg.drop_db().await;
}

/// The outbox's limit under 20 concurrent events for one institution with room for 5:
/// exactly 5 queued, 15 counted as dropped, and every event got its own number (the dropped
/// ones are the gaps).
async fn outbox_limit(db: huizhen::storage::Db) {
    use huizhen::domain::webhook::EventKind;
    let ins = db
        .create_institution(
            "Clinic",
            huizhen::domain::organisation::InstitutionKind::Hospital,
        )
        .await
        .unwrap();
    let user = db
        .create_account(&huizhen::storage::NewAccount {
            username: "d",
            display_name: "d",
            role: AccountRole::Doctor,
            password_hash: "x",
            institution: &ins.id,
            department: None,
            title: "",
            specialty: "",
        })
        .await
        .unwrap();
    let room = db.create_room("R", None, &user.id).await.unwrap();
    // The room's institution is the account's.
    let room_ins = db.room(&room.id).await.unwrap().unwrap().institution_id;
    db.create_webhook(&room_ins, "http://127.0.0.1:9/x", "whsec_t", true, 5, 0)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (db, room) = (db.clone(), room.id.clone());
        tasks.push(tokio::spawn(async move {
            db.enqueue_room_event(&room, EventKind::ConsultationEnded, json!({"i": i}), 0, 0)
                .await
                .unwrap()
        }));
    }
    let mut full = 0;
    for t in tasks {
        full += t.await.unwrap().len();
    }
    assert_eq!(full, 15);
    let w = db.webhook(&room_ins).await.unwrap().unwrap();
    assert_eq!((w.pending, w.dropped), (5, 15));
    let queued = db.webhook_deliveries(&room_ins, None, 100).await.unwrap();
    assert_eq!(queued.len(), 5);
    let mut seqs: Vec<i64> = queued.iter().map(|d| d.seq).collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 5, "distinct numbers");
    assert!(seqs.iter().all(|s| (1..=20).contains(s)));
    // A place given back (delivered) is taken by the next event.
    db.finish_webhook_attempt(
        &queued[0].id,
        &room_ins,
        huizhen::storage::AttemptEnd::Delivered,
        Some(200),
        None,
        1,
    )
    .await
    .unwrap();
    let more = db
        .enqueue_room_event(&room.id, EventKind::ConsultationEnded, json!({}), 0, 0)
        .await
        .unwrap();
    assert!(more.is_empty());
    let w = db.webhook(&room_ins).await.unwrap().unwrap();
    assert_eq!((w.pending, w.dropped), (5, 15));
    // Its number comes after all 20 before it.
    let newest = db.webhook_deliveries(&room_ins, None, 100).await.unwrap();
    assert!(newest.iter().any(|d| d.seq == 21), "{newest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_limit_holds_under_concurrency_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = huizhen::storage::Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await
    .unwrap();
    outbox_limit(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_limit_holds_under_concurrency_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let db = huizhen::storage::Db::connect(&pg.url).await.unwrap();
    outbox_limit(db.clone()).await;
    db.close().await;
    pg.drop_db().await;
}

/// A hospital's own certificate authority, made here: its PEM, and a certificate for
/// 127.0.0.1 it signed (certificate and key PEM).
fn hospital_ca() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "County hospital internal CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// A receiver on 127.0.0.1 over HTTPS with `cert` (and `key`): its state and address.
async fn tls_receiver(cert: &str, key: &str) -> (Arc<Receiver>, SocketAddr) {
    let state = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(receive))
        .with_state(state.clone());
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        cert.as_bytes().to_vec(),
        key.as_bytes().to_vec(),
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    (state, addr)
}

async fn serve_with(
    dir: &tempfile::TempDir,
    database_url: Option<&str>,
    ca_file: &std::path::Path,
) -> TestServer {
    let mut c = config_in(dir.path(), database_url);
    c.webhooks.ca_file = ca_file.display().to_string();
    let database_url = c.database_url();
    let server = Server::start(c).await.expect("server starts");
    let port = server.https_addr.port();
    TestServer {
        server: Some(server),
        dir: tempfile::tempdir().unwrap(),
        base: format!("https://127.0.0.1:{port}"),
        ws_url: format!("wss://127.0.0.1:{port}/ws"),
        http: reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        doctor_token: String::new(),
        database_url,
    }
}

/// A hospital's receiver with a certificate from its own CA: while the server trusts the
/// public roots only, every attempt fails in the TLS handshake (retried, recorded as an
/// untrusted authority, nothing reaches the receiver); with the CA in `webhooks.ca_file` the
/// same event is delivered. A `ca_file` that is missing or holds no certificate stops the
/// start with an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospitals_own_ca_is_trusted_once_configured() {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = hospital_ca();
    let ca_file = dir.path().join("hospital-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (rx, addr) = tls_receiver(&cert, &key).await;

    // The public roots only.
    let s = serve_with(&dir, None, std::path::Path::new("")).await;
    let n = network(&s).await;
    let (st, hook) = set_webhook(
        &s,
        &n.town_admin,
        &n.town,
        json!({"url": format!("https://{addr}/town")}),
    )
    .await;
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let referral = refer(&s, &n).await;
    let mut attempted = Vec::new();
    for _ in 0..200 {
        attempted = deliveries(&s, &n.town_admin, &n.town, "").await;
        if attempted.len() == 1 && attempted[0]["attempts"].as_i64() >= Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(attempted.len(), 1, "{attempted:?}");
    assert_eq!(attempted[0]["state"], "pending", "retried: {attempted:?}");
    assert!(
        attempted[0]["attempts"].as_i64() >= Some(2),
        "{attempted:?}"
    );
    let error = attempted[0]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("TLS") && error.contains("not trusted"),
        "{attempted:?}"
    );
    assert!(attempted[0]["last_status"].is_null(), "{attempted:?}");
    assert!(
        rx.got("town").is_empty(),
        "no request got through the handshake"
    );
    s.stop().await;

    // Unusable CA files stop the start, naming the file.
    let missing = dir.path().join("no-such-ca.pem");
    let empty = dir.path().join("not-a-ca.pem");
    std::fs::write(
        &empty,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    for (file, says) in [(&missing, "cannot be read"), (&empty, "no PEM certificate")] {
        let mut c = config_in(dir.path(), None);
        c.webhooks.ca_file = file.display().to_string();
        let e = match Server::start(c).await {
            Ok(_) => panic!("started with {file:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains(&file.display().to_string()), "{e}");
        assert!(e.contains(says), "{e}");
    }

    // The hospital's CA configured: the same event goes through, signed.
    let s = serve_with(&dir, None, &ca_file).await;
    rx.wait_for("delivery with the hospital's CA", |r| {
        r.delivered("town", &referral).len() == 1
    })
    .await;
    let got = rx.delivered("town", &referral);
    assert_eq!(types(&got), ["referral.created"]);
    check_order_and_signatures(&rx.got("town"), &[&secret]);
    for _ in 0..100 {
        if deliveries(&s, &n.town_admin, &n.town, "?state=delivered")
            .await
            .len()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        deliveries(&s, &n.town_admin, &n.town, "?state=delivered")
            .await
            .len(),
        1
    );
    s.stop().await;
}

/// A doctor who ends the consultation from the room (signaling's `end_room`, not the API): the
/// end and its `consultation.ended` are one commit of the audit writer, so the institution's
/// receiver hears of it too (before, only the API's end queued the event).
async fn ended_from_the_room(s: &TestServer) {
    let (rx, addr) = receiver_on(0).await;
    let room = s.create_room("Ended from the room").await;
    let db = &s.server().db;
    let room_id = huizhen::domain::ids::RoomId::parse(&room).unwrap();
    let institution = db.room(&room_id).await.unwrap().unwrap().institution_id;
    db.create_webhook(
        &institution,
        &format!("http://{addr}/own"),
        "whsec_room",
        true,
        100,
        now(),
    )
    .await
    .unwrap();
    let doctor = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    doctor
        .join(&s.invite(&room, "doctor").await, "", false, false)
        .await
        .unwrap();
    doctor
        .send_json(&json!({"type": "end_room"}))
        .await
        .unwrap();
    rx.wait_for("consultation.ended", |r| {
        r.delivered("own", &room).len() == 1
    })
    .await;
    let got = rx.delivered("own", &room);
    assert_eq!(types(&got), ["consultation.ended"]);
    assert_eq!(got[0].json["data"]["room_id"], room.as_str());
    assert_eq!(got[0].json["consultation"]["sequence"], 1);
    check_order_and_signatures(&rx.got("own"), &["whsec_room"]);
    // Ending again (the API's end of an ended room) queues nothing more.
    let (st, b) = s
        .api("POST", &format!("/api/v1/rooms/{room}/end"), None, None)
        .await;
    assert_eq!(st, 204, "{b}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got("own").len(), 1, "one end, one event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_from_the_room_on_sqlite() {
    let s = TestServer::start_with(tweak).await;
    ended_from_the_room(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_from_the_room_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| {
        tweak(c);
        c.storage.database_url = url;
    })
    .await;
    ended_from_the_room(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
