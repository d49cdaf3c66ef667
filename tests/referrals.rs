//! Consultation requests (referrals) over the real server, on SQLite and PostgreSQL: a township
//! doctor asks a county hospital's cardiology department; the department's inbox (urgent
//! first), forwarding to a named specialist, a counter-proposed time, scheduling (the room, its
//! care team, entering it), the consultation, its report and closing; and the refusals: the
//! wrong side, accepting twice or after a cancellation, a past time, clinicians of another
//! department or institution probing, two specialists accepting at once. Every step and
//! refusal is looked for in the audit trail.

use crate::common;

use crate::common::{ACCOUNT_PASSWORD, Place, TestServer, action_outcomes};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const T: std::time::Duration = std::time::Duration::from_secs(10);

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ids(list: &Value) -> Vec<&str> {
    list["referrals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

fn new_request(department: &str, urgency: &str, reason: &str) -> Value {
    let t = now();
    json!({
        "target_department_id": department,
        "patient_ref": "  P-2024-0042 ",
        "reason": reason,
        "question": "Exercise ECG attached.\nIs this stable angina, and does he need angiography?",
        "urgency": urgency,
        "proposed_times": [
            {"start": t + DAY, "minutes": 30},
            {"start": t + 2 * DAY, "minutes": 30},
        ],
    })
}

struct Step<'a> {
    s: &'a TestServer,
    referral: &'a str,
}

impl Step<'_> {
    async fn post(&self, token: &str, action: &str, body: Option<Value>) -> (u16, Value) {
        self.s
            .api(
                "POST",
                &format!("/api/v1/referrals/{}/{action}", self.referral),
                Some(token),
                body,
            )
            .await
    }

    async fn get(&self, token: &str) -> (u16, Value) {
        self.s
            .api(
                "GET",
                &format!("/api/v1/referrals/{}", self.referral),
                Some(token),
                None,
            )
            .await
    }
}

fn place<'a>(institution: &'a str, department: Option<&'a str>, name: &'a str) -> Place<'a> {
    Place {
        institution,
        department,
        name: Some(name),
        ..Default::default()
    }
}

async fn mailbox(s: &TestServer, token: &str, name: &str) -> Value {
    let (st, b) = s
        .api(
            "GET",
            &format!("/api/v1/referrals?box={name}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["box"], name);
    b
}

/// Audit entries about one object (a referral), oldest first, as "action:outcome".
async fn entries_about(s: &TestServer, supervisor: &str, object: &str) -> Vec<String> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(supervisor), None)
        .await;
    assert_eq!(st, 200, "{page}");
    let about: Vec<Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["object_id"] == object)
        .cloned()
        .collect();
    action_outcomes(&about)
}

