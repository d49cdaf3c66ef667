//! ICE-TCP: passive TCP candidates (RFC 6544) for participants whose network lets no UDP
//! through to the media ports, such as a hospital firewall that only lets TCP out.
//!
//! One listener serves every worker (`media.tcp_bind`, by default `media.udp_bind`'s port over
//! TCP), so a deployment opens one TCP port (443, say) however many workers it runs. Its
//! thread (`listener.rs`) admits a connection under the caps (`admission.rs`), then waits, up
//! to `media.tcp_stun_timeout_s`, for the first frame (RFC 4571 framing, `framing.rs`): it must
//! be a STUN binding request naming one of our ufrags, and every ufrag starts with the index of
//! the worker that made it (`sfu::worker_of_ufrag`). The connection is handed to that worker's
//! thread, which owns it from then on (`conns.rs`): its frames go to `Sfu::handle_receive_tcp`
//! next to the UDP socket's datagrams, and str0m's TCP transmits are written back to it. So,
//! as with UDP, a peer's packets are handled on its room's thread with no lock and no hop
//! after the first frame.
//!
//! A stranger can open connections: each costs a place under the caps (global and per
//! address) until it sends a valid STUN request, and is closed at the deadline, on a frame over
//! [`framing::MAX_FRAME_BYTES`], on a frame no peer connection accepts, after
//! `media.tcp_idle_timeout_s` without a frame, and when it stops reading what it is sent for as
//! long. A slow reader never blocks the worker: each connection has a bounded queue of frames
//! to write ([`WRITE_QUEUE_FRAMES`]), written by its own task, and what does not fit is dropped
//! (media is repaired by NACK or concealed; STUN and DTLS are retransmitted).

mod admission;
mod conns;
mod framing;
mod listener;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use admission::{Admission, Cap, Slot};
pub use conns::MAX_EARLY_CHECKS;
pub(crate) use conns::{Inbound, TcpConns};
pub use framing::MAX_FRAME_BYTES;
pub(crate) use listener::{Accepted, spawn as spawn_listener};

/// Frames queued for writing to one connection; beyond it they are dropped. About a quarter
/// of a second of 4 Mbit/s video.
pub const WRITE_QUEUE_FRAMES: usize = 128;

/// Frames a worker takes from its TCP connections in one turn before timers and commands get
/// theirs.
pub(crate) const RECV_BATCH: usize = 64;

/// The deadlines and caps of ICE-TCP connections (from `media.tcp_*`).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub stun_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Why the server closed an ICE-TCP connection (or saw it close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No STUN request within `media.tcp_stun_timeout_s`.
    StunDeadline,
    /// The first frame was not a STUN request naming one of our workers.
    NotIce,
    /// A frame no peer connection took (a stranger's, or its transport is gone).
    Unrouted,
    /// A frame over [`MAX_FRAME_BYTES`], or empty.
    BadFrame,
    /// Nothing received for `media.tcp_idle_timeout_s`.
    Idle,
    /// What was written to it was not taken for `media.tcp_idle_timeout_s`.
    SlowReader,
    /// The peer closed it, or it failed.
    Peer,
    Shutdown,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::StunDeadline,
        CloseReason::NotIce,
        CloseReason::Unrouted,
        CloseReason::BadFrame,
        CloseReason::Idle,
        CloseReason::SlowReader,
        CloseReason::Peer,
        CloseReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::StunDeadline => "stun_deadline",
            CloseReason::NotIce => "not_ice",
            CloseReason::Unrouted => "unrouted",
            CloseReason::BadFrame => "bad_frame",
            CloseReason::Idle => "idle",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::Peer => "peer",
            CloseReason::Shutdown => "shutdown",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// ICE-TCP counters, shared by the listener and the workers (atomics updated on the TCP path
/// only; UDP pays nothing). Read by `metrics.rs` at scrape time.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections open now (admitted, not yet closed).
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    pub refused_global: AtomicU64,
    pub refused_per_address: AtomicU64,
    /// Connections handed to a worker after a STUN request named it.
    pub routed: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames not written because the connection's queue was full (a slow reader).
    pub frames_dropped: AtomicU64,
}

impl TcpStats {
    fn refused(&self, cap: Cap) {
        match cap {
            Cap::Global => &self.refused_global,
            Cap::PerAddress => &self.refused_per_address,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed for `reason` since start.
    pub fn closed_for(&self, reason: CloseReason) -> u64 {
        self.closed[reason.index()].load(Ordering::Relaxed)
    }
}
