//! One direction of one client's path, sans I/O: given a packet's arrival time and size, and the
//! path's [`Profile`], decides its [`Fate`] (lost, and why, or delivered when, how many times).
//!
//! The same seed and the same arrival sequence give the same fates: every random draw comes from
//! the link's own generator, in a fixed order, and time comes only from the caller. The relay
//! (`relay.rs`) feeds it real arrivals; the tests here feed it a virtual clock.

use std::time::{Duration, Instant};

use crate::profile::{Loss, Profile};
use crate::rng::Rng;

/// Why a packet was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The path was down.
    Blackout,
    /// Random or bursty loss.
    Loss,
    /// The queue in front of the rate cap was full (tail drop).
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Lost(Cause),
    /// Deliver at `at`, `copies` times (2 when duplicated).
    Delivered {
        at: Instant,
        copies: u8,
    },
}

#[derive(Debug, Clone)]
pub struct Link {
    rng: Rng,
    /// The Gilbert-Elliott chain's state.
    bad: bool,
    /// When the rate-capped link has sent everything queued so far.
    busy_until: Option<Instant>,
    /// The latest delivery time given, so that without reordering none is earlier.
    last_at: Option<Instant>,
}

impl Link {
    pub fn new(rng: Rng) -> Self {
        Self {
            rng,
            bad: false,
            busy_until: None,
            last_at: None,
        }
    }

