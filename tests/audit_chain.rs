//! The audit trail against someone who can write its database (security review, finding 7):
//! on SQLite and PostgreSQL (HUIZHEN_REQUIRE_POSTGRES=1 makes PostgreSQL's absence a failure).
//!
//! - a rewrite without the key, rehashed the old way or with another key, is pointed at;
//! - a rewrite by someone holding the key is caught by an anchor written before it;
//! - entries removed after an anchor are a truncation;
//! - the anchor file is created 0600 and only appended to;
//! - a trail begun by the previous version (plain SHA-256 hashes, its schema) is keyed from
//!   where this version takes over, verifies, and tampering on either side of the switch shows;
//! - `huizhen audit verify` exits with status 1 on each of these, and the server refuses to
//!   start without its key or with another.
//!
//! The attacker here is test code writing SQL: it computes hashes with its own implementation of
//! the canonical encoding, so these tests also pin the format.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use huizhen::audit::{
    Action, Actor, AnchorBreakKind, Anchored, AuditEntry, AuditError, AuditEvent, AuditLog,
    BreakKind, Verification,
};
use huizhen::storage::Db;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use crate::common::process::{PASSWORD, call, configure_on, http, huizhen, start};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How the attacker rehashes.
#[derive(Clone, Copy)]
enum Rehash {
    /// Plain SHA-256, as the previous version did (no key needed).
    Sha256,
    /// HMAC-SHA256 under a key: the audit key (stolen) or another.
    Hmac([u8; 32]),
}

