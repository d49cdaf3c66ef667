//! A worker's ICE-TCP connections: each one's reading and writing tasks (on the worker's own
//! runtime, so on its thread), and the table from a connection's remote address to them.
//!
//! The worker never waits on a connection. Frames read come to it over one bounded queue
//! ([`Inbound`]); a reader whose frames the worker has not taken waits, which holds back that
//! peer's TCP window, not the worker. Frames to write go to the connection's own bounded queue
//! with `try_send`; when it is full the frame is dropped and counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::framing::{FrameError, header, read_frame};
use super::{Accepted, CloseReason, Slot, TcpLimits, TcpStats, WRITE_QUEUE_FRAMES};

/// Capacity of the queue of frames read from every connection of a worker to the worker.
const INBOUND_CAPACITY: usize = 1024;

/// How long shutdown lets writers hand what they hold to the kernel.
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(300);

/// What a connection's tasks tell the worker.
#[derive(Debug)]
pub(crate) enum Inbound {
    Frame {
        peer: SocketAddr,
        id: u64,
        data: Vec<u8>,
    },
    Closed {
        peer: SocketAddr,
        id: u64,
        reason: CloseReason,
    },
}

impl Inbound {
    fn peer_and_id(&self) -> (SocketAddr, u64) {
        match self {
            Inbound::Frame { peer, id, .. } | Inbound::Closed { peer, id, .. } => (*peer, *id),
        }
    }
}

struct Conn {
    id: u64,
    out: mpsc::Sender<Vec<u8>>,
    reader: AbortHandle,
    /// ICE checks on it that named a live transport which did not accept them yet.
    early: u8,
}

/// Early ICE checks (`sfu::Routed::Early`) a connection may send before one is accepted: a
/// peer retransmits its check every few hundred milliseconds while its answer is applied, so
/// a few cover that, and a stranger repeating a known ufrag cannot hold a connection long.
pub const MAX_EARLY_CHECKS: u8 = 8;

pub(crate) struct TcpConns {
    by_peer: HashMap<SocketAddr, Conn>,
    next_id: u64,
    inbound: mpsc::Sender<Inbound>,
    writers: JoinSet<()>,
    idle_timeout: Duration,
    stats: Arc<TcpStats>,
}

impl TcpConns {
    /// The table, and the queue its connections' frames arrive on (for the worker's loop).
    pub fn new(limits: Option<TcpLimits>, stats: Arc<TcpStats>) -> (Self, mpsc::Receiver<Inbound>) {
        let (inbound, rx) = mpsc::channel(INBOUND_CAPACITY);
        let idle_timeout = limits.map_or(Duration::from_secs(30), |l| l.idle_timeout);
        (
            Self {
                by_peer: HashMap::new(),
                next_id: 0,
                inbound,
                writers: JoinSet::new(),
                idle_timeout,
                stats,
            },
            rx,
        )
    }

    pub fn len(&self) -> usize {
        self.by_peer.len()
    }

