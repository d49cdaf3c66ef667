//! The metrics listener as Prometheus scrapes it: the whole exposition parsed as OpenMetrics
//! text (metadata before samples, every sample in its declared family with its type's suffix,
//! histograms cumulative, `# EOF` last), its labels from closed sets only, and values that move
//! with what happens on the server.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::TestServer;
use crate::common::peer::{JoinOptions, SignalingClient, TestPeer};

const T: Duration = Duration::from_secs(10);
const CONNECT: Duration = Duration::from_secs(20);
const MEDIA: Duration = Duration::from_secs(30);

/// Every label the server may put on a series: each takes its values from a closed set (a cap,
/// a deadline, an error code, a worker's index, a reason, a direction, how a worker recovered
/// from a panic) or is a bucket's bound. A participant, a room, an address or a name is never
/// one.
const LABELS: [&str; 9] = [
    "cap",
    "deadline",
    "code",
    "worker",
    "reason",
    "direction",
    "layer",
    "recovery",
    "le",
];

/// One scrape, parsed and checked.
#[derive(Debug)]
struct Exposition {
    text: String,
    /// Family name → type.
    types: HashMap<String, String>,
    /// Sample name with its labels as written → value.
    samples: HashMap<String, f64>,
}

impl Exposition {
    async fn scrape(s: &TestServer) -> Self {
        let url = format!("http://{}/metrics", s.server().metrics_addr.unwrap());
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        match parse(&text) {
            Ok(e) => e,
            Err(e) => panic!("{e}\nin\n{text}"),
        }
    }

    fn get(&self, sample: &str) -> f64 {
        *self
            .samples
            .get(sample)
            .unwrap_or_else(|| panic!("no {sample} in\n{}", self.text))
    }

    fn type_of(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("no family {family} in\n{}", self.text))
    }
}

/// Parses `text` as the OpenMetrics text format, checking what a scraper relies on.
fn parse(text: &str) -> Result<Exposition, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the exposition does not end with `# EOF`")?;
    let mut types = HashMap::new();
    let mut helped = HashSet::new();
    let mut samples = HashMap::new();
    // The family whose samples may follow, and its type.
    let mut current: Option<(String, String)> = None;
    // Per histogram series (its labels without `le`): the last cumulative count seen, and its
    // +Inf bucket and count (written before or after the buckets).
    let mut cumulative: HashMap<String, f64> = HashMap::new();
    let mut totals: HashMap<String, (Option<f64>, Option<f64>)> = HashMap::new();
    for (n, line) in body.lines().enumerate() {
        let at = |e: &str| format!("line {}: {e}: {line}", n + 1);
        if line.is_empty() {
            return Err(at("empty line"));
        }
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name, rest) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            check_name(name).map_err(|e| at(&e))?;
            match kind {
                "HELP" => {
                    if rest.is_empty() || !helped.insert(name.to_owned()) {
                        return Err(at("an empty or repeated HELP"));
                    }
                }
                "TYPE" => {
                    if !["counter", "gauge", "histogram"].contains(&rest) {
                        return Err(at("a type this server does not use"));
                    }
                    if types.insert(name.to_owned(), rest.to_owned()).is_some() {
                        return Err(at("a family declared twice"));
                    }
                    if !helped.contains(name) {
                        return Err(at("TYPE before its HELP"));
                    }
                    current = Some((name.to_owned(), rest.to_owned()));
                }
                "UNIT" => {
                    if !name.ends_with(&format!("_{rest}")) {
                        return Err(at("a unit the family's name does not end with"));
                    }
                }
                _ => return Err(at("unknown metadata")),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("a comment that is not metadata"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| at("no value"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| at("a value that is not a number"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                labels(
                    rest.strip_suffix('}')
                        .ok_or_else(|| at("unclosed labels"))?,
                )
                .map_err(|e| at(&e))?,
            ),
            None => (series, Vec::new()),
        };
        let (family, kind) = current
            .as_ref()
            .ok_or_else(|| at("a sample before any TYPE"))?;
        let suffix = name
            .strip_prefix(family.as_str())
            .ok_or_else(|| at("a sample outside its family"))?;
        let allowed: &[&str] = match kind.as_str() {
            "counter" => &["_total"],
            "gauge" => &[""],
            _ => &["_bucket", "_sum", "_count"],
        };
        if !allowed.contains(&suffix) {
            return Err(at("a suffix the family's type does not have"));
        }
        for (key, _) in &labels {
            if !LABELS.contains(&key.as_str()) {
                return Err(at("a label outside the closed set"));
            }
        }
        if kind == "counter" && value < 0.0 {
            return Err(at("a negative counter"));
        }
        if kind == "histogram" {
            let rest: Vec<String> = labels
                .iter()
                .filter(|(k, _)| k != "le")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let key = format!("{family}{{{}}}", rest.join(","));
            match suffix {
                "_bucket" => {
                    let le = labels
                        .iter()
                        .find(|(k, _)| k == "le")
                        .ok_or_else(|| at("a bucket with no le"))?;
                    let before = cumulative.insert(key.clone(), value).unwrap_or(0.0);
                    if value < before {
                        return Err(at("buckets that are not cumulative"));
                    }
                    if le.1 == "+Inf" {
                        totals.entry(key).or_default().0 = Some(value);
                    }
                }
                "_count" => totals.entry(key).or_default().1 = Some(value),
                _ => {}
            }
        }
        if samples.insert(series.to_owned(), value).is_some() {
            return Err(at("a sample given twice"));
        }
    }
    for (series, (inf, count)) in totals {
        if inf.is_none() || inf != count {
            return Err(format!("{series}: the +Inf bucket is not the count"));
        }
    }
    Ok(Exposition {
        text: text.to_owned(),
        types,
        samples,
    })
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("a bad metric name {name:?}"))
    }
}

