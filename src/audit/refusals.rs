//! Refusals that may be misuse (a tampered token, a clinician probing another's room, a
//! participant's token used on another room, a forbidden action over signaling) are put on
//! the audit trail, but an attacker must not be able to flood the trail with them: per
//! (who, reason) at most [`PER_WINDOW`] are recorded in a [`WINDOW`], and at most
//! [`GLOBAL_PER_WINDOW`] in all; those beyond are counted, and the next one recorded for that
//! key says how many were left out (`suppressed`), so the trail still shows the attack's size.
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
            }),
        }
    }
}

impl RefusalLimiter {
    /// `Some(n)`: record this refusal, noting `n` left out before it; `None`: leave it out.
    pub fn admit(&self, who: &str, reason: &'static str, now: Instant) -> Option<u64> {
        // std Mutex: nothing is awaited while it is held.
        let mut t = self.table.lock().expect("refusal table poisoned");
        if now.saturating_duration_since(t.global_since) >= WINDOW {
            t.global_since = now;
            t.global_recorded = 0;
        }
        let key = (who.to_owned(), reason);
        if !t.slots.contains_key(&key) && t.slots.len() >= MAX_KEYS {
            t.slots
                .retain(|_, s| s.suppressed > 0 && now.saturating_duration_since(s.since) < WINDOW);
            if t.slots.len() >= MAX_KEYS {
                t.slots.clear();
            }
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
        Some(left_out)
    }
}

impl AuditLog {
    /// Records a refusal that may indicate misuse, as an `access.denied` entry (or the action
    /// given in `event`) with outcome denied and `reason` in its detail, unless `who` has had
    /// too many `reason` refusals recorded recently (see the module). `who` is an account or
    /// participant id, or a pseudonym of the client's address: never the address itself.
    pub async fn refused(&self, who: &str, reason: &'static str, event: AuditEvent) {
        let Some(left_out) = self.refusals.admit(who, reason, Instant::now()) else {
            return;
        };
        let mut event = event
            .outcome(Outcome::Denied)
            .detail_field("reason", reason.into());
        if left_out > 0 {
            event = event.detail_field("suppressed", left_out.into());
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
        // Another reason or another caller is counted apart.
        assert_eq!(l.admit("a", "room_probe", t0), Some(0));
        assert_eq!(l.admit("b", "bad_token", t0), Some(0));
        // After the window the first one recorded says how many were left out.
        assert_eq!(l.admit("a", "bad_token", t0 + WINDOW), Some(90));
        assert_eq!(l.admit("a", "bad_token", t0 + WINDOW), Some(0));
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
}
