//! Sign-in throttling: at most `MAX_FAILURES` failed sign-ins per (user name, client address)
//! in a sliding `WINDOW`. Keyed on both, so an attacker guessing from one address is stopped
//! while the clinician signing in from the ward is not locked out by them. In memory only: a
//! restart forgets, which is acceptable for a throttle (not an audit record).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Bounds the table; past it the oldest entries are dropped first.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<(String, IpAddr), Vec<Instant>>>,
}

impl LoginThrottle {
    /// `Err(retry_after)` when this name has failed too often from this address.
    pub fn check(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        // std Mutex: nothing is awaited while it is held.
        let mut map = self.failures.lock().expect("throttle poisoned");
        let Some(times) = map.get_mut(&(user.to_owned(), ip)) else {
            return Ok(());
        };
        times.retain(|t| now.duration_since(*t) < WINDOW);
        if times.len() >= MAX_FAILURES {
            let oldest = times[0];
            return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
        }
        Ok(())
    }

    pub fn failed(&self, user: &str, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock().expect("throttle poisoned");
        if map.len() >= MAX_KEYS {
            map.retain(|_, times| {
                times
                    .last()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        map.entry((user.to_owned(), ip)).or_default().push(now);
    }

    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        let mut map = self.failures.lock().expect("throttle poisoned");
        map.remove(&(user.to_owned(), ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_then_refused_until_the_window_passes() {
        let t = LoginThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(t.check("doc", a, t0).is_ok(), "attempt {i}");
            t.failed("doc", a, t0);
        }
        let wait = t.check("doc", a, t0).unwrap_err();
        assert_eq!(wait, WINDOW);
        assert!(
            t.check("doc", b, t0).is_ok(),
            "another address is not affected"
        );
        assert!(
            t.check("nurse", a, t0).is_ok(),
            "another name is not affected"
        );
        assert!(t.check("doc", a, t0 + WINDOW).is_ok(), "the window slides");
        t.succeeded("doc", a);
        assert!(t.check("doc", a, t0).is_ok());
    }
}
