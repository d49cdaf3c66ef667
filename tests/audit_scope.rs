//! Who reads which part of the audit trail, on SQLite and PostgreSQL: an institution's
//! supervisor reads what concerns their institution (its consultations, its accounts and what
//! they did, a consultation request it sent or received, its departments) and nothing of
//! another's; a request between two institutions is in both trails; the network's supervisor
//! reads everything. Rooms follow the same line. The export is scoped like the listing, and
//! each read is recorded with its scope.

use crate::common;

use crate::common::peer::SignalingClient;
use crate::common::{Place, TestServer};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

fn place<'a>(institution: &'a str, department: Option<&'a str>, name: &'a str) -> Place<'a> {
    Place {
        institution,
        department,
        name: Some(name),
        ..Default::default()
    }
}

async fn all_entries(s: &TestServer, token: &str) -> Vec<Value> {
    let (st, page) = s
        .api("GET", "/api/v1/audit?limit=1000", Some(token), None)
        .await;
    assert_eq!(st, 200, "{page}");
    page["entries"].as_array().unwrap().clone()
}

fn about(entries: &[Value], object: &str) -> usize {
    entries.iter().filter(|e| e["object_id"] == object).count()
}

fn in_room(entries: &[Value], room: &str) -> usize {
    entries.iter().filter(|e| e["room_id"] == room).count()
}

