//! The hash chain: how an entry's hash is computed and how the whole trail is verified, against
//! itself and against its anchors.
//!
//! An entry's hash covers every other column, each written as `<byte length>:<bytes>` so no two
//! different entries share an encoding, ending with the previous entry's hash. Changing,
//! removing or reordering any entry therefore breaks the link at that entry (or at the one after
//! it).
//!
//! The hash is keyed: HMAC-SHA256 under the audit key ([`super::key`]), kept outside the
//! database, so that someone who can write the database but does not hold the key cannot
//! recompute the hashes after an entry they changed. Entries written before the chain was keyed
//! (by versions that hashed with plain SHA-256) keep their hashes: their `scheme` column says
//! `sha256`, and the first entry appended on such a chain is a `chain.keyed` entry from which on
//! every entry is keyed. An unkeyed entry after a keyed one is a break ([`BreakKind::Downgrade`]).
//!
//! What the key cannot stop (its thief rewriting and rehashing, the newest entries removed) the
//! anchors do ([`super::anchor`]): the entry an anchor names must still have the anchored hash,
//! and must still exist.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AuditEntry;
use super::anchor::{Anchor, Line};
use super::key::AuditKey;
use hmac::Mac;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `scheme` of an entry hashed with plain SHA-256 (written before the chain was keyed).
pub const UNKEYED: &str = "sha256";
/// `scheme` of an entry hashed with HMAC-SHA256 under the audit key.
pub const KEYED: &str = "hmac-sha256";

/// Feeds the canonical encoding of an entry (every column but `hash` and `scheme`, `prev_hash`
/// last) to `update`.
fn encode(e: &AuditEntry, mut update: impl FnMut(&[u8])) {
    let seq = e.seq.to_string();
    let at = e.at_ms.to_string();
    for field in [
        seq.as_str(),
        at.as_str(),
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
        update(field.len().to_string().as_bytes());
        update(b":");
        update(field.as_bytes());
    }
}

/// The hash the entry must have under its `scheme`; `None` for a scheme this server does not
/// know.
pub fn entry_hash(e: &AuditEntry, key: &AuditKey) -> Option<String> {
    match e.scheme.as_str() {
        KEYED => Some(keyed_hash(e, key)),
        UNKEYED => Some(unkeyed_hash(e)),
        _ => None,
    }
}

/// HMAC-SHA256 under the audit key: how every entry is sealed now.
pub fn keyed_hash(e: &AuditEntry, key: &AuditKey) -> String {
    let mut mac = key.mac();
    encode(e, |b| mac.update(b));
    crate::domain::hex::hex(&mac.finalize().into_bytes())
}

/// Plain SHA-256: how entries were sealed before the chain was keyed.
pub fn unkeyed_hash(e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    encode(e, |b| h.update(b));
    crate::domain::hex::hex(&h.finalize())
}

/// Why the chain breaks at an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakKind {
    /// A sequence number is missing (an entry was deleted) or out of order.
    Gap,
    /// `prev_hash` is not the hash of the entry before.
    PrevMismatch,
    /// The entry's content does not hash to its stored hash under its scheme (it was altered,
    /// or sealed with another key).
    HashMismatch,
    /// An entry hashed without the key after the chain was keyed, or a newest entry that is
    /// not keyed (this version keys every entry, and keys the chain when it opens it): written
    /// by someone who did not hold the key.
    Downgrade,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub kind: BreakKind,
}

/// Why an anchor does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorBreakKind {
    /// A line of the anchor file is not an anchor.
    Unreadable,
    /// The anchor's MAC does not verify under the audit key: it was altered, or written with
    /// another key.
    Forged,
    /// The anchored entry no longer has the anchored hash: the chain up to it was rewritten
    /// (by someone holding the key, or the database was replaced).
    HashMismatch,
    /// The chain ends before the anchored entry: entries were removed from its end (or the
    /// database was restored from a backup older than the anchor).
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenAnchor {
    /// The anchor's line in the anchor file (from 1).
    pub line: u64,
    /// The entry it names (absent for an unreadable line).
    pub seq: Option<i64>,
    pub kind: AnchorBreakKind,
    /// The last anchored entry before it that still matches: what changed lies after it.
    pub last_good_seq: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries checked (up to and including the first broken one).
    pub entries: u64,
    /// Sequence number and hash of the last entry checked.
    pub head_seq: i64,
    pub head_hash: String,
    pub first_broken: Option<BrokenLink>,
    /// The first entry sealed with the audit key; those before it were sealed with plain
    /// SHA-256 by an earlier version. `None`: no keyed entry (yet).
    pub keyed_from: Option<i64>,
    /// Anchors compared with the chain (read from the anchor file).
    pub anchors_checked: u64,
    /// The highest entry an anchor still vouches for (0: none).
    pub anchored_seq: i64,
    /// Entries after it: a rewrite of those by someone holding the key would not show yet.
    pub unanchored: u64,
    pub first_broken_anchor: Option<BrokenAnchor>,
}

