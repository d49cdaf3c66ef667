//! The network's organisation over the real server: institutions, departments and accounts
//! managed by the network's and an institution's administrators, the directory, visibility
//! by institution and care team, clinicians entering a consultation as their accounts (never
//! under a typed name), and the command line that sets a network up. On SQLite and PostgreSQL.

use crate::common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::common::peer::SignalingClient;
use crate::common::{PgTestDb, Place, TestServer, process};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The audit entries whose action is `action`, read with a supervisor's token.
async fn entries_of(s: &TestServer, sup: &str, action: &str) -> Vec<Value> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(sup), None)
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

async fn organisation_flow(s: &TestServer) {
    let admin = s.account("netadmin", AccountRole::Admin).await;
    let sup = s.account("regulator", AccountRole::NetworkSupervisor).await;

    // The network's administrator builds the network.
    let (st, county) = s
        .api(
            "POST",
            "/api/v1/institutions",
            Some(&admin),
            Some(json!({"name": "县人民医院", "kind": "hospital"})),
        )
        .await;
    assert_eq!(st, 201, "{county}");
    let county = county["id"].as_str().unwrap().to_owned();
    let (st, clinic) = s
        .api(
            "POST",
            "/api/v1/institutions",
            Some(&admin),
            Some(json!({"name": "石桥镇卫生院", "kind": "township_clinic"})),
        )
        .await;
    assert_eq!(st, 201);
    let clinic = clinic["id"].as_str().unwrap().to_owned();
    // Names are unique, kinds known, names held to the rules of names.
    for (body, want) in [
        (json!({"name": "县人民医院", "kind": "hospital"}), 409),
        (json!({"name": "X", "kind": "clinic"}), 400),
        (json!({"name": "A\u{202e}B", "kind": "hospital"}), 400),
        (json!({"name": "  ", "kind": "hospital"}), 400),
    ] {
        let (st, b) = s
            .api("POST", "/api/v1/institutions", Some(&admin), Some(body))
            .await;
        assert_eq!(st, want, "{b}");
    }
    let (st, cardiology) = s
        .api(
            "POST",
            &format!("/api/v1/institutions/{county}/departments"),
            Some(&admin),
            Some(json!({"name": "心血管内科"})),
        )
        .await;
    assert_eq!(st, 201, "{cardiology}");
    let cardiology = cardiology["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/institutions/{county}/departments"),
            Some(&admin),
            Some(json!({"name": "心血管内科"})),
        )
        .await;
    assert_eq!(st, 409);

    // An administrator for the county hospital, made by the network's administrator.
    let account = |username: &str, role: &str, institution: &str, extra: Value| {
        let mut body = json!({
            "username": username,
            "display_name": username,
            "role": role,
            "password": common::ACCOUNT_PASSWORD,
            "institution_id": institution,
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            Some(account(
                "county-it",
                "institution_admin",
                &county,
                json!({}),
            )),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let county_it = login(s, "county-it").await;
    // ...who makes specialists of their own institution, and nothing elsewhere or above.
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&county_it),
            Some(account(
                "zhao",
                "specialist",
                &county,
                json!({"display_name": "赵敏", "department_id": cardiology,
                       "title": "主任医师", "specialty": "Cardiology 心血管"}),
            )),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["institution"]["name"], "县人民医院");
    assert_eq!(b["department"]["name"], "心血管内科");
    let zhao_id = b["id"].as_str().unwrap().to_owned();
    for (body, want) in [
        (
            account("x1", "doctor", &clinic, json!({})),
            403, // another institution
        ),
        (
            account("x2", "supervisor", &county, json!({})),
            403, // a network-wide role
        ),
        (account("x3", "admin", &county, json!({})), 403),
        (
            // A department of another institution.
            account(
                "x4",
                "doctor",
                &clinic,
                json!({"department_id": cardiology}),
            ),
            403,
        ),
    ] {
        let (st, b) = s
            .api("POST", "/api/v1/accounts", Some(&county_it), Some(body))
            .await;
        assert_eq!(st, want, "{b}");
    }
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            Some(account(
                "x5",
                "doctor",
                &clinic,
                json!({"department_id": cardiology}),
            )),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            Some(account("zhao", "doctor", &clinic, json!({}))),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    // The institution's administrator lists their own institution's accounts only.
    let (st, list) = s
        .api("GET", "/api/v1/accounts", Some(&county_it), None)
        .await;
    assert_eq!(st, 200);
    let names: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["county-it", "zhao"]);
    assert!(list.to_string().find("password").is_none());
    let (st, _) = s
        .api(
            "POST",
            "/api/v1/institutions",
            Some(&county_it),
            Some(json!({"name": "Mine", "kind": "hospital"})),
        )
        .await;
    assert_eq!(
        st, 403,
        "only the network's administrator adds institutions"
    );

    // A second cardiologist, not taking referrals; a township doctor.
    let (st, _) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            Some(account(
                "qian",
                "specialist",
                &county,
                json!({"department_id": cardiology, "specialty": "Electrophysiology"}),
            )),
        )
        .await;
    assert_eq!(st, 201);
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            Some(account(
                "li",
                "doctor",
                &clinic,
                json!({"title": "全科医生"}),
            )),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let zhao = login(s, "zhao").await;
    let li = login(s, "li").await;

    // The directory: by department, by specialty, by who takes referrals now.
    let (st, _) = s
        .api(
            "PUT",
            "/api/v1/me/availability",
            Some(&zhao),
            Some(json!({"accepts_referrals": true})),
        )
        .await;
    assert_eq!(st, 204);
    let li_ref = li.as_str();
    let search = |q: String| async move {
        let (st, b) = s
            .api("GET", &format!("/api/v1/directory?{q}"), Some(li_ref), None)
            .await;
        assert_eq!(st, 200, "{b}");
        let mut names: Vec<String> = b["clinicians"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["display_name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        (names, b)
    };
    let (names, body) = search(format!("department={cardiology}")).await;
    assert_eq!(names, ["qian", "赵敏"]);
    assert!(
        body.to_string().find("\"username\"").is_none(),
        "sign-in names stay private"
    );
    assert_eq!(search("specialty=cardio".into()).await.0, ["赵敏"]);
    assert_eq!(search("specialty=心血管".into()).await.0, ["赵敏"]);
    assert_eq!(search("name=赵".into()).await.0, ["赵敏"]);
    assert_eq!(search("name=QIA".into()).await.0, ["qian"]);
    assert_eq!(search("specialty=%25".into()).await.0, Vec::<String>::new());
    assert_eq!(
        search(format!("institution={county}&accepting=true"))
            .await
            .0,
        ["赵敏"]
    );
    // A malformed query string is refused in the API's error shape, like a malformed body.
    for (query, says) in [
        ("/api/v1/directory?department=dep_nope", "DepartmentId"),
        ("/api/v1/directory?accepting=maybe", "accepting"),
        ("/api/v1/audit?limit=abc", "limit"),
    ] {
        let token = if query.contains("audit") { &sup } else { &li };
        let (st, e) = s.api("GET", query, Some(token), None).await;
        assert_eq!(st, 400, "{query}: {e}");
        assert_eq!(e["error"]["code"], "invalid_request", "{query}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{query}: {e}"
        );
    }
    let (st, _) = s.api("GET", "/api/v1/directory", Some(&sup), None).await;
    assert_eq!(st, 403);
    let (st, me) = s.api("GET", "/api/v1/me", Some(&zhao), None).await;
    assert_eq!(st, 200);
    assert_eq!(me["title"], "主任医师");
    assert_eq!(me["accepts_referrals"], true);

    // Visibility follows the institution: the township doctor's consultation is theirs (and
    // their colleagues'), not the county's, until the specialist is on its care team.
    let (st, room) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(&li),
            Some(json!({"title": "胸痛会诊", "patient_ref": "PSN-17", "waiting_room": false})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    // Opened without an agreed time: no slot.
    assert_eq!(room["slot_start"], serde_json::Value::Null, "{room}");
    assert_eq!(room["slot_minutes"], serde_json::Value::Null, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let (st, _) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), Some(&zhao), None)
        .await;
    assert_eq!(st, 404);
    let (_, listed) = s.api("GET", "/api/v1/rooms", Some(&zhao), None).await;
    assert!(!listed.to_string().contains(&room));
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/enter"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 404, "{b}");
    // Invite links are for patients and observers; clinicians are added to the care team.
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&li),
            Some(json!({"role": "specialist"})),
        )
        .await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");
    s.add_to_care_team(&room, &zhao_id, Some(&li)).await;
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/care-team"),
            Some(&li),
            Some(json!({"user_id": zhao_id})),
        )
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"), "{b}");
    let (st, team) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/care-team"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 200, "{team}");
    let roles: Vec<(&str, &str)> = team["care_team"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["account"]["display_name"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(roles, [("li", "doctor"), ("赵敏", "specialist")]);
    // Nobody has come yet: the day view would show everyone as not arrived.
    let before = s.attendance_where(&room, &zhao, |_| true).await;
    assert_eq!(
        came(&before),
        [("li", false, false), ("赵敏", false, false)],
        "{before}"
    );
    assert_eq!(
        before["patients"],
        json!({"arrived_at": null, "present": 0, "waiting": 0, "waiting_since": null})
    );
    let (_, listed) = s.api("GET", "/api/v1/rooms", Some(&zhao), None).await;
    let mine = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room.as_str())
        .expect("the care team's room is listed");
    assert_eq!(
        (&mine["my_role"], &mine["manages"]),
        (&json!("specialist"), &json!(false))
    );
    let (_, theirs) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), Some(&li), None)
        .await;
    assert_eq!(
        (&theirs["my_role"], &theirs["manages"]),
        (&json!("doctor"), &json!(true))
    );
    // On the care team, the specialist does not run the consultation.
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&zhao),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 403);
    // Nor may they add a clinician of their own, or remove the doctor.
    let (st, _) = s
        .api(
            "DELETE",
            &format!("/api/v1/rooms/{room}/care-team/{}", li_id(s, &li).await),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 403);

    // The specialist enters as their account: the name shown is the account's, whatever
    // they type; a link is still for the patient.
    let seat = s.enter(&room, Some(&zhao)).await;
    let spec = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = spec
        .join(&seat, "Prof. Chief Cardiologist Wang", false, false)
        .await
        .unwrap();
    assert_eq!(joined["you"]["role"], "specialist");
    assert_eq!(joined["you"]["name"], "赵敏 主任医师 · 县人民医院");
    let (st, link) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&li),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let patient_link = link["token"].as_str().unwrap().to_owned();
    let patient = s.member_with(&patient_link, "王大爷").await;
    let seen = patient.joined["participants"].to_string();
    assert!(seen.contains("赵敏 主任医师"), "{seen}");
    // Who has come: the specialist and a patient are in; the doctor has not arrived.
    let now = s
        .attendance_where(&room, &li, |a| a["patients"]["present"] == 1)
        .await;
    assert_eq!(
        came(&now),
        [("li", false, false), ("赵敏", true, true)],
        "{now}"
    );
    assert!(now["patients"]["arrived_at"].is_i64(), "{now}");
    assert!(
        !now.to_string().contains("王大爷"),
        "no patient names: {now}"
    );
    // A seat token is not a way around the session: after signing out, it is refused. (On
    // another sign-in than the one the specialist is in the room under: signing that one out
    // would end their seat, tests/sessions.rs.)
    let other_tab = login(s, "zhao").await;
    let seat2 = s.enter(&room, Some(&other_tab)).await;
    let (st, _) = s
        .api("POST", "/api/v1/auth/logout", Some(&other_tab), None)
        .await;
    assert_eq!(st, 204);
    let late = SignalingClient::connect(&s.ws_url).await.unwrap();
    late.send_json(&json!({"type": "join", "v": 1, "token": seat2, "name": "",
                           "publish": {"audio": false, "video": false}}))
        .await
        .unwrap();
    late.expect_error("invalid_token", T).await.unwrap();

    // Taken off the care team, the specialist leaves the live room at once.
    let (st, _) = s
        .api(
            "DELETE",
            &format!("/api/v1/rooms/{room}/care-team/{zhao_id}"),
            Some(&li),
            None,
        )
        .await;
    assert_eq!(st, 204);
    spec.expect_error("invite_revoked", T).await.unwrap();
    let left = patient.ws.next_event("participant_left", T).await.unwrap();
    assert_eq!(left["reason"], "removed");
    // The consultation's last doctor stays.
    let (st, b) = s
        .api(
            "DELETE",
            &format!("/api/v1/rooms/{room}/care-team/{}", li_id(s, &li).await),
            Some(&li),
            None,
        )
        .await;
    assert_eq!((st, code(&b)), (409, "conflict"), "{b}");
    // Not on the care team any more: the room is out of sight again.
    let zhao = login(s, "zhao").await;
    let (st, _) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/enter"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 404);

    // A township colleague of the doctor sees the consultation but is not on its team.
    let (st, _) = s
        .api(
            "POST",
            "/api/v1/accounts",
            Some(&admin),
            Some(account("sun", "doctor", &clinic, json!({}))),
        )
        .await;
    assert_eq!(st, 201);
    let sun = login(s, "sun").await;
    let (st, _) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), Some(&sun), None)
        .await;
    assert_eq!(st, 200);
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/enter"),
            Some(&sun),
            None,
        )
        .await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");

    // Everything is on the record, refusals included.
    for action in [
        "org.institution_created",
        "org.department_created",
        "org.account_created",
        "org.availability_changed",
    ] {
        assert!(!entries_of(s, &sup, action).await.is_empty(), "{action}");
    }
    let denied = entries_of(s, &sup, "access.denied").await;
    assert!(
        denied.len() >= 5,
        "administrative and room refusals: {denied:?}"
    );
    let room_actions = common::action_outcomes(&s.audit_entries(&sup, &room).await);
    for want in [
        "care_team.added:ok",
        "care_team.seat_entered:ok",
        "participant.joined:ok",
        "care_team.removed:ok",
        "access.denied:denied",
    ] {
        assert!(
            room_actions.iter().any(|a| a == want),
            "missing {want} in {room_actions:?}"
        );
    }
}