async fn referral_flow(s: &TestServer) {
    // The network: a township clinic, a county hospital with cardiology and neurology, and
    // another city's hospital.
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let neurology = s.department(&county, "Neurology").await;
    let city = s.institution("City Central Hospital").await;
    let city_cardiology = s.department(&city, "Cardiology").await;
    let (doc_id, doc) = s
        .placed_account(
            "town_doc",
            AccountRole::Doctor,
            place(&town, None, "Dr. Li"),
        )
        .await;
    let (a_id, a) = s
        .placed_account(
            "cardio_a",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let (b_id, b) = s
        .placed_account(
            "cardio_b",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Dr. Chen"),
        )
        .await;
    let (neuro_id, neuro) = s
        .placed_account(
            "neuro",
            AccountRole::Specialist,
            place(&county, Some(neurology.as_str()), "Dr. Sun"),
        )
        .await;
    let (_, far) = s
        .placed_account(
            "far",
            AccountRole::Specialist,
            place(&city, Some(city_cardiology.as_str()), "Dr. Zhou"),
        )
        .await;
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;

    // Bad requests are refused with their own codes, and nothing is stored.
    let create = |token: &str, body: Value| {
        let token = token.to_owned();
        async move {
            s.api("POST", "/api/v1/referrals", Some(&token), Some(body))
                .await
        }
    };
    let mut past = new_request(&cardiology, "routine", "Chest pain");
    past["proposed_times"][0]["start"] = json!(now() - DAY);
    let (st, e) = create(&doc, past).await;
    assert_eq!((st, code(&e)), (400, "slot_in_past"), "{e}");
    let mut to_neuro = new_request(&cardiology, "routine", "Chest pain");
    to_neuro["target_specialist_id"] = json!(neuro_id);
    let (st, e) = create(&doc, to_neuro).await;
    assert_eq!((st, code(&e)), (400, "not_in_department"), "{e}");
    let (st, e) = create(&doc, new_request(&cardiology, "whenever", "Chest pain")).await;
    assert_eq!((st, code(&e)), (400, "invalid_request"), "{e}");
    let (st, e) = create(&doc, new_request(&cardiology, "routine", " \n ")).await;
    assert_eq!((st, code(&e)), (400, "field_empty"), "{e}");
    let (st, e) = create(
        &supervisor,
        new_request(&cardiology, "routine", "Chest pain"),
    )
    .await;
    assert_eq!((st, code(&e)), (403, "forbidden"), "{e}");
    assert!(ids(&mailbox(s, &doc, "outbox").await).is_empty());

    // A routine request, then an urgent one, to the department as a whole.
    let (st, routine) = create(
        &doc,
        new_request(&cardiology, "routine", "Palpitations\nfor a month"),
    )
    .await;
    assert_eq!(st, 201, "{routine}");
    assert_eq!(routine["state"], "requested");
    assert_eq!(routine["side"], "requester");
    assert_eq!(routine["patient_ref"], "P-2024-0042");
    assert_eq!(routine["urgent"], false);
    assert_eq!(routine["requester"]["id"], doc_id.as_str());
    assert_eq!(routine["target"]["department"]["name"], "Cardiology");
    assert_eq!(
        routine["target"]["department"]["institution"]["name"],
        "County People's Hospital"
    );
    assert_eq!(routine["target"]["specialist"], Value::Null);
    assert_eq!(routine["proposed_times"].as_array().unwrap().len(), 2);
    assert_eq!(routine["events"][0]["action"], "create");
    let (st, urgent) = create(
        &doc,
        new_request(&cardiology, "urgent", "Chest pain on exertion"),
    )
    .await;
    assert_eq!(st, 201, "{urgent}");
    let r1 = routine["id"].as_str().unwrap().to_owned();
    let r2 = urgent["id"].as_str().unwrap().to_owned();

    // The department's inbox: the urgent one first, marked.
    let inbox = mailbox(s, &a, "department").await;
    assert_eq!(ids(&inbox), [r2.as_str(), r1.as_str()]);
    assert_eq!(inbox["referrals"][0]["urgent"], true);
    assert_eq!(inbox["referrals"][0]["side"], "receiver");
    assert_eq!(
        ids(&mailbox(s, &doc, "outbox").await),
        [r2.as_str(), r1.as_str()]
    );
    assert!(ids(&mailbox(s, &a, "inbox").await).is_empty());
    assert!(ids(&mailbox(s, &neuro, "department").await).is_empty());
    assert!(ids(&mailbox(s, &far, "department").await).is_empty());
    let (st, e) = s
        .api("GET", "/api/v1/referrals?box=all", Some(&a), None)
        .await;
    assert_eq!((st, code(&e)), (400, "invalid_request"));

    let urgent_steps = Step { s, referral: &r2 };
    // Clinicians of another department or institution: no such request, on the record.
    for token in [&neuro, &far] {
        let (st, e) = urgent_steps.get(token).await;
        assert_eq!((st, code(&e)), (404, "not_found"), "{e}");
        let (st, e) = urgent_steps
            .post(
                token,
                "accept",
                Some(json!({"start": now() + DAY, "minutes": 30})),
            )
            .await;
        assert_eq!((st, code(&e)), (404, "not_found"), "{e}");
    }
    let (st, _) = s
        .api(
            "GET",
            "/api/v1/referrals/ref_0000000000000000",
            Some(&a),
            None,
        )
        .await;
    assert_eq!(st, 404);
    // The requester cannot answer their own request.
    let (st, e) = urgent_steps.post(&doc, "accept", None).await;
    assert_eq!((st, code(&e)), (403, "wrong_side"), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requester")
    );
    let (st, e) = urgent_steps.post(&a, "dance", None).await;
    assert_eq!(st, 404, "{e}");

    // Forwarded to a named specialist (taking requests): it leaves the department's box for
    // theirs, and the colleague who forwarded it no longer sees it.
    let (st, _) = s
        .api(
            "PUT",
            "/api/v1/me/availability",
            Some(&b),
            Some(json!({"accepts_referrals": true})),
        )
        .await;
    assert_eq!(st, 204);
    let (st, e) = urgent_steps
        .post(&a, "forward", Some(json!({"specialist_id": neuro_id})))
        .await;
    assert_eq!((st, code(&e)), (400, "not_in_department"), "{e}");
    let (st, fwd) = urgent_steps
        .post(&a, "forward", Some(json!({"specialist_id": b_id})))
        .await;
    assert_eq!(st, 200, "{fwd}");
    assert_eq!(fwd["state"], "requested");
    assert_eq!(fwd["target"]["specialist"]["id"], b_id.as_str());
    assert_eq!(fwd["target"]["specialist"]["display_name"], "Dr. Chen");
    assert_eq!(urgent_steps.get(&a).await.0, 404);
    assert_eq!(ids(&mailbox(s, &b, "inbox").await), [r2.as_str()]);
    assert_eq!(ids(&mailbox(s, &b, "department").await), [r1.as_str()]);

    // The specialist proposes another time (a past one is refused); the requester agrees.
    let (st, e) = urgent_steps
        .post(
            &b,
            "propose",
            Some(json!({"start": now() - 2 * DAY, "minutes": 30})),
        )
        .await;
    assert_eq!((st, code(&e)), (400, "slot_in_past"), "{e}");
    let (st, e) = urgent_steps
        .post(
            &b,
            "propose",
            Some(json!({"start": now() + DAY, "minutes": 500})),
        )
        .await;
    assert_eq!((st, code(&e)), (400, "bad_duration"), "{e}");
    let at = now() + 3 * DAY;
    let (st, proposed) = urgent_steps
        .post(&b, "propose", Some(json!({"start": at, "minutes": 45})))
        .await;
    assert_eq!(st, 200, "{proposed}");
    assert_eq!(proposed["state"], "counter_proposed");
    assert_eq!(proposed["state_by"], "receiver");
    assert_eq!(proposed["slot"]["start"], at);
    assert_eq!(proposed["room_id"], Value::Null);
    let (st, scheduled) = urgent_steps.post(&doc, "accept", None).await;
    assert_eq!(st, 200, "{scheduled}");
    assert_eq!(scheduled["state"], "scheduled");
    assert_eq!(scheduled["slot"]["start"], at);
    assert_eq!(scheduled["room_slot"]["start"], at);
    assert_eq!(scheduled["room_slot"]["minutes"], 45);
    let room = scheduled["room_id"].as_str().expect("a room").to_owned();
    // Accepting twice: refused, whoever tries.
    for token in [&doc, &b] {
        let (st, e) = urgent_steps.post(token, "accept", None).await;
        assert_eq!((st, code(&e)), (409, "not_now"), "{e}");
    }

    // The room: held by the township clinic, both clinicians on its care team; the
    // specialist sees it and enters it, their colleague does not see it.
    let (st, listed) = s.api("GET", "/api/v1/rooms", Some(&b), None).await;
    assert_eq!(st, 200);
    assert!(
        listed["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == room.as_str() && r["slot_start"] == at && r["slot_minutes"] == 45),
        "{listed}"
    );
    let (st, shown) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), Some(&b), None)
        .await;
    assert_eq!(st, 200, "{shown}");
    assert_eq!(shown["title"], "Chest pain on exertion");
    assert_eq!(shown["patient_ref"], "P-2024-0042");
    assert_eq!(shown["created_by"], doc_id.as_str());
    // The room shows its agreed time (the consoles' day view lists it by it).
    assert_eq!(shown["slot_start"], at, "{shown}");
    assert_eq!(shown["slot_minutes"], 45, "{shown}");
    // A room opened without a referral has no agreed time.
    let (st, plain) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(&doc),
            Some(json!({"title": "Walk-in follow-up"})),
        )
        .await;
    assert_eq!(st, 201, "{plain}");
    assert_eq!(plain["slot_start"], Value::Null, "{plain}");
    assert_eq!(plain["slot_minutes"], Value::Null, "{plain}");
    let (st, team) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/care-team"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 200, "{team}");
    let mut members: Vec<(String, String)> = team["care_team"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["account"]["id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    members.sort();
    let mut expected = vec![
        (doc_id.clone(), "doctor".to_owned()),
        (b_id.clone(), "specialist".to_owned()),
    ];
    expected.sort();
    assert_eq!(members, expected);
    let seat = s.enter(&room, Some(&b)).await;
    assert_eq!(
        s.api("GET", &format!("/api/v1/rooms/{room}"), Some(&a), None)
            .await
            .0,
        404
    );

    // The consultation: started; closed before the report only with a reason (below,
    // `closing_without_a_report`).
    let (st, started) = urgent_steps.post(&doc, "start", None).await;
    assert_eq!(st, 200, "{started}");
    assert_eq!(started["state"], "in_consultation");
    let (st, e) = urgent_steps.post(&doc, "close", None).await;
    assert_eq!((st, code(&e)), (400, "reason_required"), "{e}");
    let specialist = s.member_with(&seat, "Dr. Chen").await;
    let (st, report) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/records"),
            Some(&specialist.access),
            Some(json!({
                "kind": "diagnosis_report",
                "body": {
                    "findings": "ST depression V4-V6 at 7 METs",
                    "impression": "Stable angina",
                    "recommendation": "Coronary angiography; start a beta-blocker",
                },
                "issue": true,
                "password": ACCOUNT_PASSWORD,
            })),
        )
        .await;
    assert_eq!(st, 201, "{report}");
    assert_eq!(report["status"], "issued");
    let (st, reported) = urgent_steps.get(&doc).await;
    assert_eq!(st, 200);
    assert_eq!(reported["state"], "report_issued", "{reported}");
    let (st, closed) = urgent_steps.post(&doc, "close", None).await;
    assert_eq!(st, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["open"], false);
    let steps: Vec<&str> = closed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "create",
            "forward",
            "propose_time",
            "accept",
            "start",
            "issue_report",
            "close"
        ]
    );
    assert_eq!(closed["events"][5]["actor"]["id"], b_id.as_str());
    assert_eq!(closed["events"][5]["side"], "receiver");
    assert_eq!(
        closed["events"][1]["detail"]["to"]["specialist"]["user"],
        b_id.as_str()
    );
    // Closed requests come after open ones in the outbox.
    assert_eq!(
        ids(&mailbox(s, &doc, "outbox").await),
        [r1.as_str(), r2.as_str()]
    );

    // Two specialists of the department accept the routine request at the same moment with
    // different times: one wins, the other is told.
    let routine_steps = Step { s, referral: &r1 };
    let (x, y) = tokio::join!(
        routine_steps.post(
            &a,
            "accept",
            Some(json!({"start": now() + DAY, "minutes": 30}))
        ),
        routine_steps.post(
            &b,
            "accept",
            Some(json!({"start": now() + 2 * DAY, "minutes": 30}))
        ),
    );
    let (won, lost, winner) = match (x.0, y.0) {
        (200, 409) => (x.1, y.1, &a_id),
        (409, 200) => (y.1, x.1, &b_id),
        other => panic!("one accept must win: {other:?} {} {}", x.1, y.1),
    };
    assert!(matches!(code(&lost), "conflict" | "not_now"), "{lost}");
    assert_eq!(won["state"], "scheduled");
    assert_eq!(won["receiver"]["id"], winner.as_str());
    let room1 = won["room_id"].as_str().unwrap().to_owned();
    let (_, team) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room1}/care-team"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(team["care_team"].as_array().unwrap().len(), 2, "{team}");

    // Cancelled (a reason is required): the room ends, and accepting is refused from then on.
    let (st, e) = routine_steps.post(&doc, "cancel", Some(json!({}))).await;
    assert_eq!((st, code(&e)), (400, "reason_required"), "{e}");
    let (st, e) = routine_steps
        .post(&a, "cancel", Some(json!({"reason": "no"})))
        .await;
    assert_eq!((st, code(&e)), (403, "wrong_side"), "{e}");
    let (st, cancelled) = routine_steps
        .post(
            &doc,
            "cancel",
            Some(json!({"reason": "Patient transferred"})),
        )
        .await;
    assert_eq!(st, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["state_by"], "requester");
    assert_eq!(cancelled["state_reason"], "Patient transferred");
    let (_, shown) = s
        .api("GET", &format!("/api/v1/rooms/{room1}"), Some(&doc), None)
        .await;
    assert_eq!(shown["status"], "ended", "{shown}");
    for token in [&a, &b] {
        let (st, e) = routine_steps.post(token, "accept", None).await;
        assert_eq!((st, code(&e)), (409, "not_now"), "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cancelled"),
            "{e}"
        );
    }

    // The audit trail has every step and every refusal.
    let trail = entries_about(s, &supervisor, &r2).await;
    for expected in [
        "referral.created:ok",
        "referral.accepted:denied",
        "referral.forwarded:denied",
        "referral.forwarded:ok",
        "referral.time_proposed:denied",
        "referral.time_proposed:ok",
        "referral.accepted:ok",
        "referral.scheduled:ok",
        "referral.started:ok",
        "referral.closed:denied",
        "referral.report_issued:ok",
        "referral.closed:ok",
    ] {
        assert!(
            trail.contains(&expected.to_owned()),
            "{expected}: {trail:?}"
        );
    }
    let probes = trail
        .iter()
        .filter(|e| *e == "access.denied:denied")
        .count();
    assert!(probes >= 4, "{trail:?}");
    let rooms_trail = action_outcomes(&s.audit_entries(&supervisor, &room).await);
    for expected in [
        "room.created:ok",
        "care_team.added:ok",
        "care_team.seat_entered:ok",
        "referral.accepted:ok",
        "referral.scheduled:ok",
        "referral.started:ok",
        "referral.report_issued:ok",
        "referral.closed:ok",
    ] {
        assert!(
            rooms_trail.contains(&expected.to_owned()),
            "{expected}: {rooms_trail:?}"
        );
    }
    let routine_trail = entries_about(s, &supervisor, &r1).await;
    for expected in [
        "referral.created:ok",
        "referral.accepted:ok",
        "referral.cancelled:denied",
        "referral.cancelled:ok",
        "referral.accepted:denied",
    ] {
        assert!(
            routine_trail.contains(&expected.to_owned()),
            "{expected}: {routine_trail:?}"
        );
    }
    let room1_trail = action_outcomes(&s.audit_entries(&supervisor, &room1).await);
    assert!(
        room1_trail.contains(&"room.ended:ok".to_owned()),
        "{room1_trail:?}"
    );
}

