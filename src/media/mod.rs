//! The media I/O driver: runs the sans-IO [`crate::sfu::Sfu`] on a real UDP socket.
//!
//! Each media worker is a dedicated OS thread with its own single-threaded tokio runtime (as a
//! mediasoup worker is a process): it owns one `Sfu`, reads and writes the socket, keeps the
//! timers, and exchanges bounded messages with the room tasks. A room opening goes to the worker
//! hosting the fewest rooms ([`MediaHandle::assign_worker`]); every participant of a room lives
//! on its room's worker, so forwarding never crosses threads.
//!
//! Each worker owns its own UDP port: `media.udp_bind`'s port for worker 0, the next port for
//! worker 1, and so on (as mediasoup and Janus use a port range). A peer's ICE candidates name
//! its room's worker's port, so datagrams reach the right thread through the kernel alone: no
//! demultiplexing hop, no lock, nothing shared on the forwarding path. The price is a range of
//! `media.workers` UDP ports to open in the firewall instead of one.
//!
//! ICE-TCP (`tcp/`), for participants whose network lets no UDP through, is one TCP port for
//! every worker: a connection's first STUN request names the worker whose peer connection it
//! is for, and the listener hands it to that worker's thread.
//!
//! A panic in a worker's media core is contained (`worker.rs`, `sfu/containment.rs`): it
//! costs the room the core was working for, and the thread, its socket and its command queue
//! live on. A panic in the worker's own code around the core costs every peer connection on
//! that worker, and the thread lives on too.

mod cpu;
mod outbox;
mod recv;
mod send;
mod socket;
pub mod tcp;
mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::config::MediaConfig;
use crate::domain::ids::RoomId;
use crate::sfu::{LocalAddrs, SfuCommand, SfuEvent};
use tcp::{TcpLimits, TcpStats};

pub use cpu::cpu_seconds;
pub use worker::{PanicCounts, TURN_BUCKETS_MICROS, TurnHistogram, WorkerStats};
// The worker's socket and batched I/O, public so that `loadtests/` measures the limit (a bare
// relay with no WebRTC) through the same system calls and buffers as the server.
pub use recv::{DATAGRAM_MAX, RECV_BATCH, RecvBatch};
pub use send::{SEND_BATCH, SendBatch};
pub use socket::{Buffers, open as open_socket};

/// Capacity of a worker's command queue and of each room's event queue.
pub const QUEUE_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    #[error("cannot bind the media UDP socket {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for ICE-TCP on {addr}: {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start a media worker: {0}")]
    Spawn(std::io::Error),
    #[error("the media worker is gone")]
    WorkerGone,
    #[error("the media worker is overloaded")]
    Busy,
}

/// A message to a worker.
#[derive(Debug)]
pub(crate) enum WorkerMsg {
    /// Route this room's events to `events` from now on.
    OpenRoom {
        room: RoomId,
        events: mpsc::Sender<SfuEvent>,
    },
    CloseRoom {
        room: RoomId,
    },
    Sfu(SfuCommand),
    /// An ICE-TCP connection whose first STUN request names one of this worker's ufrags.
    Tcp(tcp::Accepted),
    Stats(tokio::sync::oneshot::Sender<WorkerStats>),
    /// Send what is pending and end the thread (server shutdown).
    Stop,
    /// A panic in the worker's own code, outside the core's containment (tests only).
    #[cfg(any(test, feature = "fault-injection"))]
    PanicInWorkerLoop,
}

/// Sends commands to one worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<WorkerMsg>,
    /// Rooms assigned to this worker and not closed yet (see [`MediaHandle::assign_worker`]).
    rooms: Arc<AtomicUsize>,
}

impl WorkerHandle {
    pub async fn open_room(
        &self,
        room: RoomId,
        events: mpsc::Sender<SfuEvent>,
    ) -> Result<(), MediaError> {
        self.send(WorkerMsg::OpenRoom { room, events }).await
    }

    /// Ends the room here; it no longer counts towards this worker's load.
    pub async fn close_room(&self, room: RoomId) -> Result<(), MediaError> {
        let _ = self
            .rooms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.send(WorkerMsg::CloseRoom { room }).await
    }

