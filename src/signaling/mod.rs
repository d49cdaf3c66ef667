//! The signaling hub: one [`session`] per WebSocket, speaking the [`protocol`].
//!
//! A session authenticates the client (invite or resume token), translates its messages into
//! room commands and relays the room's messages back. It never holds a peer connection and
//! decides nothing about permissions: rooms and the media core do. For someone waiting it
//! relays their pre-call network check (`net_check.rs`) to the media path's own service,
//! `crate::netcheck`, which holds the check's connection on a media worker.

mod counters;
// Invitations' windows and uses at `join`.
mod invitation;
mod limits;
// The pre-call network check's messages, for someone waiting.
mod net_check;
pub mod protocol;
mod session;
// Every write to a client has a deadline: one that stops reading cannot hold its session.
mod write_deadline;

use std::sync::Arc;
use std::time::Duration;

pub use counters::ErrorCounts;
pub use limits::RateLimiter;
pub use session::run_session;

use crate::auth::SigningKey;
use crate::metrics::Metrics;
use crate::rooms::RoomManager;
use crate::storage::Db;

/// Everything a session needs, shared by all sessions.
#[derive(Clone)]
pub struct SignalingContext {
    pub key: SigningKey,
    pub db: Db,
    pub rooms: RoomManager,
    pub settings: Arc<SessionSettings>,
    pub metrics: Arc<Metrics>,
    pub errors: Arc<ErrorCounts>,
    /// Pre-call network checks over the media path, for someone waiting.
    pub net_checks: crate::netcheck::NetChecks,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub max_message_bytes: usize,
    pub messages_per_second: u32,
    pub message_burst: u32,
    pub join_timeout: Duration,
    /// How long one write to the client may wait for it to read (`rooms.write_timeout_s`).
    pub write_timeout: Duration,
}
