//! The HTTP API's description (docs/openapi.json, served at `/api/v1/openapi.json`) against
//! the server: every route of `http::router` is documented with its methods and nothing else
//! is; every documented operation is routed (answered neither 404 nor 405); and real calls of
//! the workflow (sign-in, organisation, rooms, invitations, care team, referrals, audit) are
//! answered with a documented status and a body the documented schema accepts, field for field
//! (an undocumented field fails), for bodies sent that the documented request schema accepts.
//!
//! The checker knows the part of JSON Schema the document uses: `type`, `properties`,
//! `required`, `items`, `enum`, `anyOf`, `oneOf`, `allOf`, `$ref`, `additionalProperties`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`; a keyword it does not
//! know fails the test, so the document cannot say more than is checked.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{Place, TestServer};
use huizhen::domain::role::AccountRole;
use serde_json::{Value, json};

const DOCUMENT: &str = include_str!("../docs/openapi.json");
const ROUTER: &str = include_str!("../src/http/mod.rs");
const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
}

/// `(path, method)` of every route `router()` declares, read from its source: routes before
/// `.nest("/api/v1", api)` are the API's.
fn routed() -> BTreeSet<(String, String)> {
    let body = &ROUTER[ROUTER.find("pub fn router(").expect("router()")..];
    let (api, outer) = body
        .split_once(".nest(\"/api/v1\", api)")
        .expect("the API is nested under /api/v1");
    let mut routes = BTreeSet::new();
    for (prefix, text) in [("/api/v1", api), ("", outer)] {
        for segment in text.split(".route(").skip(1) {
            let path = segment
                .split('"')
                .nth(1)
                .expect("a route's path is a string literal");
            let mut found = false;
            for method in METHODS {
                // `get(handler)` first in the chain, `.post(handler)` after it; not
                // `try_get(` or `header::…`.
                let first = segment.match_indices(&format!("{method}(")).any(|(i, _)| {
                    matches!(segment[..i].chars().last(),
                             Some(c) if !c.is_alphanumeric() && c != '_' && c != ':')
                });
                if first {
                    routes.insert((format!("{prefix}{path}"), (*method).to_owned()));
                    found = true;
                }
            }
            assert!(found, "no method found for route {path}");
        }
    }
    routes
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((path.clone(), method.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routed = routed();
    let documented = documented(&doc);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );
    // Operation ids are unique, every operation has a tag that is declared and answers.
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    for (path, method) in &documented {
        let op = &doc["paths"][path][method];
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_owned()),
            "{method} {path}: operationId {id:?}"
        );
        for tag in op["tags"].as_array().expect("tags") {
            assert!(
                tags.contains(tag.as_str().unwrap()),
                "{method} {path}: {tag}"
            );
        }
        assert!(
            !op["responses"].as_object().unwrap().is_empty(),
            "{method} {path}: no responses"
        );
    }
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{r}")))
        }
        None => schema,
    }
}

/// The properties an object schema names, through `allOf` and `$ref`.
fn named_properties<'a>(doc: &'a Value, schema: &'a Value, into: &mut BTreeSet<&'a str>) {
    let schema = resolve(doc, schema);
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        into.extend(p.keys().map(String::as_str));
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        named_properties(doc, part, into);
    }
}

const KNOWN: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "additionalProperties",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "description",
    "format",
    "title",
    "examples",
    "default",
];