    pub async fn command(&self, cmd: SfuCommand) -> Result<(), MediaError> {
        self.send(WorkerMsg::Sfu(cmd)).await
    }

    /// For paths that cannot wait (drop handlers): fails rather than blocks.
    pub fn try_command(&self, cmd: SfuCommand) -> Result<(), MediaError> {
        self.tx.try_send(WorkerMsg::Sfu(cmd)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => MediaError::Busy,
            mpsc::error::TrySendError::Closed(_) => MediaError::WorkerGone,
        })
    }

    /// Makes the worker's own loop panic once, outside the core (tests of its fence).
    #[cfg(any(test, feature = "fault-injection"))]
    pub async fn inject_loop_panic(&self) -> Result<(), MediaError> {
        self.send(WorkerMsg::PanicInWorkerLoop).await
    }

    pub async fn stats(&self) -> Result<WorkerStats, MediaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(WorkerMsg::Stats(tx)).await?;
        rx.await.map_err(|_| MediaError::WorkerGone)
    }

    async fn send(&self, msg: WorkerMsg) -> Result<(), MediaError> {
        self.tx.send(msg).await.map_err(|_| MediaError::WorkerGone)
    }
}

/// All media workers, and where clients reach them.
#[derive(Debug, Clone)]
pub struct MediaHandle {
    workers: Vec<WorkerHandle>,
    /// The worker threads, joined by [`MediaHandle::shutdown`].
    threads: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// Each worker's bound socket address, by worker index.
    local_addrs: Vec<SocketAddr>,
    /// Every worker's announced candidate addresses, worker 0's first.
    announced: Vec<SocketAddr>,
    /// The ICE-TCP listener's bound address, if ICE-TCP is on.
    tcp_local_addr: Option<SocketAddr>,
    tcp_stats: Arc<TcpStats>,
    /// Tells the ICE-TCP listener's thread to stop (joined with the workers').
    tcp_stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl MediaHandle {
    /// Binds one UDP socket per worker (consecutive ports from `udp_bind`'s, or each an
    /// ephemeral port when that is 0) and starts the workers.
    pub fn start(config: &MediaConfig) -> Result<Self, MediaError> {
        str0m::crypto::from_feature_flags().install_process_default();
        let mut workers = Vec::with_capacity(config.workers);
        let mut threads = Vec::with_capacity(config.workers);
        let mut local_addrs = Vec::with_capacity(config.workers);
        let mut announced = Vec::new();
        let tcp_stats = Arc::new(TcpStats::default());
        let tcp_listener = if config.tcp {
            let addr = tcp_bind_addr(config);
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| MediaError::BindTcp { addr, source })?;
            let local = listener.local_addr().map_err(MediaError::Spawn)?;
            Some((listener, local))
        } else {
            None
        };
        let tcp_announced: Vec<SocketAddr> = tcp_listener
            .as_ref()
            .map(|(_, local)| {
                let mut port = local.port();
                if config.tcp_announce_port != 0 {
                    port = config.tcp_announce_port;
                }
                announce_addresses(config, SocketAddr::new(local.ip(), port))
            })
            .unwrap_or_default();
        let tcp_limits = TcpLimits {
            max_connections: config.tcp_max_connections,
            max_connections_per_address: config.tcp_max_connections_per_address,
            stun_timeout: std::time::Duration::from_secs(config.tcp_stun_timeout_s),
            idle_timeout: std::time::Duration::from_secs(config.tcp_idle_timeout_s),
        };
        for index in 0..config.workers {
            let addr = worker_bind_addr(config.udp_bind, index);
            let (socket, buffers) = socket::open(addr, config.socket_buffer_bytes)?;
            tracing::debug!(worker = index, ?buffers, "media socket buffers");
            let local_addr = socket.local_addr().map_err(MediaError::Spawn)?;
            let worker_announced = announce_addresses(config, local_addr);
            let addrs = LocalAddrs {
                udp: worker_announced.clone(),
                tcp: tcp_announced.clone(),
                // `Config::validate` keeps `media.workers` within 256.
                worker: u8::try_from(index).unwrap_or(u8::MAX),
            };
            let (handle, thread) = worker::spawn(
                socket,
                &addrs,
                config.tcp.then_some(tcp_limits),
                tcp_stats.clone(),
            )?;
            workers.push(handle);
            threads.push(thread);
            local_addrs.push(local_addr);
            announced.extend(worker_announced);
        }
        let (tcp_stop, stop_rx) = tokio::sync::watch::channel(false);
        let tcp_local_addr = match tcp_listener {
            Some((listener, local)) => {
                let senders = workers.iter().map(|w| w.tx.clone()).collect();
                threads.push(tcp::spawn_listener(
                    listener,
                    senders,
                    tcp_limits,
                    tcp_stats.clone(),
                    stop_rx,
                )?);
                Some(local)
            }
            None => None,
        };
        Ok(Self {
            workers,
            threads: Arc::new(std::sync::Mutex::new(threads)),
            local_addrs,
            announced,
            tcp_local_addr,
            tcp_stats,
            tcp_stop: Arc::new(tcp_stop),
        })
    }

