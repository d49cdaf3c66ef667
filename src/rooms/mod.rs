//! Consultation rooms: the clinical rules of a live consultation.
//!
//! Each live room is a task (the [`room`] actor) that owns its participants and decides who
//! may publish, subscribe and end the consultation (asking [`crate::domain::role::Role`]), handles
//! joins, resumes and leaves, and tells the media core what to set up. Signaling sessions talk
//! to a room only through [`RoomHandle`]; the media core talks to it only through events.
//! [`RoomManager`] starts room tasks on demand and enforces the per-server room limit.

mod clock;
mod ice_restart;
mod joins;
mod lobby;
mod notice;
mod participant;
mod progress;
mod request;
mod room;
pub mod seat_sessions;
#[cfg(test)]
mod tests;
mod waiting;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::audit::AuditLog;
use crate::auth::SigningKey;
use crate::documents::Documents;
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{InstitutionId, InviteId, ParticipantId, RoomId, SessionId, UserId};
use crate::domain::member::Member;
use crate::domain::role::Role;
use crate::media::MediaHandle;
use crate::metrics::Metrics;
use crate::records::RecordView;
use crate::storage::{Db, DocumentRecord, RoomStatus, StorageError};

pub use clock::{ManualClock, RoomClock};
pub use ice_restart::{ICE_RESTART_WINDOW, MAX_ICE_RESTARTS};
pub use joins::{JoinCaps, MAX_JOINS_PER_INVITE, MAX_JOINS_PER_ROOM};
pub use notice::{
    Connection, ConsentState, EndReason, Farewell, LeaveReason, Limits, Notice, OfferedTrack,
    ParticipantInfo, Presenting, Problem, Queue, TrackKind, TrackSource, VideoLayer,
    VideoQualityReason, WaiterInfo, Waiting, Welcome,
};
pub use progress::{Progress, ProgressSender};
pub use request::{
    Annotate, ConnectionQuality, DeviceCheck, Follow, MAX_CHAT_CHARS, MAX_WAITING_TEXT_CHARS,
    MediaFigures, MediaPath, MediaState, Moderation, Precall, Publish, SpeakerCheck, VideoSize,
};

/// Capacity of a room's command queue, and of each session's outbound queue.
pub const ROOM_QUEUE: usize = 256;
pub const SESSION_QUEUE: usize = 128;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    #[error("the room does not exist")]
    NotFound,
    #[error("the consultation has ended")]
    Ended,
    #[error("the room is full ({0} participants)")]
    Full(usize),
    /// The invitation has brought someone in as often as any visit needs ([`JoinCaps`]).
    #[error("this invitation has been used to join {0} times; ask the clinic for a new one")]
    InviteJoinsExhausted(u32),
    /// The consultation has had as many arrivals as it may ([`JoinCaps`]).
    #[error("this consultation has had {0} arrivals, the most it may; the clinic can open another")]
    RoomJoinsExhausted(u32),
    #[error("the server is running its maximum number of rooms")]
    ServerFull,
    #[error("nothing to resume")]
    ResumeFailed,
    #[error("this invite link was revoked")]
    InviteRevoked,
    #[error("the consultation is locked: nobody more may enter with an invitation")]
    Locked,
    #[error("the patient has not agreed to observers being present")]
    ConsentRequired,
    #[error("your role may not do this")]
    Forbidden,
    #[error("the {} role may not publish media", .0.as_str())]
    MayNotPublish(Role),
    #[error("the room is shutting down")]
    Closed,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the audit trail could not be written: {0}")]
    Audit(String),
}

/// What a session gets to send to its client. `Close` ends the connection.
#[derive(Debug)]
pub enum Outbound {
    /// Behind a pointer: every connection's queue allocates its slots up front, and a bare
    /// notice (~150 bytes) made that a few KiB per idle participant. Shared: a broadcast is one
    /// notice in every recipient's queue.
    Message(Arc<Notice>),
    Close(Farewell),
}

/// A room's way to reach one signaling connection.
#[derive(Debug, Clone)]
pub struct SessionLink {
    /// Unique per connection, so a late message from a replaced connection is recognised.
    pub conn: u64,
    pub tx: mpsc::Sender<Outbound>,
}

/// A resume token's claims, once its signature and expiry were checked.
#[derive(Debug, Clone)]
pub struct ResumeRef {
    pub participant: ParticipantId,
    pub nonce: u64,
}