/// Why `value` does not fit `schema` (empty when it does). `strict`: an object's properties
/// must all be named by the schema unless it allows more.
fn violations(doc: &Value, schema: &Value, value: &Value, at: &str, strict: bool) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    for key in schema.as_object().expect("a schema is an object").keys() {
        assert!(KNOWN.contains(&key.as_str()), "{at}: unknown keyword {key}");
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("{at}: type"),
        };
        let fits = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            other => panic!("{at}: type {other}"),
        });
        if !fits {
            out.push(format!("{at}: {value} is not {t}"));
            return out;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} not in {allowed:?}"));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            out.push(format!("{at}: {n} < {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            out.push(format!("{at}: {n} > {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let n = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
            || schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: length {n} out of bounds"));
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
            || schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: {n} items out of bounds"));
        }
        if let Some(item) = schema.get("items") {
            for (i, v) in items.iter().enumerate() {
                out.extend(violations(doc, item, v, &format!("{at}[{i}]"), strict));
            }
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(violations(doc, part, value, at, false));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let fitting = branches
                .iter()
                .filter(|b| violations(doc, b, value, at, strict).is_empty())
                .count();
            let ok = if key == "oneOf" {
                fitting == 1
            } else {
                fitting >= 1
            };
            if !ok {
                out.push(format!(
                    "{at}: {value} fits {fitting} of the {key} branches"
                ));
            }
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                out.push(format!("{at}: required {name} missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in object {
            if let Some(p) = props.and_then(|p| p.get(k)) {
                out.extend(violations(doc, p, v, &format!("{at}.{k}"), strict));
            } else if let Some(extra) = schema.get("additionalProperties")
                && extra.is_object()
            {
                out.extend(violations(doc, extra, v, &format!("{at}.{k}"), strict));
            }
        }
        let open = schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false));
        if strict && !open && (props.is_some() || schema.get("allOf").is_some()) {
            let mut named = BTreeSet::new();
            named_properties(doc, schema, &mut named);
            for k in object.keys() {
                if !named.contains(k.as_str()) {
                    out.push(format!("{at}: {k} is not documented"));
                }
            }
        }
    }
    out
}

/// Real calls, each checked against its operation in the document.
struct Checked<'a> {
    s: &'a TestServer,
    doc: Value,
    /// Operations answered, with the statuses seen.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl Checked<'_> {
    /// Calls `method` `path` (ids filled into `template`), checks a body the server took
    /// against the documented request schema, the status against the documented answers and the body
    /// against that answer's schema; returns the body.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let lower = method.to_lowercase();
        let op = self.doc["paths"][template][&lower].clone();
        assert!(op.is_object(), "{method} {template} is not documented");
        let (status, answer) = self.s.api(method, path, token, body.clone()).await;
        // A body the server took must be one the document describes (refused ones may not).
        if let Some(b) = body.as_ref().filter(|_| status < 300) {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            assert!(
                schema.is_object(),
                "{method} {template}: body sent, none documented"
            );
            let v = violations(&self.doc, schema, b, "request", true);
            assert!(v.is_empty(), "{method} {template} request: {v:#?}");
        }
        let response = op["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{method} {template}: {status} not documented: {answer}"));
        let response = resolve(&self.doc, response);
        if let Some(schema) = response
            .get("content")
            .and_then(|c| c.get("application/json"))
            .map(|c| &c["schema"])
        {
            let v = violations(&self.doc, schema, &answer, "answer", true);
            assert!(
                v.is_empty(),
                "{method} {template} {status}: {v:#?}\n{answer:#}"
            );
        }
        self.seen
            .entry((template.to_owned(), lower))
            .or_default()
            .insert(status);
        (status, answer)
    }
}