/// Signs `username` in (password [`common::ACCOUNT_PASSWORD`]): the session token.
/// (name, arrived, in the room now) for each clinician of an attendance.
fn came(a: &Value) -> Vec<(&str, bool, bool)> {
    a["clinicians"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["display_name"].as_str().unwrap(),
                c["arrived_at"].is_i64(),
                c["present"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn login(s: &TestServer, username: &str) -> String {
    let (st, b) = s
        .api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": username, "password": common::ACCOUNT_PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

async fn li_id(s: &TestServer, li: &str) -> String {
    let (_, me) = s.api("GET", "/api/v1/me", Some(li), None).await;
    me["id"].as_str().unwrap().to_owned()
}

/// The console's list keeps open consultations however many newer ones ended, and a day's
/// consultations come in full when asked for by their time.
async fn open_consultations_first_and_a_day_in_full(s: &TestServer) {
    let start = huizhen::domain::clock::now_unix() + 3 * 86_400;
    let (st, booked) = s
        .api(
            "POST",
            "/api/v1/rooms",
            None,
            Some(json!({"title": "Booked, then held", "slot": {"start": start, "minutes": 30}})),
        )
        .await;
    assert_eq!(st, 201, "{booked}");
    let booked = booked["id"].as_str().unwrap().to_owned();
    let end = |room: String| async move {
        let (st, b) = s
            .api("POST", &format!("/api/v1/rooms/{room}/end"), None, None)
            .await;
        assert_eq!(st, 204, "{b}");
    };
    end(booked.clone()).await;
    // Rooms are dated to the second: the rest come a second later, so that this one is older.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let open = s.create_room("Still open").await;
    for n in 0..200 {
        end(s.create_room(&format!("Ended {n}")).await).await;
    }
    let listed = |query: &'static str| async move {
        let (st, b) = s
            .api("GET", &format!("/api/v1/rooms{query}"), None, None)
            .await;
        (st, b)
    };
    let (st, all) = listed("").await;
    assert_eq!(st, 200, "{all}");
    let ids: Vec<&str> = all["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 200);
    assert_eq!(
        ids[0], open,
        "the open one first, though 200 newer ones ended"
    );
    assert!(
        !ids.contains(&booked.as_str()),
        "the oldest ended one is past the limit"
    );
    let query = format!("?booked_from={}&booked_to={}", start - 3600, start + 3600);
    let (st, day) = s
        .api("GET", &format!("/api/v1/rooms{query}"), None, None)
        .await;
    assert_eq!(st, 200, "{day}");
    let day: Vec<&str> = day["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        day,
        [booked.as_str()],
        "the day's consultation, held or not"
    );
    for bad in [
        format!("?booked_from={start}"),
        format!("?booked_from={start}&booked_to={start}"),
        format!("?booked_from={start}&booked_to={}", start + 32 * 86_400),
        "?booked_from=soon&booked_to=later".to_owned(),
    ] {
        let (st, b) = s
            .api("GET", &format!("/api/v1/rooms{bad}"), None, None)
            .await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {b}"
        );
    }
}

common::on_both_databases!(
    #[tokio::test]
    open_consultations_first_and_a_day_in_full,
    |_| {}
);

/// An administrator disables a clinician who left: signed out at once, no sign-in even with
/// the right password, out of the directory and of care teams; enabled again, they sign in.
/// Another institution's administrator may not; nobody disables themselves.
async fn disabling_an_account(s: &TestServer) {
    use common::ACCOUNT_PASSWORD;
    let admin = s.account("netadmin", AccountRole::Admin).await;
    let regulator = s.account("regulator", AccountRole::NetworkSupervisor).await;
    let elsewhere = s.institution("市中心医院").await;
    let (_, other_admin) = s
        .placed_account(
            "city-admin",
            AccountRole::InstitutionAdmin,
            Place {
                institution: &elsewhere,
                ..Default::default()
            },
        )
        .await;
    let (id, token) = s
        .placed_account(
            "leaving",
            AccountRole::Specialist,
            Place {
                institution: huizhen::domain::organisation::DEFAULT_INSTITUTION,
                name: Some("Dr. Leaving"),
                ..Default::default()
            },
        )
        .await;
    let disable = format!("/api/v1/accounts/{id}/disable");
    let code = |b: &Value| b["error"]["code"].as_str().unwrap_or("").to_owned();

    let (st, b) = s.api("POST", &disable, Some(&other_admin), None).await;
    assert_eq!((st, code(&b).as_str()), (403, "forbidden"), "{b}");
    let me: Value = s.api("GET", "/api/v1/me", Some(&admin), None).await.1;
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/accounts/{}/disable", me["id"].as_str().unwrap()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (400, "invalid_request"), "{b}");
    assert_eq!(s.api("GET", "/api/v1/me", Some(&token), None).await.0, 200);

    let (st, b) = s.api("POST", &disable, Some(&admin), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["disabled"], true);
    assert_eq!(b["sessions_revoked"], 1);
    assert_eq!(s.api("GET", "/api/v1/me", Some(&token), None).await.0, 401);
    let login = |password: &'static str| async move {
        s.api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "leaving", "password": password})),
        )
        .await
    };
    let (st, b) = login(ACCOUNT_PASSWORD).await;
    assert_eq!((st, code(&b).as_str()), (403, "account_disabled"), "{b}");
    let (st, b) = login("not the password").await;
    assert_eq!(
        (st, code(&b).as_str()),
        (401, "invalid_credentials"),
        "a guesser learns nothing: {b}"
    );
    let (_, found) = s.api("GET", "/api/v1/directory", None, None).await;
    let listed = |v: &Value| {
        v["clinicians"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str())
    };
    assert!(!listed(&found), "out of the directory: {found}");
    let room = s.create_room("复诊").await;
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/care-team"),
            None,
            Some(json!({"user_id": id})),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (403, "account_disabled"), "{b}");
    let (_, accounts) = s.api("GET", "/api/v1/accounts", Some(&admin), None).await;
    let shown = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(shown["disabled"], true, "{shown}");

    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/accounts/{id}/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((st, &b["disabled"]), (200, &json!(false)), "{b}");
    let (st, b) = login(ACCOUNT_PASSWORD).await;
    assert_eq!(st, 200, "{b}");
    let (_, found) = s.api("GET", "/api/v1/directory", None, None).await;
    assert!(listed(&found), "back in the directory");

    let entries = s.audit_all(&regulator).await;
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in ["org.account_disabled", "org.account_enabled"] {
        assert_eq!(actions.iter().filter(|a| **a == want).count(), 1, "{want}");
    }
    let refused = entries
        .iter()
        .filter(|e| e["action"] == "auth.sign_in_failed")
        .filter_map(|e| e["detail"].as_str())
        .filter(|d| d.contains("account_disabled"))
        .count();
    assert_eq!(refused, 1);
}