/// `a="x",b="y"` → pairs, unescaping `\\`, `\"` and `\n`.
fn labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        check_name(&key)?;
        if chars.next() != Some('"') {
            return Err(format!("label {key} has no quoted value"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    _ => return Err(format!("a bad escape in label {key}")),
                },
                Some(c) => value.push(c),
                None => return Err(format!("label {key}'s value is not closed")),
            }
        }
        out.push((key, value));
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("{c:?} after label value")),
        }
    }
    Ok(out)
}

#[test]
fn the_parser_refuses_what_a_scraper_would() {
    let good =
        "# HELP a_total_x A.\n# TYPE a_total_x counter\na_total_x_total{worker=\"0\"} 1\n# EOF\n";
    parse(good).unwrap();
    for bad in [
        // No EOF.
        "# HELP a A.\n# TYPE a gauge\na 1\n",
        // A sample outside its family.
        "# HELP a A.\n# TYPE a gauge\nb 1\n# EOF\n",
        // A counter without `_total`.
        "# HELP a A.\n# TYPE a counter\na 1\n# EOF\n",
        // A label outside the closed set.
        "# HELP a A.\n# TYPE a gauge\na{participant=\"p1\"} 1\n# EOF\n",
        // Buckets going down.
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n# EOF\n",
        // A count that is not the +Inf bucket.
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted:\n{bad}");
    }
}

