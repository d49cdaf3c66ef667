//! One person's presence in a live room.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use str0m::media::MediaKind;

use super::ice_restart::{IceRestarts, MediaLink};
use super::{Connection, Farewell, Notice, Outbound, ParticipantInfo, Publish, SessionLink};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{InviteId, ParticipantId, SessionId, UserId};
use crate::domain::member::Member;
use crate::domain::role::Role;

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
    pub account: Option<UserId>,
    /// The sign-in under which a care-team seat's holder entered: the seat ends with it
    /// (`RoomCommand::SessionsEnded`).
    pub session: Option<SessionId>,
    /// A clinician of the room's institution (their seat's account is one of its accounts):
    /// nothing of the room is withheld from them (`Room::may_see`).
    pub of_institution: bool,
    pub publish: Publish,
    /// Their client sends its camera in simulcast layers and shows `video_quality` (it said so
    /// in its join); the room decides whether they get simulcast (`RoomSettings::simulcast`).
    pub simulcast: bool,
    /// Media the care team stopped forwarding (muted on the server).
    pub held: Publish,
    /// What the media core was last told this participant is not sent (see `Room::sync_blocks`).
    pub blocked: Vec<(ParticipantId, MediaKind)>,
    /// What this participant (a patient) agreed to, in force now.
    pub consents: BTreeSet<ConsentPurpose>,
    /// What they were last told of consent (told again only when it changes).
    pub consent_told: Option<super::ConsentState>,
    pub audio_muted: bool,
    pub video_off: bool,
    pub presence: Presence,
    /// Bumped on every join/resume; a resume token carries it, so each token works once.
    pub resume_nonce: u64,
    /// The offer the client owes an answer to, kept to re-send after a resume.
    pub pending_offer: Option<(u64, Notice)>,
    /// Screen shares started on this connection (see `MAX_SCREEN_SHARES_PER_CONNECTION`).
    pub screens_shared: u32,
    /// Role changes made to them (see `MAX_ROLE_CHANGES_PER_PARTICIPANT`).
    pub role_changes: u32,
    /// Their media link (an ICE restart shows them as reconnecting; a screen share can be
    /// negotiated once it has come up).
    pub media: MediaLink,
    /// The ICE restarts they were granted lately.
    pub ice_restarts: IceRestarts,
    /// Set when a message could not be queued on the current connection: nothing more is
    /// queued there, and the room treats the connection as lost at the end of what it is doing
    /// ([`Participant::overflowed`]). A `OnceLock` (not a `Cell`) because the room's future
    /// must be Send; one task sets and reads it.
    undeliverable: OnceLock<Undeliverable>,
}

/// Why a message could not be queued on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Undeliverable {
    /// The queue was full: the client did not keep up.
    Full,
    /// The session had already ended.
    Gone,
}

impl Participant {
    /// Who this is, for documents and records to decide with.
    pub fn member(&self) -> Member {
        Member {
            participant: self.id.clone(),
            invite: self.invite.clone(),
            role: self.role,
            name: self.name.clone(),
            account: self.account.clone(),
        }
    }

    pub fn new(
        id: ParticipantId,
        name: String,
        role: Role,
        invite: InviteId,
        account: Option<UserId>,
        publish: Publish,
        link: SessionLink,
    ) -> Self {
        Self {
            id,
            name,
            role,
            invite,
            account,
            session: None,
            of_institution: false,
            publish,
            simulcast: false,
            held: Publish::default(),
            blocked: Vec::new(),
            consents: BTreeSet::new(),
            consent_told: None,
            audio_muted: false,
            video_off: false,
            presence: Presence::Connected(link),
            resume_nonce: 1,
            pending_offer: None,
            screens_shared: 0,
            role_changes: 0,
            media: MediaLink::Connecting,
            ice_restarts: IceRestarts::default(),
            undeliverable: OnceLock::new(),
        }
    }

    pub fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            publishing: self.publish,
            audio_muted: self.audio_muted,
            video_off: self.video_off,
            held: self.held,
            connection: match self.presence {
                Presence::Connected(_) if self.media == MediaLink::Restarting => {
                    Connection::Reconnecting
                }
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
        self.undeliverable = OnceLock::new();
    }

    /// A resumed connection replaces whatever was there.
    pub fn reconnect(&mut self, link: SessionLink) {
        self.presence = Presence::Connected(link);
        self.undeliverable = OnceLock::new();
    }

    /// Whether a message could not be queued on the connection that is still current: the
    /// room is to drop that connection and tell the others.
    pub fn overflowed(&self) -> bool {
        self.undeliverable.get().is_some() && matches!(self.presence, Presence::Connected(_))
    }

    /// Whether the session of the current connection has ended (its end of the queue is gone),
    /// whether or not the room was told: the room's tick finds such a connection even if the
    /// session's last word (`Disconnected`) never reached the room.
    pub fn session_gone(&self) -> bool {
        matches!(&self.presence, Presence::Connected(link) if link.tx.is_closed())
    }

    /// Whether the connection [`overflowed`](Participant::overflowed) because its queue was full:
    /// the client did not keep up (rather than its session having ended).
    pub fn too_slow(&self) -> bool {
        self.undeliverable.get() == Some(&Undeliverable::Full)
    }

    /// Queues a message. One that cannot be queued (the client is too slow or gone) marks the
    /// connection [`overflowed`](Participant::overflowed), and nothing after it is queued
    /// there: the client resumes to a fresh state rather than go on with a gap.
    pub fn send(&self, msg: Notice) {
        self.send_shared(&Arc::new(msg))
    }

    /// The same for a message that others get too (a broadcast): shared, not copied.
    pub fn send_shared(&self, msg: &Arc<Notice>) {
        if let Presence::Connected(link) = &self.presence
            && self.undeliverable.get().is_none()
            && let Err(e) = link.tx.try_send(Outbound::Message(msg.clone()))
        {
            let _ = self.undeliverable.set(match e {
                tokio::sync::mpsc::error::TrySendError::Full(_) => Undeliverable::Full,
                tokio::sync::mpsc::error::TrySendError::Closed(_) => Undeliverable::Gone,
            });
        }
    }

    pub fn close(&self, why: Farewell) {
        if let Presence::Connected(link) = &self.presence {
            let _ = link.tx.try_send(Outbound::Close(why));
        }
    }
}
