//! Invitations over the real server (docs/protocol.md, "Invitations"): windows around a
//! consultation's slot, single and limited use, reloads and resumes that are not uses, the
//! list a console reloads, short codes (redeemed, wrong, replaced, revoked, throttled per
//! address and per code), QR codes and the printed page, and the audit trail of each. The flow
//! runs on SQLite and PostgreSQL; the throttle (in memory) on SQLite.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use crate::common::peer::{SignalingClient, join_message};
use crate::common::{Place, TestServer};
use huizhen::domain::clock::now_unix;
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn client(s: &TestServer) -> SignalingClient {
    SignalingClient::connect(&s.ws_url).await.expect("connects")
}

/// Creates an invitation as the signed-in doctor: the whole answer.
async fn create(s: &TestServer, room: &str, body: Value) -> Value {
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(body),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    b
}

async fn list(s: &TestServer, room: &str) -> Vec<Value> {
    let (st, b) = s
        .api("GET", &format!("/api/v1/rooms/{room}/invites"), None, None)
        .await;
    assert_eq!(st, 200, "{b}");
    b["invites"].as_array().unwrap().clone()
}

fn find<'a>(list: &'a [Value], invite: &str) -> &'a Value {
    list.iter()
        .find(|i| i["invite_id"] == invite)
        .unwrap_or_else(|| panic!("{invite} not listed: {list:?}"))
}

/// Redeems a code with no session: status, body, Retry-After.
async fn redeem_with(
    s: &TestServer,
    http: &reqwest::Client,
    typed: &str,
) -> (u16, Value, Option<String>) {
    let resp = http
        .post(format!("{}/api/v1/invitations/redeem", s.base))
        .json(&json!({ "code": typed }))
        .send()
        .await
        .expect("request sent");
    answer(resp).await
}

/// An answer's status, JSON body (null when none) and `Retry-After`.
async fn answer(resp: reqwest::Response) -> (u16, Value, Option<String>) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

/// What the join page asks on opening (`POST /api/v1/invitations/check`).
async fn check(s: &TestServer, token: &str) -> (u16, Value) {
    s.api(
        "POST",
        "/api/v1/invitations/check",
        Some(""),
        Some(json!({"token": token})),
    )
    .await
}

async fn redeem(s: &TestServer, typed: &str) -> (u16, Value) {
    let (st, b, _) = redeem_with(s, &s.http, typed).await;
    (st, b)
}

/// An HTTP client whose connections come from `ip` (any 127.x address is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Runs one statement on the server's database, as a test reaching past the API.
async fn sql(db_url: &str, statement: &str, binds: &[i64], id: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    let mut q = sqlx::query(statement);
    for b in binds {
        q = q.bind(*b);
    }
    q.bind(id.to_owned()).execute(&pool).await.unwrap();
    pool.close().await;
}

/// Gives a room a slot starting `from_now` seconds from now, as a scheduled referral would.
async fn set_slot(db_url: &str, room: &str, from_now: i64, minutes: i64) -> i64 {
    let start = now_unix() + from_now;
    sql(
        db_url,
        "UPDATE rooms SET slot_start = $1, slot_minutes = $2 WHERE id = $3",
        &[start, minutes],
        room,
    )
    .await;
    start
}

/// A join refused with `code`, then the socket closed with 4001: the error message.
async fn refused_join(
    s: &TestServer,
    token: &str,
    replaces: Option<&str>,
    expected: &str,
) -> Value {
    let c = client(s).await;
    c.send_json(&join_message(token, "Li Hua", false, false, replaces))
        .await
        .unwrap();
    let e = c.expect_error(expected, T).await.unwrap();
    assert_eq!(e["fatal"], true, "{e}");
    assert_eq!(c.wait_closed(T).await.unwrap(), Some(4001));
    e
}

async fn all_audit(s: &TestServer, supervisor: &str) -> Vec<Value> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

fn detail(entry: &Value) -> Value {
    serde_json::from_str(entry["detail"].as_str().unwrap()).unwrap()
}

