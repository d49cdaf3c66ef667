//! How many renders run at once, server-wide (PDF pages, DICOM frames, anything that reads a
//! whole document to show it): each holds a permit while it works. A request that cannot get
//! one within the wait is refused as busy, to be tried again, rather than queued without end.
//!
//! The permit moves into the blocking task that does the work, so it is held until the work
//! ends, even if the client that asked has gone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct RenderGate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// Every permit was taken for the whole wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl RenderGate {
    pub fn new(at_once: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(at_once.max(1))),
            wait,
        }
    }

    /// A permit, waiting for one at most the configured time.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Busy> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a timeout is the one way here.
            Ok(Err(_)) | Err(_) => Err(Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_render_waits_its_turn_then_is_refused() {
        let gate = RenderGate::new(2, Duration::from_millis(20));
        let first = gate.enter().await.unwrap();
        let _second = gate.enter().await.unwrap();
        // Both taken and neither given back within the wait: busy.
        assert_eq!(gate.enter().await.unwrap_err(), Busy);
        // One given back while a third waits: the third gets it.
        let waiting = tokio::spawn({
            let gate = RenderGate {
                wait: Duration::from_secs(60),
                ..gate.clone()
            };
            async move { gate.enter().await.map(drop) }
        });
        drop(first);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}