    /// The fate of a packet of `len` bytes arriving at `now` on a path set as `profile`.
    pub fn decide(&mut self, profile: &Profile, now: Instant, len: usize) -> Fate {
        if profile.down {
            return Fate::Lost(Cause::Blackout);
        }
        let lost = match profile.loss {
            Loss::None => false,
            Loss::Random { p } => self.rng.chance(p),
            Loss::Bursty(ge) => {
                let flip = if self.bad { ge.to_good } else { ge.to_bad };
                if self.rng.chance(flip) {
                    self.bad = !self.bad;
                }
                self.rng
                    .chance(if self.bad { ge.loss_bad } else { ge.loss_good })
            }
        };
        if lost {
            return Fate::Lost(Cause::Loss);
        }
        let depart = match profile.rate_bps {
            None => now,
            Some(rate) => {
                let start = self.busy_until.map_or(now, |b| b.max(now));
                let backlog = start - now;
                let backlog_bytes = (backlog.as_secs_f64() * rate as f64 / 8.0) as usize;
                if backlog_bytes + len > profile.queue_bytes {
                    return Fate::Lost(Cause::Queue);
                }
                let sending = Duration::from_secs_f64(len as f64 * 8.0 / rate as f64);
                let done = start + sending;
                self.busy_until = Some(done);
                done
            }
        };
        let jitter = self.rng.up_to(profile.jitter.as_micros() as u64);
        let mut at = depart + profile.delay + Duration::from_micros(jitter);
        if !profile.reorder
            && let Some(last) = self.last_at
        {
            at = at.max(last);
        }
        self.last_at = Some(self.last_at.map_or(at, |l| l.max(at)));
        let copies = if self.rng.chance(profile.duplicate) {
            2
        } else {
            1
        };
        Fate::Delivered { at, copies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` packets of `len` bytes every `gap` from `t0`, through a link seeded `seed`.
    fn run(seed: u64, profile: &Profile, n: usize, gap: Duration, len: usize) -> Vec<Fate> {
        let t0 = Instant::now();
        let mut link = Link::new(Rng::new(seed));
        (0..n)
            .map(|i| link.decide(profile, t0 + gap * i as u32, len))
            .collect()
    }

    fn offsets(fates: &[Fate], t0: Instant) -> Vec<Option<Duration>> {
        fates
            .iter()
            .map(|f| match f {
                Fate::Delivered { at, .. } => Some(at.saturating_duration_since(t0)),
                Fate::Lost(_) => None,
            })
            .collect()
    }

    fn lost(fates: &[Fate], cause: Cause) -> usize {
        fates.iter().filter(|f| **f == Fate::Lost(cause)).count()
    }

    #[test]
    fn the_same_seed_and_arrivals_give_the_same_fates() {
        let profile: Profile = "ge=5%/30%/1%/60%,jitter=40ms,reorder,dup=2%,rate=2mbit,queue=8kB"
            .parse()
            .unwrap();
        // Arrival times and sizes that vary, as a real sequence does.
        let t0 = Instant::now();
        let arrivals: Vec<(Instant, usize)> = (0..5000u64)
            .map(|i| {
                (
                    t0 + Duration::from_micros(i * 1700 + (i * i) % 900),
                    200 + (i as usize * 37) % 1100,
                )
            })
            .collect();
        let decide_all = |seed| {
            let mut link = Link::new(Rng::derive(seed, 3));
            let fates: Vec<Fate> = arrivals
                .iter()
                .map(|&(t, len)| link.decide(&profile, t, len))
                .collect();
            offsets(&fates, t0)
                .into_iter()
                .zip(fates)
                .map(|(o, f)| (o, matches!(f, Fate::Delivered { copies: 2, .. })))
                .collect::<Vec<_>>()
        };
        let a = decide_all(42);
        assert_eq!(a, decide_all(42));
        assert_ne!(a, decide_all(43));
        // Every impairment took part, or the comparison proves less than it says.
        assert!(a.iter().any(|(o, _)| o.is_none()));
        assert!(a.iter().any(|(_, dup)| *dup));
    }

    #[test]
    fn random_loss_loses_its_share() {
        let fates = run(
            1,
            &"loss=10%".parse().unwrap(),
            20_000,
            Duration::from_millis(1),
            100,
        );
        let n = lost(&fates, Cause::Loss);
        assert!((1_700..2_300).contains(&n), "{n}");
    }

    /// Mean run of consecutive losses.
    fn mean_burst(fates: &[Fate]) -> f64 {
        let (mut runs, mut losses, mut inside) = (0, 0, false);
        for f in fates {
            let l = matches!(f, Fate::Lost(_));
            if l {
                losses += 1;
                if !inside {
                    runs += 1;
                }
            }
            inside = l;
        }
        losses as f64 / runs.max(1) as f64
    }

    #[test]
    fn bursty_loss_comes_in_runs_at_its_mean_rate() {
        // Mean loss 0.05/(0.05+0.25) = 1/6, in runs of about 1/0.25 = 4 packets.
        let ge = run(
            2,
            &"ge=5%/25%".parse().unwrap(),
            60_000,
            Duration::from_millis(1),
            100,
        );
        let share = lost(&ge, Cause::Loss) as f64 / ge.len() as f64;
        assert!((0.14..0.19).contains(&share), "{share}");
        let random = run(
            2,
            &"loss=16.7%".parse().unwrap(),
            60_000,
            Duration::from_millis(1),
            100,
        );
        let (b, r) = (mean_burst(&ge), mean_burst(&random));
        assert!(b > 3.0 && r < 1.5, "bursts {b} vs random {r}");
    }

    #[test]
    fn jitter_without_reordering_keeps_order_and_with_it_reorders() {
        let t0 = Instant::now();
        let gap = Duration::from_millis(5);
        let keep = run(
            3,
            &"jitter=30ms,delay=10ms".parse().unwrap(),
            2000,
            gap,
            100,
        );
        let keep = offsets(&keep, t0);
        assert!(keep.windows(2).all(|w| w[0] <= w[1]), "order kept");
        assert!(keep.iter().all(|o| o.unwrap() >= Duration::from_millis(10)));
        // Delay varies by up to the jitter above the base, beyond the arrival spacing.
        let spread = keep
            .iter()
            .enumerate()
            .map(|(i, o)| o.unwrap() - gap * i as u32)
            .max()
            .unwrap();
        assert!(spread > Duration::from_millis(35), "{spread:?}");
        let mixed = offsets(
            &run(3, &"jitter=30ms,reorder".parse().unwrap(), 2000, gap, 100),
            t0,
        );
        let overtaken = mixed.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtaken > 200, "{overtaken}");
    }

    #[test]
    fn duplication_doubles_its_share() {
        let fates = run(
            4,
            &"dup=5%".parse().unwrap(),
            20_000,
            Duration::from_millis(1),
            100,
        );
        let twice = fates
            .iter()
            .filter(|f| matches!(f, Fate::Delivered { copies: 2, .. }))
            .count();
        assert!((800..1_200).contains(&twice), "{twice}");
    }

    #[test]
    fn a_rate_cap_paces_delivery_and_drops_at_the_tail_of_a_full_queue() {
        let t0 = Instant::now();
        // 1000-byte packets every 10 ms is 800 kbit/s offered into a 400 kbit/s cap with a
        // queue of 10 packets: half are dropped once the queue is full, and delivery is paced.
        let profile: Profile = "rate=400kbit,queue=10kB".parse().unwrap();
        let fates = run(5, &profile, 1000, Duration::from_millis(10), 1000);
        let dropped = lost(&fates, Cause::Queue);
        assert!((480..=510).contains(&dropped), "{dropped}");
        let at = offsets(&fates, t0);
        let delivered: Vec<Duration> = at.iter().flatten().copied().collect();
        let span = *delivered.last().unwrap() - delivered[0];
        let rate = (delivered.len() - 1) as f64 * 8000.0 / span.as_secs_f64();
        assert!((390_000.0..=410_000.0).contains(&rate), "{rate}");
        // The delay a packet sees never exceeds what the queue holds, itself included: 10 kB at
        // 400 kbit/s is 200 ms (the backlog is counted in whole bytes, hence the margin).
        let worst = at
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.map(|o| o - Duration::from_millis(10) * i as u32))
            .max()
            .unwrap();
        assert!(worst <= Duration::from_millis(201), "{worst:?}");
        // Under the cap nothing is dropped and nothing waits.
        let light = run(5, &profile, 1000, Duration::from_millis(40), 1000);
        assert_eq!(lost(&light, Cause::Queue), 0);
    }

    #[test]
    fn a_path_that_is_down_loses_everything_and_draws_nothing() {
        let down: Profile = "loss=50%,down".parse().unwrap();
        let up: Profile = "loss=50%".parse().unwrap();
        let fates = run(6, &down, 100, Duration::from_millis(1), 100);
        assert_eq!(lost(&fates, Cause::Blackout), 100);
        // The blackout drew no randomness: afterwards the link decides as a fresh one would.
        let t0 = Instant::now();
        let mut after = Link::new(Rng::new(6));
        let mut fresh = Link::new(Rng::new(6));
        for i in 0..100 {
            after.decide(&down, t0, 100);
            let t = t0 + Duration::from_millis(i);
            assert_eq!(after.decide(&up, t, 100), fresh.decide(&up, t, 100));
        }
    }
}
