//! The hash chain: how an entry's hash is computed and how the whole trail is verified.
//!
//! An entry's hash is SHA-256 over every other column, each written as `<byte length>:<bytes>`
//! so no two different entries share an encoding, ending with the previous entry's hash. Changing,
//! removing or reordering any entry therefore breaks the link at that entry (or at the one after
//! it). Truncating the newest entries is only detectable against a head hash kept elsewhere, which
//! is why verification reports the head.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::AuditEntry;

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub fn entry_hash(e: &AuditEntry) -> String {
    let mut h = Sha256::new();
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
        h.update(field.len().to_string().as_bytes());
        h.update(b":");
        h.update(field.as_bytes());
    }
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
    /// The entry's content does not hash to its stored hash (it was altered).
    HashMismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub seq: i64,
    pub kind: BreakKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Entries checked (up to and including the first broken one).
    pub entries: u64,
    /// Sequence number and hash of the last entry checked; anchor it elsewhere to detect
    /// truncation later.
    pub head_seq: i64,
    pub head_hash: String,
    pub first_broken: Option<BrokenLink>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Verification state while walking the entries in order.
#[derive(Debug, Default)]
pub struct Walk {
    entries: u64,
    last_seq: i64,
    last_hash: Option<String>,
    broken: Option<BrokenLink>,
}

impl Walk {
    /// Checks the next entry; `Err` at the first broken link (and every call after it).
    pub fn step(&mut self, e: &AuditEntry) -> Result<(), ()> {
        if self.broken.is_some() {
            return Err(());
        }
        self.entries += 1;
        let expected_prev = self.last_hash.as_deref().unwrap_or(GENESIS);
        let kind = if e.seq != self.last_seq + 1 {
            Some(BreakKind::Gap)
        } else if entry_hash(e) != e.hash {
            Some(BreakKind::HashMismatch)
        } else if e.prev_hash != expected_prev {
            Some(BreakKind::PrevMismatch)
        } else {
            None
        };
        self.last_seq = e.seq;
        self.last_hash = Some(e.hash.clone());
        match kind {
            Some(kind) => {
                self.broken = Some(BrokenLink { seq: e.seq, kind });
                Err(())
            }
            None => Ok(()),
        }
    }

    pub fn finish(self) -> Verification {
        Verification {
            entries: self.entries,
            head_seq: self.last_seq,
            head_hash: self.last_hash.unwrap_or_else(|| GENESIS.to_owned()),
            first_broken: self.broken,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, Actor, AuditEvent};

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = AuditEvent::new(Actor::System, Action::RoomCreated)
                    .object("room", format!("r_{seq}"))
                    .seal(seq, prev.clone(), 1_700_000_000_000 + seq);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Verification {
        let mut w = Walk::default();
        for e in entries {
            if w.step(e).is_err() {
                break;
            }
        }
        w.finish()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let v = verify(&chain(5));
        assert!(v.ok());
        assert_eq!((v.entries, v.head_seq), (5, 5));
        assert!(verify(&[]).ok());
    }

    #[test]
    fn an_altered_entry_is_pointed_at() {
        let mut c = chain(5);
        c[2].object_id = "r_forged".into();
        let v = verify(&c);
        assert_eq!(
            v.first_broken,
            Some(BrokenLink {
                seq: 3,
                kind: BreakKind::HashMismatch
            })
        );
    }

    #[test]
    fn a_rehashed_forgery_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].outcome = "denied".into();
        c[2].hash = entry_hash(&c[2]);
        let v = verify(&c);
        assert_eq!(
            v.first_broken,
            Some(BrokenLink {
                seq: 4,
                kind: BreakKind::PrevMismatch
            })
        );
    }

    #[test]
    fn a_deleted_entry_is_a_gap() {
        let mut c = chain(5);
        c.remove(1);
        let v = verify(&c);
        assert_eq!(
            v.first_broken.map(|b| (b.seq, b.kind)),
            Some((3, BreakKind::Gap))
        );
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = chain(1).remove(0);
        let mut b = a.clone();
        a.actor = "ab".into();
        a.actor_role = "c".into();
        b.actor = "a".into();
        b.actor_role = "bc".into();
        assert_ne!(entry_hash(&a), entry_hash(&b));
    }
}
