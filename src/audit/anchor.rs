//! Anchors: the chain's head written down, now and then, where the database's writer cannot
//! rewrite it.
//!
//! An anchor is one JSON line `{"v":1,"seq","hash","at_ms","mac"}` appended to the anchor file
//! (`audit.anchor_file`, by default `<data_dir>/audit-anchors.jsonl`): the entry `seq` had the
//! hash `hash` at `at_ms`, authenticated by an HMAC under the audit key. The file is only ever
//! opened to append, created 0600, and synced after each line; every anchor is also logged (the
//! log is a second witness, and ships off the host where logs do). Verification compares every
//! anchor with the chain: someone who rewrites the database, even with the key, cannot make an
//! entry that was anchored hash to anything else, nor remove it.
//!
//! The MAC's input starts with a label, so it can never be mistaken for an entry's keyed hash
//! (whose encoding starts with a length in digits).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::key::{AuditKey, sync_dir};

/// Bytes read from the end of the anchor file to find the last anchor.
const TAIL: u64 = 64 * 1024;

/// One checkpoint of the chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The format; 1.
    pub v: u32,
    pub seq: i64,
    pub hash: String,
    /// When it was written (Unix milliseconds).
    pub at_ms: i64,
    /// HMAC-SHA256 under the audit key over the fields above, lower-case hex.
    pub mac: String,
}

impl Anchor {
    pub(super) fn new(key: &AuditKey, seq: i64, hash: String, at_ms: i64) -> Self {
        let mac = mac(key, seq, &hash, at_ms);
        Self {
            v: 1,
            seq,
            hash,
            at_ms,
            mac,
        }
    }

    /// Whether the MAC is this key's over these fields. (Verification runs over stored data
    /// with no one timing it, so a plain comparison is enough.)
    fn authentic(&self, key: &AuditKey) -> bool {
        self.v == 1 && self.seq > 0 && self.mac == mac(key, self.seq, &self.hash, self.at_ms)
    }
}

fn mac(key: &AuditKey, seq: i64, hash: &str, at_ms: i64) -> String {
    let mut m = key.mac();
    m.update(b"huizhen audit anchor v1\0");
    for field in [seq.to_string().as_str(), hash, at_ms.to_string().as_str()] {
        m.update(field.len().to_string().as_bytes());
        m.update(b":");
        m.update(field.as_bytes());
    }
    crate::domain::hex::hex(&m.finalize().into_bytes())
}

/// A line of the anchor file as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// An authentic anchor (1-based line number).
    Anchor(u64, Anchor),
    /// Not an anchor at all (1-based line number).
    Unreadable(u64),
    /// An anchor whose MAC does not verify under the key: altered, or another key's.
    Forged(u64, Anchor),
}

/// Appends an anchor (creating the file 0600 if need be) and syncs it.
pub(super) fn append(path: &Path, anchor: &Anchor) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = options.open(path)?;
    let len = file.metadata()?.len();
    let mut line = Vec::with_capacity(256);
    if len > 0 {
        // A line torn by a crash before its sync: start on a fresh one.
        let mut last = [0u8];
        file.seek(SeekFrom::End(-1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push(b'\n');
        }
    }
    serde_json::to_writer(&mut line, anchor).expect("anchors serialize");
    line.push(b'\n');
    // Opened to append: the write lands at the end whatever the position.
    file.write_all(&line)?;
    file.sync_data()?;
    if len == 0
        && let Some(dir) = dir
    {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Every line of the anchor file, in order; none if there is no file. A line that ends mid-way
/// (a write cut short by a crash before its sync; the next anchor starts on a line of its own)
/// is left out: it vouches for nothing.
pub(super) fn read_all(path: &Path, key: &AuditKey) -> std::io::Result<Vec<Line>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(parse(&text, 1, key))
}

/// The last authentic anchor of the file (the one with the highest `seq` among the last lines),
/// reading only its end.
pub(super) fn read_last(path: &Path, key: &AuditKey) -> std::io::Result<Option<Anchor>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    if start > 0 {
        // The first line read is probably a piece of one.
        let cut = tail
            .iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |i| i + 1);
        tail.drain(..cut);
    }
    Ok(parse(&tail, 0, key)
        .into_iter()
        .filter_map(|l| match l {
            Line::Anchor(_, a) => Some(a),
            _ => None,
        })
        .max_by_key(|a| a.seq))
}

/// The anchor file's lines from `first_line` on, each judged: an authentic anchor, one whose
/// MAC does not verify, or not an anchor at all. Whatever the bytes (the file may have been
/// tampered with): `huizhen::fuzz::audit_trail` feeds it anything.
pub(crate) fn parse(text: &[u8], first_line: u64, key: &AuditKey) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let number = first_line + i as u64;
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Anchor>(raw) {
            Ok(a) if a.authentic(key) => out.push(Line::Anchor(number, a)),
            Ok(a) => out.push(Line::Forged(number, a)),
            Err(e) if e.is_eof() => {}
            Err(_) => out.push(Line::Unreadable(number)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_private_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/anchors.jsonl");
        let key = AuditKey::random();
        assert!(read_all(&path, &key).unwrap().is_empty());
        assert_eq!(read_last(&path, &key).unwrap(), None);
        let a = Anchor::new(&key, 3, "ab".repeat(32), 1);
        let b = Anchor::new(&key, 7, "cd".repeat(32), 2);
        append(&path, &a).unwrap();
        let first = std::fs::read(&path).unwrap();
        append(&path, &b).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Appended: what was there is still there, byte for byte.
        assert!(std::fs::read(&path).unwrap().starts_with(&first));
        assert_eq!(
            read_all(&path, &key).unwrap(),
            vec![Line::Anchor(1, a.clone()), Line::Anchor(2, b.clone())]
        );
        assert_eq!(read_last(&path, &key).unwrap(), Some(b.clone()));
        // Another key's anchors do not verify.
        let other = AuditKey::random();
        assert!(matches!(
            &read_all(&path, &other).unwrap()[..],
            [Line::Forged(1, _), Line::Forged(2, _)]
        ));
        assert_eq!(read_last(&path, &other).unwrap(), None);
    }

    #[test]
    fn altered_garbled_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchors.jsonl");
        let key = AuditKey::random();
        let a = Anchor::new(&key, 3, "ab".repeat(32), 1);
        let mut moved = Anchor::new(&key, 4, "cd".repeat(32), 2);
        moved.seq = 5;
        let mut text = serde_json::to_string(&a).unwrap();
        text.push('\n');
        text.push_str(&serde_json::to_string(&moved).unwrap());
        text.push_str("\nnot json\n{\"v\":1,\"seq\":9");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            read_all(&path, &key).unwrap(),
            vec![
                Line::Anchor(1, a.clone()),
                Line::Forged(2, moved),
                Line::Unreadable(3)
            ]
        );
        // The next anchor starts on a line of its own after the torn one, which stays left out.
        let b = Anchor::new(&key, 10, "ef".repeat(32), 3);
        append(&path, &b).unwrap();
        let lines = read_all(&path, &key).unwrap();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[3], Line::Anchor(5, b.clone()));
        assert_eq!(read_last(&path, &key).unwrap(), Some(b));
    }
}