impl Verification {
    /// The chain is whole and every anchor holds.
    pub fn ok(&self) -> bool {
        self.first_broken.is_none() && self.first_broken_anchor.is_none()
    }
}

/// An anchor waiting for its entry during a walk.
#[derive(Debug)]
struct Pending {
    line: u64,
    anchor: Anchor,
}

/// Verification state while walking the entries in order.
#[derive(Debug)]
pub struct Walk<'k> {
    key: &'k AuditKey,
    entries: u64,
    last_seq: i64,
    last_hash: Option<String>,
    /// Whether the entry before was keyed (so must every one after it be).
    keyed: bool,
    keyed_from: Option<i64>,
    broken: Option<BrokenLink>,
    /// Anchors by ascending `seq`, not reached yet (reversed: the next is last).
    anchors: Vec<Pending>,
    anchors_checked: u64,
    anchored_seq: i64,
    broken_anchor: Option<BrokenAnchor>,
}

impl<'k> Walk<'k> {
    /// From the first entry, checking the anchor file's lines on the way.
    pub fn new(key: &'k AuditKey, lines: Vec<Line>) -> Self {
        let mut broken_anchor = None;
        let mut anchors = Vec::new();
        for line in lines {
            let bad = match line {
                Line::Anchor(line, anchor) => {
                    anchors.push(Pending { line, anchor });
                    continue;
                }
                Line::Unreadable(n) => BrokenAnchor {
                    line: n,
                    seq: None,
                    kind: AnchorBreakKind::Unreadable,
                    last_good_seq: None,
                },
                Line::Forged(n, a) => BrokenAnchor {
                    line: n,
                    seq: Some(a.seq),
                    kind: AnchorBreakKind::Forged,
                    last_good_seq: None,
                },
            };
            broken_anchor.get_or_insert(bad);
        }
        anchors.sort_by_key(|p| std::cmp::Reverse(p.anchor.seq));
        Self {
            key,
            entries: 0,
            last_seq: 0,
            last_hash: None,
            keyed: false,
            keyed_from: None,
            broken: None,
            anchors,
            anchors_checked: 0,
            anchored_seq: 0,
            broken_anchor,
        }
    }

    /// Continues the chain after `entry` (taken as sound: the last anchor's entry), with no
    /// anchors to check: what anchoring checks before it writes the next anchor.
    pub fn after(key: &'k AuditKey, entry: &AuditEntry) -> Self {
        let mut walk = Self::new(key, Vec::new());
        walk.last_seq = entry.seq;
        walk.last_hash = Some(entry.hash.clone());
        walk.keyed = entry.scheme == KEYED;
        walk
    }

    /// Checks the next entry; `Err` at the first broken link (and every call after it).
    pub fn step(&mut self, e: &AuditEntry) -> Result<(), ()> {
        if self.broken.is_some() {
            return Err(());
        }
        self.entries += 1;
        let expected_prev = self.last_hash.as_deref().unwrap_or(GENESIS);
        let kind = if e.seq != self.last_seq + 1 {
            Some(BreakKind::Gap)
        } else if self.keyed && e.scheme != KEYED {
            Some(BreakKind::Downgrade)
        } else if entry_hash(e, self.key).as_deref() != Some(e.hash.as_str()) {
            Some(BreakKind::HashMismatch)
        } else if e.prev_hash != expected_prev {
            Some(BreakKind::PrevMismatch)
        } else {
            None
        };
        self.last_seq = e.seq;
        self.last_hash = Some(e.hash.clone());
        if let Some(kind) = kind {
            self.broken = Some(BrokenLink { seq: e.seq, kind });
            return Err(());
        }
        if e.scheme == KEYED && !self.keyed {
            self.keyed = true;
            self.keyed_from = Some(e.seq);
        }
        self.check_anchors(e);
        Ok(())
    }