async fn scopes(s: &TestServer) {
    let town = s.institution("Qingshui township health centre").await;
    let county = s.institution("County People's Hospital").await;
    let city = s.institution("City Central Hospital").await;
    let cardiology = s.department(&county, "Cardiology").await;
    let (_, town_doc) = s
        .placed_account(
            "town_doc",
            AccountRole::Doctor,
            place(&town, None, "Dr. Li"),
        )
        .await;
    let (zhao_id, zhao) = s
        .placed_account(
            "zhao",
            AccountRole::Specialist,
            place(&county, Some(cardiology.as_str()), "Prof. Zhao"),
        )
        .await;
    let (city_doc_id, city_doc) = s
        .placed_account(
            "city_doc",
            AccountRole::Doctor,
            place(&city, None, "Dr. Zhou"),
        )
        .await;
    let (_, town_sup) = s
        .placed_account(
            "town_sup",
            AccountRole::Supervisor,
            place(&town, None, "Town regulator"),
        )
        .await;
    let (_, county_sup) = s
        .placed_account(
            "county_sup",
            AccountRole::Supervisor,
            place(&county, None, "County regulator"),
        )
        .await;
    let (_, city_sup) = s
        .placed_account(
            "city_sup",
            AccountRole::Supervisor,
            place(&city, None, "City regulator"),
        )
        .await;
    let (_, network) = s
        .placed_account(
            "network",
            AccountRole::NetworkSupervisor,
            place(&town, None, "Provincial regulator"),
        )
        .await;

    // The township asks the county; the city holds a consultation of its own.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86_400;
    let (st, referral) = s
        .api(
            "POST",
            "/api/v1/referrals",
            Some(&town_doc),
            Some(json!({
                "target_department_id": cardiology, "patient_ref": "P-1",
                "reason": "Chest pain", "question": "Angina?", "urgency": "routine",
                "proposed_times": [{"start": start, "minutes": 30}],
            })),
        )
        .await;
    assert_eq!(st, 201, "{referral}");
    let referral_id = referral["id"].as_str().unwrap().to_owned();
    let (st, accepted) = s
        .api(
            "POST",
            &format!("/api/v1/referrals/{referral_id}/accept"),
            Some(&zhao),
            Some(json!({"start": start, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{accepted}");
    let referral_room = accepted["room_id"].as_str().unwrap().to_owned();
    // The county specialist enters the township's consultation through their seat: what they
    // do there as a participant is their institution's too.
    let (st, seat) = s
        .api(
            "POST",
            &format!("/api/v1/rooms/{referral_room}/enter"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 200, "{seat}");
    let zhao_in_room = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = zhao_in_room
        .join(seat["token"].as_str().unwrap(), "", false, false)
        .await
        .unwrap();
    let zhao_participant = joined["you"]["id"].as_str().unwrap().to_owned();
    let (st, room) = s
        .api(
            "POST",
            "/api/v1/rooms",
            Some(&city_doc),
            Some(json!({"title": "City follow-up"})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let city_room = room["id"].as_str().unwrap().to_owned();
    // A county specialist probes the city's consultation: refused, and recorded.
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{city_room}"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 404);

    let town_view = all_entries(s, &town_sup).await;
    let county_view = all_entries(s, &county_sup).await;
    let city_view = all_entries(s, &city_sup).await;
    let network_view = all_entries(s, &network).await;

    // The request between the two is in both their trails, with its room; not the city's.
    for (who, view) in [("town", &town_view), ("county", &county_view)] {
        assert!(about(view, &referral_id) >= 2, "{who}: created, accepted");
        assert!(in_room(view, &referral_room) >= 1, "{who}: its room");
        // Of the city's room, only what its own accounts did there (the county specialist's
        // probe below).
        assert!(
            view.iter()
                .filter(|e| e["room_id"] == city_room.as_str())
                .all(|e| e["actor"] == zhao_id.as_str()),
            "{who} sees the city's room"
        );
    }
    assert_eq!(in_room(&town_view, &city_room), 0);
    assert_eq!(about(&city_view, &referral_id), 0);
    assert_eq!(in_room(&city_view, &referral_room), 0);
    // The city's room is the city's; the county specialist's probe is in the county's trail
    // (its account did it), not the township's.
    assert!(in_room(&city_view, &city_room) >= 1);
    let probe = |view: &[Value]| {
        view.iter()
            .any(|e| e["actor"] == zhao_id.as_str() && e["action"] == "access.denied")
    };
    assert!(probe(&county_view), "what its own account did");
    let seated = |view: &[Value]| {
        view.iter().any(|e| {
            e["actor"] == zhao_participant.as_str() && e["room_id"] == referral_room.as_str()
        })
    };
    assert!(
        seated(&county_view),
        "what its specialist did in the township's room"
    );
    assert!(seated(&town_view), "in the township's own room");
    assert!(!seated(&city_view));
    assert!(!probe(&town_view));
    // Sign-ins are their accounts' institutions'.
    let signed_in = |view: &[Value], user: &str| {
        view.iter()
            .any(|e| e["actor"] == user && e["action"] == "auth.sign_in")
    };
    assert!(signed_in(&city_view, &city_doc_id));
    assert!(!signed_in(&county_view, &city_doc_id));
    // The network's supervisor reads all of it.
    assert_eq!(
        about(&network_view, &referral_id),
        about(&town_view, &referral_id)
    );
    assert!(in_room(&network_view, &city_room) >= in_room(&city_view, &city_room));
    assert!(network_view.len() > town_view.len().max(county_view.len()).max(city_view.len()));

    // A room filter cannot reach past the scope.
    let (st, page) = s
        .api(
            "GET",
            &format!("/api/v1/audit?room={city_room}"),
            Some(&town_sup),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let others: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] != "audit.read")
        .collect();
    assert!(others.is_empty(), "{others:?}");

    // The export is scoped the same way.
    let export = |token: &str| {
        let token = token.to_owned();
        async move {
            let resp = s
                .http
                .get(format!("{}/api/v1/audit/export", s.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.text().await.unwrap()
        }
    };
    let city_export = export(&city_sup).await;
    assert!(city_export.contains(&city_room));
    assert!(!city_export.contains(&referral_id));
    assert!(export(&network).await.contains(&referral_id));

    // Rooms follow the same line: a supervisor sees their institution's consultations.
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{city_room}"),
            Some(&town_sup),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{city_room}"),
            Some(&city_sup),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .api(
            "GET",
            &format!("/api/v1/rooms/{city_room}"),
            Some(&network),
            None,
        )
        .await;
    assert_eq!(st, 200);

    // Each read says which part it read.
    let scopes: Vec<String> = all_entries(s, &network)
        .await
        .iter()
        .filter(|e| e["action"] == "audit.read")
        .filter_map(|e| serde_json::from_str::<Value>(e["detail"].as_str()?).ok())
        .filter_map(|d| d["scope"].as_str().map(str::to_owned))
        .collect();
    assert!(scopes.contains(&"institution".to_owned()) && scopes.contains(&"network".to_owned()));
}

#[tokio::test]
async fn audit_scopes_on_sqlite() {
    let s = TestServer::start().await;
    scopes(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn audit_scopes_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let url = pg.url.clone();
    let s = TestServer::start_with(|c| c.storage.database_url = url).await;
    scopes(&s).await;
    s.stop().await;
    pg.drop_db().await;
}