    /// Stops every worker (each sends what it has pending first) and joins its thread, within
    /// `deadline`; returns whether every thread ended in time. Rooms are to be ended first:
    /// their participants' peer connections are closed as they leave.
    pub async fn shutdown(&self, deadline: std::time::Duration) -> bool {
        let threads = std::mem::take(&mut *self.threads.lock().expect("thread list poisoned"));
        let stop = async {
            // The listener first: no connection is handed to a worker that is stopping.
            let _ = self.tcp_stop.send(true);
            for w in &self.workers {
                let _ = w.send(WorkerMsg::Stop).await;
            }
            tokio::task::spawn_blocking(move || {
                for t in threads {
                    if t.join().is_err() {
                        tracing::error!("a media worker thread panicked");
                    }
                }
            })
            .await
            .is_ok()
        };
        tokio::time::timeout(deadline, stop).await.unwrap_or(false)
    }

    /// The worker for a room that is opening: the one hosting the fewest rooms. Counted from
    /// now until the room's [`WorkerHandle::close_room`], so the room must go on to open there.
    pub fn assign_worker(&self) -> WorkerHandle {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.rooms.load(Ordering::Relaxed))
            .expect("at least one worker");
        worker.rooms.fetch_add(1, Ordering::Relaxed);
        worker.clone()
    }

    /// Every worker's bound address, by worker index.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn announced(&self) -> &[SocketAddr] {
        &self.announced
    }

    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// The ICE-TCP listener's bound address; None when `media.tcp` is off.
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.tcp_local_addr
    }

    /// ICE-TCP counters (zero when `media.tcp` is off).
    pub fn tcp_stats(&self) -> &TcpStats {
        &self.tcp_stats
    }
}

/// Where the ICE-TCP listener binds: `media.tcp_bind`, or `udp_bind`'s address and port (the
/// same number over TCP; port 0, a free one) when that is empty.
fn tcp_bind_addr(config: &MediaConfig) -> SocketAddr {
    config.tcp_bind.parse().unwrap_or(config.udp_bind)
}

/// Worker `index`'s socket address: the configured one, `index` ports up (validated in
/// `Config::validate` to stay in range); port 0 stays 0 (each worker an ephemeral port).
fn worker_bind_addr(base: SocketAddr, index: usize) -> SocketAddr {
    let mut addr = base;
    if base.port() != 0 {
        addr.set_port(base.port() + index as u16);
    }
    addr
}

/// The candidate addresses put in offers.
fn announce_addresses(config: &MediaConfig, bound: SocketAddr) -> Vec<SocketAddr> {
    let port = bound.port();
    let ips: Vec<IpAddr> = if !config.announce.is_empty() {
        config.announce.clone()
    } else if !bound.ip().is_unspecified() {
        vec![bound.ip()]
    } else {
        let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|ifs| {
                ifs.into_iter()
                    .map(|i| i.ip())
                    .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        ips
    };
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}