async fn invitation_flow(s: &TestServer, db_url: &str) {
    let room = s.create_room("Cardiology follow-up").await;
    let doctor = client(s).await;
    doctor
        .join(&s.invite(&room, "doctor").await, "Dr. Wang", false, false)
        .await
        .unwrap();

    // A patient's invitation is single-use by default, with a code shown once.
    let patient = create(s, &room, json!({"role": "patient", "label": "patient"})).await;
    assert_eq!(patient["max_uses"], 1);
    assert_eq!(patient["uses"], 0);
    assert_eq!(patient["state"], "active");
    assert_eq!(patient["label"], "patient");
    assert!(patient["not_before"].is_null(), "no slot: valid from now");
    let shown = patient["code"].as_str().unwrap();
    assert!(
        shown.len() == 11 && shown.chars().filter(char::is_ascii_digit).count() == 9,
        "{shown}"
    );
    let token = patient["token"].as_str().unwrap().to_owned();
    let patient_id = patient["invite_id"].as_str().unwrap().to_owned();
    // The join page checks it on opening, as often as it opens: nothing is used up.
    for _ in 0..2 {
        let (st, b) = check(s, &token).await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(
            (&b["state"], &b["role"], &b["seat"], &b["opens_in"]),
            (
                &json!("active"),
                &json!("patient"),
                &json!(false),
                &json!(0)
            ),
            "{b}"
        );
        assert_eq!(b["expires_at"], patient["expires_at"]);
    }
    let (st, b) = check(s, "hz1.not-a-token.at-all").await;
    assert_eq!((st, code(&b)), (401, "invalid_token"), "{b}");

    // First browser in; a second browser (another tab without our state, a forwarded link)
    // is refused: the invitation has been used.
    let first = client(s).await;
    let joined = first.join(&token, "Li Hua", false, false).await.unwrap();
    doctor.next_event("participant_joined", T).await.unwrap();
    let e = refused_join(s, &token, None, "invite_used_up").await;
    let (st, b) = check(s, &token).await;
    assert_eq!((st, code(&b)), (409, "invite_used_up"), "{b}");
    assert!(
        e["message"].as_str().unwrap().contains("ask the clinic"),
        "{e}"
    );

    // A reload of the first browser (join with `replaces`) takes its place: not a new use.
    let resume = joined["resume_token"].as_str().unwrap().to_owned();
    let reloaded = client(s).await;
    reloaded
        .send_json(&join_message(&token, "Li Hua", false, false, Some(&resume)))
        .await
        .unwrap();
    let again = reloaded.next_event("joined", T).await.unwrap();
    assert_eq!(first.wait_closed(T).await.unwrap(), Some(4003));
    // The same participant cannot be taken over twice: a copy of that resume token is a
    // second browser, and a second use.
    refused_join(s, &token, Some(&resume), "invite_used_up").await;
    // A dropped connection resumes without a use.
    reloaded.abort();
    let back = client(s).await;
    back.resume(again["resume_token"].as_str().unwrap())
        .await
        .unwrap();

    // Two browsers racing for the last use of a fresh invitation: exactly one gets in.
    let race = create(s, &room, json!({"role": "patient"})).await;
    let race_token = race["token"].as_str().unwrap().to_owned();
    let racers: Vec<SignalingClient> = connections(s, 5).await;
    for c in &racers {
        c.send_json(&join_message(&race_token, "Racer", false, false, None))
            .await
            .unwrap();
    }
    let mut outcomes = Vec::new();
    for c in &racers {
        let m = c.next_event_of(&["joined", "error"], T).await.unwrap();
        outcomes.push(if m["type"] == "joined" {
            // The patients present agree to the observers below.
            common::consent_to(c, &["observer_present"]).await;
            "joined".to_owned()
        } else {
            m["code"].as_str().unwrap().to_owned()
        });
    }
    common::consent_to(&back, &["observer_present"]).await;
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "invite_used_up",
            "invite_used_up",
            "invite_used_up",
            "invite_used_up",
            "joined"
        ]
    );

    // Limited use: three observers on one link, the fourth refused. A join the room refuses
    // (an observer asking to publish) gives its use back.
    let class = create(s, &room, json!({"role": "observer", "max_uses": 3})).await;
    assert_eq!(class["max_uses"], 3);
    let class_token = class["token"].as_str().unwrap().to_owned();
    let c = client(s).await;
    c.send_json(&join_message(&class_token, "Eager", true, false, None))
        .await
        .unwrap();
    c.expect_error("forbidden", T).await.unwrap();
    let mut watching = Vec::new();
    for i in 0..3 {
        let c = client(s).await;
        c.join(&class_token, &format!("Student {i}"), false, false)
            .await
            .unwrap();
        watching.push(c);
    }
    refused_join(s, &class_token, None, "invite_used_up").await;
    // Observers' links are unlimited unless limited.
    let open = create(s, &room, json!({"role": "observer"})).await;
    assert!(open["max_uses"].is_null(), "{open}");
    for bad in [json!(0), json!(21), json!("many")] {
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/invites"),
                None,
                Some(json!({"role": "patient", "max_uses": bad})),
            )
            .await;
        assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");
    }
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient", "label": "guardian\u{202e}"})),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");

    // A revoked invitation.
    let withdrawn = create(s, &room, json!({"role": "patient"})).await;
    let withdrawn_id = withdrawn["invite_id"].as_str().unwrap();
    assert_eq!(s.revoke_invite(&room, withdrawn_id).await, 204);
    let (st, b) = check(s, withdrawn["token"].as_str().unwrap()).await;
    assert_eq!((st, code(&b)), (410, "invite_revoked"), "{b}");
    // The join page's first question found a dead link: on the invitation's trail, with its
    // room, before any join would record it.
    let sup = s
        .account("inv_check_sup", AccountRole::NetworkSupervisor)
        .await;
    let refused: Vec<Value> = s
        .audit_entries(&sup, &room)
        .await
        .into_iter()
        .filter(|e| e["action"] == "invite.refused" && e["object_id"] == withdrawn_id)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let said = refused[0]["detail"].as_str().unwrap_or("");
    assert!(said.contains(r#""reason":"invite_revoked""#), "{said}");
    assert!(said.contains(r#""via":"invitations.check""#), "{said}");

    // The console reloads: one GET lists every link (never a seat) with its state and uses,
    // and fresh tokens for those still usable.
    let listed = list(s, &room).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    let p = find(&listed, &patient_id);
    assert_eq!(p["state"], "used_up");
    assert_eq!(p["uses"], 1);
    assert!(p["token"].is_null() && p["url"].is_null(), "{p}");
    let used_by = p["used_by"].as_array().unwrap();
    assert_eq!(used_by.len(), 2, "{p}");
    assert_eq!(used_by[0]["name"], "Li Hua");
    assert_eq!(used_by[0]["role"], "patient");
    assert_eq!(used_by[0]["reload"], false);
    assert_eq!(used_by[1]["reload"], true);
    assert_eq!(used_by[1]["participant_id"], again["you"]["id"]);
    assert!(used_by[0]["at"].as_i64().unwrap() >= now_unix() - 120);
    let cl = find(&listed, class["invite_id"].as_str().unwrap());
    assert_eq!(
        (cl["state"].as_str(), cl["uses"].as_i64()),
        (Some("used_up"), Some(3))
    );
    assert_eq!(cl["used_by"].as_array().unwrap().len(), 3);
    let o = find(&listed, open["invite_id"].as_str().unwrap());
    assert_eq!(o["state"], "active");
    assert_eq!(o["has_code"], true);
    assert!(o["code"].is_null(), "codes are not kept in clear");
    let relisted = o["token"].as_str().unwrap();
    assert!(
        o["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/join#{relisted}"))
    );
    // The re-signed token is as good as the first.
    client(s)
        .await
        .join(relisted, "Reloaded console's link", false, false)
        .await
        .unwrap();
    assert_eq!(find(&listed, withdrawn_id)["state"], "revoked");

    // Short codes: typed with spaces or dashes, they give the invitation's join token.
    let fresh = create(s, &room, json!({"role": "patient"})).await;
    let fresh_code = fresh["code"].as_str().unwrap().to_owned();
    let digits: String = fresh_code.chars().filter(char::is_ascii_digit).collect();
    let (st, b) = redeem(s, &fresh_code).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["expires_at"], fresh["expires_at"]);
    assert_eq!(b["opens_in"], 0);
    assert!(b["url"].as_str().unwrap().contains("/join#"));
    let dashed = format!("{}-{}-{}", &digits[0..3], &digits[3..6], &digits[6..9]);
    let (st, b) = redeem(s, &dashed).await;
    assert_eq!(st, 200, "{b}");
    client(s)
        .await
        .join(b["token"].as_str().unwrap(), "Zhang Wei", false, false)
        .await
        .unwrap();
    // Once used, the code says so.
    let (st, b) = redeem(s, &digits).await;
    assert_eq!((st, code(&b)), (409, "invite_used_up"), "{b}");

    // Wrong codes: malformed, unknown; each typed, each on the record.
    let (st, b) = redeem(s, "12345").await;
    assert_eq!((st, code(&b)), (400, "invalid_code"), "{b}");
    let unknown = if digits == "000000000" {
        "000000001"
    } else {
        "000000000"
    };
    let (st, b) = redeem(s, unknown).await;
    assert_eq!((st, code(&b)), (404, "code_not_found"), "{b}");

    // A new code replaces the old one, which stops working.
    let other = create(s, &room, json!({"role": "patient"})).await;
    let other_id = other["invite_id"].as_str().unwrap().to_owned();
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites/{other_id}/code"),
            None,
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let new_code = b["code"].as_str().unwrap().to_owned();
    assert_ne!(new_code, other["code"].as_str().unwrap());
    let (st, b) = redeem(s, other["code"].as_str().unwrap()).await;
    assert_eq!((st, code(&b)), (404, "code_not_found"), "{b}");
    let (st, b) = redeem(s, &new_code).await;
    assert_eq!(st, 200, "{b}");
    // Revoked: its code is refused as revoked, and no new code is given.
    assert_eq!(s.revoke_invite(&room, &other_id).await, 204);
    let (st, b) = redeem(s, &new_code).await;
    assert_eq!((st, code(&b)), (410, "invite_revoked"), "{b}");
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites/{other_id}/code"),
            None,
            None,
        )
        .await;
    assert_eq!((st, code(&b)), (409, "invite_revoked"), "{b}");

    // A window around the consultation's slot. Two hours ahead: not yet, and the refusal says
    // when it opens.
    let start = set_slot(db_url, &room, 2 * 3600, 30).await;
    let later = create(s, &room, json!({"role": "patient"})).await;
    assert_eq!(later["not_before"], start - 30 * 60);
    assert_eq!(later["expires_at"], start + 90 * 60);
    assert_eq!(later["state"], "not_yet");
    let e = refused_join(s, later["token"].as_str().unwrap(), None, "invite_not_yet").await;
    assert_eq!(e["opens_at"], start - 30 * 60, "{e}");
    assert!(e["message"].as_str().unwrap().contains("opens at"), "{e}");
    // The page knows before anyone presses Join, with when to come back.
    let (st, b) = check(s, later["token"].as_str().unwrap()).await;
    assert_eq!((st, &b["state"]), (200, &json!("not_yet")), "{b}");
    assert_eq!(b["not_before"], start - 30 * 60);
    assert!(
        (5390..=5400).contains(&b["opens_in"].as_i64().unwrap()),
        "{b}"
    );
    // Its code still gives the token, with how long until it opens.
    let (st, b) = redeem(s, later["code"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{b}");
    let opens_in = b["opens_in"].as_i64().unwrap();
    assert!((5390..=5400).contains(&opens_in), "{b}");
    // An explicit lifetime overrides the window.
    let now_link = create(
        s,
        &room,
        json!({"role": "patient", "expires_in_minutes": 10}),
    )
    .await;
    assert!(now_link["not_before"].is_null());
    assert_eq!(now_link["state"], "active");
    // The slot under way: open.
    set_slot(db_url, &room, -10 * 60, 30).await;
    let during = create(s, &room, json!({"role": "patient"})).await;
    assert_eq!(during["state"], "active");
    client(s)
        .await
        .join(during["token"].as_str().unwrap(), "Wang Fang", false, false)
        .await
        .unwrap();
    // After the window: the link has expired (a window that closed while the link was out).
    let after = create(s, &room, json!({"role": "patient"})).await;
    let after_id = after["invite_id"].as_str().unwrap().to_owned();
    sql(
        db_url,
        "UPDATE invites SET expires_at = $1 WHERE id = $2",
        &[now_unix() - 1],
        &after_id,
    )
    .await;
    refused_join(s, after["token"].as_str().unwrap(), None, "token_expired").await;
    // The failed use is on the invitation's trail.
    let sup = s
        .account("inv_window_sup", AccountRole::NetworkSupervisor)
        .await;
    let failed: Vec<Value> = s
        .audit_all(&sup)
        .await
        .into_iter()
        .filter(|e| e["action"] == "invite.refused" && e["object_id"] == after_id.as_str())
        .collect();
    assert!(
        failed.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains(r#""reason":"invite_expired""#)),
        "{failed:?}"
    );
    let (st, b) = check(s, after["token"].as_str().unwrap()).await;
    assert_eq!((st, code(&b)), (410, "invite_expired"), "{b}");
    let (st, b) = redeem(s, after["code"].as_str().unwrap()).await;
    assert_eq!((st, code(&b)), (410, "invite_expired"), "{b}");
    assert_eq!(find(&list(s, &room).await, &after_id)["state"], "expired");
    // A slot long past: a new invitation needs a lifetime of its own.
    set_slot(db_url, &room, -5 * 3600, 30).await;
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            None,
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "slot_passed"), "{b}");

    // Invitations made before limits existed keep working, without a limit.
    let db = &s.server().db;
    let room_id = huizhen::domain::ids::RoomId::parse(&room).unwrap();
    let creator = db.user_by_username("doc").await.unwrap().unwrap();
    let legacy = db
        .create_invite(
            &room_id,
            huizhen::domain::role::Role::Patient,
            &creator.id,
            now_unix() + 600,
        )
        .await
        .unwrap();
    let key =
        huizhen::auth::SigningKey::load_or_create(&s.dir.path().join("data/signing.key")).unwrap();
    let legacy_token = key.sign(&huizhen::auth::Claims {
        kind: huizhen::auth::TokenKind::Invite,
        sub: legacy.id.to_string(),
        room: Some(room_id.clone()),
        role: Some(huizhen::domain::role::Role::Patient),
        sid: None,
        exp: legacy.expires_at,
        nonce: 7,
    });
    for i in 0..2 {
        client(s)
            .await
            .join(&legacy_token, &format!("Old link {i}"), false, false)
            .await
            .unwrap();
    }

    // QR codes and the printed page: for those who run the room only.
    let qr_for = later["invite_id"].as_str().unwrap().to_owned();
    let qr_path = format!("/api/v1/rooms/{room}/invites/{qr_for}/qr.svg");
    let resp = s.raw("GET", &qr_path, &s.doctor_token, None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/svg+xml");
    let svg = resp.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
    assert_eq!(s.raw("GET", &qr_path, "", None).await.status(), 401);
    let (specialist_id, specialist) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            Place {
                institution: huizhen::domain::organisation::DEFAULT_INSTITUTION,
                ..Place::default()
            },
        )
        .await;
    s.add_to_care_team(&room, &specialist_id, None).await;
    assert_eq!(
        s.raw("GET", &qr_path, &specialist, None).await.status(),
        403
    );
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&specialist),
            None,
        )
        .await;
    assert_eq!(st, 403, "seeing a room is not running it");
    let elsewhere = s.institution("Another hospital").await;
    let (_, stranger) = s
        .placed_account(
            "stranger",
            AccountRole::Doctor,
            Place {
                institution: &elsewhere,
                ..Place::default()
            },
        )
        .await;
    assert_eq!(s.raw("GET", &qr_path, &stranger, None).await.status(), 404);
    // A used-up invitation's QR code is not handed out.
    let used_qr = format!("/api/v1/rooms/{room}/invites/{patient_id}/qr.svg");
    let resp = s.raw("GET", &used_qr, &s.doctor_token, None).await;
    assert_eq!(resp.status(), 409);
    // The printed page, with the code the console holds.
    let print = format!("/api/v1/rooms/{room}/invites/{qr_for}/print?utc_offset_minutes=480");
    let resp = s
        .http
        .get(format!("{}{print}", s.base))
        .bearer_auth(&s.doctor_token)
        .header("x-invitation-code", later["code"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains(later["code"].as_str().unwrap()),
        "the code, large"
    );
    assert!(html.contains("Cardiology follow-up") && html.contains("<svg"));
    assert!(html.contains("UTC+08:00") && html.contains("远程会诊邀请"));
    assert!(!html.contains("<script"));
    let resp = s
        .http
        .get(format!("{}{print}", s.base))
        .bearer_auth(&s.doctor_token)
        .header("x-invitation-code", "000 000 000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "not this invitation's code");
    assert_eq!(s.raw("GET", &print, &specialist, None).await.status(), 403);

    // On the record: uses, refusals, codes.
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let entries = all_audit(s, &sup).await;
    let count = |action: &str, outcome: &str| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .count()
    };
    assert!(count("invite.used", "ok") >= 8, "{entries:?}");
    assert!(count("invite.refused", "denied") >= 3);
    assert_eq!(count("invitation.code_redeemed", "ok"), 4);
    assert_eq!(count("invitation.code_replaced", "ok"), 1);
    let failed: Vec<String> = entries
        .iter()
        .filter(|e| e["action"] == "invitation.code_failed")
        .map(|e| detail(e)["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        failed,
        [
            "invite_used_up",
            "invalid_code",
            "code_not_found",
            "code_not_found",
            "invite_revoked",
            "invite_expired",
        ]
    );
    let one = entries
        .iter()
        .find(|e| e["action"] == "invitation.code_failed")
        .unwrap();
    assert_eq!(one["outcome"], "denied");
    assert_eq!(
        detail(one)["client"].as_str().unwrap().len(),
        16,
        "a pseudonym"
    );
    assert!(!one["detail"].as_str().unwrap().contains("127.0.0.1"));
    let reload = entries
        .iter()
        .filter(|e| e["action"] == "invite.used")
        .find(|e| detail(e)["counted"] == false)
        .expect("the reload is on the record, not counted");
    assert_eq!(reload["object_id"], patient_id.as_str());
}

/// `n` signaling connections, opened before any of them joins.
async fn connections(s: &TestServer, n: usize) -> Vec<SignalingClient> {
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(client(s).await);
    }
    clients
}