#[derive(Debug)]
pub enum RoomCommand {
    Join {
        name: String,
        role: Role,
        /// `role` is one the care team gave the link's holder during a consultation
        /// (`invites.role_now`), not the link's own. The room decides what that allows: made to
        /// only watch, they publish nothing, whatever their client (which may have been told
        /// "guest" just before) offers; an observer's own link that offers to publish is refused.
        role_given: bool,
        /// What the client offers to send, as it asked: the room narrows it to the role.
        publish: Publish,
        /// The client sends its camera in simulcast layers (`publish.simulcast` in its join).
        simulcast: bool,
        invite: InviteId,
        /// The account of a care-team seat (the name came from it).
        account: Option<UserId>,
        /// That account's institution: a clinician of another institution than the room's
        /// does not see the copies of a request's attachments withheld from it
        /// (`rooms/room/sharing.rs`).
        institution: Option<InstitutionId>,
        /// The clinician's sign-in that took the seat's token: when it ends, so does their
        /// presence here.
        session: Option<SessionId>,
        replaces: Option<ResumeRef>,
        link: SessionLink,
        reply: oneshot::Sender<Result<Joined, RoomError>>,
    },
    Resume {
        resume: ResumeRef,
        link: SessionLink,
        reply: oneshot::Sender<Result<Joined, RoomError>>,
    },
    Answer {
        participant: ParticipantId,
        conn: u64,
        offer_id: u64,
        sdp: String,
    },
    MediaState {
        participant: ParticipantId,
        conn: u64,
        state: MediaState,
    },
    Leave {
        participant: ParticipantId,
        conn: u64,
    },
    /// The participant's media path changed or failed: restart its ICE.
    IceRestart {
        participant: ParticipantId,
        conn: u64,
    },
    /// How the participant shows the videos they receive (their layout changed).
    VideoSizes {
        participant: ParticipantId,
        conn: u64,
        sizes: Vec<VideoSize>,
    },
    /// End the consultation: by a participant (checked against their role), or by the HTTP API
    /// (`by: None`, already authorised).
    End {
        by: Option<(ParticipantId, u64)>,
        reason: EndReason,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Disconnected {
        participant: ParticipantId,
        conn: u64,
    },
    /// Who `participant` is, if they are in the room now (HTTP calls with an access token).
    Authorize {
        participant: ParticipantId,
        reply: oneshot::Sender<Option<Member>>,
    },
    /// An invite was revoked (already in storage): whoever came with it leaves now, and it
    /// admits nobody more. Replies with how many were removed.
    InviteRevoked {
        invite: InviteId,
        reply: oneshot::Sender<usize>,
    },
    /// These clinicians' sign-ins ended (already in storage): whoever entered a seat under
    /// one of them leaves now (`rooms/room/seats.rs`).
    SessionsEnded { sessions: Arc<HashSet<SessionId>> },
    /// The consultation was moved to this time (start, Unix seconds; minutes), already in
    /// storage: those waiting are told.
    Rescheduled { slot: (i64, i64) },
    /// A document finished uploading: tell everyone who may see it. `from_request`: a copy of
    /// a consultation request's attachment, which those it may be withheld from see only once
    /// the room has read that it is not (`rooms/room/sharing.rs`).
    DocumentShared {
        document: DocumentRecord,
        from_request: bool,
    },
    /// The consent that decides which copies of a request's attachments the other
    /// institution's clinicians read changed (committed already): the room reads it again.
    SharingChanged,
    /// A clinical record was created or changed: tell everyone who may read it
    /// (`single_patient`: whether the consultation only ever had one patient, who then reads
    /// the records that name none; see `records::may_read_as`).
    RecordChanged {
        record: Box<RecordView>,
        single_patient: bool,
    },
    Chat {
        participant: ParticipantId,
        conn: u64,
        text: String,
    },
    Follow {
        participant: ParticipantId,
        conn: u64,
        follow: Follow,
    },
    Annotate {
        participant: ParticipantId,
        conn: u64,
        annotate: Annotate,
    },
    /// A clinician admits, declines, sends back, messages the waiting room or locks the room.
    Moderate {
        participant: ParticipantId,
        conn: u64,
        action: Moderation,
    },
    /// Sets (empty: clears) the clinic's message to everyone waiting, for a clinician of the
    /// care team who need not be in the room (`http/waiting_message.rs`, already authorised).
    /// Replies why not, for text that breaks the rules.
    MessageWaiting {
        by: crate::audit::Actor,
        text: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Let in the patient who waits longest, for a clinician taking the next patient from
    /// their department's queue (`http/department_queue.rs`, already authorised; they need not
    /// be in the room). Replies with who was admitted, or why nobody was (`NotWaiting`: no
    /// patient waits any more).
    AdmitNext {
        by: crate::audit::Actor,
        reply: oneshot::Sender<Result<ParticipantId, Problem>>,
    },
    /// A patient gives or withdraws consent.
    Consent {
        participant: ParticipantId,
        conn: u64,
        purpose: ConsentPurpose,
        given: bool,
    },
    /// A clinician starts (`active`) or stops sharing their screen.
    ScreenShare {
        participant: ParticipantId,
        conn: u64,
        active: bool,
    },
    /// A waiting person's pre-call check, shown to the clinicians.
    Precall {
        participant: ParticipantId,
        conn: u64,
        report: Precall,
    },
}

/// A successful join or resume.
#[derive(Debug)]
pub struct Joined {
    pub participant: ParticipantId,
    pub entry: Entry,
}

/// Where a join lands: in the room, or in its waiting room.
#[derive(Debug)]
pub enum Entry {
    Admitted(Box<Welcome>),
    Waiting(Box<Waiting>),
}

#[derive(Debug, Clone)]
pub struct RoomHandle {
    pub id: RoomId,
    tx: mpsc::Sender<RoomCommand>,
}

impl RoomHandle {
    pub async fn send(&self, cmd: RoomCommand) -> Result<(), RoomError> {
        self.tx.send(cmd).await.map_err(|_| RoomError::Closed)
    }

    /// For drop paths that cannot await.
    pub fn try_send(&self, cmd: RoomCommand) -> Result<(), RoomError> {
        self.tx.try_send(cmd).map_err(|_| RoomError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Settings every room shares.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub max_participants: usize,
    pub max_rooms: usize,
    pub resume_window: Duration,
    /// How long an empty room's task stays up before it stops.
    pub idle_stop: Duration,
    pub limits: Limits,
    /// TURN relays each participant gets credentials for with their welcome; `None`: none.
    pub turn: Option<crate::auth::TurnServers>,
    /// What rooms measure their deadlines with: the system clock, or a test's manual one.
    pub clock: RoomClock,
    /// `media.simulcast`: a participant whose client asks for simulcast gets it (else nobody
    /// does).
    pub simulcast: bool,
    /// How many joins one invitation, and one consultation, may have.
    pub joins: JoinCaps,
}

/// Starts room tasks on demand; one per live room.
#[derive(Clone)]
pub struct RoomManager {
    live: Arc<Mutex<HashMap<RoomId, RoomHandle>>>,
    /// Set by [`RoomManager::shutdown`]: no room opens any more.
    closing: Arc<std::sync::atomic::AtomicBool>,
    db: Db,
    media: MediaHandle,
    key: SigningKey,
    settings: Arc<RoomSettings>,
    metrics: Arc<Metrics>,
    services: RoomServices,
    /// Wakes `seat_sessions::run` when a sign-in ends in this process.
    seat_search: Arc<tokio::sync::Notify>,
}

/// What a room needs besides its own state: documents (annotations) and the audit trail.
#[derive(Clone, Debug)]
pub struct RoomServices {
    pub documents: Documents,
    pub audit: AuditLog,
    /// Tells the care team's consoles who waits.
    pub notifications: crate::notifications::Notifications,
    /// Tells the consultation's request what happened in it.
    pub progress: ProgressSender,
}

impl RoomManager {
    pub fn new(
        db: Db,
        media: MediaHandle,
        key: SigningKey,
        settings: RoomSettings,
        metrics: Arc<Metrics>,
        services: RoomServices,
    ) -> Self {
        Self {
            live: Arc::default(),
            closing: Arc::default(),
            db,
            media,
            key,
            settings: Arc::new(settings),
            metrics,
            services,
            seat_search: Arc::default(),
        }
    }

    pub fn audit(&self) -> &AuditLog {
        &self.services.audit
    }

    pub fn documents(&self) -> &Documents {
        &self.services.documents
    }

    /// The participant as their live room knows them; `None` if the room is not live or they
    /// are no longer in it.
    pub async fn member(&self, room: &RoomId, participant: &ParticipantId) -> Option<Member> {
        let handle = self.get(room)?;
        let (reply, rx) = oneshot::channel();
        handle
            .send(RoomCommand::Authorize {
                participant: participant.clone(),
                reply,
            })
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Tells a live room that a record was created or changed (if it is live: otherwise nobody
    /// is there to tell).
    pub async fn record_changed(&self, record: RecordView, single_patient: bool) {
        if let Some(h) = self.get(&record.record.room_id) {
            let _ = h
                .send(RoomCommand::RecordChanged {
                    record: Box::new(record),
                    single_patient,
                })
                .await;
        }
    }

    /// Tells a live room that an invite was revoked; returns how many participants it
    /// removed (none when the room is not live: a room that opens later loads its revoked
    /// invites).
    pub async fn invite_revoked(&self, room: &RoomId, invite: &InviteId) -> usize {
        let Some(h) = self.get(room) else {
            return 0;
        };
        let (reply, rx) = oneshot::channel();
        let cmd = RoomCommand::InviteRevoked {
            invite: invite.clone(),
            reply,
        };
        if h.send(cmd).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Tells a live room that its consultation was moved (committed already); a room that is
    /// not live reads the time from storage when it opens. Two moves at once may arrive in
    /// either order; the last to arrive is what those waiting are shown.
    pub async fn rescheduled(&self, room: &RoomId, slot: (i64, i64)) {
        if let Some(h) = self.get(room) {
            let _ = h.send(RoomCommand::Rescheduled { slot }).await;
        }
    }

    /// Tells a live room that a document is ready; a room that is not live learns of it from
    /// storage when it next opens.
    pub async fn document_shared(&self, document: DocumentRecord) {
        self.tell_shared(document, false).await;
    }

    /// Tells a live room that a consultation request's attachment was copied into it.
    pub async fn request_document_shared(&self, document: DocumentRecord) {
        self.tell_shared(document, true).await;
    }

    async fn tell_shared(&self, document: DocumentRecord, from_request: bool) {
        if let Some(h) = self.get(&document.room_id) {
            let cmd = RoomCommand::DocumentShared {
                document,
                from_request,
            };
            let _ = h.send(cmd).await;
        }
    }

    /// Tells a live room that its request's consent to sharing changed (committed already);
    /// a room that is not live reads it when it opens.
    pub async fn sharing_changed(&self, room: &RoomId) {
        if let Some(h) = self.get(room) {
            let _ = h.send(RoomCommand::SharingChanged).await;
        }
    }

    pub fn settings(&self) -> &RoomSettings {
        &self.settings
    }

    /// The live room, started if needed.
    pub async fn open(&self, id: &RoomId) -> Result<RoomHandle, RoomError> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(RoomError::Closed);
        }
        if let Some(h) = self.get(id) {
            return Ok(h);
        }
        let record = self.db.room(id).await?.ok_or(RoomError::NotFound)?;
        if record.status == RoomStatus::Ended {
            return Err(RoomError::Ended);
        }
        let (events_tx, events_rx) = mpsc::channel(crate::media::QUEUE_CAPACITY);
        let (handle, worker) = {
            // std Mutex: nothing is awaited while it is held.
            let mut live = self.live.lock().expect("room map poisoned");
            if let Some(h) = live.get(id).filter(|h| !h.is_closed()) {
                return Ok(h.clone());
            }
            live.retain(|_, h| !h.is_closed());
            if live.len() >= self.settings.max_rooms {
                return Err(RoomError::ServerFull);
            }
            // Checked again under the lock that `shutdown` takes to list the rooms, so a room
            // cannot open after the list was made.
            if self.closing.load(std::sync::atomic::Ordering::Acquire) {
                return Err(RoomError::Closed);
            }
            let (tx, rx) = mpsc::channel(ROOM_QUEUE);
            let handle = RoomHandle { id: id.clone(), tx };
            // Counted on the worker until the room task's `close_room`: assigned only once the
            // task is sure to start.
            let worker = self.media.assign_worker();
            live.insert(id.clone(), handle.clone());
            let actor = room::Room::new(
                record,
                self.settings.clone(),
                self.key.clone(),
                self.db.clone(),
                worker.clone(),
                self.metrics.clone(),
                self.services.clone(),
            );
            let manager = self.clone();
            let me = handle.clone();
            tokio::spawn(async move {
                actor.run(rx, events_rx).await;
                manager.forget(&me);
            });
            (handle, worker)
        };
        worker
            .open_room(id.clone(), events_tx)
            .await
            .map_err(|_| RoomError::Closed)?;
        Ok(handle)
    }

    pub fn get(&self, id: &RoomId) -> Option<RoomHandle> {
        let live = self.live.lock().expect("room map poisoned");
        live.get(id).filter(|h| !h.is_closed()).cloned()
    }

    pub fn live_rooms(&self) -> usize {
        let live = self.live.lock().expect("room map poisoned");
        live.values().filter(|h| !h.is_closed()).count()
    }

    /// Ends a consultation from the HTTP API: the live room (if any) tells everyone, and the
    /// record is marked ended either way.
    pub async fn end(&self, id: &RoomId) -> Result<(), RoomError> {
        self.end_because(id, EndReason::EndedByDoctor).await
    }

    /// As [`Rooms::end`], telling those in it (and those waiting) `reason`.
    pub async fn end_because(&self, id: &RoomId, reason: EndReason) -> Result<(), RoomError> {
        if let Some(h) = self.get(id) {
            let (reply, rx) = oneshot::channel();
            let cmd = RoomCommand::End {
                by: None,
                reason,
                reply,
            };
            if h.send(cmd).await.is_ok() {
                let _ = rx.await;
            }
        }
        self.db.end_room(id).await?;
        Ok(())
    }

    /// Admits whoever waits longest in the live room `id` on `by`'s behalf (the department
    /// queue); `NotWaiting` when nobody waits there (or the room is not live).
    pub async fn admit_next(
        &self,
        id: &RoomId,
        by: crate::audit::Actor,
    ) -> Result<ParticipantId, Problem> {
        let Some(h) = self.get(id) else {
            return Err(Problem::NotWaiting);
        };
        let (reply, rx) = oneshot::channel();
        if h.send(RoomCommand::AdmitNext { by, reply }).await.is_err() {
            return Err(Problem::NotWaiting);
        }
        // A room that ends meanwhile drops the reply: nobody was admitted there.
        rx.await.unwrap_or(Err(Problem::NotWaiting))
    }

    /// Sets the clinic's message to those waiting in the live room `id` on `by`'s behalf:
    /// `Ok(false)` when the room is not live (nobody can be waiting), `Err` with why for text
    /// that breaks the rules.
    pub async fn message_waiting(
        &self,
        id: &RoomId,
        by: crate::audit::Actor,
        text: String,
    ) -> Result<bool, String> {
        let Some(h) = self.get(id) else {
            return Ok(false);
        };
        let (reply, rx) = oneshot::channel();
        if h.send(RoomCommand::MessageWaiting { by, text, reply })
            .await
            .is_err()
        {
            return Ok(false);
        }
        match rx.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(why)) => Err(why),
            // Ended meanwhile.
            Err(_) => Ok(false),
        }
    }

    /// Ends every live room (server shutdown), all at once, and opens no more: each tells its
    /// participants (`room_ended`), records their leaves and closes their peer connections.
    /// The caller bounds how long this may take.
    pub async fn shutdown(&self) {
        let handles: Vec<RoomHandle> = {
            let live = self.live.lock().expect("room map poisoned");
            self.closing
                .store(true, std::sync::atomic::Ordering::Release);
            live.values().cloned().collect()
        };
        let ends = handles.into_iter().map(|h| async move {
            let (reply, rx) = oneshot::channel();
            let cmd = RoomCommand::End {
                by: None,
                reason: EndReason::ServerShutdown,
                reply,
            };
            if h.send(cmd).await.is_ok() {
                let _ = rx.await;
            }
        });
        futures_util::future::join_all(ends).await;
    }

    fn forget(&self, handle: &RoomHandle) {
        let mut live = self.live.lock().expect("room map poisoned");
        if live
            .get(&handle.id)
            .is_some_and(|h| h.tx.same_channel(&handle.tx))
        {
            live.remove(&handle.id);
        }
    }
}
