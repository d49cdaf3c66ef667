//! Live notifications to clinicians' consoles over the real server (`GET /api/v1/events`,
//! server-sent events): a consultation request reaches its department's clinicians, a forward
//! reaches the named specialist, each step reaches the other side; a patient in the waiting
//! room reaches the care team. Nobody else is told anything, and the stream refuses those who
//! are not clinicians, no token, and a ninth console of one account.

use crate::common;

use std::time::Duration;

use crate::common::{Place, TestServer};
use futures_util::StreamExt;
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);
/// How long a console is watched for something it must not get.
const QUIET: Duration = Duration::from_millis(700);

/// One console's open event stream.
struct Console {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Console {
    async fn open(s: &TestServer, token: &str) -> Self {
        let resp = s
            .http
            .get(format!("{}/api/v1/events", s.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            body: resp.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event's data, or None if none comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // An event is a block of lines ending in a blank line; comments keep it alive.
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return Some(serde_json::from_str(&data).expect("event data is JSON"));
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??
                .expect("stream read");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn expect(&mut self, what: &str) -> Value {
        self.next(T)
            .await
            .unwrap_or_else(|| panic!("no event: expected {what}"))
    }

    async fn expect_quiet(&mut self, who: &str) {
        if let Some(e) = self.next(QUIET).await {
            panic!("{who} was told {e}");
        }
    }
}

/// The network both tests run in: a township doctor; at the county hospital, two cardiologists
/// and a neurologist. Tokens are the accounts' session tokens.
struct Network {
    cardiology: String,
    doc: String,
    a: String,
    b_id: String,
    b: String,
    neuro: String,
}

impl Network {
    async fn set_up(s: &TestServer) -> Self {
        let town = s.institution("Qingshui township health centre").await;
        let county = s.institution("County People's Hospital").await;
        let cardiology = s.department(&county, "Cardiology").await;
        let neurology = s.department(&county, "Neurology").await;
        let town_gp = s.department(&town, "General practice").await;
        let (_, doc) = s
            .placed_account(
                "town_doc",
                AccountRole::Doctor,
                place(&town, &town_gp, "Dr. Li"),
            )
            .await;
        let (_, a) = s
            .placed_account(
                "cardio_a",
                AccountRole::Specialist,
                place(&county, &cardiology, "Prof. Zhao"),
            )
            .await;
        let (b_id, b) = s
            .placed_account(
                "cardio_b",
                AccountRole::Specialist,
                place(&county, &cardiology, "Dr. Chen"),
            )
            .await;
        let (_, neuro) = s
            .placed_account(
                "neuro",
                AccountRole::Specialist,
                place(&county, &neurology, "Dr. Sun"),
            )
            .await;
        Self {
            cardiology,
            doc,
            a,
            b_id,
            b,
            neuro,
        }
    }
}

fn place<'a>(institution: &'a str, department: &'a str, name: &'a str) -> Place<'a> {
    Place {
        institution,
        department: Some(department),
        name: Some(name),
        ..Default::default()
    }
}

async fn consoles_hear_of_requests_and_waiting_patients_and_nobody_else_does(s: &TestServer) {
    let Network {
        cardiology,
        doc,
        a,
        b_id,
        b,
        neuro,
    } = Network::set_up(s).await;

    // Who may listen at all.
    let resp = s
        .http
        .get(format!("{}/api/v1/events", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;
    let (st, e) = s
        .api("GET", "/api/v1/events", Some(&supervisor), None)
        .await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("forbidden")));

    let mut doc_console = Console::open(s, &doc).await;
    let mut a_console = Console::open(s, &a).await;
    let mut b_console = Console::open(s, &b).await;
    let mut neuro_console = Console::open(s, &neuro).await;

    // A request to cardiology as a whole reaches both cardiologists, not neurology, and not
    // the doctor who sent it.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 24 * 3600;
    let (st, created) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&doc),
            Some(json!({
                "target_department_id": cardiology,
                "patient_ref": "P-2024-0042",
                "reason": "Chest pain on exertion",
                "question": "Is this stable angina?",
                "urgency": "urgent",
                "proposed_times": [{"start": start, "minutes": 30}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for console in [&mut a_console, &mut b_console] {
        let e = console.expect("referral_received").await;
        assert_eq!(
            e,
            json!({"type": "referral_received", "referral_id": id, "urgency": "urgent"})
        );
        // Ids and states only: nothing about the patient or the question goes to a console.
        assert!(!e.to_string().contains("P-2024"));
    }
    neuro_console.expect_quiet("neurology").await;
    doc_console.expect_quiet("the requester").await;

    // Forwarded to Dr. Chen: news to her; a step to the requester; the forwarder knows.
    let (st, forwarded) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{id}/forward"),
            Some(&a),
            Some(json!({"specialist_id": b_id})),
        )
        .await;
    assert_eq!(st, 200, "{forwarded}");
    let e = b_console.expect("the forward").await;
    assert_eq!(e["type"], "referral_received", "{e}");
    let e = doc_console.expect("the forward's step").await;
    assert_eq!(e["type"], "referral_changed", "{e}");
    assert_eq!(e["referral_id"], id.as_str());
    assert_eq!(e["state"], forwarded["state"]);
    a_console.expect_quiet("the forwarder").await;

    // Dr. Chen accepts: the requester hears it; the requester cancels: Dr. Chen hears it, and
    // Prof. Zhao, no longer on it, does not.
    let (st, accepted) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{id}/accept"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(st, 200, "{accepted}");
    let e = doc_console.expect("the acceptance").await;
    assert_eq!(
        e,
        json!({"type": "referral_changed", "referral_id": id, "state": accepted["state"]})
    );

    // The doctor records the patient's consent to sharing, then its withdrawal: Dr. Chen hears
    // each (not as a step: the state is unchanged); repeating one says nothing more.
    let words = huizhen::domain::consent::ConsentPurpose::ExternalSharing
        .wording()
        .version;
    for (path, body, told) in [
        (
            "consent",
            json!({"purpose": "external_sharing", "wording_version": words}),
            Some(true),
        ),
        (
            "consent/withdraw",
            json!({"purpose": "external_sharing"}),
            Some(false),
        ),
        (
            "consent/withdraw",
            json!({"purpose": "external_sharing"}),
            None,
        ),
    ] {
        let (st, r) = s
            .api(
                "POST",
                &format!("/api/v1/referrals/{id}/{path}"),
                Some(&doc),
                Some(body),
            )
            .await;
        assert_eq!(st, 200, "{r}");
        if let Some(in_force) = told {
            let e = b_console.expect("the consent").await;
            assert_eq!(
                e,
                json!({"type": "referral_consent", "referral_id": id, "in_force": in_force})
            );
        }
    }
    b_console.expect_quiet("a withdrawal repeated").await;
    doc_console.expect_quiet("the doctor who recorded it").await;
    let (st, cancelled) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{id}/cancel"),
            Some(&doc),
            Some(json!({"reason": "Patient transferred"})),
        )
        .await;
    assert_eq!(st, 200, "{cancelled}");
    let e = b_console.expect("the cancellation").await;
    assert_eq!(e["state"], "cancelled", "{e}");
    a_console
        .expect_quiet("a cardiologist no longer on it")
        .await;
    neuro_console.expect_quiet("neurology").await;

    // A request named to Dr. Chen, who is not taking requests (accounts start that way): her
    // department covers for her, so Prof. Zhao hears of it as of a request to the department;
    // neurology does not.
    let (st, named) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&doc),
            Some(json!({
                "target_department_id": cardiology,
                "target_specialist_id": b_id,
                "patient_ref": "P-2024-0043",
                "reason": "Palpitations",
                "question": "Holter?",
                "urgency": "routine",
            })),
        )
        .await;
    assert_eq!(st, 201, "{named}");
    for console in [&mut b_console, &mut a_console] {
        let e = console.expect("a request to an away specialist").await;
        assert_eq!(e["type"], "referral_received", "{e}");
        assert_eq!(e["referral_id"], named["id"]);
    }
    neuro_console.expect_quiet("neurology").await;