fn sqlite_url(s: &TestServer) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        s.dir.path().join("data/huizhen.db").display()
    )
}

/// A consultation booked ahead (a follow-up visit, no referral): its slot comes with its
/// creation, and the patients' links follow it; bad times are refused with the referral's codes.
#[tokio::test]
async fn a_consultation_booked_ahead_has_its_slot() {
    let s = TestServer::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now + 3 * 3600;
    let (st, room) = s
        .api(
            "POST",
            "/api/v1/rooms",
            None,
            Some(json!({"title": "复诊 follow-up", "slot": {"start": start, "minutes": 20}})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    assert_eq!(room["slot_start"], start, "{room}");
    assert_eq!(room["slot_minutes"], 20, "{room}");
    let id = room["id"].as_str().unwrap();
    let (st, seen) = s
        .api("GET", &format!("/api/v1/rooms/{id}"), None, None)
        .await;
    assert_eq!(st, 200, "{seen}");
    assert_eq!(
        (&seen["slot_start"], &seen["slot_minutes"]),
        (&json!(start), &json!(20))
    );
    let link = create(&s, id, json!({"role": "patient"})).await;
    assert_eq!(link["state"], "not_yet");
    assert_eq!(link["not_before"], start - 30 * 60);
    assert_eq!(link["expires_at"], start + 20 * 60 + 60 * 60);
    for (slot, want) in [
        (json!({"start": now - 3600, "minutes": 20}), "slot_in_past"),
        (
            json!({"start": now + 400 * 86_400, "minutes": 20}),
            "slot_too_far",
        ),
        (json!({"start": start, "minutes": 0}), "bad_duration"),
        (json!({"start": start, "minutes": 241}), "bad_duration"),
    ] {
        let (st, b) = s
            .api(
                "POST",
                "/api/v1/rooms",
                None,
                Some(json!({"title": "x", "slot": slot})),
            )
            .await;
        assert_eq!((st, code(&b)), (400, want), "{b}");
    }
    s.stop().await;
}

/// A consultation booked ahead moves to another time: its slot, and the windows of the
/// patients' links made for the old time (a link given a lifetime of its own keeps it); a
/// consultation request's room moves with the request's agreed time instead, links included;
/// the refusals; the audit entry.
async fn rescheduling(s: &TestServer) {
    let now = now_unix();
    let start = now + 3 * 3600;
    let (st, room) = s
        .api(
            "POST",
            "/api/v1/rooms",
            None,
            Some(json!({"title": "复诊 follow-up", "slot": {"start": start, "minutes": 20}})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let id = room["id"].as_str().unwrap().to_owned();
    let windowed = create(s, &id, json!({"role": "patient"})).await;
    let lifetime = create(s, &id, json!({"role": "patient", "expires_in_minutes": 90})).await;
    assert_eq!(windowed["not_before"], start - 30 * 60);

    let later = now + 26 * 3600;
    let (st, moved) = s
        .api(
            "PUT",
            &format!("/api/v1/rooms/{id}/slot"),
            None,
            Some(json!({"start": later, "minutes": 40})),
        )
        .await;
    assert_eq!(st, 200, "{moved}");
    assert_eq!(
        (&moved["slot_start"], &moved["slot_minutes"]),
        (&json!(later), &json!(40))
    );
    assert_eq!(moved["from_referral"], false);
    let links = list(s, &id).await;
    let find = |inv: &Value| {
        links
            .iter()
            .find(|l| l["invite_id"] == inv["invite_id"])
            .cloned()
            .expect("listed")
    };
    let w = find(&windowed);
    assert_eq!(w["not_before"], later - 30 * 60, "{w}");
    assert_eq!(w["expires_at"], later + 40 * 60 + 60 * 60, "{w}");
    let l = find(&lifetime);
    assert_eq!(l["not_before"], lifetime["not_before"], "{l}");
    assert_eq!(l["expires_at"], lifetime["expires_at"], "{l}");

    // A link outlives its token's own expiry when its invitation's window moved later: the
    // window is what counts (here a token made to have expired already, for an invitation whose
    // window is open).
    let key = huizhen::auth::SigningKey::load_or_create(&s.dir.path().join("data/signing.key"))
        .expect("the server's key");
    let today = s.create_room("Today").await;
    let open_now = create(s, &today, json!({"role": "observer"})).await;
    let stale = key.sign(&huizhen::auth::Claims {
        kind: huizhen::auth::TokenKind::Invite,
        sub: open_now["invite_id"].as_str().unwrap().to_owned(),
        room: huizhen::domain::ids::RoomId::parse(&today),
        role: Some(huizhen::domain::role::Role::Observer),
        sid: None,
        exp: now_unix() - 60,
        nonce: 7,
    });
    let ws = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = ws.join(&stale, "Observer", false, false).await;
    assert!(joined.is_ok(), "{joined:?}");

    // Bad times, with the referral's codes; someone who does not run it.
    for (body, want) in [
        (json!({"start": now - 3600, "minutes": 20}), "slot_in_past"),
        (json!({"start": later, "minutes": 0}), "bad_duration"),
    ] {
        let (st, b) = s
            .api("PUT", &format!("/api/v1/rooms/{id}/slot"), None, Some(body))
            .await;
        assert_eq!((st, code(&b)), (400, want), "{b}");
    }
    let other = s.institution("Another hospital").await;
    let (_, stranger) = s
        .placed_account(
            "stranger",
            AccountRole::Doctor,
            Place {
                institution: &other,
                name: Some("Dr. Stranger"),
                ..Place::default()
            },
        )
        .await;
    let (st, b) = s
        .api(
            "PUT",
            &format!("/api/v1/rooms/{id}/slot"),
            Some(&stranger),
            Some(json!({"start": later, "minutes": 40})),
        )
        .await;
    assert_eq!((st, code(&b)), (404, "not_found"), "{b}");

    // A consultation request's room: its time is the request's to move, and moving it there
    // moves the links too.
    let county = s.institution("County hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, cardio) = s
        .placed_account(
            "cardio",
            AccountRole::Specialist,
            Place {
                institution: &county,
                department: Some(&cardiology),
                name: Some("Prof. Zhao"),
                ..Place::default()
            },
        )
        .await;
    let first = now + 2 * 3600;
    let (st, r) = s
        .api(
            "POST",
            "/api/v1/referrals",
            None,
            Some(json!({
                "target_department_id": cardiology, "patient_ref": "P-1", "reason": "Angina",
                "question": "Stable?", "urgency": "routine",
                "proposed_times": [{"start": first, "minutes": 30}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    let rid = r["id"].as_str().unwrap();
    let (st, r) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{rid}/accept"),
            Some(&cardio),
            Some(json!({"start": first, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let referred = r["room_id"].as_str().unwrap().to_owned();
    let link = create(s, &referred, json!({"role": "patient"})).await;
    assert_eq!(link["not_before"], first - 30 * 60);
    let (st, b) = s
        .api(
            "PUT",
            &format!("/api/v1/rooms/{referred}/slot"),
            None,
            Some(json!({"start": later, "minutes": 30})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "referral_room"), "{b}");
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{rid}/propose"),
            Some(&cardio),
            Some(json!({"start": later, "minutes": 45})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{rid}/accept"),
            None,
            None,
        )
        .await;
    assert_eq!((st, &b["state"]), (200, &json!("scheduled")), "{b}");
    let moved = list(s, &referred)
        .await
        .into_iter()
        .find(|l| l["invite_id"] == link["invite_id"])
        .unwrap();
    assert_eq!(moved["not_before"], later - 30 * 60, "{moved}");
    assert_eq!(moved["expires_at"], later + 45 * 60 + 60 * 60, "{moved}");

    // An ended consultation keeps its time; the move is on the record.
    let (st, _) = s
        .api("POST", &format!("/api/v1/rooms/{id}/end"), None, None)
        .await;
    assert_eq!(st, 204);
    let (st, b) = s
        .api(
            "PUT",
            &format!("/api/v1/rooms/{id}/slot"),
            None,
            Some(json!({"start": later, "minutes": 40})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "room_ended"), "{b}");
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;
    let trail = common::action_outcomes(&s.audit_entries(&supervisor, &id).await);
    assert!(
        trail.iter().any(|e| e == "room.rescheduled:ok"),
        "{trail:?}"
    );
}

#[tokio::test]
async fn rescheduling_on_sqlite() {
    let s = TestServer::start().await;
    rescheduling(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn rescheduling_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    rescheduling(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

#[tokio::test]
async fn invitations_on_sqlite() {
    let s = TestServer::start().await;
    let url = sqlite_url(&s);
    invitation_flow(&s, &url).await;
    s.stop().await;
}

#[tokio::test]
async fn invitations_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url.clone()).await;
    invitation_flow(&s, &pg.url).await;
    s.stop().await;
    pg.drop_db().await;
}

#[tokio::test]
async fn codes_are_throttled_per_address_and_per_code() {
    let s = TestServer::start().await;
    let room = s.create_room("Throttle").await;
    let good = create(&s, &room, json!({"role": "observer"})).await;
    let good_code = good["code"].as_str().unwrap().to_owned();
    let wrong = |i: u32| format!("{:09}", 100_000_000 + i);

    // Ten wrong codes from one address; the eleventh attempt, even with a good code, waits.
    let guesser = client_from("127.0.0.2");
    for i in 0..10 {
        let (st, b, _) = redeem_with(&s, &guesser, &wrong(i)).await;
        assert_eq!((st, code(&b)), (404, "code_not_found"), "attempt {i}: {b}");
    }
    let (st, b, retry) = redeem_with(&s, &guesser, &good_code).await;
    assert_eq!((st, code(&b)), (429, "too_many_attempts"), "{b}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((800..=900).contains(&retry), "{retry}");
    // Another address is not affected.
    let (st, b, _) = redeem_with(&s, &client_from("127.0.0.3"), &good_code).await;
    assert_eq!(st, 200, "{b}");

    // One code value tried from five addresses; the sixth address is refused for that code
    // only.
    let target = wrong(1000);
    for i in 0..5 {
        let from = client_from(&format!("127.0.1.{}", i + 1));
        let (st, b, _) = redeem_with(&s, &from, &target).await;
        assert_eq!((st, code(&b)), (404, "code_not_found"), "{b}");
    }
    let sixth = client_from("127.0.1.9");
    let (st, b, retry) = redeem_with(&s, &sixth, &target).await;
    assert_eq!((st, code(&b)), (429, "too_many_attempts"), "{b}");
    assert!(retry.is_some());
    // The same digits typed another way are the same code.
    let spaced = format!("{} {} {}", &target[0..3], &target[3..6], &target[6..9]);
    let (st, _, _) = redeem_with(&s, &sixth, &spaced).await;
    assert_eq!(st, 429);
    let (st, _, _) = redeem_with(&s, &sixth, &good_code).await;
    assert_eq!(st, 200, "another code from that address is fine");

    // Every failure is on the record; refusals by the throttle too, rate-limited.
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let entries = all_audit(&s, &sup).await;
    let failures: Vec<Value> = entries
        .iter()
        .filter(|e| e["action"] == "invitation.code_failed")
        .map(detail)
        .collect();
    assert_eq!(
        failures
            .iter()
            .filter(|d| d["reason"] == "code_not_found")
            .count(),
        15
    );
    let throttled: Vec<&Value> = failures
        .iter()
        .filter(|d| d["reason"] == "code_throttled")
        .collect();
    assert_eq!(throttled.len(), 3, "{failures:?}");
    assert!(throttled.iter().any(|d| d["scope"] == "address"));
    assert!(throttled.iter().any(|d| d["scope"] == "code"));
    s.stop().await;
}

/// What needs no session is limited per address (`limits.public_requests_per_minute`): the link
/// check, code redemption and the outcome page share one bucket per address; past it, 429
/// `too_many_requests` with `Retry-After` before anything is looked at, on the record. Parallel
/// requests cannot pass together.
#[tokio::test]
async fn requests_without_a_session_are_limited_per_address() {
    let s = TestServer::start_with(|c| c.limits.public_requests_per_minute = 6).await;
    let room = s.create_room("Request rate").await;
    let link = s.invite(&room, "patient").await;
    let ask = |http: &reqwest::Client, path: &'static str, body: Option<Value>| {
        let http = http.clone();
        let base = s.base.clone();
        let link = link.clone();
        async move {
            let req = match body {
                Some(body) => http.post(format!("{base}{path}")).json(&body),
                None => http.get(format!("{base}{path}")).bearer_auth(&link),
            };
            answer(req.send().await.expect("request sent")).await
        }
    };
    let check = || Some(json!({"token": link}));

    // Six from one address, of three kinds (a good check, a forged link, a wrong code, the
    // outcome page): each is answered on its merits.
    let busy = client_from("127.0.0.20");
    let (st, b, _) = ask(&busy, "/api/v1/invitations/check", check()).await;
    assert_eq!(st, 200, "{b}");
    let (st, b, _) = ask(
        &busy,
        "/api/v1/invitations/check",
        Some(json!({"token": "hz1.forged.link"})),
    )
    .await;
    assert_eq!((st, code(&b)), (401, "invalid_token"), "{b}");
    let (st, b, _) = ask(
        &busy,
        "/api/v1/invitations/redeem",
        Some(json!({"code": "100000001"})),
    )
    .await;
    assert_eq!((st, code(&b)), (404, "code_not_found"), "{b}");
    let (st, _, _) = ask(&busy, "/api/v1/outcome", None).await;
    assert_ne!(st, 429);
    for _ in 0..2 {
        let (st, b, _) = ask(&busy, "/api/v1/invitations/check", check()).await;
        assert_eq!(st, 200, "{b}");
    }
    // The seventh, of any kind, waits: one comes back every 10 s at 6 a minute.
    for (path, body) in [
        ("/api/v1/invitations/check", check()),
        (
            "/api/v1/invitations/redeem",
            Some(json!({"code": "100000002"})),
        ),
        ("/api/v1/outcome", None),
        ("/api/v1/outcome/pdf", None),
    ] {
        let (st, b, retry) = ask(&busy, path, body).await;
        assert_eq!((st, code(&b)), (429, "too_many_requests"), "{path}: {b}");
        let retry: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=10).contains(&retry), "{retry}");
    }
    // Another address has its own.
    let (st, b, _) = ask(
        &client_from("127.0.0.21"),
        "/api/v1/invitations/check",
        check(),
    )
    .await;
    assert_eq!(st, 200, "{b}");

    // Twenty at once from a third address: exactly six are answered.
    let burst = client_from("127.0.0.22");
    let answers = futures_util::future::join_all(
        (0..20).map(|_| ask(&burst, "/api/v1/invitations/check", check())),
    )
    .await;
    let passed = answers.iter().filter(|(st, _, _)| *st == 200).count();
    let limited = answers.iter().filter(|(st, _, _)| *st == 429).count();
    assert_eq!((passed, limited), (6, 14), "{answers:?}");

    // On the record, with the path, never the link; the audit's own flood limit holds.
    let sup = s.account("sup", AccountRole::NetworkSupervisor).await;
    let refused: Vec<Value> = all_audit(&s, &sup)
        .await
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .map(detail)
        .filter(|d| d["reason"] == "too_many_requests")
        .collect();
    assert!(
        refused
            .iter()
            .any(|d| d["attempted"] == "/api/v1/outcome/pdf"),
        "{refused:?}"
    );
    // Four from the busy address, and ten of the burst's fourteen (then they are counted).
    assert_eq!(refused.len(), 14, "{refused:?}");
    assert!(
        !refused.iter().any(|d| d.to_string().contains(&link)),
        "the link stays off the record"
    );
    s.stop().await;
}

/// Migration 0008 on a database with invites: they keep working as they did, with no window
/// start, no limit and no code.
async fn the_upgrade_keeps_invites(url: &str) {
    use huizhen::domain::ids::{InviteId, RoomId, UserId};
    use huizhen::domain::invitation::InviteState;
    use huizhen::storage::Db;
    use sqlx::Executor;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut before = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
    )
    .await
    .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let (user, room) = (UserId::generate(), RoomId::generate());
    let institution = huizhen::domain::organisation::DEFAULT_INSTITUTION;
    let later = now_unix() + 3600;
    pool.execute(
        format!(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at, \
             institution_id) VALUES ('{user}', 'old', 'Dr. Old', 'doctor', 'x', 1, '{institution}');
             INSERT INTO rooms (id, title, created_by, created_at, institution_id) \
             VALUES ('{room}', 'Before', '{user}', 2, '{institution}');
             INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at) \
             VALUES ('i_0123456789abcdef', '{room}', 'patient', '{user}', 2, {later});"
        )
        .as_str(),
    )
    .await
    .unwrap();
    pool.close().await;

    let db = Db::connect(url).await.unwrap();
    let id = InviteId::parse("i_0123456789abcdef").unwrap();
    let old = db.invite(&id).await.unwrap().unwrap();
    assert_eq!(
        (old.not_before, old.max_uses, old.uses, old.has_code),
        (None, None, 0, false)
    );
    assert_eq!(old.validity().state(now_unix()), InviteState::Active);
    for _ in 0..3 {
        assert!(db.take_invite_use(&id).await.unwrap(), "unlimited");
    }
    assert_eq!(db.link_invites(&room).await.unwrap().len(), 1);
    assert_eq!(db.room_slot(&room).await.unwrap(), None);
    db.close().await;
}

#[tokio::test]
async fn the_upgrade_keeps_invites_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("u.db").display());
    the_upgrade_keeps_invites(&url).await;
}

#[tokio::test]
async fn the_upgrade_keeps_invites_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    the_upgrade_keeps_invites(&pg.url).await;
    pg.drop_db().await;
}

/// A consultation holds at most 200 invitation links (any state): the last places taken by
/// twenty clinicians' clicks at once are counted one after the other, exactly; the refusal is
/// `limit_reached` (`invites_per_room`), on the record.
async fn links_per_room_are_capped(s: &TestServer) {
    use huizhen::domain::invitation::MAX_LINK_INVITES_PER_ROOM;
    let room = s.create_room("Teaching round").await;
    let db = &s.server().db;
    let room_id = huizhen::domain::ids::RoomId::parse(&room).unwrap();
    let creator = db.user_by_username("doc").await.unwrap().unwrap();
    // All but ten places, straight into storage (the API's own path is what is tested below).
    for i in 0..MAX_LINK_INVITES_PER_ROOM - 10 {
        let hash = format!("test-code-hash-{i}");
        let made = db
            .create_link_invite(
                &huizhen::storage::NewInvite {
                    room_id: &room_id,
                    role: huizhen::domain::role::Role::Observer,
                    created_by: &creator.id,
                    not_before: None,
                    expires_at: now_unix() + 3600,
                    max_uses: None,
                    label: None,
                    code_hash: &hash,
                },
                MAX_LINK_INVITES_PER_ROOM,
            )
            .await
            .unwrap();
        assert!(made.is_some());
    }
    let path = format!("/api/v1/rooms/{room}/invites");
    let tries = futures_util::future::join_all(
        (0..20).map(|_| s.api("POST", &path, None, Some(json!({"role": "observer"})))),
    )
    .await;
    let made = tries.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(made, 10, "{tries:?}");
    for (st, b) in tries.iter().filter(|(st, _)| *st != 201) {
        assert_eq!(
            (*st, code(b), b["error"]["limit"].as_str()),
            (409, "limit_reached", Some("invites_per_room")),
            "{b}"
        );
    }
    assert_eq!(list(s, &room).await.len() as i64, MAX_LINK_INVITES_PER_ROOM);
    let sup = s.account("cap_sup", AccountRole::NetworkSupervisor).await;
    let refused = s
        .audit_entries(&sup, &room)
        .await
        .into_iter()
        .filter(|e| e["action"] == "invite.issued" && e["outcome"] == "denied")
        .count();
    assert_eq!(refused, 10, "each refusal on the record");
}

#[tokio::test]
async fn links_per_room_are_capped_on_sqlite() {
    let s = TestServer::start().await;
    links_per_room_are_capped(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn links_per_room_are_capped_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    links_per_room_are_capped(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