    /// Takes over a connection the listener routed here; returns its first frame, tagged, for
    /// the worker to hand to the `Sfu` like any other. Must run on the worker's runtime.
    pub fn adopt(&mut self, accepted: Accepted) -> Option<Inbound> {
        let Accepted {
            stream,
            peer,
            first,
            slot,
        } = accepted;
        let stream = match TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP connection unusable");
                self.stats.closed(CloseReason::Peer);
                return None;
            }
        };
        // A second connection from the same address and port would be a reuse after a close
        // we have not heard of yet: the newer one wins.
        self.remove(peer);
        self.next_id += 1;
        let id = self.next_id;
        let (read, write) = stream.into_split();
        let slot = Arc::new(slot);
        let (out, queue) = mpsc::channel(WRITE_QUEUE_FRAMES);
        let reader = tokio::spawn(read_loop(
            read,
            peer,
            id,
            self.inbound.clone(),
            self.idle_timeout,
            slot.clone(),
        ))
        .abort_handle();
        self.writers.spawn(write_loop(
            write,
            queue,
            peer,
            id,
            self.inbound.clone(),
            self.idle_timeout,
            slot,
        ));
        self.by_peer.insert(
            peer,
            Conn {
                id,
                out,
                reader,
                early: 0,
            },
        );
        Some(Inbound::Frame {
            peer,
            id,
            data: first,
        })
    }

    /// Whether a message is from the connection now open at its address (not an older one).
    pub fn is_current(&self, msg: &Inbound) -> bool {
        let (peer, id) = msg.peer_and_id();
        self.by_peer.get(&peer).is_some_and(|c| c.id == id)
    }

    /// Queues a frame for `peer`'s connection; dropped (and counted) if its queue is full or
    /// there is no such connection.
    pub fn send(&mut self, peer: SocketAddr, data: Vec<u8>) {
        let Some(conn) = self.by_peer.get(&peer) else {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match conn.out.try_send(data) {
            Ok(()) => {
                self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
            // Its writer ended (it tells the worker why): nothing more to write there.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Closes `peer`'s connection: its reader stops now, its writer once it has written what
    /// is queued (within the idle timeout). Counted under `reason` if it was open.
    pub fn close(&mut self, peer: SocketAddr, reason: CloseReason) {
        if self.remove(peer) {
            self.stats.closed(reason);
        }
    }

    fn remove(&mut self, peer: SocketAddr) -> bool {
        // Finished writers are reaped here, so the set holds the live ones.
        while self.writers.try_join_next().is_some() {}
        match self.by_peer.remove(&peer) {
            Some(conn) => {
                conn.reader.abort();
                true
            }
            None => false,
        }
    }

    /// Counts an early ICE check on `peer`'s connection; true once there were more than
    /// [`MAX_EARLY_CHECKS`] (the connection is then to be closed as unrouted).
    pub fn early_check(&mut self, peer: SocketAddr) -> bool {
        match self.by_peer.get_mut(&peer) {
            Some(conn) => {
                conn.early = conn.early.saturating_add(1);
                conn.early > MAX_EARLY_CHECKS
            }
            None => false,
        }
    }

    /// Closes every connection (server shutdown), giving writers a moment to flush.
    pub async fn close_all(&mut self) {
        let peers: Vec<SocketAddr> = self.by_peer.keys().copied().collect();
        for peer in peers {
            self.close(peer, CloseReason::Shutdown);
        }
        let flushed = async { while self.writers.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_FLUSH, flushed).await.is_err() {
            self.writers.abort_all();
        }
    }
}

async fn read_loop(
    read: OwnedReadHalf,
    peer: SocketAddr,
    id: u64,
    inbound: mpsc::Sender<Inbound>,
    idle: Duration,
    _slot: Arc<Slot>,
) {
    let mut reader = BufReader::with_capacity(8 * 1024, read);
    let reason = loop {
        let mut data = Vec::new();
        match tokio::time::timeout(idle, read_frame(&mut reader, &mut data)).await {
            Err(_) => break CloseReason::Idle,
            Ok(Err(FrameError::BadLength(_))) => break CloseReason::BadFrame,
            Ok(Err(FrameError::Io(_))) => break CloseReason::Peer,
            Ok(Ok(())) => {
                if inbound
                    .send(Inbound::Frame { peer, id, data })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    };
    let _ = inbound.send(Inbound::Closed { peer, id, reason }).await;
}

async fn write_loop(
    write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Vec<u8>>,
    peer: SocketAddr,
    id: u64,
    inbound: mpsc::Sender<Inbound>,
    idle: Duration,
    _slot: Arc<Slot>,
) {
    let mut writer = BufWriter::with_capacity(16 * 1024, write);
    while let Some(frame) = queue.recv().await {
        // Everything queued goes in one flush; a peer that takes none of it for `idle` is
        // not reading, and is closed.
        let batch = async {
            write_frame(&mut writer, &frame).await?;
            while let Ok(more) = queue.try_recv() {
                write_frame(&mut writer, &more).await?;
            }
            writer.flush().await
        };
        match tokio::time::timeout(idle, batch).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                let reason = CloseReason::Peer;
                let _ = inbound.send(Inbound::Closed { peer, id, reason }).await;
                return;
            }
            Err(_) => {
                let reason = CloseReason::SlowReader;
                let _ = inbound.send(Inbound::Closed { peer, id, reason }).await;
                return;
            }
        }
    }
    // The worker closed it: a FIN after what was queued.
    let _ = tokio::time::timeout(idle, writer.shutdown()).await;
}

async fn write_frame(writer: &mut BufWriter<OwnedWriteHalf>, frame: &[u8]) -> std::io::Result<()> {
    let Some(len) = header(frame.len()) else {
        return Ok(());
    };
    writer.write_all(&len).await?;
    writer.write_all(frame).await
}
