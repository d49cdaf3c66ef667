//! A department's queue under concurrency, against the real server on SQLite and PostgreSQL:
//! eight patients wait across four consultations asked of a cardiology department, and four of
//! its clinicians tap "next patient" twenty times at once. Every waiting patient is admitted
//! exactly once (each answer names someone different, each patient's client is let in once,
//! the audit trail has one admission each), the twelve calls left over are answered
//! `nobody_waiting`, nobody outside the department gets anyone, and the queue is empty after.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::common::peer::SignalingClient;
use crate::common::{Place, TestServer};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);
const CONSULTATIONS: usize = 4;
const PER_CONSULTATION: usize = 2;
const CALLS: usize = 20;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A patient who joined `room` with a fresh invitation and waits.
async fn waiting_patient(s: &TestServer, doctor: &str, room: &str, name: &str) -> SignalingClient {
    waiting_as(s, doctor, room, name, "patient").await
}

async fn waiting_as(
    s: &TestServer,
    doctor: &str,
    room: &str,
    name: &str,
    role: &str,
) -> SignalingClient {
    let (st, link) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(doctor),
            Some(json!({"role": role})),
        )
        .await;
    assert_eq!(st, 201, "{link}");
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    c.send_json(
        &json!({"type": "join", "v": 1, "token": link["token"], "name": name,
                        "publish": {"audio": false, "video": false}}),
    )
    .await
    .unwrap();
    let waiting = c
        .next_event_of(&["waiting", "joined", "error"], T)
        .await
        .unwrap();
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    c
}

