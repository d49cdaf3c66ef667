//! Signing PINs over the real server, on SQLite and PostgreSQL: a doctor sets a PIN with their
//! password and signs with it instead; the PIN's rules; wrong PINs counted up to the limit that
//! erases it, also when guessed in parallel; the password still signs after that; a password
//! change erases the PIN; and the audit entries all of it leaves.

use crate::common;

use crate::common::{ACCOUNT_PASSWORD, DOCTOR_PASSWORD, TestServer};
use huizhen::auth::MAX_PIN_FAILURES;
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const PIN: &str = "482139";

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A diagnosis report drafted by the seat's clinician: the record's issue path.
async fn draft(s: &TestServer, room: &str, access: &str) -> String {
    let body = json!({"findings": "Sinus rhythm", "impression": "正常心电图",
                      "recommendation": "Follow up in three months"});
    let (st, d) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(access),
            Some(json!({"kind": "diagnosis_report", "body": body})),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    format!(
        "/api/v1/rooms/{room}/records/{}/issue",
        d["id"].as_str().unwrap()
    )
}

async fn has_pin(s: &TestServer, session: Option<&str>) -> bool {
    let (st, me) = s.api("GET", "/api/v1/me", session, None).await;
    assert_eq!(st, 200, "{me}");
    me["signing_pin"].as_bool().expect("a boolean")
}

async fn set_pin(s: &TestServer, session: Option<&str>, password: &str, pin: &str) -> (u16, Value) {
    s.api(
        "PUT",
        "/api/v1/me/signing-pin",
        session,
        Some(json!({"password": password, "pin": pin})),
    )
    .await
}

