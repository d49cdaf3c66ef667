//! The `audit_trail` target: the audit trail's export and verification, with what a stranger
//! controls in it. Entries carry text that came from outside (display names, document names,
//! reasons, free-text details), and the anchor file is read back by `huizhen audit verify`
//! from a disk someone may have written to.
//!
//! The input is split at NUL bytes: the first part is an anchor file, every later part one
//! entry's fields (split again at 0x01: actor, action, room, object, detail, outcome; lossy
//! UTF-8, as the database would hold them). The target chains the entries under a key as the
//! writer does, exports them as the server does, and checks:
//! - the export has one line per entry, and each line gives back its entry's fields exactly;
//! - the chain verifies (against whatever the anchor file's lines are: a line that is not an
//!   authentic anchor breaks an anchor, never the chain);
//! - changing one byte's worth of one entry's text breaks the chain at that entry.

use crate::audit::{
    AuditEntry, AuditKey, GENESIS, KEYED, Walk, export_line, keyed_hash, parse_anchors,
};

/// Entries per input, at most.
const MAX_ENTRIES: usize = 32;

fn field(parts: &[&[u8]], i: usize) -> String {
    parts
        .get(i)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

pub fn audit_trail(data: &[u8]) {
    let key = AuditKey::from_bytes([7; 32]);
    let mut parts = data.split(|b| *b == 0);
    let anchors = parts.next().unwrap_or_default();
    let lines = parse_anchors(anchors, 1, &key);

    let mut entries: Vec<AuditEntry> = Vec::new();
    for (i, raw) in parts.take(MAX_ENTRIES).enumerate() {
        let f: Vec<&[u8]> = raw.split(|b| *b == 1).collect();
        let mut e = AuditEntry {
            seq: i as i64 + 1,
            at_ms: 1_800_000_000_000 + i as i64,
            actor: field(&f, 0),
            actor_role: "doctor".into(),
            action: field(&f, 1),
            room_id: field(&f, 2),
            object_type: "document".into(),
            object_id: field(&f, 3),
            object_sha256: String::new(),
            outcome: field(&f, 5),
            detail: field(&f, 4),
            prev_hash: entries
                .last()
                .map_or_else(|| GENESIS.to_owned(), |p| p.hash.clone()),
            hash: String::new(),
            scheme: KEYED.into(),
        };
        e.hash = keyed_hash(&e, &key);
        entries.push(e);
    }

    // The export: one line per entry, each giving its fields back.
    let mut out = Vec::new();
    for e in &entries {
        export_line(&mut out, e);
    }
    let exported: Vec<&[u8]> = out.split(|b| *b == b'\n').collect();
    assert_eq!(exported.len(), entries.len() + 1, "one line per entry");
    for (line, e) in exported.iter().zip(&entries) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("an exported line parses");
        for (name, text) in [
            ("actor", &e.actor),
            ("action", &e.action),
            ("room_id", &e.room_id),
            ("object_id", &e.object_id),
            ("detail", &e.detail),
            ("outcome", &e.outcome),
            ("hash", &e.hash),
            ("prev_hash", &e.prev_hash),
        ] {
            assert_eq!(v[name].as_str(), Some(text.as_str()), "{name} round-trips");
        }
        assert_eq!(v["seq"].as_i64(), Some(e.seq));
    }

    // The chain verifies, whatever the anchor file said.
    let mut walk = Walk::new(&key, lines.clone());
    for e in &entries {
        assert!(walk.step(e).is_ok(), "a sound chain breaks at {}", e.seq);
    }
    let verified = walk.finish();
    assert!(verified.first_broken.is_none(), "{verified:?}");

    // One entry's text changed: the chain breaks there.
    if entries.is_empty() {
        return;
    }
    let k = usize::from(data.last().copied().unwrap_or(0)) % entries.len();
    let mut altered = entries.clone();
    altered[k].detail.push('x');
    let mut walk = Walk::new(&key, lines);
    let broke = altered.iter().position(|e| walk.step(e).is_err());
    assert_eq!(
        broke,
        Some(k),
        "a changed entry breaks the chain where it is"
    );
}

/// Seeds: an empty anchor file with two ordinary entries (a name with a newline and a quote in
/// it, a detail as the server writes them); a forged anchor line with one entry.
pub fn seeds() -> Vec<Vec<u8>> {
    let entry = |fields: &[&str]| fields.join("\u{1}").into_bytes();
    vec![
        [
            &b""[..],
            &entry(&[
                "user:u_1",
                "participant.joined",
                "r_1",
                "p_1",
                r#"{"name":"Dr. \"Wang\"\nLi"}"#,
                "ok",
            ]),
            &entry(&["system", "room.ended", "r_1", "", "{}", "ok"]),
        ]
        .join(&0u8),
        [
            &br#"{"v":1,"seq":1,"hash":"00","at_ms":1,"mac":"00"}"#[..],
            &entry(&[
                "unknown",
                "access.denied",
                "",
                "",
                r#"{"reason":"x"}"#,
                "denied",
            ]),
        ]
        .join(&0u8),
    ]
}