common::on_both_databases!(
    #[tokio::test]
    disabling_an_account,
    |_| {}
);

/// A department renamed, and removed once nobody belongs to it; one with accounts stays;
/// another institution's administrator may do neither.
async fn departments_renamed_and_removed(s: &TestServer) {
    let admin = s.account("netadmin", AccountRole::Admin).await;
    let county = s.institution("县人民医院").await;
    let city = s.institution("市中心医院").await;
    let (_, city_admin) = s
        .placed_account(
            "city-admin",
            AccountRole::InstitutionAdmin,
            Place {
                institution: &city,
                ..Default::default()
            },
        )
        .await;
    let staffed = s.department(&county, "心血管内科").await;
    let empty = s.department(&county, "临时科室").await;
    s.placed_account(
        "cardio",
        AccountRole::Specialist,
        Place {
            institution: &county,
            department: Some(&staffed),
            ..Default::default()
        },
    )
    .await;
    let code = |b: &Value| b["error"]["code"].as_str().unwrap_or("").to_owned();
    let path = |d: &str| format!("/api/v1/departments/{d}");

    let (st, b) = s
        .api(
            "PATCH",
            &path(&empty),
            Some(&city_admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!((st, code(&b).as_str()), (403, "forbidden"), "{b}");
    let (st, b) = s
        .api("DELETE", &path(&empty), Some(&city_admin), None)
        .await;
    assert_eq!((st, code(&b).as_str()), (403, "forbidden"), "{b}");
    let (st, b) = s
        .api(
            "PATCH",
            &path(&empty),
            Some(&admin),
            Some(json!({"name": "心血管内科"})),
        )
        .await;
    assert_eq!(
        (st, code(&b).as_str()),
        (409, "conflict"),
        "a name taken: {b}"
    );
    let (st, b) = s
        .api(
            "PATCH",
            &path(&staffed),
            Some(&admin),
            Some(json!({"name": "心内科"})),
        )
        .await;
    assert_eq!((st, b["name"].as_str()), (200, Some("心内科")), "{b}");
    let (st, b) = s.api("DELETE", &path(&staffed), Some(&admin), None).await;
    assert_eq!(
        (st, code(&b).as_str()),
        (409, "conflict"),
        "someone works there: {b}"
    );
    let (st, _) = s.api("DELETE", &path(&empty), Some(&admin), None).await;
    assert_eq!(st, 204);
    let (st, b) = s.api("DELETE", &path(&empty), Some(&admin), None).await;
    assert_eq!((st, code(&b).as_str()), (404, "not_found"), "{b}");
    let (_, listed) = s
        .api("GET", "/api/v1/institutions", Some(&admin), None)
        .await;
    let names: Vec<String> = listed["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["departments"].as_array().unwrap().clone())
        .filter_map(|d| d["name"].as_str().map(str::to_owned))
        .collect();
    assert!(names.contains(&"心内科".to_owned()), "{names:?}");
    assert!(!names.contains(&"临时科室".to_owned()), "{names:?}");
}

common::on_both_databases!(
    #[tokio::test]
    departments_renamed_and_removed,
    |_| {}
);

#[tokio::test]
async fn organisation_on_sqlite() {
    let s = TestServer::start().await;
    organisation_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn organisation_on_postgres() {
    let Some(pg) = PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    organisation_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

/// Two administrators add the same clinician to a care team at once: one wins, the other is
/// told; the care team has them once.
#[tokio::test]
async fn concurrent_additions_to_a_care_team() {
    let s = TestServer::start().await;
    let room = s.create_room("Concurrent").await;
    let admin = s.account("netadmin", AccountRole::Admin).await;
    let (zhao, _) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            common::Place {
                institution: huizhen::domain::organisation::DEFAULT_INSTITUTION,
                ..common::Place::default()
            },
        )
        .await;
    let path = format!("/api/v1/rooms/{room}/care-team");
    let body = json!({"user_id": zhao});
    let (a, b) = tokio::join!(
        s.api("POST", &path, None, Some(body.clone())),
        s.api("POST", &path, Some(&admin), Some(body.clone())),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    let (_, team) = s.api("GET", &path, None, None).await;
    assert_eq!(team["care_team"].as_array().unwrap().len(), 2);
    s.stop().await;
}

/// Two doctors of a consultation removing each other at the same moment: one removal wins,
/// the other is refused (409), and the consultation keeps a doctor. Ten rooms, each raced.
async fn doctors_removing_each_other(s: &TestServer) {
    let (second_id, second) = s
        .placed_account(
            "second-doctor",
            AccountRole::Doctor,
            common::Place {
                institution: huizhen::domain::organisation::DEFAULT_INSTITUTION,
                ..common::Place::default()
            },
        )
        .await;
    let (_, me) = s.api("GET", "/api/v1/me", None, None).await;
    let first_id = me["id"].as_str().unwrap().to_owned();
    for round in 0..10 {
        let room = s.create_room(&format!("Race {round}")).await;
        s.add_to_care_team(&room, &second_id, None).await;
        let path = |user: &str| format!("/api/v1/rooms/{room}/care-team/{user}");
        let (of_second, of_first) = (path(&second_id), path(&first_id));
        let (a, b) = tokio::join!(
            s.api("DELETE", &of_second, None, None),
            s.api("DELETE", &of_first, Some(&second), None),
        );
        // The loser is refused as the last doctor, or (removed a moment before its own
        // request was read) as no longer on the care team.
        let (won, lost) = if a.0 == 204 { (&a, &b) } else { (&b, &a) };
        assert_eq!(won.0, 204, "round {round}: {a:?} {b:?}");
        match lost.0 {
            409 => assert!(
                lost.1["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("last doctor"),
                "{lost:?}"
            ),
            403 => {}
            _ => panic!("round {round}: both removals went through: {a:?} {b:?}"),
        }
        // Whoever stayed may still see the team: one doctor in it.
        let token = if a.0 == 204 {
            None
        } else {
            Some(second.as_str())
        };
        let (st, team) = s
            .api(
                "GET",
                &format!("/api/v1/rooms/{room}/care-team"),
                token,
                None,
            )
            .await;
        assert_eq!(st, 200, "{team}");
        let doctors = team["care_team"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "doctor")
            .count();
        assert_eq!(doctors, 1, "round {round}: {team}");
    }
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    doctors_removing_each_other,
    |_| {}
);

/// The command line sets up a network: institutions, departments, accounts in them; each
/// change is audited; mistakes are refused with a clear message.
#[tokio::test]
async fn the_command_line_sets_up_a_network() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = process::configure(dir.path(), 2);
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = process::huizhen(&cfg)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(
        &[
            "institution",
            "add",
            "--name",
            "县人民医院",
            "--kind",
            "hospital",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(
        &[
            "institution",
            "add",
            "--name",
            "县人民医院",
            "--kind",
            "hospital",
        ],
        None,
    );
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = run(
        &["institution", "add", "--name", "X", "--kind", "clinic"],
        None,
    );
    assert!(!ok && err.contains("township_clinic"), "{err}");
    let (ok, out, err) = run(
        &[
            "department",
            "add",
            "--institution",
            "县人民医院",
            "--name",
            "心血管内科",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = run(
        &[
            "department",
            "add",
            "--institution",
            "No such",
            "--name",
            "心血管内科",
        ],
        None,
    );
    assert!(!ok && err.contains("no institution"), "{err}");
    // A department added by mistake: renamed, then removed while nobody belongs to it.
    let (ok, out, err) = run(
        &[
            "department",
            "add",
            "--institution",
            "县人民医院",
            "--name",
            "临时",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        &[
            "department",
            "rename",
            "--institution",
            "县人民医院",
            "--department",
            "临时",
            "--name",
            "临时科室",
        ],
        None,
    );
    assert!(ok && out.contains("renamed 临时 to 临时科室"), "{out}{err}");
    let (ok, out, err) = run(
        &[
            "department",
            "remove",
            "--institution",
            "县人民医院",
            "--department",
            "临时科室",
        ],
        None,
    );
    assert!(ok && out.contains("removed 临时科室"), "{out}{err}");
    let (ok, out, err) = run(
        &[
            "user",
            "add",
            "--username",
            "zhao",
            "--display-name",
            "赵敏",
            "--role",
            "specialist",
            "--institution",
            "县人民医院",
            "--department",
            "心血管内科",
            "--title",
            "主任医师",
            "--specialty",
            "Cardiology",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("县人民医院, 心血管内科"), "{out}");
    let (ok, _, err) = run(
        &[
            "user",
            "add",
            "--username",
            "qian",
            "--display-name",
            "Qian",
            "--institution",
            "县人民医院",
            "--department",
            "Nephrology",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(!ok && err.contains("no department"), "{err}");
    // The command line applies the API's name rule: a name that would show as another
    // ("Dr. Wang" written backwards behind a right-to-left override) is refused.
    let (ok, _, err) = run(
        &[
            "user",
            "add",
            "--username",
            "spoof",
            "--display-name",
            "Dr. \u{202e}gnaW",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(
        !ok && err.contains("display name") && err.contains("direction-changing"),
        "{err}"
    );
    // Without a terminal and without --password-stdin, the error says what to do. (Only where
    // this test itself has no terminal, as in CI: with one, the command would prompt on it.)
    if std::fs::File::open("/dev/tty").is_err() {
        let (ok, _, err) = run(
            &["user", "add", "--username", "sun", "--display-name", "Sun"],
            None,
        );
        assert!(
            !ok && err.contains("no terminal") && err.contains("--password-stdin"),
            "{err}"
        );
    }
    let (ok, out, err) = run(
        &[
            "institution",
            "rename",
            "--institution",
            "Default institution",
            "--name",
            "石桥镇卫生院",
            "--kind",
            "township_clinic",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(
        &["user", "set", "--username", "doc", "--title", "全科医生"],
        None,
    );
    assert!(ok, "{out}{err}");
    let (ok, out, _) = run(&["institution", "list"], None);
    assert!(ok);
    assert!(
        out.contains("县人民医院") && out.contains("心血管内科"),
        "{out}"
    );
    assert!(out.contains("township_clinic\t石桥镇卫生院"), "{out}");
    let (ok, out, _) = run(&["user", "list"], None);
    assert!(ok);
    assert!(
        out.contains("zhao\tspecialist\t赵敏\t县人民医院\t主任医师\t心血管内科\tCardiology\n"),
        "{out}"
    );
    assert!(
        out.contains("doc\tdoctor\tDr. Wang\t石桥镇卫生院\t全科医生\t\t\n"),
        "{out}"
    );
    // Every change is in the trail, which still verifies.
    let (ok, out, err) = run(&["audit", "export"], None);
    assert!(ok, "{err}");
    for action in [
        "org.institution_created",
        "org.department_created",
        "org.account_created",
        "org.institution_renamed",
        "org.account_updated",
    ] {
        assert!(out.contains(action), "{action} missing");
    }
    let (ok, out, err) = run(&["audit", "verify"], None);
    assert!(ok, "{out}{err}");
}

/// Migration 0006 on a database with data: accounts and rooms land in the default
/// institution, every room's creator is its care team's doctor with a seat, issued records
/// stay unsigned, and link invites stay links.
async fn the_upgrade_keeps_consultations(url: &str) {
    use huizhen::domain::ids::{RoomId, UserId};
    use huizhen::domain::role::Role;
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
        .filter(|m| m.version < 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let (user, room) = (UserId::generate(), RoomId::generate());
    pool.execute(
        format!(
            "INSERT INTO users (id, username, display_name, role, password_hash, created_at) \
             VALUES ('{user}', 'old', 'Dr. Old', 'doctor', 'x', 1);
             INSERT INTO rooms (id, title, patient_ref, created_by, created_at) \
             VALUES ('{room}', 'Before', NULL, '{user}', 2);
             INSERT INTO invites (id, room_id, role, created_by, created_at, expires_at) \
             VALUES ('i_0123456789abcdef', '{room}', 'patient', '{user}', 2, 99);
             INSERT INTO records (id, room_id, kind, status, body, body_sha256, author, \
             author_name, author_role, created_at_ms) VALUES ('rec_0123456789abcdef', \
             '{room}', 'prescription', 'issued', '{{}}', 'x', 'p_0123456789abcdef', 'Dr. Old', \
             'doctor', 3);"
        )
        .as_str(),
    )
    .await
    .unwrap();
    pool.close().await;

    let db = Db::connect(url).await.unwrap();
    let old = db.user(&user).await.unwrap().unwrap();
    assert_eq!(
        old.institution_id.as_str(),
        huizhen::domain::organisation::DEFAULT_INSTITUTION
    );
    assert!(old.department_id.is_none() && !old.accepts_referrals);
    let r = db.room(&room).await.unwrap().unwrap();
    assert_eq!(r.institution_id, old.institution_id);
    let team = db.care_team(&room).await.unwrap();
    assert_eq!(team.len(), 1);
    assert_eq!(
        (team[0].user_id.clone(), team[0].role),
        (user.clone(), Role::Doctor)
    );
    let seat = db.invite(&team[0].seat).await.unwrap().unwrap();
    assert_eq!(seat.account.as_ref(), Some(&user));
    assert!(seat.revoked_at.is_none());
    let link = db
        .invite(&huizhen::domain::ids::InviteId::parse("i_0123456789abcdef").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(link.account.is_none());
    let rec = db
        .record(&huizhen::domain::ids::RecordId::parse("rec_0123456789abcdef").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(rec.signature.is_none());
    let institutions = db.list_institutions().await.unwrap();
    assert_eq!(institutions.len(), 1);
    assert_eq!(institutions[0].name, "Default institution");
    db.close().await;
}

#[tokio::test]
async fn the_upgrade_keeps_consultations_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("u.db").display());
    the_upgrade_keeps_consultations(&url).await;
}

#[tokio::test]
async fn the_upgrade_keeps_consultations_on_postgres() {
    let Some(pg) = PgTestDb::create().await else {
        return;
    };
    the_upgrade_keeps_consultations(&pg.url).await;
    pg.drop_db().await;
}

/// Changing an existing account over the API (`PATCH /api/v1/accounts/{id}`): the network's
/// administrator moves a clinician to another institution and department, renames them and
/// changes their role, which takes effect on their next call; an institution's administrator
/// changes their own institution's accounts and nothing else (another institution's is not
/// found, moving one away or giving a network-wide role is refused, all recorded); nobody
/// changes their own role; bad fields are refused with their reason; two administrators
/// changing one account from the same starting point: one wins, the other is told.
async fn account_changes(s: &TestServer) {
    let county = s.institution("County People's Hospital").await;
    let town = s.institution("Qingshui township health centre").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let neurology = s.department(&county, "Neurology").await;
    let town_gp = s.department(&town, "General practice").await;
    fn place<'a>(institution: &'a str, department: Option<&'a str>) -> Place<'a> {
        Place {
            institution,
            department,
            ..Default::default()
        }
    }
    let (county, town, cardiology) = (county.as_str(), town.as_str(), cardiology.as_str());
    let (admin_id, admin) = s
        .placed_account("netadmin", AccountRole::Admin, place(county, None))
        .await;
    let (_, county_admin) = s
        .placed_account(
            "countyadmin",
            AccountRole::InstitutionAdmin,
            place(county, None),
        )
        .await;
    let (_, town_admin) = s
        .placed_account(
            "townadmin",
            AccountRole::InstitutionAdmin,
            place(town, None),
        )
        .await;
    let (chen_id, chen) = s
        .placed_account("chen", AccountRole::Doctor, place(county, Some(cardiology)))
        .await;
    let (sup_id, _) = s
        .placed_account(
            "regulator",
            AccountRole::NetworkSupervisor,
            place(county, None),
        )
        .await;
    let patch = |token: &str, id: &str, body: Value| {
        let (token, path) = (token.to_owned(), format!("/api/v1/accounts/{id}"));
        async move { s.api("PATCH", &path, Some(&token), Some(body)).await }
    };

    // The county's administrator: title, specialty, department within the county.
    let (st, a) = patch(
        &county_admin,
        &chen_id,
        json!({"title": "主任医师", "specialty": "Cardiology", "department_id": neurology}),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["title"], "主任医师");
    assert_eq!(a["department"]["id"], neurology.as_str());
    // Role changes take effect on the next call: a specialist cannot open rooms.
    let (st, a) = patch(&county_admin, &chen_id, json!({"role": "specialist"})).await;
    assert_eq!((st, a["role"].as_str()), (200, Some("specialist")), "{a}");
    let (st, _) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(&chen),
            Some(json!({"title": "Follow-up"})),
        )
        .await;
    assert_eq!(st, 403, "the old session has the new role");
    // The refusals of an institution's administrator.
    for (body, why) in [
        (json!({"institution_id": town}), "moving an account away"),
        (json!({"role": "network_supervisor"}), "a network-wide role"),
        (json!({"role": "admin"}), "the network's administrator role"),
    ] {
        let (st, e) = patch(&county_admin, &chen_id, body).await;
        assert_eq!((st, code(&e)), (403, "forbidden"), "{why}: {e}");
    }
    let (st, e) = patch(&county_admin, &sup_id, json!({"title": "x"})).await;
    assert_eq!(
        (st, code(&e)),
        (403, "forbidden"),
        "a network-wide account: {e}"
    );
    let (st, e) = patch(&town_admin, &chen_id, json!({"title": "x"})).await;
    assert_eq!(
        (st, code(&e)),
        (404, "not_found"),
        "another institution's: {e}"
    );
    let (st, e) = patch(&chen, &chen_id, json!({"title": "x"})).await;
    assert_eq!((st, code(&e)), (403, "forbidden"), "a clinician: {e}");
    // Bad fields, each with its reason; nothing changes.
    for (body, expect) in [
        (json!({"display_name": "Dr.\u{202E}gnaW"}), "display_name"),
        (json!({"role": "surgeon"}), "role"),
        (
            json!({"department_id": cardiology, "institution_id": town}),
            "department",
        ),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (st, e) = patch(&admin, &chen_id, body).await;
        assert_eq!((st, code(&e)), (400, "invalid_request"), "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(expect),
            "{expect}: {e}"
        );
    }
    let (st, e) = patch(&admin, "u_nobodyhereatall", json!({"title": "x"})).await;
    assert_eq!(st, 404, "{e}");
    // Nobody changes their own role.
    let (st, e) = patch(&admin, &admin_id, json!({"role": "doctor"})).await;
    assert_eq!((st, code(&e)), (409, "conflict"), "{e}");
    // The network's administrator moves them to the township (the county department does
    // not follow) and renames them.
    let (st, a) = patch(
        &admin,
        &chen_id,
        json!({"institution_id": town, "display_name": "Dr. Chen Jie"}),
    )
    .await;
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["institution"]["id"], town);
    assert_eq!(a["department"], Value::Null);
    assert_eq!(a["display_name"], "Dr. Chen Jie");
    let (st, a) = patch(&town_admin, &chen_id, json!({"department_id": town_gp})).await;
    assert_eq!(st, 200, "now the township's to change: {a}");
    let (st, a) = patch(&admin, &chen_id, json!({"department_id": null})).await;
    assert_eq!((st, a["department"].clone()), (200, Value::Null), "{a}");

    // Two administrators at once, from the same account: one wins, the other is told.
    let (a1, a2) = tokio::join!(
        patch(&admin, &chen_id, json!({"role": "doctor"})),
        patch(&town_admin, &chen_id, json!({"role": "pharmacist"})),
    );
    let mut statuses = [a1.0, a2.0];
    statuses.sort();
    assert!(
        statuses == [200, 200] || statuses == [200, 409],
        "{statuses:?}: {} {}",
        a1.1,
        a2.1
    );

    // Every change and refusal is in the trail.
    let (_, sup) = s
        .api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "regulator", "password": common::ACCOUNT_PASSWORD})),
        )
        .await;
    let sup = sup["token"].as_str().unwrap().to_owned();
    let updated = entries_of(s, &sup, "org.account_updated").await;
    assert!(updated.len() >= 5, "{updated:?}");
    assert!(
        updated.iter().all(|e| e["object_id"] == chen_id.as_str()
            && !e["detail"].as_str().unwrap().contains("Chen Jie")),
        "names stay out of the trail"
    );
    assert!(entries_of(s, &sup, "access.denied").await.len() >= 5);
}

#[tokio::test]
async fn account_changes_on_sqlite() {
    let s = TestServer::start().await;
    account_changes(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn account_changes_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    account_changes(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

/// The accounts list a page at a time, searched on the server: every account once over the
/// pages, in username order; the search matches part of a username or a name in any case, and
/// LIKE's own characters only literally; an institution's administrator lists their own
/// institution only and is refused (and recorded) asking for another; bad paging is 400.
async fn accounts_by_page_and_search(s: &TestServer) {
    let admin = s.account("netadmin", AccountRole::Admin).await;
    let sup = s.account("regulator", AccountRole::NetworkSupervisor).await;
    let county = s.institution("县人民医院").await;
    let city = s.institution("市中心医院").await;
    let (_, city_admin) = s
        .placed_account(
            "city-admin",
            AccountRole::InstitutionAdmin,
            Place {
                institution: &city,
                ..Default::default()
            },
        )
        .await;
    let db = &s.server().db;
    let place = |id: &str| huizhen::domain::ids::InstitutionId::parse(id).unwrap();
    for n in 0..25 {
        let username = format!("c{n:02}");
        let name = format!("县医生{n:02}");
        db.create_account(&huizhen::storage::NewAccount {
            username: &username,
            display_name: &name,
            role: AccountRole::Doctor,
            password_hash: "x",
            institution: &place(&county),
            department: None,
            title: "",
            specialty: "",
        })
        .await
        .unwrap();
    }
    for (username, name) in [
        ("Wang.Li", "王力"),
        ("under_score", "Under Score"),
        ("t1", "Ma"),
    ] {
        db.create_account(&huizhen::storage::NewAccount {
            username,
            display_name: name,
            role: AccountRole::Specialist,
            password_hash: "x",
            institution: &place(&city),
            department: None,
            title: "",
            specialty: "",
        })
        .await
        .unwrap();
    }
    let list = |token: String, query: String| async move {
        s.api(
            "GET",
            &format!("/api/v1/accounts{query}"),
            Some(&token),
            None,
        )
        .await
    };
    let usernames = |page: &Value| -> Vec<String> {
        page["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["username"].as_str().unwrap().to_owned())
            .collect()
    };

    // Every account, 7 at a time (29 of them, and those the test server made).
    let everyone = s.server().db.list_users().await.unwrap();
    let mut expected: Vec<String> = everyone.iter().map(|u| u.username.clone()).collect();
    expected.sort();
    let (mut seen, mut after, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let (st, page) = list(admin.clone(), format!("?limit=7&after={after}")).await;
        assert_eq!(st, 200, "{page}");
        assert_eq!(page["total"], expected.len(), "{page}");
        let names = usernames(&page);
        assert!(names.len() <= 7);
        seen.extend(names);
        pages += 1;
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str));
                after = next.to_owned();
            }
            None => break,
        }
        assert!(pages < 20, "the pages never end");
    }
    // In the database's order of usernames (PostgreSQL's collation need not be bytewise).
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, expected,
        "each account once over the pages: {seen:?}"
    );
    // A department's name comes with each account as before.
    let (_, page) = list(admin.clone(), "?q=WANG.L".into()).await;
    assert_eq!(usernames(&page), ["Wang.Li"], "any case: {page}");
    assert_eq!(page["accounts"][0]["institution"]["name"], "市中心医院");
    assert_eq!(page["next"], Value::Null);
    let (_, page) = list(admin.clone(), "?q=%E5%8E%BF%E5%8C%BB%E7%94%9F0".into()).await;
    assert_eq!(
        page["total"], 10,
        "part of the name shown (县医生0): {page}"
    );
    let (_, page) = list(admin.clone(), "?q=_".into()).await;
    assert_eq!(
        usernames(&page),
        ["under_score"],
        "_ is only itself: {page}"
    );
    let (_, page) = list(admin.clone(), "?q=%25".into()).await;
    assert_eq!(page["total"], 0, "% is only itself: {page}");
    let (_, page) = list(admin.clone(), format!("?institution_id={city}")).await;
    let mut city_names = usernames(&page);
    city_names.sort();
    assert_eq!(
        city_names,
        ["Wang.Li", "city-admin", "t1", "under_score"],
        "{page}"
    );

    // The city's administrator: their own institution, whatever they ask for.
    let (st, page) = list(city_admin.clone(), String::new()).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(page["total"], 4, "{page}");
    assert!(
        page["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["institution"]["id"] == city.as_str())
    );
    let (st, b) = list(city_admin.clone(), format!("?institution_id={county}")).await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
    let denied = entries_of(s, &sup, "access.denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["detail"].to_string().contains("account.list")),
        "{denied:?}"
    );

    // Bad paging is a clear 400.
    for query in ["?limit=0", "?limit=201", "?limit=x", "?sort=name"] {
        let (st, b) = list(admin.clone(), query.into()).await;
        assert_eq!((st, code(&b)), (400, "invalid_request"), "{query}: {b}");
    }
    let long = "医".repeat(65);
    let (st, b) = list(admin.clone(), format!("?q={long}")).await;
    assert_eq!((st, code(&b)), (400, "invalid_request"), "{b}");
    // A doctor lists no accounts at all.
    let (_, doctor) = s
        .placed_account(
            "county-doctor",
            AccountRole::Doctor,
            Place {
                institution: &county,
                ..Default::default()
            },
        )
        .await;
    let (st, b) = list(doctor, String::new()).await;
    assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
}

common::on_both_databases!(
    #[tokio::test]
    accounts_by_page_and_search,
    |_| {}
);
