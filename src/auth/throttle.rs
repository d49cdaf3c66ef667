//! Sign-in throttling, checked and counted in one step.
//!
//! Three limits in a sliding [`WINDOW`], each counting failed sign-ins *and sign-ins still being
//! checked*:
//! - per (user name, client address): [`MAX_FAILURES`], the one that stops a guesser;
//! - per client address, whatever the name: [`MAX_FAILURES_PER_ADDRESS`], against trying one
//!   password over many names (a hospital's NAT puts a ward behind one address, so it is higher);
//! - per user name, whatever the address: [`MAX_FAILURES_PER_ACCOUNT`], against guessing one
//!   account from many addresses.
//!
//! [`LoginThrottle::begin`] decides and reserves a place under one lock, so parallel sign-ins
//! cannot all pass the check before any of them has failed: forty at once for one account from
//! one address get five password checks, not forty. The returned [`Attempt`] turns its place into
//! a failure ([`Attempt::failed`]), frees every count for that name and address
//! ([`Attempt::succeeded`]), or, dropped unresolved (the request was cancelled), just frees it.
//!
//! IPv6 clients are counted by their /64, which one subscriber usually holds whole. In memory
//! only: a restart forgets, which is acceptable for a throttle (not an audit record).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 5;
pub const MAX_FAILURES_PER_ADDRESS: usize = 50;
pub const MAX_FAILURES_PER_ACCOUNT: usize = 30;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Bounds each table; past it entries without a recent failure are dropped first.
const MAX_KEYS: usize = 100_000;

/// The address a limit counts: an IPv4 address, or an IPv6 address's /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
    }
}

/// Failures in the window and attempts in flight for one key.
#[derive(Debug, Default)]
struct Slot {
    failures: Vec<Instant>,
    in_flight: usize,
}

impl Slot {
    /// `Err(retry_after)` when `limit` is reached counting what is in flight.
    fn check(&mut self, limit: usize, now: Instant) -> Result<(), Duration> {
        self.failures
            .retain(|t| now.saturating_duration_since(*t) < WINDOW);
        if self.failures.len() + self.in_flight < limit {
            return Ok(());
        }
        // Full of attempts in flight: they resolve within a second or so.
        let retry = match self.failures.first() {
            Some(oldest) if self.failures.len() >= limit => {
                WINDOW.saturating_sub(now.saturating_duration_since(*oldest))
            }
            _ => Duration::from_secs(1),
        };
        Err(retry)
    }

    fn idle(&self, now: Instant) -> bool {
        self.in_flight == 0
            && self
                .failures
                .last()
                .is_none_or(|t| now.saturating_duration_since(*t) >= WINDOW)
    }
}

#[derive(Debug)]
pub(super) struct Table<K> {
    slots: HashMap<K, Slot>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Table<K> {
    pub(super) fn check(&mut self, key: &K, limit: usize, now: Instant) -> Result<(), Duration> {
        match self.slots.get_mut(key) {
            Some(slot) => slot.check(limit, now),
            None => Ok(()),
        }
    }

    pub(super) fn reserve(&mut self, key: &K, now: Instant) {
        self.slot(key, now).in_flight += 1;
    }

    fn slot(&mut self, key: &K, now: Instant) -> &mut Slot {
        if self.slots.len() >= MAX_KEYS && !self.slots.contains_key(key) {
            self.slots.retain(|_, s| !s.idle(now));
        }
        self.slots.entry(key.clone()).or_default()
    }

    pub(super) fn release(&mut self, key: &K, failed_at: Option<Instant>) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            if let Some(t) = failed_at {
                slot.failures.push(t);
            }
        }
    }

    fn clear(&mut self, key: &K) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.failures.clear();
            if slot.in_flight == 0 {
                self.slots.remove(key);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    pair: Table<(String, IpAddr)>,
    address: Table<IpAddr>,
    account: Table<String>,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    // std Mutex: nothing is awaited while it is held.
    tables: Mutex<Tables>,
}

/// Which limit refused a sign-in (audited, so that an attack's shape is visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    AccountAndAddress,
    Address,
    Account,
}

impl ThrottleScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountAndAddress => "account_and_address",
            Self::Address => "address",
            Self::Account => "account",
        }
    }
}

/// A refused sign-in: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub scope: ThrottleScope,
    pub retry_after: Duration,
}

impl LoginThrottle {
    /// Checks every limit and, when all allow it, reserves a place in each for this attempt:
    /// one step under one lock.
    pub fn begin(
        self: &Arc<Self>,
        user: &str,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Attempt, Throttled> {
        let ip = client_key(ip);
        let pair = (user.to_owned(), ip);
        let mut t = self.tables.lock().expect("throttle poisoned");
        let refuse = |scope| move |retry_after| Throttled { scope, retry_after };
        t.pair
            .check(&pair, MAX_FAILURES, now)
            .map_err(refuse(ThrottleScope::AccountAndAddress))?;
        t.address
            .check(&ip, MAX_FAILURES_PER_ADDRESS, now)
            .map_err(refuse(ThrottleScope::Address))?;
        t.account
            .check(&pair.0, MAX_FAILURES_PER_ACCOUNT, now)
            .map_err(refuse(ThrottleScope::Account))?;
        t.pair.slot(&pair, now).in_flight += 1;
        t.address.slot(&ip, now).in_flight += 1;
        t.account.slot(&pair.0, now).in_flight += 1;
        Ok(Attempt {
            throttle: Arc::clone(self),
            pair: Some(pair),
        })
    }
}

/// A sign-in holding its place in the throttle until it is resolved.
#[must_use = "an attempt is resolved with failed() or succeeded()"]
#[derive(Debug)]
pub struct Attempt {
    throttle: Arc<LoginThrottle>,
    pair: Option<(String, IpAddr)>,
}

impl Attempt {
    /// The password did not match: the place becomes a failure in every limit.
    pub fn failed(mut self, now: Instant) {
        self.resolve(Some(now), false);
    }