fn place<'a>(institution: &'a str, department: Option<&'a str>, name: &'a str) -> Place<'a> {
    Place {
        institution,
        department,
        name: Some(name),
        title: "主任医师",
        specialty: "Cardiology",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_as_documented() {
    let s = TestServer::start().await;
    let doc = document();

    // Served as it is in the repository, without a session.
    let resp = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.json::<Value>().await.unwrap(), doc);

    // Every documented operation is routed: without a token each is answered, but never
    // 404 or 405 (ids that look right, so path extraction is not what refuses).
    let fill = |path: &str| {
        let mut out = String::new();
        for seg in path.split('/').skip(1) {
            out.push('/');
            if seg.starts_with('{') {
                out.push_str(match seg {
                    "{page}" => "1",
                    "{action}" => "accept",
                    _ => "00000000000000000000000000",
                });
            } else {
                out.push_str(seg);
            }
        }
        out
    };
    for (path, method) in documented(&doc) {
        if path == "/ws" {
            continue;
        }
        let url = format!("{}{}", s.base, fill(&path));
        let mut req = s.http.request(method.to_uppercase().parse().unwrap(), url);
        if method != "get" && method != "delete" {
            req = req.header("content-type", "application/json").body("{}");
        }
        let status = req.send().await.unwrap().status().as_u16();
        assert!(
            status != 405 && (status != 404 || path.contains('{')),
            "{method} {path}: {status}"
        );
    }

    let mut c = Checked {
        s: &s,
        doc: doc.clone(),
        seen: BTreeMap::new(),
    };
    let admin = s.account("admin", AccountRole::Admin).await;
    let supervisor = s
        .account("supervisor", AccountRole::NetworkSupervisor)
        .await;

    // Signing in, and who I am.
    let (st, login) = c
        .call(
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "doc", "password": common::DOCTOR_PASSWORD})),
        )
        .await;
    assert_eq!(st, 200, "{login}");
    let doc_token = login["token"].as_str().unwrap().to_owned();
    let (st, _) = c
        .call("GET", "/api/v1/me", "/api/v1/me", Some(""), None)
        .await;
    assert_eq!(st, 401);
    let (st, me) = c
        .call("GET", "/api/v1/me", "/api/v1/me", Some(&doc_token), None)
        .await;
    assert_eq!(st, 200, "{me}");

    // The organisation, as an administrator.
    let (st, county) = c
        .call(
            "POST",
            "/api/v1/institutions",
            "/api/v1/institutions",
            Some(&admin),
            Some(json!({"name": "County People's Hospital", "kind": "hospital"})),
        )
        .await;
    assert_eq!(st, 201, "{county}");
    let county_id = county["id"].as_str().unwrap().to_owned();
    let departments = format!("/api/v1/institutions/{county_id}/departments");
    let (st, cardiology) = c
        .call(
            "POST",
            "/api/v1/institutions/{id}/departments",
            &departments,
            Some(&admin),
            Some(json!({"name": "Cardiology"})),
        )
        .await;
    assert_eq!(st, 201, "{cardiology}");
    let (st, _) = c
        .call(
            "POST",
            "/api/v1/institutions/{id}/departments",
            &departments,
            Some(&admin),
            Some(json!({"name": "Cardiology"})),
        )
        .await;
    assert_eq!(st, 409);
    let cardiology_id = cardiology["id"].as_str().unwrap().to_owned();
    let (st, created) = c
        .call(
            "POST",
            "/api/v1/accounts",
            "/api/v1/accounts",
            Some(&admin),
            Some(json!({
                "username": "zhao", "display_name": "Prof. Zhao", "role": "specialist",
                "password": "a long enough password", "institution_id": county_id,
                "department_id": cardiology_id, "title": "主任医师", "specialty": "Cardiology",
            })),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    for (path, token) in [
        ("/api/v1/institutions", &admin),
        ("/api/v1/accounts", &admin),
    ] {
        let (st, b) = c.call("GET", path, path, Some(token), None).await;
        assert_eq!(st, 200, "{b}");
    }
    let (st, dir) = c
        .call(
            "GET",
            "/api/v1/directory",
            "/api/v1/directory?specialty=Cardiology",
            Some(&doc_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{dir}");
    assert_eq!(dir["clinicians"][0]["display_name"], "Prof. Zhao");

    // A room, its invitations and its care team.
    let (st, room) = c
        .call(
            "POST",
            "/api/v1/rooms",
            "/api/v1/rooms",
            Some(&doc_token),
            Some(json!({"title": "Follow-up", "patient_ref": "MRN-1", "waiting_room": true})),
        )
        .await;
    assert_eq!(st, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();
    let room_path = format!("/api/v1/rooms/{room_id}");
    for (template, path) in [
        ("/api/v1/rooms", "/api/v1/rooms".to_owned()),
        ("/api/v1/rooms/{id}", room_path.clone()),
        (
            "/api/v1/rooms/{id}/care-team",
            format!("{room_path}/care-team"),
        ),
        ("/api/v1/rooms/{id}/invites", format!("{room_path}/invites")),
        (
            "/api/v1/rooms/{id}/attendance",
            format!("{room_path}/attendance"),
        ),
        (
            "/api/v1/rooms/{id}/documents",
            format!("{room_path}/documents"),
        ),
    ] {
        let (st, b) = c.call("GET", template, &path, Some(&doc_token), None).await;
        assert!(st == 200 || st == 401, "{template}: {st} {b}");
    }
    let (st, invite) = c
        .call(
            "POST",
            "/api/v1/rooms/{id}/invites",
            &format!("{room_path}/invites"),
            Some(&doc_token),
            Some(json!({"role": "patient", "label": "guardian", "expires_in_minutes": 60})),
        )
        .await;
    assert_eq!(st, 201, "{invite}");
    let (st, checked) = c
        .call(
            "POST",
            "/api/v1/invitations/check",
            "/api/v1/invitations/check",
            Some(""),
            Some(json!({"token": invite["token"]})),
        )
        .await;
    assert_eq!(st, 200, "{checked}");
    let (st, _) = c
        .call(
            "POST",
            "/api/v1/rooms/{id}/invites",
            &format!("{room_path}/invites"),
            Some(&doc_token),
            Some(json!({"role": "specialist"})),
        )
        .await;
    assert_eq!(st, 400);
    let (st, _) = c
        .call(
            "POST",
            "/api/v1/rooms/{id}/care-team",
            &format!("{room_path}/care-team"),
            Some(&doc_token),
            Some(json!({"user_id": created["id"]})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, entry) = c
        .call(
            "POST",
            "/api/v1/rooms/{id}/enter",
            &format!("{room_path}/enter"),
            Some(&doc_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{entry}");
    let unknown = huizhen::domain::ids::RoomId::generate();
    let (st, _) = c
        .call(
            "GET",
            "/api/v1/rooms/{id}",
            &format!("/api/v1/rooms/{unknown}"),
            Some(&doc_token),
            None,
        )
        .await;
    assert_eq!(st, 404);

    // A consultation request, from a placed doctor to the department; the specialist accepts.
    let town = s.institution("Qingshui township health centre").await;
    let (_, town_doc) = s
        .placed_account(
            "town_doc",
            AccountRole::Doctor,
            place(&town, None, "Dr. Li"),
        )
        .await;
    let (_, zhao) = s
        .api(
            "POST",
            "/api/v1/auth/login",
            Some(""),
            Some(json!({"username": "zhao", "password": "a long enough password"})),
        )
        .await;
    let zhao = zhao["token"].as_str().unwrap().to_owned();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86_400;
    let request = json!({
        "target_department_id": cardiology_id,
        "patient_ref": "P-1",
        "reason": "Chest pain",
        "question": "Stable angina?",
        "urgency": "urgent",
        "proposed_times": [{"start": start, "minutes": 30}],
    });
    let mut past = request.clone();
    past["proposed_times"][0]["start"] = json!(start - 2 * 86_400);
    let (st, _) = c
        .call(
            "POST",
            "/api/v1/referrals",
            "/api/v1/referrals",
            Some(&town_doc),
            Some(past),
        )
        .await;
    assert_eq!(st, 400);
    let (st, referral) = c
        .call(
            "POST",
            "/api/v1/referrals",
            "/api/v1/referrals",
            Some(&town_doc),
            Some(request),
        )
        .await;
    assert_eq!(st, 201, "{referral}");
    let referral_path = format!("/api/v1/referrals/{}", referral["id"].as_str().unwrap());
    let (st, inbox) = c
        .call(
            "GET",
            "/api/v1/referrals",
            "/api/v1/referrals?box=department",
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 200, "{inbox}");
    let (st, accepted) = c
        .call(
            "POST",
            "/api/v1/referrals/{id}/{action}",
            &format!("{referral_path}/accept"),
            Some(&zhao),
            Some(json!({"start": start, "minutes": 30})),
        )
        .await;
    assert_eq!(st, 200, "{accepted}");
    let (st, again) = c
        .call(
            "POST",
            "/api/v1/referrals/{id}/{action}",
            &format!("{referral_path}/accept"),
            Some(&town_doc),
            None,
        )
        .await;
    assert_eq!(
        (st, again["error"]["code"].as_str()),
        (409, Some("not_now"))
    );
    let (st, shown) = c
        .call(
            "GET",
            "/api/v1/referrals/{id}",
            &referral_path,
            Some(&town_doc),
            None,
        )
        .await;
    assert_eq!(st, 200, "{shown}");
    // The room it opened, as the specialist sees it.
    let scheduled = shown["room_id"]
        .as_str()
        .expect("a scheduled request's room");
    let (st, b) = c
        .call(
            "GET",
            "/api/v1/rooms/{id}",
            &format!("/api/v1/rooms/{scheduled}"),
            Some(&zhao),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");

    // The audit trail, as a supervisor; refused to a doctor.
    let (st, page) = c
        .call(
            "GET",
            "/api/v1/audit",
            "/api/v1/audit?limit=50",
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(st, 200, "{page}");
    let (st, _) = c
        .call(
            "GET",
            "/api/v1/audit",
            "/api/v1/audit",
            Some(&doc_token),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = c
        .call(
            "GET",
            "/api/v1/audit/verify",
            "/api/v1/audit/verify",
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(st, 200);

    assert!(
        c.seen.len() >= 20,
        "the walk covers the workflow: {:?}",
        c.seen.keys()
    );
    let _ = me;
    s.stop().await;
}
