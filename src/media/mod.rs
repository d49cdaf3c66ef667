//! The media I/O driver: runs the sans-IO [`crate::sfu::Sfu`] on a real UDP socket.
//!
//! Each media worker is a dedicated OS thread with its own single-threaded tokio runtime (as a
//! mediasoup worker is a process): it owns one `Sfu`, reads and writes the socket, keeps the
//! timers, and exchanges bounded messages with the room tasks. Rooms are assigned to workers by
//! [`MediaHandle::worker_for`]; every participant of a room lives on its room's worker, so
//! forwarding never crosses threads.
//!
//! Today one worker owns the one media port. Spreading rooms over several workers behind the
//! same port needs a demultiplexing receive path (by ICE username, then by remote address) in
//! front of the workers; the assignment API already takes that shape.

mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::sync::mpsc;

use crate::config::MediaConfig;
use crate::ids::RoomId;
use crate::sfu::{SfuCommand, SfuEvent};

pub use worker::WorkerStats;

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
    #[error("cannot start a media worker: {0}")]
    Spawn(std::io::Error),
    #[error("media.workers = {0}: more than one media worker behind one port is not supported yet")]
    TooManyWorkers(usize),
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
    Stats(tokio::sync::oneshot::Sender<WorkerStats>),
}

/// Sends commands to one worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    tx: mpsc::Sender<WorkerMsg>,
}

impl WorkerHandle {
    pub async fn open_room(
        &self,
        room: RoomId,
        events: mpsc::Sender<SfuEvent>,
    ) -> Result<(), MediaError> {
        self.send(WorkerMsg::OpenRoom { room, events }).await
    }

    pub async fn close_room(&self, room: RoomId) -> Result<(), MediaError> {
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
    local_addr: SocketAddr,
    announced: Vec<SocketAddr>,
}

impl MediaHandle {
    /// Binds the media socket and starts the workers.
    pub fn start(config: &MediaConfig) -> Result<Self, MediaError> {
        if config.workers != 1 {
            return Err(MediaError::TooManyWorkers(config.workers));
        }
        str0m::crypto::from_feature_flags().install_process_default();
        let socket =
            std::net::UdpSocket::bind(config.udp_bind).map_err(|source| MediaError::Bind {
                addr: config.udp_bind,
                source,
            })?;
        socket.set_nonblocking(true).map_err(MediaError::Spawn)?;
        let local_addr = socket.local_addr().map_err(MediaError::Spawn)?;
        let announced = announce_addresses(config, local_addr);
        let handle = worker::spawn(0, socket, &announced)?;
        Ok(Self {
            workers: vec![handle],
            local_addr,
            announced,
        })
    }

    /// The worker that hosts `room`. Stable for the life of the process.
    pub fn worker_for(&self, room: &RoomId) -> WorkerHandle {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        self.workers[(h.finish() as usize) % self.workers.len()].clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn announced(&self) -> &[SocketAddr] {
        &self.announced
    }

    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }
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
