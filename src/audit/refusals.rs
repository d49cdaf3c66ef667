//! Refusals that may be misuse (a tampered token, a clinician probing another's room, a
//! participant's token used on another room, a forbidden action over signaling) are put on
//! the audit trail, but an attacker must not be able to flood the trail with them: per
//! (who, reason) at most [`PER_WINDOW`] are recorded in a [`WINDOW`], and at most
//! [`GLOBAL_PER_WINDOW`] in all; those beyond are counted, and the next one recorded for that
//! key says how many were left out (`suppressed`), so the trail still shows the attack's size.
//! The table is bounded ([`MAX_KEYS`]); counts of keys it must forget to stay so are not lost
//! either: the next entry recorded, whoever's, carries them (`suppressed_unattributed`), so
//! churning through keys to fill the table hides nothing. Addresses come as pseudonyms of an
//! IPv6 client's /64 (`http::api::client_pseudonym`), so one client is one key.
//! In memory: a restart forgets the counts, not the entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AuditEvent, AuditLog, Outcome};

pub const WINDOW: Duration = Duration::from_secs(60);
pub const PER_WINDOW: u32 = 10;
pub const GLOBAL_PER_WINDOW: u32 = 600;
/// Bounds the table; past it, keys without suppressed refusals are forgotten first.
const MAX_KEYS: usize = 10_000;

#[derive(Debug)]
struct Slot {
    since: Instant,
    recorded: u32,
    suppressed: u64,
}

#[derive(Debug)]
struct Table {
    slots: HashMap<(String, &'static str), Slot>,
    global_since: Instant,
    global_recorded: u32,
    /// Left out under keys the table has since forgotten, not yet told.
    unattributed: u64,
}

/// A refusal to record, with what was left out before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Of this key, since its last recorded entry.
    pub left_out: u64,
    /// Of keys forgotten to keep the table bounded.
    pub unattributed: u64,
}

/// Decides which refusals are recorded.
#[derive(Debug)]
pub struct RefusalLimiter {
    table: Mutex<Table>,
}

impl Default for RefusalLimiter {
    fn default() -> Self {
        Self {
            table: Mutex::new(Table {
                slots: HashMap::new(),
                global_since: Instant::now(),
                global_recorded: 0,
                unattributed: 0,
            }),
        }
    }
}