async fn queue_under_concurrency(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let neurology = s.department(&county, "Neurology").await;
    let place = |institution, department| Place {
        institution,
        department,
        ..Place::default()
    };
    let (_, doctor) = s
        .placed_account("town-doc", AccountRole::Doctor, place(&town, None))
        .await;
    let mut clinicians = Vec::new();
    for (i, role) in [
        AccountRole::Specialist,
        AccountRole::Specialist,
        AccountRole::Doctor,
        AccountRole::Specialist,
    ]
    .into_iter()
    .enumerate()
    {
        let (_, token) = s
            .placed_account(
                &format!("cardio-{i}"),
                role,
                place(&county, Some(cardiology.as_str())),
            )
            .await;
        clinicians.push(token);
    }
    let (_, neurologist) = s
        .placed_account(
            "neuro",
            AccountRole::Specialist,
            place(&county, Some(neurology.as_str())),
        )
        .await;

    // Four consultations asked of cardiology, each scheduled by one of its specialists; two
    // patients wait in each.
    let mut patients = Vec::new();
    for c in 0..CONSULTATIONS {
        let (st, request) = s
            .api(
                "POST",
                "/api/v1/referrals",
                Some(&doctor),
                Some(json!({
                    "target_department_id": cardiology,
                    "patient_ref": format!("P-{c}"),
                    "reason": format!("Chest pain {c}"),
                    "question": "Stable angina?",
                    "urgency": "routine",
                    "proposed_times": [{"start": now() + 3600, "minutes": 30}],
                })),
            )
            .await;
        assert_eq!(st, 201, "{request}");
        let (st, scheduled) = s
            .api(
                "POST",
                &format!(
                    "/api/v1/referrals/{}/accept",
                    request["id"].as_str().unwrap()
                ),
                Some(&clinicians[0]),
                Some(json!({"start": now() + 120, "minutes": 30})),
            )
            .await;
        assert_eq!(st, 200, "{scheduled}");
        let room = scheduled["room_id"].as_str().unwrap().to_owned();
        for p in 0..PER_CONSULTATION {
            let client = waiting_patient(s, &doctor, &room, &format!("Patient {c}.{p}")).await;
            patients.push((room.clone(), client));
        }
    }
    let queue = format!("/api/v1/departments/{cardiology}/queue");
    let next = format!("{queue}/next");
    // The room's task tells the hub's snapshot without waiting: read until all eight show.
    let mut shown = 0;
    for _ in 0..100 {
        let (st, listed) = s.api("GET", &queue, Some(&clinicians[1]), None).await;
        assert_eq!(st, 200, "{listed}");
        shown = listed["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["waiting"].as_u64().unwrap())
            .sum::<u64>();
        if shown == (CONSULTATIONS * PER_CONSULTATION) as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown, (CONSULTATIONS * PER_CONSULTATION) as u64);

    // Twenty taps at once from the department's four clinicians, and the neurologist's.
    let calls = (0..CALLS).map(|i| {
        let token = clinicians[i % clinicians.len()].clone();
        let next = next.clone();
        async move { s.api("POST", &next, Some(&token), None).await }
    });
    let stranger = s.api("POST", &next, Some(&neurologist), None);
    let (answers, (st, refused)) = tokio::join!(futures_util::future::join_all(calls), stranger);
    assert_eq!((st, code(&refused)), (403, "forbidden"), "{refused}");

    let mut admitted: HashMap<String, String> = HashMap::new();
    let mut nobody = 0;
    for (st, answer) in &answers {
        match st {
            200 => {
                let participant = answer["participant_id"].as_str().unwrap().to_owned();
                let room = answer["room_id"].as_str().unwrap().to_owned();
                assert!(answer["token"].is_string(), "{answer}");
                let before = admitted.insert(participant.clone(), room);
                assert!(
                    before.is_none(),
                    "{participant} admitted twice: {answers:?}"
                );
            }
            409 => {
                assert_eq!(code(answer), "nobody_waiting", "{answer}");
                nobody += 1;
            }
            other => panic!("unexpected answer {other}: {answer}"),
        }
    }
    assert_eq!(
        admitted.len(),
        CONSULTATIONS * PER_CONSULTATION,
        "every waiting patient admitted: {answers:?}"
    );
    assert_eq!(nobody, CALLS - CONSULTATIONS * PER_CONSULTATION);

    // Each patient's client is let in, once, into its own consultation, as the one an answer
    // named.
    let mut let_in = BTreeSet::new();
    for (room, client) in &patients {
        let joined = client.next_event_of(&["joined", "error"], T).await.unwrap();
        assert_eq!(joined["type"], "joined", "{joined}");
        let id = joined["you"]["id"].as_str().unwrap().to_owned();
        assert_eq!(admitted.get(&id), Some(room), "{id} admitted into its room");
        assert!(let_in.insert(id));
    }
    assert_eq!(let_in.len(), admitted.len());
    for (_, client) in &patients {
        assert!(
            client
                .next_event_of(&["joined"], Duration::from_millis(300))
                .await
                .is_err(),
            "let in twice"
        );
    }

    // The trail: one admission per patient, by the account that took them.
    let (_, supervisor) = s
        .placed_account(
            "regulator",
            AccountRole::NetworkSupervisor,
            place(&county, None),
        )
        .await;
    let rooms: BTreeSet<&String> = patients.iter().map(|(r, _)| r).collect();
    let mut on_record: HashMap<String, usize> = HashMap::new();
    for room in rooms {
        for e in s.audit_entries(&supervisor, room).await {
            if e["action"] == "waiting.admitted" {
                assert!(
                    e["actor_role"] == "specialist" || e["actor_role"] == "doctor",
                    "admitted by a clinician's account: {e}"
                );
                *on_record
                    .entry(e["object_id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    assert_eq!(on_record.len(), admitted.len(), "{on_record:?}");
    assert!(on_record.values().all(|n| *n == 1), "{on_record:?}");

    // Nobody waits any more, and one more tap says so.
    let mut emptied = false;
    for _ in 0..100 {
        let (_, listed) = s.api("GET", &queue, Some(&clinicians[2]), None).await;
        if listed["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["waiting"] == 0)
        {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(emptied, "the queue empties");
    let (st, e) = s.api("POST", &next, Some(&clinicians[3]), None).await;
    assert_eq!((st, code(&e)), (409, "nobody_waiting"), "{e}");

    // The department's doctor (an account of role doctor) who took patients sits on those
    // consultations as the receiving side, a specialist: it may not end the referring
    // institution's consultation nor invite into it.
    // (Which calls won the race above is chance: one more patient, taken by that doctor.)
    let mut taken: BTreeSet<String> = answers
        .iter()
        .enumerate()
        .filter(|(i, (st, _))| i % clinicians.len() == 2 && *st == 200)
        .map(|(_, (_, a))| a["room_id"].as_str().unwrap().to_owned())
        .collect();
    // An interpreter waits first: the queue's "next" is for patients, so nobody is admitted,
    // and the patient who comes after them is the one taken.
    let _interpreter = waiting_as(s, &doctor, &patients[0].0, "Interpreter", "guest").await;
    let waits = |n: i64| {
        let queue = queue.clone();
        let clinician = clinicians[2].clone();
        async move {
            for _ in 0..100 {
                let (_, listed) = s.api("GET", &queue, Some(&clinician), None).await;
                if listed["rooms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["waiting"] == n)
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(waits(1).await, "the interpreter waits");
    let (st, e) = s.api("POST", &next, Some(&clinicians[2]), None).await;
    assert_eq!((st, code(&e)), (409, "nobody_waiting"), "{e}");
    let _late = waiting_patient(s, &doctor, &patients[0].0, "Patient late").await;
    assert!(
        waits(2).await,
        "the late patient waits behind the interpreter"
    );
    let (st, took) = s.api("POST", &next, Some(&clinicians[2]), None).await;
    assert_eq!(st, 200, "{took}");
    assert_eq!(took["room_id"], patients[0].0.as_str(), "{took}");
    taken.insert(took["room_id"].as_str().unwrap().to_owned());
    assert!(waits(1).await, "the interpreter still waits");
    let (st, me) = s.api("GET", "/api/v1/me", Some(&clinicians[2]), None).await;
    assert_eq!(st, 200, "{me}");
    for room in &taken {
        let (st, team) = s
            .api(
                "GET",
                &format!("/api/v1/rooms/{room}/care-team"),
                Some(&clinicians[2]),
                None,
            )
            .await;
        assert_eq!(st, 200, "{team}");
        let seat = team["care_team"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["account"]["id"] == me["id"])
            .cloned()
            .unwrap_or_default();
        assert_eq!(seat["role"], "specialist", "{team}");
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/end"),
                Some(&clinicians[2]),
                None,
            )
            .await;
        assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
        let (st, b) = s
            .api(
                "POST",
                &format!("/api/v1/rooms/{room}/invites"),
                Some(&clinicians[2]),
                Some(json!({"role": "observer"})),
            )
            .await;
        assert_eq!((st, code(&b)), (403, "forbidden"), "{b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn department_queue_next_under_concurrency_on_sqlite() {
    let s = TestServer::start().await;
    queue_under_concurrency(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn department_queue_next_under_concurrency_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    queue_under_concurrency(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