    /// Compares the anchors naming this entry with it.
    fn check_anchors(&mut self, e: &AuditEntry) {
        while let Some(next) = self.anchors.last() {
            if next.anchor.seq > e.seq {
                break;
            }
            let p = self.anchors.pop().expect("just looked");
            self.anchors_checked += 1;
            if p.anchor.seq == e.seq && p.anchor.hash == e.hash {
                self.anchored_seq = e.seq;
            } else {
                let bad = BrokenAnchor {
                    line: p.line,
                    seq: Some(p.anchor.seq),
                    kind: AnchorBreakKind::HashMismatch,
                    last_good_seq: (self.anchored_seq > 0).then_some(self.anchored_seq),
                };
                self.broken_anchor.get_or_insert(bad);
            }
        }
    }

    pub fn finish(mut self) -> Verification {
        // Rewritten from before the switch to the end without the key, a chain would be
        // consistent, and unkeyed throughout.
        if self.broken.is_none() && self.entries > 0 && !self.keyed {
            self.broken = Some(BrokenLink {
                seq: self.last_seq,
                kind: BreakKind::Downgrade,
            });
        }
        // Anchors past the end of a whole chain name entries that are gone. (Past a break,
        // nothing is known of them.)
        if self.broken.is_none() {
            while let Some(p) = self.anchors.pop() {
                self.anchors_checked += 1;
                let bad = BrokenAnchor {
                    line: p.line,
                    seq: Some(p.anchor.seq),
                    kind: AnchorBreakKind::Truncated,
                    last_good_seq: (self.anchored_seq > 0).then_some(self.anchored_seq),
                };
                self.broken_anchor.get_or_insert(bad);
            }
        }
        Verification {
            entries: self.entries,
            head_seq: self.last_seq,
            head_hash: self.last_hash.unwrap_or_else(|| GENESIS.to_owned()),
            first_broken: self.broken,
            keyed_from: self.keyed_from,
            anchors_checked: self.anchors_checked,
            anchored_seq: self.anchored_seq,
            unanchored: (self.last_seq - self.anchored_seq).max(0) as u64,
            first_broken_anchor: self.broken_anchor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Actor, AuditEvent};

    fn key() -> AuditKey {
        AuditKey::from_bytes([7; 32])
    }

    fn event(seq: i64) -> AuditEvent {
        AuditEvent::new(Actor::System, Action::RoomCreated).object("room", format!("r_{seq}"))
    }

    /// Entries `from..=to` sealed with `key` on `prev`.
    fn extend(chain: &mut Vec<AuditEntry>, to: i64, key: &AuditKey) {
        let mut prev = chain.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
        for seq in chain.len() as i64 + 1..=to {
            let e = event(seq).seal(seq, prev.clone(), 1_700_000_000_000 + seq, key);
            prev = e.hash.clone();
            chain.push(e);
        }
    }

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut c = Vec::new();
        extend(&mut c, n, &key());
        c
    }

    /// What an earlier version wrote: plain SHA-256.
    fn unkeyed(n: i64) -> Vec<AuditEntry> {
        let mut c = chain(n);
        rehash_unkeyed(&mut c, 0);
        c
    }

    /// Every entry from index `from` on rehashed (and relinked) with plain SHA-256.
    fn rehash_unkeyed(c: &mut [AuditEntry], from: usize) {
        for i in from..c.len() {
            if i > 0 {
                c[i].prev_hash = c[i - 1].hash.clone();
            }
            c[i].scheme = UNKEYED.into();
            c[i].hash = unkeyed_hash(&c[i]);
        }
    }

    /// Every entry from index `from` on rehashed (and relinked) with `key`.
    fn rehash_keyed(c: &mut [AuditEntry], from: usize, key: &AuditKey) {
        for i in from..c.len() {
            if i > 0 {
                c[i].prev_hash = c[i - 1].hash.clone();
            }
            c[i].scheme = KEYED.into();
            c[i].hash = keyed_hash(&c[i], key);
        }
    }

    fn anchor_at(c: &[AuditEntry], seq: i64) -> Anchor {
        Anchor::new(&key(), seq, c[seq as usize - 1].hash.clone(), 1)
    }