impl RefusalLimiter {
    /// `Some`: record this refusal, noting what was left out before it; `None`: leave it out.
    pub fn admit(&self, who: &str, reason: &'static str, now: Instant) -> Option<Admitted> {
        // std Mutex: nothing is awaited while it is held.
        let mut t = self.table.lock().expect("refusal table poisoned");
        if now.saturating_duration_since(t.global_since) >= WINDOW {
            t.global_since = now;
            t.global_recorded = 0;
        }
        let key = (who.to_owned(), reason);
        if !t.slots.contains_key(&key) && t.slots.len() >= MAX_KEYS {
            let mut lost = 0;
            t.slots.retain(|_, s| {
                let keep = s.suppressed > 0 && now.saturating_duration_since(s.since) < WINDOW;
                if !keep {
                    lost += s.suppressed;
                }
                keep
            });
            if t.slots.len() >= MAX_KEYS {
                lost += t.slots.values().map(|s| s.suppressed).sum::<u64>();
                t.slots.clear();
            }
            t.unattributed += lost;
        }
        let global_full = t.global_recorded >= GLOBAL_PER_WINDOW;
        let slot = t.slots.entry(key).or_insert(Slot {
            since: now,
            recorded: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(slot.since) >= WINDOW {
            slot.since = now;
            slot.recorded = 0;
        }
        if slot.recorded >= PER_WINDOW || global_full {
            slot.suppressed += 1;
            return None;
        }
        slot.recorded += 1;
        let left_out = std::mem::take(&mut slot.suppressed);
        t.global_recorded += 1;
        Some(Admitted {
            left_out,
            unattributed: std::mem::take(&mut t.unattributed),
        })
    }
}

impl AuditLog {
    /// An invitation that let nobody in (its window, its uses, revoked, its consultation
    /// ended): `invite.refused` with its room and itself, so its institution's supervisor sees
    /// it, rate-limited per client. `via` names the path that found it where it was not the
    /// join itself.
    pub async fn invite_refused(
        &self,
        invite: &crate::storage::Invite,
        reason: &'static str,
        client: &str,
        via: Option<&'static str>,
    ) {
        let mut detail = serde_json::json!({"client": client});
        if let Some(via) = via {
            detail["via"] = via.into();
        }
        let event = AuditEvent::new(super::Actor::Unknown, super::Action::InviteRefused)
            .room(&invite.room_id)
            .object("invite", &invite.id)
            .detail(detail);
        self.refused(client, reason, event).await;
    }

    /// Records a refusal that may indicate misuse, as an `access.denied` entry (or the action
    /// given in `event`) with outcome denied and `reason` in its detail, unless `who` has had
    /// too many `reason` refusals recorded recently (see the module). `who` is an account or
    /// participant id, or a pseudonym of the client's address: never the address itself.
    pub async fn refused(&self, who: &str, reason: &'static str, event: AuditEvent) {
        let Some(admitted) = self.refusals.admit(who, reason, Instant::now()) else {
            return;
        };
        let mut event = event
            .outcome(Outcome::Denied)
            .detail_field("reason", reason.into());
        if admitted.left_out > 0 {
            event = event.detail_field("suppressed", admitted.left_out.into());
        }
        if admitted.unattributed > 0 {
            event = event.detail_field("suppressed_unattributed", admitted.unattributed.into());
        }
        self.record_or_log(event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_recorded_up_to_the_limit_then_counted() {
        let l = RefusalLimiter::default();
        let t0 = Instant::now();
        let recorded = (0..100)
            .filter(|_| l.admit("a", "bad_token", t0).is_some())
            .count();
        assert_eq!(recorded, PER_WINDOW as usize);
        let left = |a: Option<Admitted>| a.map(|a| a.left_out);
        // Another reason or another caller is counted apart.
        assert_eq!(left(l.admit("a", "room_probe", t0)), Some(0));
        assert_eq!(left(l.admit("b", "bad_token", t0)), Some(0));
        // After the window the first one recorded says how many were left out.
        assert_eq!(left(l.admit("a", "bad_token", t0 + WINDOW)), Some(90));
        assert_eq!(left(l.admit("a", "bad_token", t0 + WINDOW)), Some(0));
    }

    #[test]
    fn many_callers_cannot_exceed_the_global_limit() {
        let l = RefusalLimiter::default();
        let t0 = Instant::now();
        let recorded = (0..5_000)
            .filter(|i| l.admit(&format!("client{i}"), "bad_token", t0).is_some())
            .count();
        assert_eq!(recorded, GLOBAL_PER_WINDOW as usize);
        assert!(l.admit("late", "bad_token", t0 + WINDOW).is_some());
    }

    #[test]
    fn churning_keys_to_fill_the_table_hides_no_count() {
        let l = RefusalLimiter::default();
        let t0 = Instant::now();
        // An insider's probing, left out while the global budget is spent by a flood.
        for i in 0..GLOBAL_PER_WINDOW {
            l.admit(&format!("flood{i}"), "bad_token", t0);
        }
        for _ in 0..7 {
            assert_eq!(l.admit("insider", "room_probe", t0), None);
        }
        // The flood goes on with new keys until the table must forget some, the insider's
        // among them.
        let mut told = 0;
        for i in 0..MAX_KEYS * 2 {
            if let Some(a) = l.admit(&format!("churn{i}"), "bad_token", t0 + WINDOW * 2) {
                told += a.unattributed;
            }
        }
        // What was left out and forgotten is told with the next entry recorded.
        told += l
            .admit("next", "bad_token", t0 + WINDOW * 3)
            .expect("a new window: recorded")
            .unattributed;
        assert!(told >= 7, "{told}");
    }
}
