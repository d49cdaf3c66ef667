//! ICE restarts a participant asks for when their media path changes or fails (Wi-Fi to 4G, a
//! NAT rebinding): the state of their media link as the others are told it, and how many
//! restarts the room grants them in a while. Each restart costs the server an offer and the
//! SFU a round of ICE checks, so a client that asks in a loop is refused, and that is audited.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// ICE restarts granted to one participant per [`ICE_RESTART_WINDOW`]: enough for a client
/// to retry with backoff after a failed attempt, not enough to make the server renegotiate
/// continuously.
pub const MAX_ICE_RESTARTS: usize = 4;
pub const ICE_RESTART_WINDOW: Duration = Duration::from_secs(60);

/// A participant's media link, as far as the room knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaLink {
    /// Not connected yet: there is nothing to restart.
    #[default]
    Connecting,
    Connected,
    /// An ICE restart was asked for and ICE is not up again yet: the others see the
    /// participant as reconnecting (not gone).
    Restarting,
}

/// Why an ICE restart is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IceRestartRefused {
    #[error("the media connection is not up yet: there is nothing to restart")]
    NotConnected,
    #[error("at most {MAX_ICE_RESTARTS} ICE restarts a minute")]
    TooMany,
}

/// The restarts one participant was granted within the last window.
#[derive(Debug, Default)]
pub struct IceRestarts {
    granted: VecDeque<Instant>,
}

impl IceRestarts {
    /// Grants a restart at `now` for a link in state `link`, or says why not.
    pub fn grant(&mut self, link: MediaLink, now: Instant) -> Result<(), IceRestartRefused> {
        if link == MediaLink::Connecting {
            return Err(IceRestartRefused::NotConnected);
        }
        while self
            .granted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= ICE_RESTART_WINDOW)
        {
            self.granted.pop_front();
        }
        if self.granted.len() >= MAX_ICE_RESTARTS {
            return Err(IceRestartRefused::TooMany);
        }
        self.granted.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_are_granted_up_to_the_limit_per_window() {
        let mut r = IceRestarts::default();
        let t0 = Instant::now();
        assert_eq!(
            r.grant(MediaLink::Connecting, t0),
            Err(IceRestartRefused::NotConnected)
        );
        for i in 0..MAX_ICE_RESTARTS {
            let link = if i == 0 {
                MediaLink::Connected
            } else {
                MediaLink::Restarting
            };
            assert_eq!(r.grant(link, t0 + Duration::from_secs(i as u64)), Ok(()));
        }
        let late = t0 + Duration::from_secs(30);
        assert_eq!(
            r.grant(MediaLink::Restarting, late),
            Err(IceRestartRefused::TooMany)
        );
        // Refusals are not counted: once the first grant is a window old, one more.
        assert_eq!(
            r.grant(MediaLink::Connected, t0 + ICE_RESTART_WINDOW),
            Ok(())
        );
        assert_eq!(
            r.grant(MediaLink::Connected, t0 + ICE_RESTART_WINDOW),
            Err(IceRestartRefused::TooMany)
        );
        assert!(r.granted.len() <= MAX_ICE_RESTARTS);
    }
}