    fn verify_with(entries: &[AuditEntry], anchors: Vec<Anchor>) -> Verification {
        let key = key();
        let lines = anchors
            .into_iter()
            .enumerate()
            .map(|(i, a)| Line::Anchor(i as u64 + 1, a))
            .collect();
        let mut w = Walk::new(&key, lines);
        for e in entries {
            if w.step(e).is_err() {
                break;
            }
        }
        w.finish()
    }

    fn verify(entries: &[AuditEntry]) -> Verification {
        verify_with(entries, Vec::new())
    }

    fn broken(v: &Verification) -> Option<(i64, BreakKind)> {
        v.first_broken.as_ref().map(|b| (b.seq, b.kind))
    }

    fn broken_anchor(v: &Verification) -> Option<(Option<i64>, AnchorBreakKind, Option<i64>)> {
        v.first_broken_anchor
            .as_ref()
            .map(|b| (b.seq, b.kind, b.last_good_seq))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let v = verify(&chain(5));
        assert!(v.ok());
        assert_eq!((v.entries, v.head_seq, v.keyed_from), (5, 5, Some(1)));
        assert_eq!((v.anchors_checked, v.anchored_seq, v.unanchored), (0, 0, 5));
        assert!(verify(&[]).ok());
    }

    #[test]
    fn an_altered_entry_is_pointed_at() {
        let mut c = chain(5);
        c[2].object_id = "r_forged".into();
        assert_eq!(broken(&verify(&c)), Some((3, BreakKind::HashMismatch)));
    }