    /// Signed in: this name's failures from this address are forgiven (the per-address and
    /// per-account counts keep theirs: one success must not reset a spraying attacker).
    pub fn succeeded(mut self) {
        self.resolve(None, true);
    }

    fn resolve(&mut self, failed_at: Option<Instant>, clear_pair: bool) {
        let Some(pair) = self.pair.take() else {
            return;
        };
        let mut t = self.throttle.tables.lock().expect("throttle poisoned");
        t.pair.release(&pair, failed_at);
        t.address.release(&pair.1, failed_at);
        t.account.release(&pair.0, failed_at);
        if clear_pair {
            t.pair.clear(&pair);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.resolve(None, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_then_refused_until_the_window_passes() {
        let t = Arc::new(LoginThrottle::default());
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            t.begin("doc", a, t0)
                .unwrap_or_else(|e| panic!("attempt {i}: {e:?}"))
                .failed(t0);
        }
        let refused = t.begin("doc", a, t0).unwrap_err();
        assert_eq!(refused.scope, ThrottleScope::AccountAndAddress);
        assert_eq!(refused.retry_after, WINDOW);
        assert!(
            t.begin("doc", b, t0).is_ok(),
            "another address is not affected"
        );
        assert!(
            t.begin("nurse", a, t0).is_ok(),
            "another name is not affected"
        );
        assert!(t.begin("doc", a, t0 + WINDOW).is_ok(), "the window slides");
    }

    #[test]
    fn attempts_in_flight_count_so_parallel_sign_ins_cannot_pass_together() {
        let t = Arc::new(LoginThrottle::default());
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let held: Vec<_> = (0..40).filter_map(|_| t.begin("doc", a, t0).ok()).collect();
        assert_eq!(held.len(), MAX_FAILURES, "only five checks may run at once");
        let refused = t.begin("doc", a, t0).unwrap_err();
        assert_eq!(
            refused.retry_after,
            Duration::from_secs(1),
            "in flight: retry soon"
        );
        // Cancelled attempts give their places back without counting as failures.
        drop(held);
        assert!(t.begin("doc", a, t0).is_ok());
    }

    #[test]
    fn many_threads_racing_get_at_most_the_limit() {
        let t = Arc::new(LoginThrottle::default());
        let a = ip("192.0.2.7");
        let t0 = Instant::now();
        let passed = std::sync::atomic::AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(40);
        std::thread::scope(|s| {
            for _ in 0..40 {
                s.spawn(|| {
                    barrier.wait();
                    if let Ok(attempt) = t.begin("doc", a, t0) {
                        passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        attempt.failed(t0);
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), MAX_FAILURES);
        assert!(t.begin("doc", a, t0).is_err());
    }

    #[test]
    fn success_forgives_the_pair_but_not_the_spraying_counts() {
        let t = Arc::new(LoginThrottle::default());
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            t.begin("doc", a, t0).unwrap().failed(t0);
        }
        t.begin("doc", a, t0).unwrap().succeeded();
        for _ in 0..MAX_FAILURES - 1 {
            t.begin("doc", a, t0).unwrap().failed(t0);
        }
        let tables = t.tables.lock().unwrap();
        assert_eq!(
            tables.account.slots["doc"].failures.len(),
            2 * (MAX_FAILURES - 1)
        );
    }

    #[test]
    fn one_address_spraying_many_names_is_stopped() {
        let t = Arc::new(LoginThrottle::default());
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            t.begin(&format!("user{i}"), a, t0).unwrap().failed(t0);
        }
        let refused = t.begin("someone-else", a, t0).unwrap_err();
        assert_eq!(refused.scope, ThrottleScope::Address);
        assert!(t.begin("someone-else", ip("192.0.2.9"), t0).is_ok());
    }

    #[test]
    fn one_name_guessed_from_many_addresses_is_stopped() {
        let t = Arc::new(LoginThrottle::default());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES_PER_ACCOUNT {
            let from = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i as u8));
            t.begin("doc", from, t0).unwrap().failed(t0);
        }
        let refused = t.begin("doc", ip("203.0.113.1"), t0).unwrap_err();
        assert_eq!(refused.scope, ThrottleScope::Account);
    }

    #[test]
    fn ipv6_is_counted_by_its_64() {
        let t = Arc::new(LoginThrottle::default());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let from = ip(&format!("2001:db8:1:2::{i:x}"));
            t.begin("doc", from, t0).unwrap().failed(t0);
        }
        assert!(t.begin("doc", ip("2001:db8:1:2:ffff::1"), t0).is_err());
        assert!(t.begin("doc", ip("2001:db8:1:3::1"), t0).is_ok());
    }
}
