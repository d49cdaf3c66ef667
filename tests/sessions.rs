//! Clinicians' sessions end to end, against the real server: signing out ends the token,
//! renewal replaces it (once, however many ask at the same time), idle sessions end, the
//! absolute end is never moved, a password change or an administrator ends the other sessions,
//! and so does the command line. Every step, and every refused token, is in the audit trail.

use crate::common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{DOCTOR_PASSWORD, TestServer};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

async fn sign_in(s: &TestServer) -> Value {
    let (status, body) = s.login("doc", DOCTOR_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn token(body: &Value) -> &str {
    body["token"].as_str().expect("a token")
}

/// The status of `GET /me` with `token`, and the error code if any.
async fn me(s: &TestServer, token: &str) -> (u16, Option<String>) {
    let (status, body) = s.api("GET", "/api/v1/me", Some(token), None).await;
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

const REFUSED: (u16, Option<&str>) = (401, Some("unauthenticated"));

fn refused(got: (u16, Option<String>)) -> bool {
    (got.0, got.1.as_deref()) == REFUSED
}

/// Every audit entry so far, oldest first, read with a supervisor's token.
async fn audit(s: &TestServer, supervisor: &str) -> Vec<Value> {
    let (status, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

fn with_action<'a>(entries: &'a [Value], action: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

fn detail(entry: &Value) -> Value {
    serde_json::from_str(entry["detail"].as_str().unwrap()).unwrap()
}

/// The reasons of every `auth.session_refused` entry.
fn refusals(entries: &[Value]) -> Vec<String> {
    with_action(entries, "auth.session_refused")
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "denied");
            detail(e)["reason"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn signing_out_ends_the_token() {
    let s = TestServer::start().await;
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let body = sign_in(&s).await;
    let t = token(&body);
    assert_eq!(me(&s, t).await, (200, None));
    let (status, _) = s.api("POST", "/api/v1/auth/logout", Some(t), None).await;
    assert_eq!(status, 204);
    assert!(refused(me(&s, t).await));
    // Signing out again with it is refused like any other call.
    let (status, _) = s.api("POST", "/api/v1/auth/logout", Some(t), None).await;
    assert_eq!(status, 401);
    // The other session of the account (the harness's sign-in) goes on.
    assert_eq!(me(&s, &s.doctor_token).await, (200, None));

    let entries = audit(&s, &supervisor).await;
    let out = with_action(&entries, "auth.sign_out");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["object_type"], "session");
    let signed_in = with_action(&entries, "auth.sign_in");
    assert!(
        signed_in
            .iter()
            .any(|e| e["object_id"] == out[0]["object_id"]),
        "the sign-in and the sign-out name the same session"
    );
    assert_eq!(refusals(&entries), ["signed_out", "signed_out"]);
    let refused = with_action(&entries, "auth.session_refused");
    assert!(refused[0]["actor"].as_str().unwrap().starts_with("u_"));
    assert!(
        detail(refused[0])["client"]
            .as_str()
            .is_some_and(|c| c.len() == 16),
        "the client is a pseudonym"
    );
    // Garbage is refused without filling the trail.
    assert!(refused_garbage(&s).await);
    assert_eq!(refusals(&audit(&s, &supervisor).await).len(), 2);
    s.stop().await;
}

async fn refused_garbage(s: &TestServer) -> bool {
    refused(me(s, "hz1.forged.token").await) && refused(me(s, "").await)
}

#[tokio::test]
async fn renewal_gives_a_new_token_and_ends_the_old_one() {
    let s = TestServer::start().await;
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let first = sign_in(&s).await;
    let (exp, end) = (
        first["expires_at"].as_i64().unwrap(),
        first["session_expires_at"].as_i64().unwrap(),
    );
    let now = huizhen::domain::clock::now_unix();
    // Defaults: 30 minutes idle, 12 hours in all.
    assert!((now + 1799..=now + 1801).contains(&exp), "{first}");
    assert!((now + 43199..=now + 43201).contains(&end), "{first}");
    assert_eq!(
        (
            first["expires_in"].as_i64(),
            first["session_expires_in"].as_i64()
        ),
        (Some(1800), Some(43200))
    );

    let (status, second) = s
        .api("POST", "/api/v1/auth/renew", Some(token(&first)), None)
        .await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(token(&second), token(&first));
    assert_eq!(second["session_expires_at"], end, "the end does not move");
    assert!(second["expires_at"].as_i64().unwrap() >= exp);
    assert_eq!(me(&s, token(&second)).await, (200, None));
    assert!(refused(me(&s, token(&first)).await));
    // The old token cannot be renewed either.
    let (status, _) = s
        .api("POST", "/api/v1/auth/renew", Some(token(&first)), None)
        .await;
    assert_eq!(status, 401);

    let entries = audit(&s, &supervisor).await;
    let renewed = with_action(&entries, "auth.session_renewed");
    assert_eq!(renewed.len(), 1);
    assert_eq!(refusals(&entries), ["superseded", "superseded"]);
    s.stop().await;
}

#[tokio::test]
async fn twenty_renewals_of_one_token_at_once_one_wins() {
    let s = TestServer::start().await;
    let body = sign_in(&s).await;
    let t = token(&body).to_owned();
    let answers = futures_util::future::join_all(
        (0..20).map(|_| s.api("POST", "/api/v1/auth/renew", Some(&t), None)),
    )
    .await;
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, b)| b)
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|(st, _)| *st).collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|st| **st == 401).count(), 19);
    assert_eq!(me(&s, token(won[0])).await, (200, None));
    assert!(refused(me(&s, &t).await));
    s.stop().await;
}

