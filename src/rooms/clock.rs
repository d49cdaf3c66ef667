//! The room's clock: what its deadlines (a dropped participant's resume window, an empty
//! room's stop, the batching of arrivals, the waiting room's pace) are measured with, and what
//! wakes the room to check them.
//!
//! A server runs on the system clock, with a one-second tick. Tests run a room on a manual
//! clock, as the SFU core's tests do: time moves only when the test advances it, and each
//! advance wakes the room at once, so a thirty-second resume window is tested in no time and
//! the same way on a loaded 2-core machine as on an idle one. Wall-clock times that leave the
//! room (token expiries, the waiting room's "since", audit times) stay on the system clock: the
//! rest of the server checks them against it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How often a room on the system clock checks its deadlines.
pub const TICK: Duration = Duration::from_secs(1);

/// Where a room's time comes from.
#[derive(Debug, Clone, Default)]
pub enum RoomClock {
    #[default]
    System,
    Manual(ManualClock),
}

impl RoomClock {
    pub fn now(&self) -> Instant {
        match self {
            RoomClock::System => Instant::now(),
            RoomClock::Manual(m) => m.now(),
        }
    }

    /// How long since `then`, never negative.
    pub fn since(&self, then: Instant) -> Duration {
        self.now().saturating_duration_since(then)
    }

    /// What wakes a room to check its deadlines.
    pub fn ticker(&self) -> Ticker {
        match self {
            RoomClock::System => {
                let mut interval = tokio::time::interval(TICK);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Ticker::System(interval)
            }
            RoomClock::Manual(m) => Ticker::Manual(m.advanced.subscribe()),
        }
    }
}

/// Time that moves only when it is advanced; clones share it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
    advanced: Arc<watch::Sender<u64>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            now: Arc::new(Mutex::new(Instant::now())),
            advanced: Arc::new(watch::Sender::new(0)),
        }
    }

    pub fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves time on by `by` and wakes every room on this clock to check its deadlines.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) += by;
        self.advanced.send_modify(|n| *n += 1);
    }
}

/// Wakes a room: every [`TICK`] on the system clock, at every advance on a manual one.
#[derive(Debug)]
pub enum Ticker {
    System(tokio::time::Interval),
    Manual(watch::Receiver<u64>),
}

impl Ticker {
    pub async fn tick(&mut self) {
        match self {
            Ticker::System(interval) => {
                interval.tick().await;
            }
            Ticker::Manual(advanced) => {
                // The clock lives as long as the test that made it; once it is gone, time
                // stands still and the room is never woken by it again.
                if advanced.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_moves_only_when_advanced_and_wakes_its_tickers() {
        let clock = ManualClock::new();
        let room = RoomClock::Manual(clock.clone());
        let start = room.now();
        let mut ticker = room.ticker();
        let woken = tokio::time::timeout(Duration::from_millis(50), ticker.tick()).await;
        assert!(woken.is_err(), "no advance, no tick");
        assert_eq!(room.since(start), Duration::ZERO);
        clock.advance(Duration::from_secs(31));
        tokio::time::timeout(Duration::from_secs(5), ticker.tick())
            .await
            .expect("an advance wakes the ticker");
        assert_eq!(room.since(start), Duration::from_secs(31));
        assert_eq!(room.since(start + Duration::from_secs(60)), Duration::ZERO);
    }
}