fn encoding(e: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::new();
    for f in [
        e.seq.to_string().as_str(),
        e.at_ms.to_string().as_str(),
        &e.actor,
        &e.actor_role,
        &e.action,
        &e.room_id,
        &e.object_type,
        &e.object_id,
        &e.object_sha256,
        &e.outcome,
        &e.detail,
        &e.prev_hash,
    ] {
        out.extend_from_slice(format!("{}:{f}", f.len()).as_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry's hash and scheme as `how` computes them.
fn rehash(e: &AuditEntry, how: Rehash) -> (String, &'static str) {
    match how {
        Rehash::Sha256 => (hex(&Sha256::digest(encoding(e))), "sha256"),
        Rehash::Hmac(key) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(&encoding(e));
            (hex(&mac.finalize().into_bytes()), "hmac-sha256")
        }
    }
}

async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(url).await.unwrap()
}

async fn all_entries(log: &AuditLog) -> Vec<AuditEntry> {
    log.entries(0, 100_000, None).await.unwrap()
}

async fn store(pool: &AnyPool, e: &AuditEntry) {
    sqlx::query(
        "UPDATE audit_log SET outcome = $1, detail = $2, prev_hash = $3, hash = $4, scheme = $5 \
         WHERE seq = $6",
    )
    .bind(e.outcome.as_str())
    .bind(e.detail.as_str())
    .bind(e.prev_hash.as_str())
    .bind(e.hash.as_str())
    .bind(e.scheme.as_str())
    .bind(e.seq)
    .execute(pool)
    .await
    .unwrap();
}

/// The attack: entry `seq`'s detail is changed, and it and every entry after it up to `until`
/// (the end when `None`) are relinked and rehashed with `how`.
async fn rewrite(
    pool: &AnyPool,
    entries: &[AuditEntry],
    seq: i64,
    until: Option<i64>,
    how: Rehash,
) {
    let mut prev = match seq {
        1 => GENESIS.to_owned(),
        s => entries[s as usize - 2].hash.clone(),
    };
    for e in entries
        .iter()
        .filter(|e| e.seq >= seq && until.is_none_or(|u| e.seq <= u))
    {
        let mut e = e.clone();
        if e.seq == seq {
            e.detail = r#"{"reason":"nothing to see"}"#.into();
        }
        e.prev_hash = prev;
        let (hash, scheme) = rehash(&e, how);
        (e.hash, e.scheme) = (hash, scheme.to_owned());
        prev = e.hash.clone();
        store(pool, &e).await;
    }
}

/// Puts every entry back as it was.
async fn restore(pool: &AnyPool, entries: &[AuditEntry]) {
    for e in entries {
        store(pool, e).await;
    }
}

fn broken(v: &Verification) -> Option<(i64, BreakKind)> {
    v.first_broken.as_ref().map(|b| (b.seq, b.kind))
}

fn broken_anchor(v: &Verification) -> Option<(Option<i64>, AnchorBreakKind, Option<i64>)> {
    v.first_broken_anchor
        .as_ref()
        .map(|b| (b.seq, b.kind, b.last_good_seq))
}

fn key_bytes(path: &Path) -> [u8; 32] {
    let text = std::fs::read_to_string(path).unwrap();
    B64.decode(text.trim()).unwrap().try_into().unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn event(n: usize) -> AuditEvent {
    AuditEvent::new(Actor::System, Action::AuditRead).object("probe", n)
}

/// Rewrites with and without the key, truncation, and the anchor file, on the database at `url`
/// with the audit files under `dir`.
async fn rewrites_are_caught(url: &str, dir: &Path) {
    let key_file = dir.join("keys/audit.key");
    let anchor_file = dir.join("witness/audit-anchors.jsonl");
    let db = Db::connect(url).await.unwrap();
    let log = AuditLog::open(db.clone(), &key_file, anchor_file.clone())
        .await
        .unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(log.anchor().await.unwrap(), Anchored::Unmoved, "empty");
    for n in 0..6 {
        log.record(event(n)).await.unwrap();
    }
    let Anchored::Written(first) = log.anchor().await.unwrap() else {
        panic!("the head moved")
    };
    assert_eq!(first.seq, 6);
    // The anchor file: created 0600, one line; appended to, never rewritten.
    #[cfg(unix)]
    assert_eq!(mode(&anchor_file), 0o600);
    let before = std::fs::read(&anchor_file).unwrap();
    assert_eq!(before.iter().filter(|b| **b == b'\n').count(), 1);
    assert_eq!(log.anchor().await.unwrap(), Anchored::Unmoved);
    assert_eq!(std::fs::read(&anchor_file).unwrap(), before);
    for n in 6..10 {
        log.record(event(n)).await.unwrap();
    }
    let Anchored::Written(second) = log.anchor().await.unwrap() else {
        panic!("the head moved")
    };
    assert_eq!(second.seq, 10);
    let after = std::fs::read(&anchor_file).unwrap();
    assert!(after.starts_with(&before) && after.len() > before.len());
    #[cfg(unix)]
    assert_eq!(mode(&anchor_file), 0o600);
    log.record(event(10)).await.unwrap();
    let v = log.verify().await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(
        (
            v.entries,
            v.keyed_from,
            v.anchors_checked,
            v.anchored_seq,
            v.unanchored
        ),
        (11, Some(1), 2, 10, 1)
    );

    let original = all_entries(&log).await;
    let sql = pool(url).await;
    // 1. Without the key: entry 3 rewritten and everything after it rehashed the old way, or
    //    with a key that is not the audit key. Verification points at entry 3.
    rewrite(&sql, &original, 3, None, Rehash::Sha256).await;
    let v = log.verify().await.unwrap();
    assert_eq!(broken(&v), Some((3, BreakKind::Downgrade)), "{v:?}");
    restore(&sql, &original).await;
    rewrite(&sql, &original, 3, None, Rehash::Hmac([9; 32])).await;
    let v = log.verify().await.unwrap();
    assert_eq!(broken(&v), Some((3, BreakKind::HashMismatch)), "{v:?}");
    restore(&sql, &original).await;
    assert!(log.verify().await.unwrap().ok());

    // 2. With the key (stolen): the chain is whole again, but the anchor at 10, written
    //    before, no longer holds; the one at 6 does, so the change is after 6. Nor is the
    //    rewritten chain anchored.
    let stolen = key_bytes(&key_file);
    rewrite(&sql, &original, 8, None, Rehash::Hmac(stolen)).await;
    let v = log.verify().await.unwrap();
    assert_eq!(v.first_broken, None, "{v:?}");
    assert!(!v.ok());
    assert_eq!(
        broken_anchor(&v),
        Some((Some(10), AnchorBreakKind::HashMismatch, Some(6)))
    );
    assert!(matches!(
        log.anchor().await.unwrap(),
        Anchored::Refused { seq: 10, .. }
    ));
    restore(&sql, &original).await;
    assert!(log.verify().await.unwrap().ok());
    // The entry after the last anchor, rewritten with the key, is not seen: the verification
    // says that one entry is unanchored.
    rewrite(&sql, &original, 11, None, Rehash::Hmac(stolen)).await;
    let v = log.verify().await.unwrap();
    assert!(v.ok() && v.unanchored == 1, "{v:?}");
    restore(&sql, &original).await;

    // 3. Entries removed after an anchor (or a database restored from an older backup).
    sqlx::query("DELETE FROM audit_log WHERE seq > 8")
        .execute(&sql)
        .await
        .unwrap();
    let v = log.verify().await.unwrap();
    assert_eq!(v.first_broken, None, "{v:?}");
    assert_eq!(
        broken_anchor(&v),
        Some((Some(10), AnchorBreakKind::Truncated, Some(6)))
    );
    assert!(matches!(
        log.anchor().await.unwrap(),
        Anchored::Refused { seq: 10, .. }
    ));
    // Regrown past the anchor by a writer that does not know: still a mismatch there.
    for n in 0..4 {
        log.record(event(100 + n)).await.unwrap();
    }
    let v = log.verify().await.unwrap();
    assert_eq!(v.first_broken, None, "{v:?}");
    assert_eq!(
        broken_anchor(&v),
        Some((Some(10), AnchorBreakKind::HashMismatch, Some(6)))
    );
    log.close().await;
    sql.close().await;
    db.close().await;
}

/// The previous version's schema (every migration before 0005, which adds the hashing scheme)
/// and trail: `n` entries with plain SHA-256 hashes, written as it wrote them.
async fn previous_version_trail(url: &str, n: i64) {
    let old = tempfile::tempdir().unwrap();
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if ["0001_", "0002_", "0003_", "0004_"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    let sql = pool(url).await;
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&sql)
        .await
        .unwrap();
    let mut prev = GENESIS.to_owned();
    for seq in 1..=n {
        let mut e = AuditEntry {
            seq,
            at_ms: 1_700_000_000_000 + seq,
            actor: "system".into(),
            actor_role: String::new(),
            action: "room.created".into(),
            room_id: String::new(),
            object_type: "room".into(),
            object_id: format!("r_{seq}"),
            object_sha256: String::new(),
            outcome: "ok".into(),
            detail: "{}".into(),
            prev_hash: prev,
            hash: String::new(),
            scheme: String::new(),
        };
        e.hash = rehash(&e, Rehash::Sha256).0;
        prev = e.hash.clone();
        sqlx::query(
            "INSERT INTO audit_log (seq, at_ms, actor, actor_role, action, room_id, object_type, \
             object_id, object_sha256, outcome, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.seq)
        .bind(e.at_ms)
        .bind(e.actor.as_str())
        .bind(e.actor_role.as_str())
        .bind(e.action.as_str())
        .bind(e.room_id.as_str())
        .bind(e.object_type.as_str())
        .bind(e.object_id.as_str())
        .bind(e.object_sha256.as_str())
        .bind(e.outcome.as_str())
        .bind(e.detail.as_str())
        .bind(e.prev_hash.as_str())
        .bind(e.hash.as_str())
        .execute(&sql)
        .await
        .unwrap();
    }
    sql.close().await;
}

/// A trail begun by the previous version, taken over by this one.
async fn the_upgrade_keeps_history_and_keys_what_follows(url: &str, dir: &Path) {
    previous_version_trail(url, 3).await;
    let key_file = dir.join("audit.key");
    let anchor_file = dir.join("audit-anchors.jsonl");
    // Connecting brings the schema to 0005; opening the trail keys it at once.
    let db = Db::connect(url).await.unwrap();
    let log = AuditLog::open(db.clone(), &key_file, anchor_file.clone())
        .await
        .unwrap();
    let entries = all_entries(&log).await;
    assert_eq!(entries.len(), 4);
    assert!(entries[..3].iter().all(|e| e.scheme == "sha256"));
    let switch = &entries[3];
    assert_eq!(
        (switch.action.as_str(), switch.scheme.as_str()),
        ("chain.keyed", "hmac-sha256")
    );
    assert_eq!(switch.prev_hash, entries[2].hash);
    let key = key_bytes(&key_file);
    assert!(switch.detail.contains("key_id"), "{}", switch.detail);
    assert_eq!(rehash(switch, Rehash::Hmac(key)).0, switch.hash);
    log.record(event(0)).await.unwrap();
    log.record(event(1)).await.unwrap();
    assert!(matches!(log.anchor().await.unwrap(), Anchored::Written(_)));
    let v = log.verify().await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(
        (v.entries, v.keyed_from, v.anchors_checked),
        (6, Some(4), 1)
    );
    log.close().await;
    // Opened again (a restart): no second switch, the same key.
    let log = AuditLog::open(db.clone(), &key_file, anchor_file.clone())
        .await
        .unwrap();
    assert_eq!(log.verify().await.unwrap().entries, 6);
    assert_eq!(key_bytes(&key_file), key);

    let original = all_entries(&log).await;
    let sql = pool(url).await;
    // Before the switch, rehashed the old way up to it: the switch's link breaks.
    rewrite(&sql, &original, 2, Some(3), Rehash::Sha256).await;
    let v = log.verify().await.unwrap();
    assert_eq!(broken(&v), Some((4, BreakKind::PrevMismatch)), "{v:?}");
    restore(&sql, &original).await;
    // Before the switch, rehashed the old way to the end: nothing is keyed any more.
    rewrite(&sql, &original, 2, None, Rehash::Sha256).await;
    let v = log.verify().await.unwrap();
    assert_eq!(broken(&v), Some((6, BreakKind::Downgrade)), "{v:?}");
    // (and the anchor, written before, no longer holds either)
    restore(&sql, &original).await;
    // After the switch, without the key.
    rewrite(&sql, &original, 5, None, Rehash::Sha256).await;
    let v = log.verify().await.unwrap();
    assert_eq!(broken(&v), Some((5, BreakKind::Downgrade)), "{v:?}");
    restore(&sql, &original).await;
    rewrite(&sql, &original, 5, None, Rehash::Hmac([9; 32])).await;
    let v = log.verify().await.unwrap();
    assert_eq!(broken(&v), Some((5, BreakKind::HashMismatch)), "{v:?}");
    restore(&sql, &original).await;
    assert!(log.verify().await.unwrap().ok());
    log.close().await;

    // Another key is refused before anything is appended; a lost key is not replaced.
    let other = dir.join("other.key");
    std::fs::write(&other, B64.encode([5u8; 32])).unwrap();
    assert!(matches!(
        AuditLog::open(db.clone(), &other, anchor_file.clone()).await,
        Err(AuditError::WrongKey(4))
    ));
    std::fs::remove_file(&key_file).unwrap();
    assert!(matches!(
        AuditLog::open(db.clone(), &key_file, anchor_file).await,
        Err(AuditError::KeyMissing { seq: 4, .. })
    ));
    assert!(!key_file.exists());
    // Nothing was appended by the refused openings.
    assert_eq!(all_entries(&log).await, original);
    sql.close().await;
    db.close().await;
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("h.db").display())
}

#[tokio::test]
async fn rewrites_are_caught_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rewrites_are_caught(&sqlite_url(dir.path()), dir.path()).await;
}

#[tokio::test]
async fn rewrites_are_caught_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    rewrites_are_caught(&pg.url, dir.path()).await;
    pg.drop_db().await;
}