    #[test]
    fn a_rehashed_forgery_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].outcome = "denied".into();
        c[2].hash = keyed_hash(&c[2], &key());
        assert_eq!(broken(&verify(&c)), Some((4, BreakKind::PrevMismatch)));
    }

    #[test]
    fn rewriting_and_rehashing_without_the_key_is_pointed_at() {
        // The old way: plain SHA-256 over the altered entry and every one after it.
        let mut c = chain(6);
        c[2].detail = r#"{"reason":"forged"}"#.into();
        let mut sha = c.clone();
        rehash_unkeyed(&mut sha, 2);
        assert_eq!(broken(&verify(&sha)), Some((3, BreakKind::Downgrade)));
        // The same, claiming to be keyed.
        for e in &mut sha[2..] {
            e.scheme = KEYED.into();
        }
        assert_eq!(broken(&verify(&sha)), Some((3, BreakKind::HashMismatch)));
        // HMAC under a key that is not the audit key.
        rehash_keyed(&mut c, 2, &AuditKey::random());
        assert_eq!(broken(&verify(&c)), Some((3, BreakKind::HashMismatch)));
    }

    #[test]
    fn a_thief_of_the_key_is_caught_by_an_anchor_written_before() {
        let mut c = chain(8);
        let anchors = vec![anchor_at(&c, 2), anchor_at(&c, 5), anchor_at(&c, 8)];
        assert!(verify_with(&c, anchors.clone()).ok());
        c[3].outcome = "denied".into();
        rehash_keyed(&mut c, 3, &key());
        let v = verify_with(&c, anchors.clone());
        // The chain itself is whole again: only the anchors know.
        assert_eq!(v.first_broken, None);
        assert!(!v.ok());
        // Changed after entry 2 (which still matches), at or before entry 5.
        assert_eq!(
            broken_anchor(&v),
            Some((Some(5), AnchorBreakKind::HashMismatch, Some(2)))
        );
        assert_eq!((v.anchors_checked, v.anchored_seq), (3, 2));
        // A rewrite after the last anchor is not seen (yet): the count of such entries says so.
        let mut c = chain(10);
        let v = verify_with(&c, vec![anchor_at(&c, 8)]);
        assert!(v.ok());
        assert_eq!((v.anchored_seq, v.unanchored), (8, 2));
        c[8].outcome = "denied".into();
        rehash_keyed(&mut c, 8, &key());
        assert!(verify_with(&c, vec![anchor_at(&chain(10), 8)]).ok());
    }

    #[test]
    fn entries_removed_after_an_anchor_are_a_truncation() {
        let c = chain(6);
        let anchors = vec![anchor_at(&c, 3), anchor_at(&c, 6)];
        let v = verify_with(&c[..4], anchors.clone());
        assert_eq!(v.first_broken, None);
        assert_eq!(
            broken_anchor(&v),
            Some((Some(6), AnchorBreakKind::Truncated, Some(3)))
        );
        // Cut and regrown (a database restored from an older backup, then appended to).
        let mut regrown = c[..4].to_vec();
        extend(&mut regrown, 7, &key());
        regrown[4].at_ms += 1;
        rehash_keyed(&mut regrown, 4, &key());
        let v = verify_with(&regrown, anchors);
        assert_eq!(
            broken_anchor(&v),
            Some((Some(6), AnchorBreakKind::HashMismatch, Some(3)))
        );
    }

    #[test]
    fn forged_and_unreadable_anchor_lines_are_reported() {
        let c = chain(4);
        let key = key();
        let mut moved = anchor_at(&c, 2);
        moved.seq = 3;
        let lines = vec![
            Line::Anchor(1, anchor_at(&c, 2)),
            Line::Forged(2, moved),
            Line::Unreadable(3),
        ];
        let mut w = Walk::new(&key, lines);
        for e in &c {
            w.step(e).unwrap();
        }
        let v = w.finish();
        assert_eq!(v.first_broken, None);
        assert_eq!(
            v.first_broken_anchor,
            Some(BrokenAnchor {
                line: 2,
                seq: Some(3),
                kind: AnchorBreakKind::Forged,
                last_good_seq: None
            })
        );
        assert_eq!(v.anchored_seq, 2);
    }

    #[test]
    fn an_upgraded_chain_verifies_each_part_by_its_scheme() {
        // An earlier version wrote 3 entries; this one keys from entry 4 on.
        let mut c = unkeyed(3);
        extend(&mut c, 6, &key());
        let v = verify(&c);
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.keyed_from, v.head_seq), (Some(4), 6));
        // Tampering before the switch, rehashed the old way: the first keyed entry's link
        // breaks, since the forger cannot rehash it.
        let mut before = c.clone();
        before[1].outcome = "denied".into();
        rehash_unkeyed(&mut before[..3], 1);
        let v = verify(&before);
        assert_eq!(broken(&v), Some((4, BreakKind::PrevMismatch)));
        // Unless they rehash everything the old way, keyed entries included: then no entry is
        // keyed, and the newest must be.
        let mut all = c.clone();
        all[1].outcome = "denied".into();
        rehash_unkeyed(&mut all, 1);
        assert_eq!(broken(&verify(&all)), Some((6, BreakKind::Downgrade)));
        assert_eq!(
            broken(&verify(&unkeyed(3))),
            Some((3, BreakKind::Downgrade))
        );
        // Tampering after the switch.
        let mut after = c.clone();
        after[4].outcome = "denied".into();
        rehash_unkeyed(&mut after, 4);
        assert_eq!(broken(&verify(&after)), Some((5, BreakKind::Downgrade)));
        // An unknown scheme is not taken on trust.
        let mut odd = c.clone();
        odd[0].scheme = "none".into();
        assert_eq!(broken(&verify(&odd)), Some((1, BreakKind::HashMismatch)));
    }

    #[test]
    fn a_deleted_entry_is_a_gap() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(broken(&verify(&c)), Some((3, BreakKind::Gap)));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = chain(1).remove(0);
        let mut b = a.clone();
        a.actor = "ab".into();
        a.actor_role = "c".into();
        b.actor = "a".into();
        b.actor_role = "bc".into();
        assert_ne!(keyed_hash(&a, &key()), keyed_hash(&b, &key()));
        assert_ne!(unkeyed_hash(&a), unkeyed_hash(&b));
    }

    #[test]
    fn the_unkeyed_hash_is_what_earlier_versions_wrote() {
        // An entry as the previous version sealed it (its hash computed by that version).
        let e = AuditEntry {
            seq: 1,
            at_ms: 1_700_000_000_000,
            actor: "system".into(),
            actor_role: String::new(),
            action: "room.created".into(),
            room_id: String::new(),
            object_type: "room".into(),
            object_id: "r_1".into(),
            object_sha256: String::new(),
            outcome: "ok".into(),
            detail: "{}".into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            scheme: UNKEYED.into(),
        };
        let mut h = Sha256::new();
        for f in [
            "1",
            "1700000000000",
            "system",
            "",
            "room.created",
            "",
            "room",
            "r_1",
            "",
            "ok",
            "{}",
            GENESIS,
        ] {
            h.update(format!("{}:{f}", f.len()));
        }
        assert_eq!(unkeyed_hash(&e), crate::domain::hex::hex(&h.finalize()));
    }
}
