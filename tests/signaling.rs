//! Signaling over the real server: tokens, bad input, limits and room life cycle, each answered
//! with the documented error code and close code (docs/protocol.md).

use crate::common;

use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{SignalingClient, join_message};
use huizhen::auth::{Claims, SigningKey, TokenKind};
use huizhen::domain::clock::now_unix;
use huizhen::domain::ids::RoomId;
use huizhen::domain::role::{AccountRole, Role};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

async fn client(s: &TestServer) -> SignalingClient {
    SignalingClient::connect(&s.ws_url).await.expect("connects")
}

fn server_key(s: &TestServer) -> SigningKey {
    SigningKey::load_or_create(&s.dir.path().join("data/signing.key")).unwrap()
}

/// Re-signs a real invite token's claims with changes, using the server's own key.
fn resign(s: &TestServer, token: &str, change: impl FnOnce(&mut Claims)) -> String {
    let key = server_key(s);
    let mut claims = key.verify(token, TokenKind::Invite).unwrap();
    change(&mut claims);
    key.sign(&claims)
}

#[tokio::test]
async fn forged_expired_revoked_and_other_room_tokens_are_refused() {
    let s = TestServer::start().await;
    let room = s.create_room("Cardiology follow-up").await;
    let token = s.invite(&room, "patient").await;

    // Forged: a different key.
    let forged =
        SigningKey::random().sign(&server_key(&s).verify(&token, TokenKind::Invite).unwrap());
    let c = client(&s).await;
    c.send_json(&join_message(&forged, "Li Hua", true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_token", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(4001));

    // Expired: the invitation's window has passed. Its own row decides, whatever the token
    // says (a visit moved later keeps its links; see tests/invitations.rs, rescheduling).
    let (ended, ended_id) = s.invite_with_id(&room, "observer").await;
    sqlx::any::install_default_drivers();
    let db_url = format!(
        "sqlite://{}?mode=rwc",
        s.dir.path().join("data/huizhen.db").display()
    );
    let pool = sqlx::AnyPool::connect(&db_url).await.unwrap();
    sqlx::query("UPDATE invites SET expires_at = $1 WHERE id = $2")
        .bind(now_unix() - 5)
        .bind(ended_id.clone())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let c = client(&s).await;
    c.send_json(&join_message(&ended, "Li Hua", true, true, None))
        .await
        .unwrap();
    c.expect_error("token_expired", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(4001));
    // A token re-signed to have expired, for an invitation whose window is open, is the same
    // invitation: it gets in.
    let open = s.invite(&room, "observer").await;
    let stale = resign(&s, &open, |c| c.exp = now_unix() - 5);
    let c = client(&s).await;
    let joined = c.join(&stale, "Trainee Zhou", false, false).await.unwrap();
    assert_eq!(joined["you"]["role"], "observer");

    // Signed by us, but naming another room than its invite was issued for.
    let other = resign(&s, &token, |c| c.room = Some(RoomId::generate()));
    let c = client(&s).await;
    c.send_json(&join_message(&other, "Li Hua", true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_token", T).await.unwrap();

    // A role upgrade on the same invite.
    let upgraded = resign(&s, &token, |c| c.role = Some(Role::Doctor));
    let c = client(&s).await;
    c.send_json(&join_message(&upgraded, "Li Hua", true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_token", T).await.unwrap();

    // A link made for a specialist by an older release (before clinicians entered as their
    // accounts): no longer lets anyone onto the care team under a typed name. Refused, and
    // on the record.
    let (old_link, old_id) = s.invite_with_id(&room, "observer").await;
    let pool = sqlx::AnyPool::connect(&db_url).await.unwrap();
    sqlx::query("UPDATE invites SET role = 'specialist' WHERE id = $1")
        .bind(old_id.clone())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let old_link = resign(&s, &old_link, |c| c.role = Some(Role::Specialist));
    let c = client(&s).await;
    c.send_json(&join_message(
        &old_link,
        "Prof. Chief Wang",
        true,
        true,
        None,
    ))
    .await
    .unwrap();
    let refused = c.expect_error("invite_revoked", T).await.unwrap();
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("from your console"),
        "{refused}"
    );
    let sup = s.account("sup-links", AccountRole::NetworkSupervisor).await;
    let trail = s.audit_all(&sup).await;
    let revoked_links = trail
        .iter()
        .filter(|e| {
            let d: serde_json::Value =
                serde_json::from_str(e["detail"].as_str().unwrap_or("null")).unwrap();
            e["outcome"] == "denied"
                && d["reason"] == "signaling_revoked_invite"
                && d["step"] == "join"
        })
        .count();
    assert_eq!(
        revoked_links, 1,
        "the refused link on the record: {trail:?}"
    );

    // A session token is not an invite.
    let c = client(&s).await;
    c.send_json(&join_message(&s.doctor_token, "Li Hua", true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_token", T).await.unwrap();

    // Revoked.
    let (revoked, invite_id) = s.invite_with_id(&room, "observer").await;
    assert_eq!(s.revoke_invite(&room, &invite_id).await, 204);
    let c = client(&s).await;
    c.send_json(&join_message(&revoked, "Dr. Zhao", true, true, None))
        .await
        .unwrap();
    c.expect_error("invite_revoked", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(4001));

    // The genuine token still works.
    let c = client(&s).await;
    let joined = c.join(&token, "Li Hua", true, true).await.unwrap();
    assert_eq!(joined["you"]["role"], "patient");
    assert_eq!(joined["room"]["title"], "Cardiology follow-up");
    assert!(
        joined["room"].get("patient_ref").is_none(),
        "patient reference is for clinicians only"
    );
    s.stop().await;
}

#[tokio::test]
async fn malformed_unknown_and_out_of_order_messages() {
    let s = TestServer::start().await;
    let room = s.create_room("R").await;
    // A link: the name typed is checked (a care-team seat's name comes from its account).
    let token = s.invite(&room, "patient").await;

    // Before joining: anything but join/resume is fatal.
    let c = client(&s).await;
    c.send_json(&json!({"type": "media_state", "audio_muted": true, "video_off": false}))
        .await
        .unwrap();
    c.expect_error("not_joined", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(1008));

    let c = client(&s).await;
    c.send_raw("{not json").await.unwrap();
    let e = c.expect_error("bad_message", T).await.unwrap();
    assert_eq!(e["fatal"], false);
    c.send_json(&json!({"type": "teleport"})).await.unwrap();
    c.expect_error("unknown_type", T).await.unwrap();
    c.send_json(&json!({"type": "join", "v": 1, "token": token}))
        .await
        .unwrap();
    c.expect_error("bad_message", T).await.unwrap();
    c.send_json(&json!({"type": "join", "v": 2, "token": token, "name": "A", "publish": {"audio": true, "video": true}}))
        .await
        .unwrap();
    c.expect_error("unsupported_version", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(1008));

    // Names are checked.
    let c = client(&s).await;
    c.send_json(&join_message(&token, "   ", true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_name", T).await.unwrap();
    let c = client(&s).await;
    c.send_json(&join_message(&token, &"x".repeat(65), true, true, None))
        .await
        .unwrap();
    c.expect_error("invalid_name", T).await.unwrap();
    // A spoofed name: "Dr. For" shown by a right-to-left override, or hidden characters.
    for spoof in ["Dr. \u{202e}roF", "Dr.\u{200b} Wang", "Dr. Wang\u{2066}"] {
        let c = client(&s).await;
        c.send_json(&join_message(&token, spoof, true, true, None))
            .await
            .unwrap();
        c.expect_error("invalid_name", T).await.unwrap();
    }

    // In the room: a second join, a stale answer; the room keeps working.
    let c = client(&s).await;
    c.join(&token, "Dr. Wang", true, true).await.unwrap();
    c.next_event("offer", T).await.unwrap();
    c.send_json(&join_message(&token, "Dr. Wang", true, true, None))
        .await
        .unwrap();
    c.expect_error("already_joined", T).await.unwrap();
    c.send_json(&json!({"type": "answer", "offer_id": 99, "sdp": "v=0"}))
        .await
        .unwrap();
    c.expect_error("stale_offer", T).await.unwrap();
    // A malformed answer to the outstanding offer is refused, and spends it: a fresh offer
    // with a new id follows.
    let offer = c
        .history()
        .into_iter()
        .rev()
        .find(|m| m["type"] == "offer")
        .unwrap();
    let first_id = offer["offer_id"].as_u64().unwrap();
    c.send_json(&json!({"type": "answer", "offer_id": first_id, "sdp": "v=0\r\nnot sdp\r\n"}))
        .await
        .unwrap();
    c.expect_error("bad_sdp", T).await.unwrap();
    let again = c.next_event("offer", T).await.unwrap();
    assert!(again["offer_id"].as_u64().unwrap() > first_id, "{again}");
    assert!(
        again["sdp"].as_str().unwrap().contains("m=audio"),
        "{again}"
    );
    c.send_json(&json!({"type": "ping", "id": 5}))
        .await
        .unwrap();
    assert_eq!(c.next_event("pong", T).await.unwrap()["id"], 5);

    // Too many bad messages end the connection.
    for _ in 0..6 {
        c.send_raw("[]").await.unwrap();
    }
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(1008));

    // Binary frames are a protocol violation.
    let c = client(&s).await;
    c.send_binary(vec![1, 2, 3]).await.unwrap();
    let err = c.expect_error("bad_message", T).await.unwrap();
    assert_eq!(err["fatal"], true, "the close follows: the error says so");
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(1003));
    s.stop().await;
}

#[tokio::test]
async fn size_rate_and_join_time_limits() {
    let s = TestServer::start_with(|c| {
        c.limits.max_message_bytes = 4096;
        c.limits.messages_per_second = 5;
        c.limits.message_burst = 5;
        c.rooms.join_timeout_s = 1;
    })
    .await;

    let c = client(&s).await;
    c.send_raw(&format!(
        "{{\"type\":\"ping\",\"id\":1,\"pad\":\"{}\"}}",
        "x".repeat(5000)
    ))
    .await
    .unwrap();
    c.expect_error("message_too_large", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(1009));

    let c = client(&s).await;
    for i in 0..20 {
        if c.send_json(&json!({"type": "ping", "id": i}))
            .await
            .is_err()
        {
            break;
        }
    }
    c.expect_error("rate_limited", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(4008));

    // Nothing sent: the join deadline closes the connection.
    let c = client(&s).await;
    c.expect_error("not_joined", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(1008));
    s.stop().await;
}

#[tokio::test]
async fn room_capacity_and_server_room_limit() {
    let s = TestServer::start_with(|c| {
        c.limits.max_participants = 2;
        c.limits.max_rooms = 1;
    })
    .await;
    let room = s.create_room("Small").await;
    // One link for three people (a patient's link is single-use unless it says otherwise).
    let (status, body) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient", "max_uses": 3})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let a = client(&s).await;
    a.join(&token, "A", false, false).await.unwrap();
    let b = client(&s).await;
    b.join(&token, "B", false, false).await.unwrap();
    let c = client(&s).await;
    c.send_json(&join_message(&token, "C", false, false, None))
        .await
        .unwrap();
    c.expect_error("room_full", T).await.unwrap();
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(4002));

    let other = s.create_room("Second").await;
    let token2 = s.invite(&other, "patient").await;
    let d = client(&s).await;
    d.send_json(&join_message(&token2, "D", false, false, None))
        .await
        .unwrap();
    d.expect_error("server_full", T).await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn roles_resume_and_ending_a_consultation() {
    let s = TestServer::start_with(|c| c.rooms.resume_window_s = 2).await;
    let room = s.create_room("Joint consultation").await;
    let doctor = client(&s).await;
    doctor
        .join(&s.invite(&room, "doctor").await, "Dr. Wang", false, false)
        .await
        .unwrap();
    let patient = client(&s).await;
    let joined = patient
        .join(&s.invite(&room, "patient").await, "Li Hua", false, false)
        .await
        .unwrap();
    let patient_id = joined["you"]["id"].as_str().unwrap().to_owned();
    let resume_token = joined["resume_token"].as_str().unwrap().to_owned();
    let seen = doctor.next_event("participant_joined", T).await.unwrap();
    assert_eq!(seen["participant"]["name"], "Li Hua");

    // An observer may not publish.
    let observer = client(&s).await;
    observer
        .send_json(&join_message(
            &s.invite(&room, "observer").await,
            "Trainee",
            true,
            false,
            None,
        ))
        .await
        .unwrap();
    observer.expect_error("forbidden", T).await.unwrap();

    // A patient may not end the consultation.
    patient
        .send_json(&json!({"type": "end_room"}))
        .await
        .unwrap();
    patient.expect_error("forbidden", T).await.unwrap();

    // The patient's signaling drops: others see "reconnecting", then the resume.
    patient.abort();
    let upd = doctor.next_event("participant_updated", T).await.unwrap();
    assert_eq!(upd["participant"]["connection"], "reconnecting");
    let patient = client(&s).await;
    let resumed = patient.resume(&resume_token).await.unwrap();
    assert_eq!(resumed["you"]["id"], patient_id.as_str());
    let upd = doctor.next_event("participant_updated", T).await.unwrap();
    assert_eq!(upd["participant"]["connection"], "connected");

    // A spent resume token does not work twice.
    let thief = client(&s).await;
    thief
        .send_json(&json!({"type": "resume", "v": 1, "resume_token": resume_token}))
        .await
        .unwrap();
    thief.expect_error("resume_failed", T).await.unwrap();
    assert_eq!(thief.wait_closed(T).await.unwrap(), Some(4004));

    // Not resumed within the window: removed.
    patient.abort();
    let left = doctor
        .next_event("participant_left", Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(left["participant_id"], patient_id.as_str());
    assert_eq!(left["reason"], "disconnected");

    // The doctor ends it for everyone; nobody can join afterwards.
    let seat = s.invite(&room, "specialist").await;
    let specialist = client(&s).await;
    specialist
        .join(&seat, "Dr. Zhao", false, false)
        .await
        .unwrap();
    doctor
        .send_json(&json!({"type": "end_room"}))
        .await
        .unwrap();
    let ended = specialist.next_event("room_ended", T).await.unwrap();
    assert_eq!(ended["reason"], "ended_by_doctor");
    assert_eq!(specialist.wait_closed(T).await.unwrap(), Some(4000));
    assert_eq!(doctor.wait_closed(T).await.unwrap(), Some(4000));
    let (_, rec) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), None, None)
        .await;
    assert_eq!(rec["status"], "ended");
    let (status, body) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("room_ended"))
    );
    s.stop().await;
}

#[tokio::test]
async fn join_with_replaces_removes_the_previous_participant_at_once() {
    let s = TestServer::start().await;
    let room = s.create_room("Reload").await;
    let token = s.invite(&room, "patient").await;
    let doctor = client(&s).await;
    doctor
        .join(&s.invite(&room, "doctor").await, "Dr. Wang", false, false)
        .await
        .unwrap();
    let first = client(&s).await;
    let joined = first.join(&token, "Li Hua", false, false).await.unwrap();
    let old_id = joined["you"]["id"].as_str().unwrap().to_owned();
    doctor.next_event("participant_joined", T).await.unwrap();

    let second = client(&s).await;
    second
        .send_json(&join_message(
            &token,
            "Li Hua",
            false,
            false,
            joined["resume_token"].as_str(),
        ))
        .await
        .unwrap();
    second.next_event("joined", T).await.unwrap();
    assert_eq!(first.wait_closed(T).await.unwrap(), Some(4003));
    let left = doctor.next_event("participant_left", T).await.unwrap();
    assert_eq!(left["participant_id"], old_id.as_str());
    assert_eq!(left["reason"], "replaced");
    s.stop().await;
}

#[tokio::test]
async fn api_refuses_bad_callers_and_bad_input() {
    let s = TestServer::start().await;
    let (status, body) = s.api("GET", "/api/v1/rooms", Some(""), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, _) = s
        .api("GET", "/api/v1/rooms", Some("hz1.forged.token"), None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = s
        .api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "doc", "password": "wrong"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, _) = s
        .api("POST", "/api/v1/rooms", None, Some(json!({"title": ""})))
        .await;
    assert_eq!(status, 400);
    // Nothing that hides or reorders what every console shows and the summary prints.
    for bad in [
        json!({"title": "Follow-up \u{202e}gnaW"}),
        json!({"title": "Follow-up", "patient_ref": "P-20\u{200b}24"}),
    ] {
        let (status, body) = s
            .api("POST", "/api/v1/rooms", None, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = s
        .api("POST", "/api/v1/rooms", None, Some(json!({"nope": 1})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .api("GET", "/api/v1/rooms/r_doesnotexist0000", None, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = s.api("GET", "/api/v1/rooms/../../etc", None, None).await;
    assert_eq!(status, 404);
    let room = s.create_room("X").await;
    let (status, _) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient", "expires_in_minutes": 0})),
        )
        .await;
    assert_eq!(status, 400);
    let resp = s
        .http
        .get(format!("{}/Cargo.toml", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn websocket_from_a_foreign_origin_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = TestServer::start().await;
    let mut req = s.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let tls = common::peer::insecure_tls_config().unwrap();
    let res = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls.clone())),
    )
    .await;
    match res {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|_| ())),
    }
    let mut req = s.ws_url.as_str().into_client_request().unwrap();
    let own = s.base.clone();
    req.headers_mut().insert("origin", own.parse().unwrap());
    tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls)),
    )
    .await
    .expect("own origin accepted");
    s.stop().await;
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_throttled() {
    let s = TestServer::start().await;
    let login = |password: &'static str| s.login("doc", password);
    for _ in 0..5 {
        assert_eq!(login("guess").await.0, 401);
    }
    let (status, body) = login("guess").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );
    // Even the right password waits out the window from this address.
    assert_eq!(login(common::DOCTOR_PASSWORD).await.0, 429);
    let resp = s
        .http
        .post(format!("{}/api/v1/auth/login", s.base))
        .json(&json!({"username": "doc", "password": "guess"}))
        .send()
        .await
        .unwrap();
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    // Another account is not affected.
    let (status, body) = s
        .api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "nobody", "password": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    s.stop().await;
}

/// A client that goes on trying once throttled, or tries names no account can have (64 kB
/// each, as a memory bomb for the throttle's tables), is refused every time, but the trail
/// records at most the refusal log's share of it, saying how many were left out.
#[tokio::test]
async fn a_sign_in_flood_does_not_flood_the_trail() {
    let s = TestServer::start().await;
    let sup = s.account("sup-flood", AccountRole::NetworkSupervisor).await;
    let login = |username: String| {
        let s = &s;
        async move { s.login(&username, "guess").await }
    };
    let long = "d".repeat(64 * 1024 - 100);
    for i in 0..30 {
        let (st, b) = login(format!("{long}{i}")).await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{b}"
        );
    }
    for _ in 0..5 {
        assert_eq!(login("doc".into()).await.0, 401);
    }
    for _ in 0..30 {
        assert_eq!(login("doc".into()).await.0, 429);
    }
    let failures: Vec<Value> = s
        .audit_all(&sup)
        .await
        .into_iter()
        .filter(|e| e["action"] == "auth.sign_in_failed")
        .map(|e| serde_json::from_str(e["detail"].as_str().unwrap_or("{}")).unwrap())
        .collect();
    let count = |reason: &str| failures.iter().filter(|d| d["reason"] == reason).count();
    assert_eq!(count("invalid_credentials"), 5, "{failures:?}");
    // The refusal log's limit per client and reason (10 a minute).
    assert_eq!(count("username_too_long"), 10, "{failures:?}");
    assert_eq!(count("throttled"), 10, "{failures:?}");
    // No entry carries the name tried.
    assert!(
        failures.iter().all(|d| !d.to_string().contains("dddd")),
        "{failures:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn parallel_sign_ins_cannot_race_the_throttle() {
    let s = TestServer::start().await;
    // Forty guesses at once for one account from one address: the check and the count are one
    // step, so only five passwords are checked and the rest are refused before any is.
    let guesses = (0..40).map(|i| {
        let s = &s;
        async move {
            s.api(
                "POST",
                "/api/v1/auth/login",
                Some(""),
                Some(json!({"username": "doc", "password": format!("guess {i}")})),
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");
    assert_eq!(
        s.api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "doc", "password": common::DOCTOR_PASSWORD})),
        )
        .await
        .0,
        429
    );
    s.stop().await;
}

#[tokio::test]
async fn revoking_an_invitation_removes_its_holder() {
    let s = TestServer::start().await;
    let room = s.create_room("Revocation").await;
    let doctor = s.member(&room, "doctor", "Dr. Wang").await;
    let (token, invite_id) = s.invite_with_id(&room, "patient").await;
    let patient = s.member_with(&token, "Li Hua").await;
    let resume_token = patient.joined["resume_token"].as_str().unwrap().to_owned();
    let documents = format!("/api/v1/rooms/{room}/documents");
    let (st, _) = s.api("GET", &documents, Some(&patient.access), None).await;
    assert_eq!(st, 200);
    // An upload begun before the revocation, to be finished after it.
    let bytes = b"%PDF-1.4 results".to_vec();
    let (st, begun) = s
        .begin_upload(&room, &patient.access, "labs.pdf", &bytes, "everyone")
        .await;
    assert_eq!(st, 201, "{begun}");
    let upload = begun["upload_id"].as_str().unwrap().to_owned();

    assert_eq!(s.revoke_invite(&room, &invite_id).await, 204);

    // The holder is told and disconnected; the others see them removed.
    patient.ws.expect_error("invite_revoked", T).await.unwrap();
    assert_eq!(patient.ws.wait_closed(T).await.unwrap(), Some(4001));
    let left = doctor.ws.next_event("participant_left", T).await.unwrap();
    assert_eq!(left["participant_id"], patient.id.as_str());
    assert_eq!(left["reason"], "removed");
    // Their access token no longer reaches the room's documents.
    let (st, body) = s.api("GET", &documents, Some(&patient.access), None).await;
    assert_eq!(st, 403, "{body}");
    // Nor uploads: neither the one begun before, nor a new one.
    let resp = s
        .raw(
            "PUT",
            &format!("/api/v1/rooms/{room}/uploads/{upload}?offset=0"),
            &patient.access,
            Some(bytes.clone()),
        )
        .await;
    assert_eq!(resp.status().as_u16(), 403);
    let (st, body) = s
        .begin_upload(&room, &patient.access, "more.pdf", &bytes, "everyone")
        .await;
    assert_eq!(st, 403, "{body}");
    // They cannot resume, nor join again with the same link (which is audited: it may be
    // someone who got hold of the link).
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    c.send_json(&json!({"type": "resume", "v": 1, "resume_token": resume_token}))
        .await
        .unwrap();
    c.expect_error("resume_failed", T).await.unwrap();
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    c.send_json(&join_message(&token, "Li Hua", true, true, None))
        .await
        .unwrap();
    c.expect_error("invite_revoked", T).await.unwrap();
    let again = s.invite(&room, "patient").await;
    assert!(!again.is_empty(), "a new invitation still works");
    // The revocation is on the record with how many it removed.
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let entries = s.audit_entries(&sup, &room).await;
    let revoked = entries
        .iter()
        .find(|e| e["action"] == "invite.revoked")
        .expect("revocation audited");
    let detail: serde_json::Value =
        serde_json::from_str(revoked["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["participants_removed"], 1, "{revoked}");
    let refused = s
        .audit_all(&sup)
        .await
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .filter(|e| {
            let d: serde_json::Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            d["reason"] == "signaling_revoked_invite"
        })
        .count();
    assert_eq!(refused, 1, "the revoked link's use is on the record");
    s.stop().await;
}
