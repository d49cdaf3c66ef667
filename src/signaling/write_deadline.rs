//! The writing half of a signaling WebSocket, with a deadline on every write.
//!
//! A client that stops reading (or reads one byte a minute) fills its TCP window and the
//! server's send buffer; from then on a write waits for it. Without a deadline such a write
//! waits forever, and the session with it: its join deadline is never polled, its descriptor
//! and its connection permit are held, and a few hundred such clients from a handful of
//! addresses lock everyone out (issue 16, attack 1, through the WebSocket instead of the HTTP
//! handshake). Here a write that does not complete in time fails, and the session closes the
//! connection like any other failed write. After one failed write every later one fails at
//! once: a frame cut off mid-write leaves nothing sound to write after, and the session's
//! goodbyes (queued notices, the close frame) must not wait a deadline each.

use std::marker::PhantomData;
use std::time::Duration;

use futures_util::{Sink, SinkExt};

/// Why a write did not go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The peer did not take it within the deadline: it stopped reading.
    #[error("the peer took no data for longer than the write deadline")]
    Stalled,
    /// The connection failed (closed, reset).
    #[error("the connection failed")]
    Failed,
}

/// `K` written with items of type `M`, each write within `limit`.
pub struct Deadlined<K, M> {
    inner: K,
    limit: Duration,
    broken: bool,
    _items: PhantomData<fn(M)>,
}

impl<K, M> Deadlined<K, M>
where
    K: Sink<M> + Unpin,
{
    pub fn new(inner: K, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            broken: false,
            _items: PhantomData,
        }
    }

    /// Writes `item` and flushes it.
    pub async fn send(&mut self, item: M) -> Result<(), WriteError> {
        within(self.limit, &mut self.broken, self.inner.send(item)).await
    }

    /// Queues `item` without flushing (a batch ends with [`flush`](Self::flush)).
    pub async fn feed(&mut self, item: M) -> Result<(), WriteError> {
        within(self.limit, &mut self.broken, self.inner.feed(item)).await
    }

    pub async fn flush(&mut self) -> Result<(), WriteError> {
        within(self.limit, &mut self.broken, self.inner.flush()).await
    }

    pub async fn close(&mut self) -> Result<(), WriteError> {
        within(self.limit, &mut self.broken, self.inner.close()).await
    }
}

/// Runs `write` within `limit`, unless the sink is `broken` already (then `write` is dropped
/// unpolled: nothing is written); a write that fails or stalls breaks it.
async fn within<E>(
    limit: Duration,
    broken: &mut bool,
    write: impl Future<Output = Result<(), E>>,
) -> Result<(), WriteError> {
    if *broken {
        return Err(WriteError::Failed);
    }
    let failure = match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(_)) => WriteError::Failed,
        Err(_) => WriteError::Stalled,
    };
    *broken = true;
    Err(failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose every write waits forever, as a socket nobody reads.
    struct Stuck;

    impl Sink<u8> for Stuck {
        type Error = ();
        fn poll_ready(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
        fn start_send(self: std::pin::Pin<&mut Self>, _: u8) -> Result<(), ()> {
            Ok(())
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), ()>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_write_nobody_takes_fails_at_the_deadline() {
        for write in 0..4 {
            let mut sink = Deadlined::new(Stuck, Duration::from_millis(50));
            let result = match write {
                0 => sink.send(1).await,
                1 => sink.feed(1).await,
                2 => sink.flush().await,
                _ => sink.close().await,
            };
            assert_eq!(result, Err(WriteError::Stalled));
            // Broken from then on: the goodbyes fail at once (`Failed`, not another
            // `Stalled` at another deadline).
            assert_eq!(sink.send(2).await, Err(WriteError::Failed));
            assert_eq!(sink.close().await, Err(WriteError::Failed));
        }
    }

    #[tokio::test]
    async fn a_write_that_goes_out_is_ok() {
        let mut sink = Deadlined::new(futures_util::sink::drain(), Duration::from_secs(1));
        assert_eq!(sink.send(7u8).await, Ok(()));
        assert_eq!(sink.feed(8u8).await, Ok(()));
        assert_eq!(sink.flush().await, Ok(()));
    }
}
