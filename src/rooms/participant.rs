//! One person's presence in a live room.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::{Outbound, SessionLink};
use crate::auth::Role;
use crate::ids::{InviteId, ParticipantId};
use crate::signaling::protocol::{Connection, ParticipantView, Publish, ServerMessage};

/// Whether the participant's signaling connection is up.
#[derive(Debug, Clone)]
pub enum Presence {
    Connected(SessionLink),
    /// Dropped; removed at `deadline` unless resumed. `conn` is the connection that was lost:
    /// what it sent before it went (a `leave`) may still be on its way to the room.
    Reconnecting {
        deadline: Instant,
        conn: u64,
    },
}

#[derive(Debug)]
pub struct Participant {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub invite: InviteId,
    pub publish: Publish,
    pub audio_muted: bool,
    pub video_off: bool,
    pub presence: Presence,
    /// Bumped on every join/resume; a resume token carries it, so each token works once.
    pub resume_nonce: u64,
    /// The offer the client owes an answer to, kept to re-send after a resume.
    pub pending_offer: Option<(u64, ServerMessage)>,
    /// A message could not be queued on the current connection (the client is too slow to
    /// keep up, or its session is gone): nothing more is queued there, and the room treats the
    /// connection as lost at the end of what it is doing ([`Participant::overflowed`]).
    // Atomic only because the room's future must be Send; one task reads and writes it.
    unreachable: AtomicBool,
    /// Of those, because the queue was full (not because the session had already gone).
    too_slow: AtomicBool,
}

impl Participant {
    pub fn new(
        id: ParticipantId,
        name: String,
        role: Role,
        invite: InviteId,
        publish: Publish,
        link: SessionLink,
    ) -> Self {
        Self {
            id,
            name,
            role,
            invite,
            publish,
            audio_muted: false,
            video_off: false,
            presence: Presence::Connected(link),
            resume_nonce: 1,
            pending_offer: None,
            unreachable: AtomicBool::new(false),
            too_slow: AtomicBool::new(false),
        }
    }

    pub fn view(&self) -> ParticipantView {
        ParticipantView {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            publishing: self.publish,
            audio_muted: self.audio_muted,
            video_off: self.video_off,
            connection: match self.presence {
                Presence::Connected(_) => Connection::Connected,
                Presence::Reconnecting { .. } => Connection::Reconnecting,
            },
        }
    }

    /// The current connection, if `conn` is it.
    pub fn is_conn(&self, conn: u64) -> bool {
        matches!(&self.presence, Presence::Connected(l) if l.conn == conn)
    }

    /// The current connection, or the one just lost while nothing has replaced it.
    pub fn is_or_was_conn(&self, conn: u64) -> bool {
        match &self.presence {
            Presence::Connected(l) => l.conn == conn,
            Presence::Reconnecting { conn: lost, .. } => *lost == conn,
        }
    }

    /// Marks the connection lost (the room noticed, or the session said so).
    pub fn lose_connection(&mut self, deadline: Instant) {
        if let Presence::Connected(link) = &self.presence {
            self.presence = Presence::Reconnecting {
                deadline,
                conn: link.conn,
            };
        }
        self.unreachable.store(false, Ordering::Relaxed);
        self.too_slow.store(false, Ordering::Relaxed);
    }

    /// A resumed connection replaces whatever was there.
    pub fn reconnect(&mut self, link: SessionLink) {
        self.presence = Presence::Connected(link);
        self.unreachable.store(false, Ordering::Relaxed);
        self.too_slow.store(false, Ordering::Relaxed);
    }

    /// Whether a message could not be queued on the connection that is still current: the
    /// room is to drop that connection and tell the others.
    pub fn overflowed(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed) && matches!(self.presence, Presence::Connected(_))
    }

    /// Whether the connection [`overflowed`](Participant::overflowed) because its queue was full:
    /// the client did not keep up (rather than its session having ended).
    pub fn too_slow(&self) -> bool {
        self.too_slow.load(Ordering::Relaxed)
    }

    /// Queues a message. One that cannot be queued (the client is too slow or gone) marks the
    /// connection [`overflowed`](Participant::overflowed), and nothing after it is queued
    /// there: the client resumes to a fresh state rather than go on with a gap.
    pub fn send(&self, msg: ServerMessage) {
        self.send_shared(&Arc::new(msg))
    }

    /// The same for a message that others get too (a broadcast): shared, not copied.
    pub fn send_shared(&self, msg: &Arc<ServerMessage>) {
        if let Presence::Connected(link) = &self.presence
            && !self.unreachable.load(Ordering::Relaxed)
            && let Err(e) = link.tx.try_send(Outbound::Message(msg.clone()))
        {
            self.unreachable.store(true, Ordering::Relaxed);
            let full = matches!(e, tokio::sync::mpsc::error::TrySendError::Full(_));
            self.too_slow.store(full, Ordering::Relaxed);
        }
    }

    pub fn close(&self, code: u16, reason: &'static str) {
        if let Presence::Connected(link) = &self.presence {
            let _ = link.tx.try_send(Outbound::Close { code, reason });
        }
    }
}
