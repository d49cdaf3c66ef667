//! Short-code throttling (`POST /invitations/redeem`), checked and counted in one step like the
//! sign-in throttle (`throttle.rs`, whose tables it shares), over the same sliding window:
//! - per client address (an IPv6 client by its /64): `per_address` failed redemptions, the
//!   limit that stops one guesser;
//! - per code value typed (its keyed hash): `per_code` failures, whoever typed it, so a code
//!   cannot be worked at from many addresses either.
//!
//! Redemptions still being checked count, so parallel guesses cannot all pass before any has
//! failed. A success frees its place and forgives nothing (an attacker holding one good code
//! must not be able to reset their count with it). In memory only, like the sign-in throttle.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::throttle::{Table, client_key};

/// Which limit refused a redemption (audited, so an attack's shape is visible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeScope {
    Address,
    Code,
}

impl CodeScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Address => "address",
            Self::Code => "code",
        }
    }
}

/// A refused redemption: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeThrottled {
    pub scope: CodeScope,
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
struct Tables {
    address: Table<IpAddr>,
    code: Table<String>,
}

#[derive(Debug)]
pub struct CodeThrottle {
    per_address: usize,
    per_code: usize,
    // std Mutex: nothing is awaited while it is held.
    tables: Mutex<Tables>,
}

impl CodeThrottle {
    pub fn new(per_address: usize, per_code: usize) -> Self {
        Self {
            per_address: per_address.max(1),
            per_code: per_code.max(1),
            tables: Mutex::default(),
        }
    }

    /// Checks both limits and, when they allow it, reserves a place in each for this attempt.
    /// `code` is the keyed hash of the digits typed, `None` when they were not a code at all
    /// (counted against the address only).
    pub fn begin(
        self: &Arc<Self>,
        ip: IpAddr,
        code: Option<&str>,
        now: Instant,
    ) -> Result<CodeAttempt, CodeThrottled> {
        let ip = client_key(ip);
        let code = code.map(str::to_owned);
        let mut t = self.tables.lock().expect("code throttle poisoned");
        let refuse = |scope| move |retry_after| CodeThrottled { scope, retry_after };
        t.address
            .check(&ip, self.per_address, now)
            .map_err(refuse(CodeScope::Address))?;
        if let Some(code) = &code {
            t.code
                .check(code, self.per_code, now)
                .map_err(refuse(CodeScope::Code))?;
        }
        t.address.reserve(&ip, now);
        if let Some(code) = &code {
            t.code.reserve(code, now);
        }
        Ok(CodeAttempt {
            throttle: Arc::clone(self),
            keys: Some((ip, code)),
        })
    }
}

/// A redemption holding its place in the throttle until it is resolved; dropped unresolved
/// (the request was cancelled) it just gives the place back.
#[must_use = "an attempt is resolved with failed() or succeeded()"]
#[derive(Debug)]
pub struct CodeAttempt {
    throttle: Arc<CodeThrottle>,
    keys: Option<(IpAddr, Option<String>)>,
}

impl CodeAttempt {
    /// Not redeemed: the place becomes a failure in both limits.
    pub fn failed(mut self, now: Instant) {
        self.resolve(Some(now));
    }

    /// Redeemed: the place is freed, no failure forgiven.
    pub fn succeeded(mut self) {
        self.resolve(None);
    }

    fn resolve(&mut self, failed_at: Option<Instant>) {
        let Some((ip, code)) = self.keys.take() else {
            return;
        };
        let mut t = self.throttle.tables.lock().expect("code throttle poisoned");
        t.address.release(&ip, failed_at);
        if let Some(code) = code {
            t.code.release(&code, failed_at);
        }
    }
}

impl Drop for CodeAttempt {
    fn drop(&mut self) {
        self.resolve(None);
    }
}

#[cfg(test)]
mod tests {
    use super::super::throttle::WINDOW;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_stopped_after_its_failures_whatever_the_codes() {
        let t = Arc::new(CodeThrottle::new(10, 5));
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for i in 0..10 {
            t.begin(a, Some(&format!("code{i}")), t0)
                .unwrap_or_else(|e| panic!("attempt {i}: {e:?}"))
                .failed(t0);
        }
        let refused = t.begin(a, Some("another"), t0).unwrap_err();
        assert_eq!(refused.scope, CodeScope::Address);
        assert_eq!(refused.retry_after, WINDOW);
        // Not a code at all counts against the address too, and is refused with it.
        assert_eq!(t.begin(a, None, t0).unwrap_err().scope, CodeScope::Address);
        assert!(t.begin(ip("192.0.2.2"), Some("another"), t0).is_ok());
        assert!(
            t.begin(a, Some("another"), t0 + WINDOW).is_ok(),
            "it slides"
        );
    }

    #[test]
    fn a_code_is_stopped_after_its_failures_whatever_the_addresses() {
        let t = Arc::new(CodeThrottle::new(10, 5));
        let t0 = Instant::now();
        for i in 0..5u8 {
            let from = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
            t.begin(from, Some("target"), t0).unwrap().failed(t0);
        }
        let refused = t.begin(ip("203.0.113.9"), Some("target"), t0).unwrap_err();
        assert_eq!(refused.scope, CodeScope::Code);
        assert!(t.begin(ip("203.0.113.9"), Some("other"), t0).is_ok());
    }

    #[test]
    fn successes_free_their_place_and_forgive_nothing() {
        let t = Arc::new(CodeThrottle::new(3, 5));
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        for _ in 0..2 {
            t.begin(a, Some("bad"), t0).unwrap().failed(t0);
        }
        for _ in 0..10 {
            t.begin(a, Some("good"), t0).unwrap().succeeded();
        }
        t.begin(a, Some("bad"), t0).unwrap().failed(t0);
        assert!(
            t.begin(a, Some("good"), t0).is_err(),
            "three failures stand"
        );
    }

    #[test]
    fn parallel_guesses_cannot_pass_together() {
        let t = Arc::new(CodeThrottle::new(10, 5));
        let a = ip("2001:db8:1:2::1");
        let t0 = Instant::now();
        let held: Vec<_> = (0..40)
            .filter_map(|i| {
                let from = ip(&format!("2001:db8:1:2::{i:x}"));
                t.begin(from, Some(&format!("c{i}")), t0).ok()
            })
            .collect();
        assert_eq!(held.len(), 10, "one /64 is one address");
        assert_eq!(
            t.begin(a, Some("x"), t0).unwrap_err().retry_after,
            Duration::from_secs(1),
            "in flight: retry soon"
        );
        drop(held);
        assert!(t.begin(a, Some("x"), t0).is_ok(), "cancelled: not failures");
        let racing = Arc::new(CodeThrottle::new(10, 5));
        let passed = std::sync::atomic::AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(20);
        std::thread::scope(|s| {
            for i in 0..20u8 {
                let (racing, passed, barrier) = (&racing, &passed, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let from = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
                    if let Ok(attempt) = racing.begin(from, Some("one code"), t0) {
                        passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        attempt.failed(t0);
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), 5, "one code: five checks at most");
    }
}