#[tokio::test]
async fn an_idle_session_ends_and_renewal_keeps_it_alive() {
    // Tokens are in whole seconds: one issued at r is good until floor(r) + 8, so for 7 s at
    // least and 8 s at most. The pauses leave seconds to spare either way on a slow machine.
    let s = TestServer::start_with(|c| c.auth.session_idle_s = 8).await;
    let body = sign_in(&s).await;
    let left = body["expires_at"].as_i64().unwrap() - huizhen::domain::clock::now_unix();
    assert!((6..=8).contains(&left), "{body}");
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let (status, renewed) = s
        .api("POST", "/api/v1/auth/renew", Some(token(&body)), None)
        .await;
    assert_eq!(status, 200, "{renewed}");
    assert!(renewed["expires_at"].as_i64() > body["expires_at"].as_i64());
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // Over 8 s after sign-in, past the first token's end, the renewed token works.
    assert_eq!(me(&s, token(&renewed)).await, (200, None));
    // Left alone for longer than the idle window, it does not.
    tokio::time::sleep(Duration::from_millis(9000)).await;
    assert!(refused(me(&s, token(&renewed)).await));
    let (status, _) = s
        .api("POST", "/api/v1/auth/renew", Some(token(&renewed)), None)
        .await;
    assert_eq!(status, 401, "an idle session cannot be renewed");
    // (The supervisor signs in now: a session opened earlier would have ended too.)
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let reasons = refusals(&audit(&s, &supervisor).await);
    assert_eq!(reasons, ["idle_expired", "idle_expired"]);
    s.stop().await;
}