async fn pin_flow(s: &TestServer) {
    let supervisor = s.account("regulator", AccountRole::NetworkSupervisor).await;
    let pharmacist = s.account("pharmacist", AccountRole::Pharmacist).await;
    let room = s.create_room("复诊").await;
    let _patient = s.member(&room, "patient", "Li Lei").await;
    let doctor = s.member(&room, "doctor", "").await;

    // No PIN yet: signing with one is refused, and nothing is signed.
    assert!(!has_pin(s, None).await);
    let first = draft(s, &room, &doctor.access).await;
    let (st, b) = s
        .api(
            "POST",
            &first,
            Some(&doctor.access),
            Some(json!({"pin": PIN})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "no_signing_pin"), "{b}");

    // Setting one takes the password and a PIN the rules allow; only clinicians have one.
    let (st, b) = set_pin(s, None, "not my password", PIN).await;
    assert_eq!((st, code(&b)), (403, "wrong_password"), "{b}");
    for (weak, why) in [
        ("123456", "weak_pin"),
        ("777777", "weak_pin"),
        ("48213", "pin_rule"),
    ] {
        let (st, b) = set_pin(s, None, DOCTOR_PASSWORD, weak).await;
        assert_eq!((st, code(&b)), (400, why), "{weak}: {b}");
    }
    let (st, b) = set_pin(s, None, DOCTOR_PASSWORD, "48213９").await;
    assert_eq!((st, code(&b)), (400, "pin_rule"), "full-width digit: {b}");
    let (st, b) = set_pin(s, Some(&pharmacist), ACCOUNT_PASSWORD, PIN).await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
    assert!(!has_pin(s, None).await, "nothing refused was set");
    let (st, b) = set_pin(s, None, DOCTOR_PASSWORD, PIN).await;
    assert_eq!(st, 204, "{b}");
    assert!(has_pin(s, None).await);

    // Both at once, or a password typed as the PIN: refused before anything is tried.
    let (st, b) = s
        .api(
            "POST",
            &first,
            Some(&doctor.access),
            Some(json!({"pin": PIN, "password": DOCTOR_PASSWORD})),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");
    let (st, b) = s
        .api(
            "POST",
            &first,
            Some(&doctor.access),
            Some(json!({"pin": DOCTOR_PASSWORD})),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "pin_rule"), "{b}");

    // A wrong PIN says how many tries are left; a right one signs in the account's name and
    // starts the count again.
    let (st, b) = s
        .api(
            "POST",
            &first,
            Some(&doctor.access),
            Some(json!({"pin": "999000"})),
        )
        .await;
    assert_eq!((st, code(&b)), (403, "wrong_pin"), "{b}");
    assert_eq!(b["error"]["tries_left"], MAX_PIN_FAILURES - 1);
    let (st, issued) = s
        .api(
            "POST",
            &first,
            Some(&doctor.access),
            Some(json!({"pin": PIN})),
        )
        .await;
    assert_eq!(st, 200, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["signature"]["name"], "Dr. Wang");
    // Made and issued in one call, with the PIN.
    let rx = json!({"items": [{"medication": "阿司匹林肠溶片", "dose": "100 mg", "route": "oral",
                               "frequency": "once daily", "duration": "4 weeks"}]});
    let (st, made) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&doctor.access),
            Some(json!({"kind": "prescription", "body": rx, "issue": true, "pin": PIN})),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    assert_eq!(
        (made["status"].as_str(), made["signature"]["name"].as_str()),
        (Some("issued"), Some("Dr. Wang"))
    );

    // Five wrong in a row erase it: the right PIN no longer signs, the password does.
    let second = draft(s, &room, &doctor.access).await;
    for n in 1..=MAX_PIN_FAILURES {
        let (st, b) = s
            .api(
                "POST",
                &second,
                Some(&doctor.access),
                Some(json!({"pin": "999000"})),
            )
            .await;
        if n < MAX_PIN_FAILURES {
            assert_eq!((st, code(&b)), (403, "wrong_pin"), "try {n}: {b}");
            assert_eq!(b["error"]["tries_left"], MAX_PIN_FAILURES - n, "try {n}");
        } else {
            assert_eq!((st, code(&b)), (403, "pin_erased"), "try {n}: {b}");
        }
    }
    assert!(!has_pin(s, None).await);
    let (st, b) = s
        .api(
            "POST",
            &second,
            Some(&doctor.access),
            Some(json!({"pin": PIN})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "no_signing_pin"), "{b}");
    let (st, b) = s
        .api(
            "POST",
            &second,
            Some(&doctor.access),
            Some(json!({"password": DOCTOR_PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "the password still signs: {b}");

    // Parallel guesses get no more tries than the limit: each is counted before it is checked.
    let (st, _) = set_pin(s, None, DOCTOR_PASSWORD, PIN).await;
    assert_eq!(st, 204);
    let third = draft(s, &room, &doctor.access).await;
    let guesses = (0..20).map(|i| {
        let third = third.clone();
        let access = doctor.access.clone();
        async move {
            s.api(
                "POST",
                &third,
                Some(&access),
                Some(json!({"pin": format!("90{:04}", 1000 + i)})),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|(_, b)| matches!(code(b), "wrong_pin" | "pin_erased"))
        .count();
    assert_eq!(
        checked, MAX_PIN_FAILURES as usize,
        "exactly the limit was checked: {answers:?}"
    );
    for (st, b) in &answers {
        assert!(
            matches!(
                (st, code(b)),
                (403, "wrong_pin")
                    | (403, "pin_erased")
                    | (409, "no_signing_pin")
                    | (429, "too_many_attempts")
            ),
            "{st} {b}"
        );
    }
    assert!(!has_pin(s, None).await, "the limit erased it");

    // Erasing one's own PIN, and a password change, erase it.
    let (st, _) = set_pin(s, None, DOCTOR_PASSWORD, PIN).await;
    assert_eq!(st, 204);
    let (st, _) = s.api("DELETE", "/api/v1/me/signing-pin", None, None).await;
    assert_eq!(st, 204);
    assert!(!has_pin(s, None).await);
    let (st, _) = s.api("DELETE", "/api/v1/me/signing-pin", None, None).await;
    assert_eq!(st, 204, "erasing none is no error");
    let (st, _) = set_pin(s, None, DOCTOR_PASSWORD, PIN).await;
    assert_eq!(st, 204);
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/auth/password",
            None,
            Some(json!({"current_password": DOCTOR_PASSWORD,
                        "new_password": "another long password"})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert!(!has_pin(s, None).await, "the password change erased it");
    let (st, b) = s
        .api(
            "POST",
            &third,
            Some(&doctor.access),
            Some(json!({"pin": PIN})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "no_signing_pin"), "{b}");

    // The trail: each PIN set, each refusal with its reason, the erasures and why.
    let entries = s.audit_all(&supervisor).await;
    let with = |action: &str| -> Vec<&Value> {
        entries.iter().filter(|e| e["action"] == action).collect()
    };
    let reason = |e: &Value| -> String {
        let d: Value = serde_json::from_str(e["detail"].as_str().unwrap_or("{}")).unwrap();
        d["reason"].as_str().unwrap_or("").to_owned()
    };
    let set = with("auth.signing_pin_set");
    let set_ok = set.iter().filter(|e| e["outcome"] == "ok").count();
    assert_eq!(set_ok, 4, "{set:?}");
    assert!(
        set.iter()
            .any(|e| e["outcome"] == "denied" && reason(e) == "wrong_password")
    );
    let failed: Vec<String> = with("record.signing_failed")
        .into_iter()
        .map(reason)
        .collect();
    let wrong = failed.iter().filter(|r| *r == "wrong_pin").count();
    assert_eq!(wrong, 1 + 2 * MAX_PIN_FAILURES as usize, "{failed:?}");
    assert!(failed.iter().any(|r| r == "no_pin"), "{failed:?}");
    let cleared: Vec<String> = with("auth.signing_pin_cleared")
        .into_iter()
        .map(reason)
        .collect();
    assert_eq!(
        cleared,
        ["too_many_wrong", "too_many_wrong", "by_user"],
        "{cleared:?}"
    );
    let changed = with("auth.password_changed");
    let d: Value = serde_json::from_str(changed[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(d["signing_pin_erased"], true);
    // Neither the PIN nor its hash is anywhere in the trail.
    let trail = serde_json::to_string(&entries).unwrap();
    assert!(!trail.contains(PIN) && !trail.contains("argon2"));
}

#[tokio::test]
async fn signing_pins_on_sqlite() {
    let s = TestServer::start().await;
    pin_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn signing_pins_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    pin_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
