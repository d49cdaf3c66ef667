//! A request-rate limit per client address for what anyone may call without a session: the
//! join page's invitation check, short-code redemption and the patient's outcome page (its
//! PDF is rendered on each call). Those are the API's doors for people holding only a link, so
//! nothing else bounds how often one address may knock; each knock costs a token check and a
//! database lookup, and the outcome PDF a render.
//!
//! A token bucket per address (an IPv6 client by its /64, like the sign-in throttle): it holds
//! `per_minute` requests and refills at `per_minute` a minute, so a burst of one minute's worth
//! passes and a steady flood is held to the rate. Taking a request is one step under one lock,
//! so parallel requests cannot all pass a check before any is counted.
//!
//! The table is bounded ([`MAX_ADDRESSES`]): when it is full, addresses whose bucket has filled
//! again (quiet for a minute) are dropped first; if that frees nothing, the whole table is
//! forgotten, because that many addresses at once is beyond what a per-address limit can stop
//! (the connection caps still hold) and memory must stay bounded. In memory only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::throttle::client_key;

/// Addresses tracked at once.
pub const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Requests that may pass now (fractional while refilling).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// How long to wait before a refused request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: Duration,
}

#[derive(Debug)]
pub struct RequestRate {
    /// Bucket size and refill per minute; 0 turns the limit off.
    per_minute: u32,
    // std Mutex: nothing is awaited while it is held.
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RequestRate {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::default(),
        }
    }

    fn refill_per_second(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one request for `ip` if its bucket allows it now.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), RateLimited> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let key = client_key(ip);
        let capacity = f64::from(self.per_minute);
        let rate = self.refill_per_second();
        let mut buckets = self.buckets.lock().expect("request rate poisoned");
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&key) {
            let full_after = Duration::from_secs(60);
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
            if buckets.len() >= MAX_ADDRESSES {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / rate;
        Err(RateLimited {
            retry_after: Duration::from_secs_f64(wait.max(1.0).ceil()),
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::Arc;

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
    }

    #[test]
    fn a_minutes_worth_passes_then_the_rate_holds() {
        let r = RequestRate::new(6);
        let t0 = Instant::now();
        for i in 0..6 {
            assert_eq!(r.take(v4(1), t0), Ok(()), "request {i}");
        }
        let refused = r.take(v4(1), t0).unwrap_err();
        // One request comes back every 10 s at 6 a minute.
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        // Another address has its own bucket.
        assert_eq!(r.take(v4(2), t0), Ok(()));
        // 10 s later exactly one more passes.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(r.take(v4(1), t1), Ok(()));
        assert!(r.take(v4(1), t1).is_err());
        // A quiet minute refills the bucket, never past its size.
        let t2 = t1 + Duration::from_secs(600);
        for _ in 0..6 {
            assert_eq!(r.take(v4(1), t2), Ok(()));
        }
        assert!(r.take(v4(1), t2).is_err());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let r = RequestRate::new(2);
        let t0 = Instant::now();
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        assert_eq!(r.take(a, t0), Ok(()));
        assert_eq!(r.take(b, t0), Ok(()));
        assert!(r.take(a, t0).is_err(), "the same /64 shares one bucket");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_eq!(r.take(other, t0), Ok(()));
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let r = RequestRate::new(0);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| r.take(v4(1), t0).is_ok()));
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn parallel_requests_take_exactly_the_bucket() {
        let r = Arc::new(RequestRate::new(5));
        let t0 = Instant::now();
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..40)
                .map(|_| {
                    let r = r.clone();
                    s.spawn(move || usize::from(r.take(v4(7), t0).is_ok()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 5);
    }

    #[test]
    fn the_table_stays_bounded() {
        let r = RequestRate::new(3);
        let t0 = Instant::now();
        let addr = |i: usize| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
        for i in 0..MAX_ADDRESSES {
            r.take(addr(i), t0).unwrap();
        }
        assert_eq!(r.tracked(), MAX_ADDRESSES);
        // All recent: the flood is forgotten rather than the table growing.
        r.take(addr(MAX_ADDRESSES), t0).unwrap();
        assert_eq!(r.tracked(), 1);
        // Quiet ones are dropped first: a minute on, only the busy address is kept.
        for i in 0..MAX_ADDRESSES - 1 {
            r.take(addr(i), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(61);
        r.take(addr(MAX_ADDRESSES), later).unwrap();
        r.take(addr(MAX_ADDRESSES + 1), later).unwrap();
        assert_eq!(r.tracked(), 2);
    }
}
