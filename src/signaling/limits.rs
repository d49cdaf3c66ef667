//! Per-connection message rate limiting (token bucket).

use std::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` messages per second sustained, `burst` at once.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(10, 3, t0);
        assert!(l.allow(t0) && l.allow(t0) && l.allow(t0));
        assert!(!l.allow(t0), "burst spent");
        assert!(
            l.allow(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!l.allow(t0 + Duration::from_millis(100)));
        assert!(l.allow(t0 + Duration::from_secs(10)));
    }
}