    // A patient waits in the signed-in doctor's consultation: the doctor's console hears how
    // many wait, on arrival and on leaving; other clinicians' consoles do not.
    let mut wang_console = Console::open(s, &s.doctor_token).await;
    let room = s.create_room_waiting("Follow-up, hypertension").await;
    let token = s.invite(&room, "patient").await;
    let patient = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    patient
        .send_json(
            &json!({"type": "join", "v": 1, "token": token, "name": "Li Hua",
                           "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    let w = patient
        .next_event_of(&["waiting", "error"], T)
        .await
        .unwrap();
    assert_eq!(w["type"], "waiting", "{w}");
    let e = wang_console.expect("patient_waiting").await;
    let since = e["waiting_since"].as_i64().expect("since when: {e}");
    assert_eq!(
        e,
        json!({"type": "patient_waiting", "room_id": room, "waiting": 1, "waiting_since": since})
    );
    assert!(!e.to_string().contains("Li Hua"), "no names: {e}");
    // A console that loads its list meanwhile sees the same.
    let (st, shown) = s
        .api("GET", &format!("/api/v1/rooms/{room}"), None, None)
        .await;
    assert_eq!(st, 200, "{shown}");
    assert_eq!(
        (shown["waiting"].as_u64(), shown["waiting_since"].as_i64()),
        (Some(1), Some(since))
    );
    drop(patient);
    let e = wang_console.expect("the line emptying").await;
    assert_eq!(
        (e["waiting"].as_u64(), e["waiting_since"].clone()),
        (Some(0), Value::Null),
        "{e}"
    );
    let (_, shown) = s.api("GET", "/api/v1/rooms", None, None).await;
    let listed = shown["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (listed["waiting"].as_u64(), listed["waiting_since"].clone()),
        (Some(0), Value::Null)
    );
    for (who, console) in [
        ("a specialist not on the care team", &mut b_console),
        ("the township doctor", &mut doc_console),
    ] {
        console.expect_quiet(who).await;
    }

    // A draft written in the doctor's consultation, edited, then issued: the care team's
    // consoles hear each step (their lists of what is left to sign follow); others do not.
    let drafting = s.create_room("Drafts, hypertension").await;
    let doctor = s.member(&drafting, "doctor", "Dr. Wang").await;
    let records = format!("/api/v1/rooms/{drafting}/records");
    let (st, draft) = s
        .api(
            "POST",
            &records,
            Some(&doctor.access),
            Some(json!({"kind": "note", "body": {"text": "BP 150/95, review in 2 weeks"}})),
        )
        .await;
    assert_eq!(st, 201, "{draft}");
    let changed = json!({"type": "drafts_changed", "room_id": drafting});
    assert_eq!(wang_console.expect("a draft written").await, changed);
    let draft_url = format!("{records}/{}", draft["id"].as_str().unwrap());
    let (st, _) = s
        .api(
            "PUT",
            &draft_url,
            Some(&doctor.access),
            Some(json!({"body": {"text": "BP 150/95, review in 1 week"}})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(wang_console.expect("a draft edited").await, changed);
    let (st, _) = s
        .api(
            "POST",
            &format!("{draft_url}/issue"),
            Some(&doctor.access),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(wang_console.expect("a draft issued").await, changed);
    b_console
        .expect_quiet("a specialist not on the care team")
        .await;

    // The consultation moves to another time: its care team's consoles reload it.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let (st, moved) = s
        .api(
            "PUT",
            &format!("/api/v1/rooms/{drafting}/slot"),
            None,
            Some(json!({"start": start, "minutes": 20})),
        )
        .await;
    assert_eq!(st, 200, "{moved}");
    assert_eq!(
        wang_console.expect("a consultation moved").await,
        json!({"type": "consultation_rescheduled", "room_id": drafting})
    );
    b_console
        .expect_quiet("a specialist not on the care team")
        .await;

    // A bounded number of consoles per account.
    let mut more = Vec::new();
    for _ in 1..huizhen::notifications::MAX_SUBSCRIPTIONS_PER_ACCOUNT {
        more.push(Console::open(s, &neuro).await);
    }
    let (st, e) = s.api("GET", "/api/v1/events", Some(&neuro), None).await;
    assert_eq!(
        (
            st,
            e["error"]["code"].as_str(),
            e["error"]["limit"].as_str()
        ),
        (409, Some("limit_reached"), Some("event_streams")),
        "{e}"
    );
    // A closed console frees its place.
    drop(more.pop());
    let mut again = None;
    for _ in 0..50 {
        let resp = s
            .http
            .get(format!("{}/api/v1/events", s.base))
            .bearer_auth(&neuro)
            .send()
            .await
            .unwrap();
        if resp.status() == 200 {
            again = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a closed console's place comes back");
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    consoles_hear_of_requests_and_waiting_patients_and_nobody_else_does,
    |_| {}
);

/// A patient waiting in a consultation asked of a department: every doctor and specialist of
/// that department hears that its queue changed (on the care team or not), on arrival and on
/// leaving; another department and the requester's side only as the care team would.
async fn a_department_hears_when_someone_waits_in_its_queue(s: &TestServer) {
    let Network {
        cardiology,
        doc,
        a,
        b,
        neuro,
        ..
    } = Network::set_up(s).await;

    // A request to cardiology, accepted by Dr. Chen at the proposed time (soon enough for the
    // patient's link to be open already) and started.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 600;
    let (st, created) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&doc),
            Some(json!({
                "target_department_id": cardiology,
                "patient_ref": "P-2024-0077",
                "reason": "Syncope",
                "question": "Holter?",
                "urgency": "routine",
                "proposed_times": [{"start": start, "minutes": 30}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (st, accepted) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{id}/accept"),
            Some(&b),
            Some(json!({"start": start, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{accepted}");
    let (st, started) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{id}/start"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(st, 200, "{started}");
    let room = started["room_id"].as_str().unwrap().to_owned();

    let mut a_console = Console::open(s, &a).await;
    let mut neuro_console = Console::open(s, &neuro).await;
    let (st, invite) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{room}/invites"),
            Some(&doc),
            Some(json!({"role": "patient"})),
        )
        .await;
    assert_eq!(st, 201, "{invite}");
    let patient = common::peer::SignalingClient::connect(&s.ws_url)
        .await
        .unwrap();
    patient
        .send_json(
            &json!({"type": "join", "v": 1, "token": invite["token"], "name": "Li Hua",
                           "publish": {"audio": false, "video": false}}),
        )
        .await
        .unwrap();
    let w = patient
        .next_event_of(&["waiting", "error"], T)
        .await
        .unwrap();
    assert_eq!(w["type"], "waiting", "{w}");

    // Prof. Zhao is not on the care team: the department's queue tells him.
    let e = a_console.expect("department_queue_changed").await;
    assert_eq!(
        e,
        json!({"type": "department_queue_changed", "department_id": cardiology})
    );
    neuro_console.expect_quiet("neurology").await;
    // What the queue shows him now.
    let (st, queue) = s
        .api(
            "GET",
            &format!("/api/v1/departments/{cardiology}/queue"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(st, 200, "{queue}");
    let entry = queue["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .expect("the consultation is in the queue")
        .clone();
    assert_eq!(entry["waiting"], 1, "{entry}");

    drop(patient);
    let e = a_console.expect("the line emptying").await;
    assert_eq!(e["type"], "department_queue_changed", "{e}");
    neuro_console.expect_quiet("neurology").await;
}

common::on_both_databases!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    a_department_hears_when_someone_waits_in_its_queue,
    |_| {}
);