#[tokio::test]
async fn renewal_never_passes_the_absolute_end() {
    // An idle window longer than the session: every token ends with the session.
    let s = TestServer::start_with(|c| {
        c.auth.session_hours = 1;
        c.auth.session_idle_s = 86_400;
    })
    .await;
    let mut body = sign_in(&s).await;
    let end = body["session_expires_at"].as_i64().unwrap();
    let now = huizhen::domain::clock::now_unix();
    assert!((now + 3599..=now + 3601).contains(&end), "{body}");
    for _ in 0..3 {
        assert_eq!(body["expires_at"], end, "{body}");
        let (status, next) = s
            .api("POST", "/api/v1/auth/renew", Some(token(&body)), None)
            .await;
        assert_eq!(status, 200, "{next}");
        assert_eq!(next["session_expires_at"], end);
        body = next;
    }
    s.stop().await;
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions() {
    let s = TestServer::start().await;
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let mine = sign_in(&s).await;
    let other = sign_in(&s).await;
    let change = |current: &str, new: &str| {
        s.api(
            "POST",
            "/api/v1/auth/password",
            Some(token(&mine)),
            Some(json!({"current_password": current, "new_password": new})),
        )
    };
    let (status, body) = change("not the password", "a brand new password").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("wrong_password"))
    );
    let (status, body) = change(DOCTOR_PASSWORD, "short").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = change(DOCTOR_PASSWORD, DOCTOR_PASSWORD).await;
    assert_eq!(status, 400);
    // Refusals leave every session alone.
    assert_eq!(me(&s, token(&other)).await, (200, None));

    let (status, body) = change(DOCTOR_PASSWORD, "a brand new password").await;
    assert_eq!(status, 200, "{body}");
    // `other` and the harness's own sign-in.
    assert_eq!(body["sessions_revoked"], 2);
    assert_eq!(me(&s, token(&mine)).await, (200, None));
    assert!(refused(me(&s, token(&other)).await));
    assert!(refused(me(&s, &s.doctor_token).await));
    // The old password is refused, the new one signs in.
    let (status, body) = s.login("doc", DOCTOR_PASSWORD).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );
    let (status, _) = s.login("doc", "a brand new password").await;
    assert_eq!(status, 200);

    let entries = audit(&s, &supervisor).await;
    let changed = with_action(&entries, "auth.password_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(detail(changed[0])["sessions_revoked"], 2);
    let failed = with_action(&entries, "auth.password_change_failed");
    assert_eq!(
        failed.len(),
        1,
        "only the wrong password; bad input is not an attempt"
    );
    assert_eq!(detail(failed[0])["reason"], "wrong_password");
    assert_eq!(refusals(&entries), ["password_changed", "password_changed"]);
    s.stop().await;
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_signing_in() {
    let s = TestServer::start().await;
    let body = sign_in(&s).await;
    let guess = |i: usize| {
        s.api(
            "POST",
            "/api/v1/auth/password",
            Some(token(&body)),
            Some(json!({"current_password": format!("guess {i}"), "new_password": "a brand new password"})),
        )
    };
    for i in 0..5 {
        assert_eq!(guess(i).await.0, 403);
    }
    let (status, body_429) = guess(5).await;
    assert_eq!(
        (status, body_429["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );
    // The same count as sign-in: the account cannot be guessed there either from here.
    assert_eq!(s.login("doc", DOCTOR_PASSWORD).await.0, 429);
    // The session itself is untouched.
    assert_eq!(me(&s, token(&body)).await, (200, None));
    s.stop().await;
}

#[tokio::test]
async fn an_administrator_ends_an_accounts_sessions() {
    let s = TestServer::start().await;
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let admin = s.account("root", AccountRole::Admin).await;
    let (_, doc) = s.api("GET", "/api/v1/me", None, None).await;
    let doc_id = doc["id"].as_str().unwrap().to_owned();
    let second = sign_in(&s).await;
    let path = format!("/api/v1/users/{doc_id}/sessions/revoke");

    // Not an administrator: refused, and the attempt recorded.
    for who in [&s.doctor_token, &supervisor] {
        let (status, body) = s.api("POST", &path, Some(who), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden"))
        );
    }
    assert_eq!(me(&s, token(&second)).await, (200, None));
    let (status, _) = s
        .api(
            "POST",
            "/api/v1/users/u_0000000000000000/sessions/revoke",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let (status, body) = s.api("POST", &path, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions_revoked"], 2);
    assert!(refused(me(&s, &s.doctor_token).await));
    assert!(refused(me(&s, token(&second)).await));
    // The administrator's own session is not the doctor's.
    assert_eq!(me(&s, &admin).await, (200, None));
    // The doctor signs in again as usual.
    assert_eq!(s.login("doc", DOCTOR_PASSWORD).await.0, 200);

    let entries = audit(&s, &supervisor).await;
    let denied: Vec<_> = with_action(&entries, "access.denied")
        .into_iter()
        .filter(|e| detail(e)["attempted"] == "sessions.revoke")
        .collect();
    assert_eq!(denied.len(), 2);
    assert!(denied.iter().all(|e| e["object_id"] == doc_id.as_str()));
    let revoked = with_action(&entries, "auth.sessions_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["actor_role"], "admin");
    assert_eq!(revoked[0]["object_id"], doc_id.as_str());
    assert_eq!(detail(revoked[0])["sessions_revoked"], 2);
    assert_eq!(refusals(&entries), ["revoked", "revoked"]);
    s.stop().await;
}

/// Runs the built `huizhen` on the test server's data directory. The wait is off the test's
/// runtime: the server runs on that (single) thread too, and a command that waits for the
/// database's write lock would otherwise wait for a server transaction that cannot go on
/// until the command ends (each gives up after SQLite's busy timeout).
async fn cli(s: &TestServer, args: &[&str], stdin: &str) -> std::process::Output {
    let config = s.dir.path().join("cli.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n[log]\nfilter = \"warn\"\n",
            s.dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_huizhen"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("HUIZHEN_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_command_line_ends_sessions() {
    let s = TestServer::start().await;
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let second = sign_in(&s).await;

    // A password too short is refused before anything changes.
    let out = cli(
        &s,
        &["user", "passwd", "--username", "doc", "--password-stdin"],
        "short\n",
    )
    .await;
    assert!(!out.status.success());
    assert_eq!(me(&s, &s.doctor_token).await, (200, None));

    // No terminal: the password comes from standard input, and every session ends.
    let out = cli(
        &s,
        &["user", "passwd", "--username", "doc", "--password-stdin"],
        "changed from the shell\n",
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 session(s) ended"),
        "{out:?}"
    );
    assert!(refused(me(&s, &s.doctor_token).await));
    assert!(refused(me(&s, token(&second)).await));
    assert_eq!(s.login("doc", DOCTOR_PASSWORD).await.0, 401);
    let (status, third) = s.login("doc", "changed from the shell").await;
    assert_eq!(status, 200);

    let out = cli(&s, &["user", "revoke-sessions", "--username", "doc"], "").await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 session(s) of doc ended"),
        "{out:?}"
    );
    assert!(refused(me(&s, token(&third)).await));
    let out = cli(&s, &["user", "revoke-sessions", "--username", "nobody"], "").await;
    assert!(!out.status.success());

    // Disabled from the shell: no sign-in, even with the right password; enabled, it signs in.
    let (_, fourth) = s.login("doc", "changed from the shell").await;
    let out = cli(&s, &["user", "disable", "--username", "doc"], "").await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("doc disabled; 1 session(s) ended"),
        "{out:?}"
    );
    assert!(refused(me(&s, token(&fourth)).await));
    let (status, b) = s.login("doc", "changed from the shell").await;
    assert_eq!(
        (status, &b["error"]["code"]),
        (403, &json!("account_disabled"))
    );
    let out = cli(&s, &["user", "enable", "--username", "doc"], "").await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.login("doc", "changed from the shell").await.0, 200);

    let entries = audit(&s, &supervisor).await;
    for (action, sessions) in [("org.account_disabled", 1), ("org.account_enabled", 0)] {
        let done = with_action(&entries, action);
        assert_eq!(done.len(), 1, "{action}");
        assert_eq!(done[0]["actor"], "system");
        assert_eq!(
            detail(done[0]),
            json!({"sessions_revoked": sessions, "via": "command_line"})
        );
    }
    let changed = with_action(&entries, "auth.password_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["actor"], "system");
    assert_eq!(
        detail(changed[0]),
        json!({"sessions_revoked": 2, "via": "command_line"})
    );
    let revoked = with_action(&entries, "auth.sessions_revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        detail(revoked[0]),
        json!({"sessions_revoked": 1, "via": "command_line"})
    );
    // The chain is intact with entries from two processes.
    let (status, v) = s
        .api("GET", "/api/v1/audit/verify", Some(&supervisor), None)
        .await;
    assert_eq!(status, 200);
    assert!(v["first_broken"].is_null(), "{v}");
    s.stop().await;
}

const T: Duration = Duration::from_secs(15);

/// A clinician in a consultation through their care-team seat, entered under `session`.
struct Seat {
    ws: common::peer::SignalingClient,
    id: String,
    access: String,
    resume: String,
}

async fn take_seat(s: &TestServer, room: &str, session: &str) -> Seat {
    let entry = s.enter(room, Some(session)).await;
    let ws = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    let joined = ws.join(&entry, "", false, false).await.unwrap();
    Seat {
        id: joined["you"]["id"].as_str().unwrap().to_owned(),
        access: joined["access_token"].as_str().unwrap().to_owned(),
        resume: joined["resume_token"].as_str().unwrap().to_owned(),
        ws,
    }
}

/// The seat is told, closed and gone for the others; its access and resume tokens stop.
async fn seat_ended(s: &TestServer, room: &str, seat: &Seat, patient: &common::Member) {
    seat.ws.expect_error("session_ended", T).await.unwrap();
    assert_eq!(seat.ws.wait_closed(T).await.unwrap(), Some(4001));
    let left = patient
        .ws
        .next_event_where("participant_left", T, |m| {
            m["participant_id"] == seat.id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(left["reason"], "session_ended");
    let documents = format!("/api/v1/rooms/{room}/documents");
    let (status, body) = s.api("GET", &documents, Some(&seat.access), None).await;
    assert_eq!(status, 403, "{body}");
    let c = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    assert!(c.resume(&seat.resume).await.is_err(), "no resume");
}

/// Signing out, an administrator, a password change and the command line each end the seat
/// taken under the session they end, and nothing else: a clinician whose laptop was stolen is
/// out of the consultation once their sessions are ended, room tab or not. (One person has one
/// seat: entering again from another tab replaces the first, so one seat at a time here.)
#[tokio::test]
async fn care_team_seats_end_with_the_sign_in_they_were_taken_under() {
    let s = TestServer::start().await;
    let supervisor = s.account("sup", AccountRole::NetworkSupervisor).await;
    let admin = s.account("root", AccountRole::Admin).await;
    let specialist = s.account("spec", AccountRole::Specialist).await;
    let (_, spec_me) = s.api("GET", "/api/v1/me", Some(&specialist), None).await;
    let room = s.create_room("Seats and sign-ins").await;
    s.add_to_care_team(&room, spec_me["id"].as_str().unwrap(), None)
        .await;
    let patient = s.member(&room, "patient", "Li Hua").await;
    let colleague = take_seat(&s, &room, &specialist).await;
    let documents = format!("/api/v1/rooms/{room}/documents");

    // Signing out ends the seat of that sign-in.
    let laptop = sign_in(&s).await;
    let first = take_seat(&s, &room, token(&laptop)).await;
    let (status, _) = s
        .api("POST", "/api/v1/auth/logout", Some(token(&laptop)), None)
        .await;
    assert_eq!(status, 204);
    seat_ended(&s, &room, &first, &patient).await;

    // A password change ends the other sign-ins' seats and keeps the one that made it.
    let desk = take_seat(&s, &room, &s.doctor_token).await;
    let phone = sign_in(&s).await;
    let (status, body) = s
        .api(
            "POST",
            "/api/v1/auth/password",
            Some(token(&phone)),
            Some(
                json!({"current_password": DOCTOR_PASSWORD, "new_password": "a changed password"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    seat_ended(&s, &room, &desk, &patient).await;

    // An administrator ends every session of the account, the kept one included.
    let kept = take_seat(&s, &room, token(&phone)).await;
    let (_, me) = s.api("GET", "/api/v1/me", Some(token(&phone)), None).await;
    let path = format!(
        "/api/v1/users/{}/sessions/revoke",
        me["id"].as_str().unwrap()
    );
    let (status, body) = s.api("POST", &path, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    seat_ended(&s, &room, &kept, &patient).await;

    // The command line writes the database from another process: the server finds the
    // ended sign-in there within a few seconds.
    let (status, again) = s.login("doc", "a changed password").await;
    assert_eq!(status, 200, "{again}");
    let last = take_seat(&s, &room, token(&again)).await;
    let out = cli(&s, &["user", "revoke-sessions", "--username", "doc"], "").await;
    assert!(out.status.success(), "{out:?}");
    seat_ended(&s, &room, &last, &patient).await;

    // The patient and the other clinician are still there, and each leave is on the record
    // with why.
    for access in [&patient.access, &colleague.access] {
        let (status, body) = s.api("GET", &documents, Some(access), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let ended = s
        .audit_entries(&supervisor, &room)
        .await
        .into_iter()
        .filter(|e| e["action"] == "participant.left" && detail(e)["reason"] == "session_ended")
        .count();
    assert_eq!(ended, 4);
}