#[tokio::test]
async fn the_exposition_is_openmetrics_and_moves_with_a_join() {
    let s = TestServer::start().await;
    let before = Exposition::scrape(&s).await;
    for (family, kind) in [
        ("huizhen_rooms", "gauge"),
        ("huizhen_participants", "gauge"),
        ("huizhen_http_connections", "gauge"),
        ("huizhen_http_connections_refused", "counter"),
        ("huizhen_http_connections_timed_out", "counter"),
        ("huizhen_signaling_connections", "gauge"),
        ("huizhen_signaling_messages", "counter"),
        ("huizhen_signaling_slow_clients", "counter"),
        ("huizhen_signaling_errors", "counter"),
        ("huizhen_join_seconds", "histogram"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_peak_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds", "counter"),
        ("huizhen_media_rooms", "gauge"),
        ("huizhen_media_transports", "gauge"),
        ("huizhen_media_packets_in", "counter"),
        ("huizhen_media_packets_out", "counter"),
        ("huizhen_media_bytes_in", "counter"),
        ("huizhen_media_bytes_out", "counter"),
        ("huizhen_media_cpu_seconds", "counter"),
        ("huizhen_media_dropped", "counter"),
        ("huizhen_media_turn_seconds", "histogram"),
        ("huizhen_media_keyframe_requests", "counter"),
        ("huizhen_media_video_consumers", "gauge"),
        ("huizhen_media_video_layer_switches", "counter"),
        ("huizhen_media_worker_panics", "counter"),
        ("huizhen_media_worker_panic_failures", "counter"),
    ] {
        assert_eq!(before.type_of(family), kind, "{family}");
    }
    assert_eq!(before.get("huizhen_participants"), 0.0);
    assert_eq!(before.get("huizhen_join_seconds_count"), 0.0);
    assert_eq!(
        before.get("huizhen_http_connections_refused_total{cap=\"per_address\"}"),
        0.0
    );
    assert_eq!(
        before.get("huizhen_media_dropped_total{worker=\"0\",reason=\"stale\"}"),
        0.0
    );
    assert_eq!(
        before.get("huizhen_media_video_consumers{worker=\"0\",layer=\"paused\"}"),
        0.0
    );
    for recovery in ["nothing", "room", "worker"] {
        assert_eq!(
            before.get(&format!(
                "huizhen_media_worker_panics_total{{worker=\"0\",recovery=\"{recovery}\"}}"
            )),
            0.0
        );
    }

    // A patient joins (by name), and sends one message the server refuses.
    let room = s.create_room("Dermatology review").await;
    let token = s.invite(&room, "patient").await;
    let c = SignalingClient::connect(&s.ws_url).await.unwrap();
    let joined = c.join(&token, "Li Hua", false, false).await.unwrap();
    c.send_raw("not json").await.unwrap();
    c.expect_error("bad_message", T).await.unwrap();

    let after = Exposition::scrape(&s).await;
    assert_eq!(after.get("huizhen_participants"), 1.0);
    assert_eq!(after.get("huizhen_rooms"), 1.0);
    assert_eq!(after.get("huizhen_signaling_connections"), 1.0);
    assert_eq!(after.get("huizhen_join_seconds_count"), 1.0);
    assert_eq!(after.get("huizhen_join_seconds_bucket{le=\"+Inf\"}"), 1.0);
    assert!(after.get("huizhen_join_seconds_sum") > 0.0);
    assert!(
        after.get("huizhen_signaling_messages_total")
            > before.get("huizhen_signaling_messages_total")
    );
    assert_eq!(
        after.get("huizhen_signaling_errors_total{code=\"bad_message\"}"),
        before.get("huizhen_signaling_errors_total{code=\"bad_message\"}") + 1.0
    );
    // Who joined, in which room, from where, is in no series.
    let participant = joined["you"]["id"].as_str().expect("own id");
    for secret in [participant, room.as_str(), "Li Hua", "127.0.0.1"] {
        assert!(!after.text.contains(secret), "{secret} in\n{}", after.text);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_with_media_fills_the_quality_histograms() {
    let s = TestServer::start().await;
    let room = s.create_room("Cardiology follow-up").await;
    let doctor = peer(&s, &room, "doctor", "Dr. Wang", 0x51).await;
    let patient = peer(&s, &room, "patient", "Li Hua", 0x62).await;
    doctor.assert_receives_from(&patient, 25, MEDIA).await;
    patient.assert_receives_from(&doctor, 25, MEDIA).await;

    // Each peer connection is reported about once a second; receiver reports come every few
    // seconds, so wait until every histogram has had some.
    let filled = [
        "huizhen_media_quality_reports_total{worker=\"0\"}",
        "huizhen_media_rtt_seconds_count{worker=\"0\"}",
        "huizhen_media_loss_ratio_count{worker=\"0\",direction=\"egress\"}",
        "huizhen_media_track_rtt_seconds_count{worker=\"0\"}",
        "huizhen_media_track_loss_ratio_count{worker=\"0\",direction=\"ingress\"}",
        "huizhen_media_track_loss_ratio_count{worker=\"0\",direction=\"egress\"}",
    ];
    let deadline = tokio::time::Instant::now() + MEDIA;
    let e = loop {
        let e = Exposition::scrape(&s).await;
        if filled.iter().all(|series| e.get(series) > 0.0) {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "quality histograms still empty:\n{}",
            e.text
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (family, kind) in [
        ("huizhen_media_quality_reports", "counter"),
        ("huizhen_media_rtt_seconds", "histogram"),
        ("huizhen_media_loss_ratio", "histogram"),
        ("huizhen_media_track_rtt_seconds", "histogram"),
        ("huizhen_media_track_loss_ratio", "histogram"),
    ] {
        assert_eq!(e.type_of(family), kind, "{family}");
    }
    // On loopback, most reports see next to no loss: the median is under 5 %.
    for direction in ["ingress", "egress"] {
        let count = e.get(&format!(
            "huizhen_media_track_loss_ratio_count{{worker=\"0\",direction=\"{direction}\"}}"
        ));
        let low = e.get(&format!(
            "huizhen_media_track_loss_ratio_bucket{{le=\"0.05\",worker=\"0\",direction=\"{direction}\"}}"
        ));
        if count > 0.0 {
            assert!(
                low * 2.0 >= count,
                "{direction}: {low} of {count} under 5 %"
            );
        }
    }
    // Two participants, and still no series names either of them.
    for secret in [doctor.id(), patient.id(), room.clone()] {
        assert!(!e.text.contains(secret.as_str()), "{secret} in\n{}", e.text);
    }
    s.stop().await;
}

async fn peer(s: &TestServer, room: &str, role: &str, name: &str, marker: u8) -> TestPeer {
    let token = s.invite(room, role).await;
    let p = TestPeer::join(JoinOptions {
        ws_url: s.ws_url.clone(),
        token,
        name: name.into(),
        publish_audio: true,
        publish_video: true,
        marker,
        h264: false,
    })
    .await
    .unwrap_or_else(|e| panic!("{name} joins: {e:#}"));
    p.wait_connected(CONNECT)
        .await
        .unwrap_or_else(|e| panic!("{name} connects: {e:#}"));
    p.start_media();
    p
}