#[tokio::test]
async fn the_upgrade_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_upgrade_keeps_history_and_keys_what_follows(&sqlite_url(dir.path()), dir.path()).await;
}

#[tokio::test]
async fn the_upgrade_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    the_upgrade_keeps_history_and_keys_what_follows(&pg.url, dir.path()).await;
    pg.drop_db().await;
}

/// `huizhen audit verify`: its exit status and what it says.
fn verify_cli(cfg: &Path) -> (Option<i32>, String) {
    let out = huizhen(cfg).args(["audit", "verify"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// `huizhen serve` is expected to refuse to start: its exit status and standard error.
fn serve_refused(cfg: &Path) -> (Option<i32>, String) {
    let mut child = huizhen(cfg)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            child.kill().unwrap();
            panic!("the server started");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

/// The real binary: a server writes the trail and anchors it at shutdown; then the trail is
/// tampered with in the database in each way, and the command line says so.
async fn the_command_line_fails_on_tampering(database_url: Option<&str>) {
    common::peer::ensure_rustls_provider();
    let dir = tempfile::tempdir().unwrap();
    let cfg = configure_on(dir.path(), 2, database_url);
    let url = database_url.map_or_else(
        || format!("sqlite://{}", dir.path().join("data/huizhen.db").display()),
        str::to_owned,
    );
    let data: PathBuf = dir.path().join("data");
    let http = http();
    let mut server = start(&cfg);
    let (st, login) = call(
        &http,
        "POST",
        server.api("/auth/login"),
        "",
        Some(serde_json::json!({"username": "doc", "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_owned();
    for title in ["One", "Two", "Three"] {
        let (st, _) = call(
            &http,
            "POST",
            server.api("/rooms"),
            &token,
            Some(serde_json::json!({ "title": title })),
        )
        .await;
        assert_eq!(st, 201);
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("the server exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    // Shutdown anchored the head.
    let anchors = std::fs::read_to_string(data.join("audit-anchors.jsonl")).unwrap();
    assert!(!anchors.is_empty());
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("audit-anchors.jsonl")), 0o600);
        assert_eq!(mode(&data.join("audit.key")), 0o600);
    }
    let (code, text) = verify_cli(&cfg);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("audit trail intact"), "{text}");
    assert!(text.contains("0 after it not yet"), "{text}");

    let db = Db::connect(&url).await.unwrap();
    let log = AuditLog::new(
        db.clone(),
        huizhen::audit::AuditKey::from_bytes(key_bytes(&data.join("audit.key"))),
    );
    let original = all_entries(&log).await;
    assert!(original.len() >= 4, "{original:?}");
    let sql = pool(&url).await;
    // Without the key.
    sqlx::query("UPDATE audit_log SET outcome = 'denied' WHERE seq = 2")
        .execute(&sql)
        .await
        .unwrap();
    let (code, text) = verify_cli(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("BROKEN at entry 2 (HashMismatch)"), "{text}");
    restore(&sql, &original).await;
    // With the key.
    let stolen = key_bytes(&data.join("audit.key"));
    rewrite(&sql, &original, 2, None, Rehash::Hmac(stolen)).await;
    let (code, text) = verify_cli(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("audit trail intact"), "{text}");
    assert!(text.contains("anchor BROKEN"), "{text}");
    assert!(text.contains("HashMismatch"), "{text}");
    restore(&sql, &original).await;
    assert_eq!(verify_cli(&cfg).0, Some(0));
    // Cut short.
    sqlx::query("DELETE FROM audit_log WHERE seq > 2")
        .execute(&sql)
        .await
        .unwrap();
    let (code, text) = verify_cli(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("Truncated"), "{text}");
    // Without its key the server does not start (nor make a new one), and verification
    // says what is missing.
    let key_file = data.join("audit.key");
    std::fs::rename(&key_file, data.join("audit.key.away")).unwrap();
    let (code, err) = serve_refused(&cfg);
    assert_ne!(code, Some(0));
    assert!(err.contains("audit key file"), "{err}");
    assert!(!key_file.exists());
    let (code, text) = verify_cli(&cfg);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    // Exporting the entries needs no key.
    let export = huizhen(&cfg).args(["audit", "export"]).output().unwrap();
    assert!(export.status.success());
    assert_eq!(export.stdout.split(|b| *b == b'\n').count(), 3);
    // With another key neither.
    std::fs::write(&key_file, B64.encode([5u8; 32])).unwrap();
    let (code, err) = serve_refused(&cfg);
    assert_ne!(code, Some(0));
    assert!(err.contains("does not verify with this audit key"), "{err}");
    log.close().await;
    sql.close().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_on_sqlite() {
    the_command_line_fails_on_tampering(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_on_postgres() {
    let Some(pg) = common::PgTestDb::create().await else {
        return;
    };
    the_command_line_fails_on_tampering(Some(&pg.url)).await;
    pg.drop_db().await;
}

/// The running server anchors the chain's head on its interval, not only at start and at
/// shutdown: what is written while it runs is anchored within the interval.
#[tokio::test]
async fn the_running_server_anchors_on_its_interval() {
    let s = common::TestServer::start_with(|c| c.audit.anchor_interval_s = 1).await;
    let anchors = s.dir.path().join("data/audit-anchors.jsonl");
    let last_seq = || -> i64 {
        let text = std::fs::read_to_string(&anchors).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|a| a["seq"].as_i64())
            .max()
            .unwrap_or(0)
    };
    let sup = s
        .account("sup", huizhen::domain::role::AccountRole::NetworkSupervisor)
        .await;
    for round in 0..2 {
        s.create_room(&format!("Anchored {round}")).await;
        let head = s
            .audit_all(&sup)
            .await
            .iter()
            .filter_map(|e| e["seq"].as_i64())
            .max()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while last_seq() < head {
            assert!(
                std::time::Instant::now() < deadline,
                "entry {head} not anchored within the interval (last anchored: {})",
                last_seq()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    s.stop().await;
}