#[tokio::test]
async fn referrals_on_sqlite() {
    let s = TestServer::start().await;
    referral_flow(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn referrals_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    referral_flow(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

/// A department's queue: any of its doctors and specialists admits the patient who has waited
/// longest in the consultations asked of it, joining the care team on the way; nobody else may.
/// (Concurrent takers: tests/department_queue.rs.)
async fn department_queue(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let neurology = s.department(&county, "Neurology").await;
    let (_, doc) = s
        .placed_account("q_doc", AccountRole::Doctor, place(&town, None, "Dr. Li"))
        .await;
    let (_, zhao) = s
        .placed_account(
            "q_zhao",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let (chen_id, chen) = s
        .placed_account(
            "q_chen",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Dr. Chen"),
        )
        .await;
    let (_, sun) = s
        .placed_account(
            "q_sun",
            AccountRole::Specialist,
            place(&county, Some(neurology.as_str()), "Dr. Sun"),
        )
        .await;
    let queue = format!("/api/v1/departments/{cardiology}/queue");
    let next = format!("{queue}/next");

    // A request to cardiology, accepted by Prof. Zhao for a time that has nearly come.
    let (st, request) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&doc),
            Some(new_request(&cardiology, "urgent", "Chest pain on exertion")),
        )
        .await;
    assert_eq!(st, 201, "{request}");
    let steps = Step {
        s,
        referral: request["id"].as_str().unwrap(),
    };
    let (st, scheduled) = steps
        .post(
            &zhao,
            "accept",
            Some(json!({"start": now() + 120, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{scheduled}");
    let room = scheduled["room_id"].as_str().unwrap().to_owned();

    // Nobody waits yet: the queue lists the consultation; there is no one to take.
    let (st, listed) = s.api("GET", &queue, Some(&chen), None).await;
    assert_eq!(st, 200, "{listed}");
    assert_eq!(
        listed["rooms"],
        json!([{"room_id": room, "title": "Chest pain on exertion",
                "slot_start": scheduled["room_slot"]["start"], "slot_minutes": 30,
                "waiting": 0, "waiting_since": null, "on_care_team": false}])
    );
    let (st, e) = s.api("POST", &next, Some(&chen), None).await;
    assert_eq!((st, code(&e)), (409, "nobody_waiting"), "{e}");

    // The patient arrives and waits.
    let (st, link) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&doc),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let patient = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    patient
        .send_json(
            &json!({"type": "join", "v": 1, "token": link["token"], "name": "Wang",
                           "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    let waiting = patient
        .next_event_of(&["waiting", "error"], T)
        .await
        .unwrap();
    assert_eq!(waiting["type"], "waiting", "{waiting}");

    // A neurologist may neither see nor take cardiology's queue.
    for (method, path) in [("GET", &queue), ("POST", &next)] {
        let (st, e) = s.api(method, path, Some(&sun), None).await;
        assert_eq!((st, code(&e)), (403, "forbidden"), "{method} {path}: {e}");
    }
    // Dr. Chen, of the department but not on the care team, sees who waits and takes them.
    let (_, listed) = s.api("GET", &queue, Some(&chen), None).await;
    assert_eq!(listed["rooms"][0]["waiting"], 1, "{listed}");
    assert!(listed["rooms"][0]["waiting_since"].is_i64(), "{listed}");
    assert!(!listed.to_string().contains("Wang"), "no names: {listed}");
    let (st, taken) = s.api("POST", &next, Some(&chen), None).await;
    assert_eq!(st, 200, "{taken}");
    assert_eq!(taken["room_id"], room.as_str());
    assert_eq!(taken["role"], "specialist");
    let (_, team) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{room}/care-team"),
            Some(&chen),
            None,
        )
        .await;
    assert!(
        team["care_team"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["account"]["id"] == chen_id.as_str()),
        "{team}"
    );
    // Taking the patient admitted them; Dr. Chen follows them in with the seat's token.
    let admitted = patient
        .next_event_of(&["joined", "error"], T)
        .await
        .unwrap();
    assert_eq!(admitted["type"], "joined", "{admitted}");
    assert_eq!(taken["participant_id"], admitted["you"]["id"], "{taken}");
    let desk = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    let joined = desk
        .join(taken["token"].as_str().unwrap(), "", false, false)
        .await
        .unwrap();
    assert_eq!(joined["you"]["role"], "specialist", "{joined}");
    // Taking again: already on the care team, and nobody waits any more.
    let mut emptied = false;
    for _ in 0..50 {
        let (_, listed) = s.api("GET", &queue, Some(&chen), None).await;
        if listed["rooms"][0]["waiting"] == 0 {
            assert_eq!(listed["rooms"][0]["on_care_team"], true, "{listed}");
            emptied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(emptied, "the queue empties once the patient is in");
    let (st, e) = s.api("POST", &next, Some(&zhao), None).await;
    assert_eq!((st, code(&e)), (409, "nobody_waiting"), "{e}");

    // The requester cancels before it started: everyone in its room is told it was called
    // off (it never took place), not that a doctor ended it.
    let (st, cancelled) = steps
        .post(
            &doc,
            "cancel",
            Some(json!({"reason": "Admitted to hospital"})),
        )
        .await;
    assert_eq!(st, 200, "{cancelled}");
    for c in [&patient, &desk] {
        let ended = c.next_event("room_ended", T).await.unwrap();
        assert_eq!(ended["reason"], "called_off", "{ended}");
        assert_eq!(c.wait_closed(T).await.unwrap(), Some(4000));
    }
}

#[tokio::test]
async fn department_queue_on_sqlite() {
    let s = TestServer::start().await;
    department_queue(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn department_queue_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    department_queue(&s).await;
    s.stop().await;
    pg.drop_db().await;
}

/// A consultation that ends without a report (the patient never came, or the question was
/// settled in the call) does not hold its request open for ever: either side may close it in
/// consultation, with a reason, which both sides see. A room that already ended stays as it
/// ended; one still open ends with the request.
async fn closing_without_a_report(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, doc) = s
        .placed_account("nr_doc", AccountRole::Doctor, place(&town, None, "Dr. Li"))
        .await;
    let (_, zhao) = s
        .placed_account(
            "nr_zhao",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let supervisor = s
        .account("nr_supervisor", AccountRole::NetworkSupervisor)
        .await;
    // Two requests, each scheduled and started.
    let mut started = Vec::new();
    for reason in ["Palpitations", "Syncope"] {
        let (st, request) = s
            .api(
                "POST",
                "/api/v1/referrals",
                Some(&doc),
                Some(new_request(&cardiology, "routine", reason)),
            )
            .await;
        assert_eq!(st, 201, "{request}");
        let id = request["id"].as_str().unwrap().to_owned();
        let steps = Step { s, referral: &id };
        let t = &request["proposed_times"][0];
        let (st, b) = steps
            .post(
                &zhao,
                "accept",
                Some(json!({"start": t["start"], "minutes": t["minutes"]})),
            )
            .await;
        assert_eq!((st, b["state"].as_str()), (200, Some("scheduled")), "{b}");
        let (st, b) = steps.post(&doc, "start", None).await;
        assert_eq!(
            (st, b["state"].as_str()),
            (200, Some("in_consultation")),
            "{b}"
        );
        started.push((id, b["room_id"].as_str().unwrap().to_owned()));
    }

    // The first: the patient never came and the doctor ended the consultation. No report can
    // be issued in an ended room; the request is closed by the specialist, saying why.
    let (first, room) = &started[0];
    let steps = Step { s, referral: first };
    let (st, b) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/end"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 204, "{b}");
    for body in [None, Some(json!({"reason": "  "}))] {
        let (st, e) = steps.post(&zhao, "close", body).await;
        assert_eq!((st, code(&e)), (400, "reason_required"), "{e}");
    }
    let (st, e) = steps
        .post(&zhao, "close", Some(json!({"reason": "Dr. \u{202e}roF"})))
        .await;
    assert_eq!((st, code(&e)), (400, "hidden_characters"), "{e}");
    let (st, closed) = steps
        .post(
            &zhao,
            "close",
            Some(json!({"reason": " The patient did not come; please book again. "})),
        )
        .await;
    assert_eq!(st, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["open"], false);
    assert_eq!(
        closed["state_reason"],
        "The patient did not come; please book again."
    );
    let last = closed["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "close");
    assert_eq!(last["side"], "receiver");
    assert_eq!(
        last["detail"]["reason"],
        "The patient did not come; please book again."
    );
    // The requester sees it closed, with the reason; nothing more applies.
    let (_, seen) = steps.get(&doc).await;
    assert_eq!(seen["state"], "closed", "{seen}");
    assert_eq!(seen["state_reason"], closed["state_reason"]);
    let (st, e) = steps
        .post(&doc, "close", Some(json!({"reason": "again"})))
        .await;
    assert_eq!((st, code(&e)), (409, "not_now"), "{e}");
    // The room stays as the doctor ended it: ended once, not again by the close.
    let room_trail = action_outcomes(&s.audit_entries(&supervisor, room).await);
    let ended = room_trail.iter().filter(|e| *e == "room.ended:ok").count();
    assert_eq!(ended, 1, "{room_trail:?}");

    // The second: closed while its room is still open, by both sides at once, twenty times
    // over: one close wins (its reason is the one kept, its step the one recorded), every
    // other is refused, and the room ends once.
    let (second, room) = &started[1];
    let steps = Step {
        s,
        referral: second,
    };
    let tries = futures_util::future::join_all((0..20).map(|i| {
        let (who, reason) = if i % 2 == 0 {
            (&doc, format!("Settled on the telephone ({i})"))
        } else {
            (&zhao, format!("Seen elsewhere ({i})"))
        };
        let steps = &steps;
        async move {
            steps
                .post(who, "close", Some(json!({"reason": reason})))
                .await
        }
    }))
    .await;
    let won: Vec<&Value> = tries
        .iter()
        .filter(|(st, _)| *st == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "one close wins: {tries:?}");
    // Told it lost the race (`conflict`), or that the request was closed already (`not_now`).
    for (st, e) in tries.iter().filter(|(st, _)| *st != 200) {
        assert_eq!(*st, 409, "{e}");
        assert!(matches!(code(e), "conflict" | "not_now"), "{e}");
    }
    let closed = won[0].clone();
    assert_eq!(closed["state"], "closed");
    let reason = closed["state_reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("Settled on the telephone") || reason.starts_with("Seen elsewhere"),
        "{closed}"
    );
    let closes: Vec<&Value> = closed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "close")
        .collect();
    assert_eq!(closes.len(), 1, "{closed}");
    assert_eq!(closes[0]["detail"]["reason"], reason.as_str());
    let (_, seen) = steps.get(&zhao).await;
    assert_eq!(seen["state_reason"], reason.as_str(), "{seen}");
    let (_, shown) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), Some(&doc), None)
        .await;
    assert_eq!(shown["status"], "ended", "{shown}");
    let trail = entries_about(s, &supervisor, second).await;
    let count = |trail: &[String], what: &str| trail.iter().filter(|e| *e == what).count();
    assert_eq!(count(&trail, "referral.closed:ok"), 1, "{trail:?}");
    let room_trail = action_outcomes(&s.audit_entries(&supervisor, room).await);
    assert_eq!(count(&room_trail, "room.ended:ok"), 1, "{room_trail:?}");
    // Neither is open in any mailbox any more.
    for (token, name) in [(&doc, "outbox"), (&zhao, "inbox")] {
        let b = mailbox(s, token, name).await;
        for r in b["referrals"].as_array().unwrap() {
            assert_eq!(r["open"], false, "{r}");
        }
    }
}

common::on_both_databases!(
    #[tokio::test]
    closing_without_a_report,
    |_| {}
);

/// A request to a department, taken on by one of its specialists: their colleagues still see
/// it but cannot answer it for them (`taken`, audited as a refused step); once the one who took
/// it on is disabled, a colleague may. A request is never named or forwarded to a disabled
/// account.
async fn taken_on_by_a_colleague(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, doc) = s
        .placed_account("tk_doc", AccountRole::Doctor, place(&town, None, "Dr. Li"))
        .await;
    let (a_id, a) = s
        .placed_account(
            "tk_a",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let (b_id, b) = s
        .placed_account(
            "tk_b",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Dr. Qian"),
        )
        .await;
    let admin = s.account("tk_admin", AccountRole::Admin).await;
    let supervisor = s
        .account("tk_supervisor", AccountRole::NetworkSupervisor)
        .await;

    let (st, request) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&doc),
            Some(new_request(&cardiology, "routine", "Palpitations")),
        )
        .await;
    assert_eq!(st, 201, "{request}");
    let id = request["id"].as_str().unwrap().to_owned();
    let steps = Step { s, referral: &id };
    let t = request["proposed_times"][0].clone();
    let time = json!({"start": t["start"], "minutes": t["minutes"]});

    // A takes it on without a time: B, their colleague, still sees it, and can neither agree a
    // time, propose one nor decline it.
    let (st, accepted) = steps.post(&a, "accept", None).await;
    assert_eq!(
        (st, accepted["state"].as_str()),
        (200, Some("accepted")),
        "{accepted}"
    );
    assert_eq!(accepted["receiver"]["id"], a_id.as_str(), "{accepted}");
    assert_eq!(steps.get(&b).await.0, 200);
    for (action, body) in [
        ("accept", Some(time.clone())),
        ("propose", Some(time.clone())),
        ("decline", Some(json!({"reason": "Not ours"}))),
    ] {
        let (st, e) = steps.post(&b, action, body).await;
        assert_eq!((st, code(&e)), (409, "taken"), "{action}: {e}");
    }
    let (_, seen) = steps.get(&doc).await;
    assert_eq!(
        seen["state"], "accepted",
        "nothing B tried changed it: {seen}"
    );
    assert_eq!(seen["receiver"]["id"], a_id.as_str(), "{seen}");
    let trail = entries_about(s, &supervisor, &id).await;
    assert!(
        trail.contains(&"referral.accepted:denied".to_owned()),
        "the colleague's try is on the trail: {trail:?}"
    );

    // A leaves the hospital: disabled, the request is the department's again, and B agrees
    // the time.
    let (st, off) = s
        .api(
            "POST",
            &format!("/api/v1/accounts/{a_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{off}");
    let (st, scheduled) = steps.post(&b, "accept", Some(time.clone())).await;
    assert_eq!(
        (st, scheduled["state"].as_str()),
        (200, Some("scheduled")),
        "{scheduled}"
    );
    assert_eq!(scheduled["receiver"]["id"], b_id.as_str(), "{scheduled}");

    // Nobody names the disabled A in a new request, nor forwards one to them.
    let mut named = new_request(&cardiology, "routine", "Syncope");
    named["target_specialist_id"] = json!(a_id);
    let (st, e) = s
        .api("POST", "/api/v1/referrals", Some(&doc), Some(named))
        .await;
    assert_eq!((st, code(&e)), (400, "not_in_department"), "{e}");
    let (st, other) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&doc),
            Some(new_request(&cardiology, "routine", "Syncope")),
        )
        .await;
    assert_eq!(st, 201, "{other}");
    let other_steps = Step {
        s,
        referral: other["id"].as_str().unwrap(),
    };
    let (st, e) = other_steps
        .post(&b, "forward", Some(json!({"specialist_id": a_id})))
        .await;
    assert_eq!((st, code(&e)), (400, "not_in_department"), "{e}");
}

common::on_both_databases!(
    #[tokio::test]
    taken_on_by_a_colleague,
    |_| {}
);
