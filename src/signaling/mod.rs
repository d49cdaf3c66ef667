//! The signaling hub: one [`session`] per WebSocket, speaking the [`protocol`].
//!
//! A session authenticates the client (invite or resume token), translates its messages into
//! room commands and relays the room's messages back. It never holds a peer connection and
//! decides nothing about permissions: rooms and the media core do.

mod counters;
// Invitations' windows and uses at `join`.
mod invitation;
mod limits;
pub mod protocol;
mod session;

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
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub max_message_bytes: usize,
    pub messages_per_second: u32,
    pub message_burst: u32,
    pub join_timeout: Duration,
}
