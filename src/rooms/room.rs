//! The room actor: one task per live consultation, the only owner of its participants.
//!
//! State machine: `Open` while the consultation runs, `Ended` once a doctor (or the API) ends
//! it; an open room with nobody in it stops its task after `idle_stop` and is started again on
//! the next join. All changes arrive as commands (from signaling sessions) or media events
//! (from the media worker) and are handled one at a time, so there is no locking.
//!
//! The task never waits on the database for what it must persist: joins, leaves, chat and the
//! end go to the audit trail's writer ([`crate::audit::AuditLog::submit`]), which commits them
//! in batches with everyone else's. What must be on the record before it happens (a join is
//! admitted, a message is shown) waits in `awaiting` as the writer's acknowledgement and is
//! carried out when that arrives, while the room goes on with everything else.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::media::MediaKind;
use tokio::sync::{mpsc, oneshot};

mod admit_waiting;
mod roles;
mod screen;
mod seats;
mod sharing;

use super::ice_restart::{IceRestartRefused, MediaLink};
use super::joins::{JoinCap, JoinCaps, Joins};
use super::lobby::{Lobby, SentBack, Waiter};
use super::participant::{Participant, Presence};
use super::waiting::{self, Asker, Huddle, Place, Refusal, Request, Step};
use super::{
    Annotate, ConsentState, EndReason, Entry, Farewell, Follow, Joined, LeaveReason,
    MAX_CHAT_CHARS, MAX_WAITING_TEXT_CHARS, Moderation, Notice, OfferedTrack, Presenting, Problem,
    Publish, ResumeRef, RoomCommand, RoomError, RoomServices, RoomSettings, SessionLink, TrackKind,
    TrackSource, VideoLayer, VideoQualityReason, Welcome,
};
use crate::audit::{Action, Actor, Append, AuditEvent, Durable, Outcome, Written};
use crate::auth::{Claims, SigningKey, TokenKind};
use crate::documents::DocumentError;
use crate::domain::clock::{now_unix, now_unix_ms};
use crate::domain::consent::ConsentPurpose;
use crate::domain::ids::{
    ChatMessageId, InstitutionId, InviteId, ParticipantId, RoomId, SessionId, UserId,
};
use crate::domain::role::Role;
use crate::media::WorkerHandle;
use crate::metrics::Metrics;
use crate::notifications::WaitingPerson;
use crate::sfu::{
    Answer, AnswerError, FailReason, PublishKinds, QualityReason, SfuCommand, SfuEvent,
    TransportOptions,
};
use crate::storage::{Change, ChatRecord, Db, DocumentRecord, RoomRecord, StorageError};

/// Resume tokens outlive any consultation; what keeps them short-lived is that each works
/// once, and only while its participant is still in the room (see `resume`).
const RESUME_TOKEN_LIFETIME_S: i64 = 24 * 3600;
/// Access tokens are likewise honoured only while their participant is in the room.
const ACCESS_TOKEN_LIFETIME_S: i64 = 12 * 3600;
/// Chat messages a joining participant receives in `joined`.
const CHAT_HISTORY: usize = 100;
/// Most arrivals announced in one `participants_joined`, and the longest an arrival waits to be
/// announced while joins keep coming (see `Room::run`).
const MAX_ARRIVALS: usize = 100;
const MAX_ARRIVAL_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Ended,
}

/// A write the room waits for before it acts, without waiting in its task: a join is admitted,
/// a chat message shown, once it is on the record. Kept in the order queued, which is the order
/// the writer acknowledges in.
struct Awaiting {
    durable: Durable,
    then: Then,
}

enum Then {
    Admit(Box<Admission>),
    Show(ChatRecord),
}

/// A join whose record is being written.
struct Admission {
    id: ParticipantId,
    name: String,
    role: Role,
    /// See `RoomCommand::Join::role_given`.
    role_given: bool,
    publish: Publish,
    simulcast: bool,
    invite: InviteId,
    account: Option<UserId>,
    institution: Option<InstitutionId>,
    /// See `RoomCommand::Join::session`.
    session: Option<SessionId>,
    /// See `waiting::Arrival::readmitted`.
    readmitted: bool,
    link: SessionLink,
    reply: oneshot::Sender<Result<Joined, RoomError>>,
}

/// Waits for the oldest write the room waits on (for ever when there is none). Cancel-safe: the
/// acknowledgement stays in the queue until it is taken.
async fn next_written(awaiting: &mut VecDeque<Awaiting>) -> Written {
    match awaiting.front_mut() {
        Some(a) => (&mut a.durable).await,
        None => std::future::pending().await,
    }
}

pub struct Room {
    record: RoomRecord,
    settings: Arc<RoomSettings>,
    key: SigningKey,
    db: Db,
    media: WorkerHandle,
    metrics: Arc<Metrics>,
    services: RoomServices,
    phase: Phase,
    participants: Vec<Participant>,
    empty_since: Option<Instant>,
    /// Every document shared in this consultation (each participant is sent those their role
    /// may see).
    documents: Vec<DocumentRecord>,
    /// Which of them the other institution's clinicians may not see now (`sharing`).
    sharing: sharing::Sharing,
    /// The latest chat messages, for late joiners.
    chat: std::collections::VecDeque<ChatRecord>,
    /// Who presents which document, and where they are in it (follow mode).
    follow: Option<Presenting>,
    /// Participants who joined but are not yet announced to the others, in order of arrival,
    /// and when the first of them came (see `run`).
    arrivals: Vec<ParticipantId>,
    arrivals_since: Option<Instant>,
    /// Invites revoked in this consultation: they admit nobody.
    revoked: HashSet<InviteId>,
    /// Joins and chat messages waiting to be on the record, oldest first.
    awaiting: VecDeque<Awaiting>,
    /// Those who came with an invitation and wait to be let in (`record.waiting_room`).
    lobby: Lobby,
    /// The clinicians confer privately (see `sync_blocks`).
    huddle: Huddle,
    /// Who shares their screen: at most one share per room at a time (see `screen`).
    screen: Option<ParticipantId>,
    /// What a patient who reloaded (a join that replaces them) had agreed to, for their new self
    /// once admitted: a reload changes nothing they agreed to.
    carried_consents:
        std::collections::HashMap<ParticipantId, std::collections::BTreeSet<ConsentPurpose>>,
    /// What the care team stopped forwarding of someone who reloaded (or opened another tab of
    /// their seat), for their new self once admitted: a reload does not undo a mute.
    carried_held: std::collections::HashMap<ParticipantId, Publish>,
    /// Joins so far on each invitation, against the caps.
    joins: Joins,
}

impl Room {
    pub fn new(
        record: RoomRecord,
        settings: Arc<RoomSettings>,
        key: SigningKey,
        db: Db,
        media: WorkerHandle,
        metrics: Arc<Metrics>,
        services: RoomServices,
    ) -> Self {
        let opened = settings.clock.now();
        Self {
            record,
            settings,
            key,
            db,
            media,
            metrics,
            services,
            phase: Phase::Open,
            participants: Vec::new(),
            empty_since: Some(opened),
            documents: Vec::new(),
            sharing: Default::default(),
            chat: Default::default(),
            follow: None,
            arrivals: Vec::new(),
            arrivals_since: None,
            revoked: HashSet::new(),
            awaiting: VecDeque::new(),
            lobby: Lobby::default(),
            huddle: Huddle::Off,
            screen: None,
            carried_consents: Default::default(),
            carried_held: Default::default(),
            joins: Default::default(),
        }
    }

    /// What earlier runs of this room left: its documents and recent chat.
    async fn load(&mut self) -> Result<(), RoomError> {
        self.documents = self.db.documents_in_room(self.id()).await?;
        self.sharing.withheld = self.db.withheld_documents(self.id()).await?;
        self.joins = Joins::from_counts(self.db.joins_by_invite(self.id()).await?);
        self.revoked = self
            .db
            .revoked_invites(self.id())
            .await?
            .into_iter()
            .collect();
        self.chat = self
            .db
            .recent_chat(self.id(), CHAT_HISTORY as i64)
            .await?
            .into();
        Ok(())
    }

    /// A join over one of the join caps (`rooms/joins.rs`): refused, and on the record
    /// (rate-limited per invitation: a reload loop is what the cap stops).
    async fn refuse_join(&self, join: Admission, cap: JoinCap) {
        let (error, limit) = match cap {
            JoinCap::Invite(n) => (RoomError::InviteJoinsExhausted(n), "joins_per_invite"),
            JoinCap::Room(n) => (RoomError::RoomJoinsExhausted(n), "joins_per_room"),
        };
        let event = AuditEvent::new(
            Actor::Participant(join.id.clone(), join.role),
            Action::AccessDenied,
        )
        .room(self.id())
        .object("invite", &join.invite)
        .outcome(Outcome::Denied)
        .detail(serde_json::json!({"attempted": "join", "limit": limit}));
        self.services
            .audit
            .refused(join.invite.as_str(), "join_cap", event)
            .await;
        tracing::warn!(room = %self.id(), limit, "join refused over a cap");
        let _ = join.reply.send(Err(error));
    }

    /// A participant asked for what their role may not do: told so, and on the record
    /// (rate-limited by the trail, so a client cannot flood it).
    async fn refused(&self, p: &Participant, reason: &'static str) {
        let event = self.audit(p, Action::AccessDenied);
        self.services
            .audit
            .refused(p.id.as_str(), reason, event)
            .await;
    }

    fn audit(&self, actor: &Participant, action: Action) -> AuditEvent {
        AuditEvent::new(Actor::Participant(actor.id.clone(), actor.role), action).room(self.id())
    }

    fn id(&self) -> &RoomId {
        &self.record.id
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<RoomCommand>,
        mut media_events: mpsc::Receiver<SfuEvent>,
    ) {
        let mut tick = self.settings.clock.ticker();
        tracing::info!(room = %self.id(), "room opened");
        if let Err(e) = self.load().await {
            // Without its documents the room would show an incomplete record: refuse to run.
            tracing::error!(room = %self.id(), error = %e, "room could not load its state");
            self.phase = Phase::Ended;
            commands.close();
            while let Ok(cmd) = commands.try_recv() {
                refuse(cmd, Phase::Open);
            }
            let _ = self.media.close_room(self.id().clone()).await;
            return;
        }
        // Every join is announced to everyone present: while a lecture fills, that is n
        // announcements per join. Joins that arrive faster than the room handles them (its
        // queue is not empty after one) are announced together, in one message per member,
        // once the queue is drained; at an ordinary pace each is announced at once, alone.
        // Anything else the room does first announces who is waiting, so that nobody hears of
        // a participant (an update, a leave, their tracks) before hearing they joined.
        while self.phase == Phase::Open {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => {
                        if !matches!(cmd, RoomCommand::Join { .. }) {
                            self.announce_arrivals();
                        }
                        self.handle_command(cmd).await;
                        let waited = self.arrivals_since.is_some_and(|t| self.settings.clock.since(t) >= MAX_ARRIVAL_WAIT);
                        if commands.is_empty() || waited || self.arrivals.len() >= MAX_ARRIVALS {
                            self.announce_arrivals();
                        }
                    }
                    None => break,
                },
                Some(event) = media_events.recv() => {
                    self.announce_arrivals();
                    self.handle_media(event).await
                }
                // Joins admitted here are announced like joins handled in a row above.
                written = next_written(&mut self.awaiting) => {
                    self.settle(written).await;
                    let waited = self.arrivals_since.is_some_and(|t| self.settings.clock.since(t) >= MAX_ARRIVAL_WAIT);
                    if commands.is_empty() || waited || self.arrivals.len() >= MAX_ARRIVALS {
                        self.announce_arrivals();
                    }
                }
                read = self.sharing.next_read() => {
                    self.announce_arrivals();
                    self.sharing_read(read);
                }
                _ = tick.tick() => {
                    self.announce_arrivals();
                    self.retry_sharing();
                    self.expire_reconnecting().await;
                    self.drop_gone_waiters().await;
                    let idle = self.empty_since.is_some_and(|t| self.settings.clock.since(t) >= self.settings.idle_stop);
                    // Nobody waiting is left alone in a room that stopped.
                    if idle && self.awaiting.is_empty() && self.lobby.is_empty() {
                        break;
                    }
                }
            }
            self.drop_overflowed();
            self.drop_overflowed_waiters().await;
        }
        // Only when every handle is gone (the room was open, with joins under way).
        self.settle_all(Phase::Open).await;
        let _ = self.media.close_room(self.id().clone()).await;
        // Whoever still waits on this room gets a clear answer rather than a hang.
        commands.close();
        while let Ok(cmd) = commands.try_recv() {
            refuse(cmd, self.phase);
        }
        tracing::info!(room = %self.id(), ended = self.phase == Phase::Ended, "room task stopped");
    }

    async fn handle_command(&mut self, cmd: RoomCommand) {
        match cmd {
            RoomCommand::Join {
                name,
                role,
                role_given,
                publish,
                simulcast,
                invite,
                account,
                institution,
                session,
                replaces,
                link,
                reply,
            } => {
                let join = Admission {
                    id: ParticipantId::generate(),
                    name,
                    role,
                    role_given,
                    publish,
                    simulcast,
                    invite,
                    account,
                    institution,
                    session,
                    readmitted: false,
                    link,
                    reply,
                };
                self.join(join, replaces).await;
            }
            RoomCommand::Resume {
                resume,
                link,
                reply,
            } => {
                let result = self.resume(resume, link);
                let _ = reply.send(result);
            }
            RoomCommand::Answer {
                participant,
                conn,
                offer_id,
                sdp,
            } => self.answer(participant, conn, offer_id, sdp).await,
            RoomCommand::MediaState {
                participant,
                conn,
                state,
            } => {
                let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
                    return;
                };
                p.audio_muted = state.audio_muted;
                p.video_off = state.video_off;
                let view = p.info();
                self.broadcast_except(&participant, Notice::ParticipantUpdated(view));
            }
            RoomCommand::IceRestart { participant, conn } => {
                self.ice_restart(participant, conn).await;
            }
            RoomCommand::VideoSizes {
                participant,
                conn,
                sizes,
            } => {
                if self.find(&participant).is_none_or(|p| !p.is_conn(conn)) {
                    return;
                }
                // Only what they receive is theirs to size: the media core ignores any other
                // m-line.
                let sizes = sizes
                    .into_iter()
                    .map(|s| crate::sfu::VideoSize {
                        mid: s.mid,
                        width: s.width,
                        height: s.height,
                    })
                    .collect();
                let _ = self
                    .media
                    .command(SfuCommand::VideoSizes { participant, sizes })
                    .await;
            }
            RoomCommand::Leave { participant, conn } => {
                // Also from a connection the room already found gone: the session sent its
                // `leave` before it closed, and the room may have noticed the close first.
                if let Some(p) = self.find(&participant).filter(|p| p.is_or_was_conn(conn)) {
                    p.close(Farewell::Left);
                    self.remove(&participant, LeaveReason::Left).await;
                } else if self
                    .lobby
                    .find(&participant)
                    .is_some_and(|w| w.person.is_conn(conn))
                    && let Some(w) = self.lobby.take(&participant)
                {
                    w.person.close(Farewell::Left);
                    self.left_waiting(w, LeaveReason::Left).await;
                }
            }
            RoomCommand::End { by, reason, reply } => {
                let allowed = match &by {
                    None => true,
                    Some((pid, conn)) => self
                        .find(pid)
                        .is_some_and(|p| p.is_conn(*conn) && p.role.may_end_room()),
                };
                if !allowed {
                    if let Some(p) = by.as_ref().and_then(|(pid, _)| self.find(pid)) {
                        self.refused(p, "end_room_forbidden").await;
                    }
                    let _ = reply.send(Err(RoomError::Forbidden));
                    return;
                }
                let ender = by.as_ref().and_then(|(pid, _)| self.find(pid));
                let account = ender.and_then(|p| p.account.clone());
                let ended_by =
                    ender.map(|p| self.audit(p, Action::RoomEnded).object("room", self.id()));
                let result = self.end(reason, ended_by).await;
                // Ended over HTTP, the edge carries it on itself, knowing by whom.
                if let (Ok(()), Some(by)) = (&result, account) {
                    self.services.progress.send(super::Progress::Ended {
                        room: self.id().clone(),
                        by,
                    });
                }
                let _ = reply.send(result);
            }
            RoomCommand::Disconnected { participant, conn } => {
                let deadline = self.settings.clock.now() + self.settings.resume_window;
                // Someone waiting has no resume token (they were given nothing of the room):
                // a dropped connection leaves the queue, and joining again queues anew.
                if self
                    .lobby
                    .find(&participant)
                    .is_some_and(|w| w.person.is_conn(conn))
                {
                    if let Some(w) = self.lobby.take(&participant) {
                        self.left_waiting(w, LeaveReason::Disconnected).await;
                    }
                    return;
                }
                // When the room found the connection gone first (a message could not be
                // queued), it has told the others already.
                let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
                    return;
                };
                p.lose_connection(deadline);
                let view = p.info();
                tracing::info!(room = %self.record.id, participant = %participant, "signaling lost; waiting for resume");
                self.broadcast_except(&participant, Notice::ParticipantUpdated(view));
            }
            RoomCommand::Authorize { participant, reply } => {
                let member = self.find(&participant).map(|p| p.member());
                let _ = reply.send(member);
            }
            RoomCommand::InviteRevoked { invite, reply } => {
                let holders: Vec<ParticipantId> = self
                    .participants
                    .iter()
                    .filter(|p| p.invite == invite)
                    .map(|p| p.id.clone())
                    .collect();
                let told = (
                    Problem::InviteRevoked,
                    "your invitation was revoked by the care team",
                );
                self.turn_out(
                    &holders,
                    told,
                    Farewell::InviteRevoked,
                    LeaveReason::Removed,
                )
                .await;
                let waiting = self.lobby.take_where(|w| w.person.invite == invite);
                let removed = holders.len() + waiting.len();
                for w in waiting {
                    w.person.send(Notice::refused(
                        Problem::InviteRevoked,
                        "your invitation was revoked by the care team",
                    ));
                    w.person.close(Farewell::InviteRevoked);
                    self.left_waiting(w, LeaveReason::Removed).await;
                }
                self.revoked.insert(invite);
                let _ = reply.send(removed);
            }
            RoomCommand::SessionsEnded { sessions } => self.sessions_ended(&sessions).await,
            RoomCommand::Rescheduled { slot } => {
                // Already in storage (a room that opens later reads it there). Those waiting
                // are told the new time and keep their place: the clinic decides what comes
                // next (admit, a message to the waiting room, decline with a reason).
                if self.record.slot != Some(slot) {
                    self.record.slot = Some(slot);
                    self.tell_waiting();
                }
            }
            RoomCommand::DocumentShared {
                document,
                from_request,
            } => self.document_shared(document, from_request),
            RoomCommand::SharingChanged => self.reread_sharing(),
            RoomCommand::RecordChanged {
                record,
                single_patient,
            } => {
                let msg = Notice::RecordUpdated(record.clone());
                self.broadcast_where(
                    |p| {
                        crate::records::may_read_as(
                            p.role,
                            &p.invite,
                            &record.record,
                            single_patient,
                        )
                    },
                    msg,
                );
            }
            RoomCommand::Chat {
                participant,
                conn,
                text,
            } => self.chat(participant, conn, text).await,
            RoomCommand::Follow {
                participant,
                conn,
                follow,
            } => self.follow(participant, conn, follow).await,
            RoomCommand::Annotate {
                participant,
                conn,
                annotate,
            } => self.annotate(participant, conn, annotate).await,
            RoomCommand::Moderate {
                participant,
                conn,
                action,
            } => self.moderate(participant, conn, action).await,
            RoomCommand::AdmitNext { by, reply } => {
                let _ = reply.send(self.admit_next_for(by).await);
            }
            RoomCommand::MessageWaiting { by, text, reply } => {
                let set = self.set_waiting_message(&text, by).await;
                if set.is_ok() {
                    self.tell_queue();
                    self.tell_waiting();
                }
                let _ = reply.send(set);
            }
            RoomCommand::Consent {
                participant,
                conn,
                purpose,
                given,
            } => self.consent(participant, conn, purpose, given).await,
            RoomCommand::ScreenShare {
                participant,
                conn,
                active,
            } => self.screen_share(participant, conn, active).await,
            RoomCommand::Precall {
                participant,
                conn,
                report,
            } => {
                if let Some(w) = self
                    .lobby
                    .find_mut(&participant)
                    .filter(|w| w.person.is_conn(conn))
                {
                    w.precall = Some(report);
                    self.tell_queue();
                }
            }
        }
    }

    async fn chat(&mut self, participant: ParticipantId, conn: u64, text: String) {
        let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        let text = text.trim();
        if !p.role.may_chat() {
            p.send(Notice::refused(
                Problem::Forbidden,
                "your role may not chat",
            ));
            self.refused(p, "chat_forbidden").await;
            return;
        }
        if text.is_empty() || text.chars().count() > MAX_CHAT_CHARS {
            p.send(Notice::refused(
                Problem::Invalid,
                format!("a chat message must be 1 to {MAX_CHAT_CHARS} characters"),
            ));
            return;
        }
        // Chat is part of the consultation's record (and its summary): no character that hides
        // or reorders what the others read, as in the records and the clinic's messages.
        if text.chars().any(crate::domain::text::is_hiding_but_newline) {
            p.send(Notice::refused(
                Problem::Invalid,
                "a chat message may not hold invisible or direction-changing characters",
            ));
            return;
        }
        let message = ChatRecord {
            id: ChatMessageId::generate(),
            participant_id: p.id.clone(),
            name: p.name.clone(),
            role: p.role,
            text: text.to_owned(),
            at_ms: now_unix_ms(),
            // The clinicians talk privately during a huddle, in writing as aloud: what one of
            // them writes meanwhile reaches the clinicians only (the patient's own messages
            // still reach everyone).
            huddle: self.huddle.is_on() && p.role.may_admit(),
        };
        // Persisted before anyone sees it: what was said is part of the consultation record.
        // Shown when the writer says it is (`settle`); the room goes on meanwhile.
        let append = Append::rows(vec![Change::chat(self.id(), &message)]);
        match self.services.audit.submit(append).await {
            Ok(durable) => self.awaiting.push_back(Awaiting {
                durable,
                then: Then::Show(message),
            }),
            Err(e) => self.show_chat(message, Err(e)),
        }
    }

    /// Shows a chat message once it is stored, or tells its author it could not be.
    fn show_chat(&mut self, message: ChatRecord, written: Written) {
        if let Err(e) = written {
            tracing::error!(room = %self.record.id, error = %e, "chat message not stored");
            if let Some(p) = self.find(&message.participant_id) {
                p.send(Notice::refused(
                    Problem::Internal,
                    "the message could not be stored; try again",
                ));
            }
            return;
        }
        if self.chat.len() == CHAT_HISTORY {
            self.chat.pop_front();
        }
        self.chat.push_back(message.clone());
        let huddle = message.huddle;
        self.broadcast_where(|p| reaches(huddle, p.role), Notice::Chat(message));
    }

    /// Acts on the oldest write the room waited for, and on every later one already written.
    async fn settle(&mut self, mut written: Written) {
        while let Some(a) = self.awaiting.pop_front() {
            match a.then {
                Then::Admit(join) => self.admit(*join, written).await,
                Then::Show(message) => {
                    self.announce_arrivals();
                    self.show_chat(message, written);
                }
            }
            match self.awaiting.front_mut().and_then(|a| a.durable.try_take()) {
                Some(next) => written = next,
                None => return,
            }
        }
    }

    /// Waits out every write the room still waits for, when it stops taking joins (it ends, or
    /// its task stops in `phase`): those joins are turned away (and recorded as gone), those
    /// messages shown.
    async fn settle_all(&mut self, phase: Phase) {
        while let Some(a) = self.awaiting.pop_front() {
            let written = a.durable.await;
            match a.then {
                Then::Admit(join) => {
                    if written.is_ok() {
                        self.record_gone(&join.id, join.role, "room_closed").await;
                    }
                    let _ = join.reply.send(Err(match phase {
                        Phase::Ended => RoomError::Ended,
                        Phase::Open => RoomError::Closed,
                    }));
                }
                Then::Show(message) => self.show_chat(message, written),
            }
        }
    }

    async fn follow(&mut self, participant: ParticipantId, conn: u64, follow: Follow) {
        let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        if !p.role.may_annotate() {
            p.send(Notice::refused(
                Problem::Forbidden,
                "your role may not present documents",
            ));
            self.refused(p, "present_forbidden").await;
            return;
        }
        let Some(doc_id) = follow.document_id.clone() else {
            if self
                .follow
                .as_ref()
                .is_some_and(|f| f.presenter == participant)
            {
                let visibility = self.presented_visibility();
                self.follow = None;
                let msg = Notice::PresentingStopped {
                    presenter: participant.clone(),
                };
                self.broadcast_where(
                    |q| q.id != participant && visibility.is_none_or(|v| q.role.may_view(v)),
                    msg,
                );
            }
            return;
        };
        let Some(doc) = self
            .documents
            .iter()
            .find(|d| d.id == doc_id)
            .filter(|d| self.may_see(p, d))
        else {
            p.send(Notice::refused(
                Problem::Forbidden,
                "no such document in this consultation",
            ));
            return;
        };
        if !follow.is_valid() {
            p.send(Notice::refused(
                Problem::Invalid,
                "follow: page 1-10000, zoom 0.1-20, points within the page (0-1)",
            ));
            return;
        }
        // One presenter at a time: the latest to present takes over.
        let view = Presenting {
            presenter: participant.clone(),
            position: follow,
        };
        self.broadcast_where(
            |q| q.id != participant && self.may_see(q, doc),
            Notice::Presenting(Box::new(view.clone())),
        );
        self.follow = Some(view);
    }

    fn presented_visibility(&self) -> Option<crate::domain::role::Visibility> {
        self.presented_document().map(|d| d.visibility)
    }

    fn presented_document(&self) -> Option<&DocumentRecord> {
        let id = self.follow.as_ref()?.position.document_id.as_ref()?;
        self.documents.iter().find(|d| &d.id == id)
    }

    async fn annotate(&mut self, participant: ParticipantId, conn: u64, a: Annotate) {
        let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        let member = p.member();
        let result = self
            .services
            .documents
            .annotate(self.id(), &member, &a.document_id, a.page, a.shape)
            .await;
        let Some(p) = self.find(&participant) else {
            return;
        };
        match result {
            Ok((doc, annotation)) => {
                let event = self
                    .audit(p, Action::DocumentAnnotated)
                    .object("document", &doc.id)
                    .sha256(&doc.sha256)
                    .detail(
                        serde_json::json!({"annotation": annotation.id, "page": annotation.page}),
                    );
                self.services.audit.record_or_log(event).await;
                self.broadcast_where(
                    |q| self.may_see(q, &doc),
                    Notice::AnnotationAdded(annotation),
                );
            }
            Err(e) => {
                let (problem, outcome) = match &e {
                    DocumentError::Forbidden(_) | DocumentError::NotFound => {
                        (Problem::Forbidden, Outcome::Denied)
                    }
                    DocumentError::Invalid(_) => (Problem::Invalid, Outcome::Denied),
                    _ => (Problem::Internal, Outcome::Error),
                };
                let event = self
                    .audit(p, Action::DocumentAnnotated)
                    .object("document", &a.document_id)
                    .outcome(outcome);
                p.send(Notice::refused(
                    problem,
                    if problem == Problem::Internal {
                        "the annotation could not be stored".to_string()
                    } else {
                        e.to_string()
                    },
                ));
                if problem == Problem::Internal {
                    tracing::error!(room = %self.record.id, error = %e, "annotation failed");
                }
                if outcome == Outcome::Denied {
                    self.services
                        .audit
                        .refused(p.id.as_str(), "annotation_refused", event)
                        .await;
                } else {
                    self.services.audit.record_or_log(event).await;
                }
            }
        }
    }

    async fn join(&mut self, mut join: Admission, replaces: Option<ResumeRef>) {
        // Before anything of the join is done (a reload's older connection is closed below):
        // one over a cap changes nothing. A clinician's seat is theirs for the consultation
        // (they cannot ask for another), so only the consultation's cap counts it.
        let caps = match join.account {
            Some(_) => JoinCaps {
                per_invite: u32::MAX,
                ..self.settings.joins
            },
            None => self.settings.joins,
        };
        if let Err(cap) = self.joins.check(&join.invite, caps) {
            self.refuse_join(join, cap).await;
            return;
        }
        let mut carried = None;
        // What the care team stopped forwarding stays stopped when the same person comes back:
        // a reload (their resume token) or another tab of their seat must not undo a mute.
        let mut held = join
            .account
            .as_ref()
            .and_then(|account| {
                self.participants
                    .iter()
                    .find(|p| p.account.as_ref() == Some(account))
            })
            .map(|p| p.held)
            .unwrap_or_default();
        if let Some(old) = replaces {
            let same = self
                .find(&old.participant)
                .is_some_and(|p| p.resume_nonce == old.nonce);
            if same {
                if let Some(p) = self.find(&old.participant) {
                    p.close(Farewell::Replaced);
                    // The same patient on the same link (a reload): what they agreed to stays.
                    if p.role == Role::Patient
                        && join.role == Role::Patient
                        && p.invite == join.invite
                        && !p.consents.is_empty()
                    {
                        carried = Some((old.participant.clone(), p.consents.clone()));
                    }
                    // The same person on the same link keeps the role the care team gave
                    // them (an observer let speak stays a guest). The room's own record of it
                    // decides, not the one signaling read from storage: a change made a moment
                    // ago may not be written there yet.
                    if p.invite == join.invite && join.role.may_become(p.role) {
                        join.role = p.role;
                        join.role_given = true;
                    }
                    // They were let in (only those in the room are found here; someone waiting
                    // has no resume token to replace): a reload does not send them back to
                    // the end of the queue.
                    join.readmitted = p.invite == join.invite;
                    if p.invite == join.invite {
                        held.audio |= p.held.audio;
                        held.video |= p.held.video;
                    }
                }
                self.remove(&old.participant, LeaveReason::Replaced).await;
            }
        }
        // Made to only watch by the care team: they publish nothing, whatever their client
        // offers. Narrowed here, once the role is settled, and not before: a guest let speak
        // whose reload met the older "observer" in storage would otherwise come back a guest
        // with nothing to publish (their microphone and camera never offered).
        if join.role_given && !join.role.may_publish() {
            join.publish = Publish::default();
        }
        // The room decides what a role may do; signaling only carries the request. The invite
        // is checked here too: signaling read it before a revocation the room heard of.
        let (role, publish) = (join.role, join.publish);
        let arrival = waiting::Arrival {
            role,
            seat: join.account.is_some(),
            publishes: publish.audio || publish.video,
            revoked: self.revoked.contains(&join.invite),
            readmitted: join.readmitted,
        };
        let doors = waiting::Doors {
            waiting_room: self.record.waiting_room,
            locked: self.lobby.locked,
            observers_allowed: self.observers_allowed(),
            present: self.participants.len(),
            waiting: self.lobby.len(),
            admitting: self.admitting(),
            max_participants: self.settings.max_participants,
        };
        let waits = match waiting::arrive(arrival, doors) {
            Ok(entry) => entry == waiting::Entry::Waits,
            Err(turned) => {
                let _ = join.reply.send(Err(turned.into()));
                return;
            }
        };
        // The task is the only one counting: checked above, nothing could take the place since.
        let _ = self.joins.take(&join.invite, caps);
        // Recorded before they are let in: whoever is in a consultation is on its record. The
        // participants row and the audit entry are one append, committed together; the room
        // admits them when the writer says so (`admit`) and goes on meanwhile.
        let mut append = Append::entry(
            AuditEvent::new(Actor::Participant(join.id.clone(), role), Action::Joined)
                .room(self.id())
                .object("invite", &join.invite)
                .detail(serde_json::json!({"account": join.account, "waiting": waits})),
        )
        .with(Change::participant_joined(
            self.id(),
            &join.id,
            &join.invite,
            role,
            &join.name,
        ));
        if let Some((from, consents)) = carried {
            // Their consents on the record are now their new self's (to withdraw later).
            append = append.with(Change::ConsentCarried {
                from,
                to: join.id.clone(),
            });
            self.carried_consents.insert(join.id.clone(), consents);
        }
        if held != Publish::default() {
            self.carried_held.insert(join.id.clone(), held);
        }
        match self.services.audit.submit(append).await {
            Ok(durable) => self.awaiting.push_back(Awaiting {
                durable,
                then: Then::Admit(Box::new(join)),
            }),
            Err(e) => {
                self.carried_consents.remove(&join.id);
                self.carried_held.remove(&join.id);
                let _ = join.reply.send(Err(RoomError::Audit(e.to_string())));
            }
        }
    }

    /// Joins on their way in: they hold a place in the room.
    fn admitting(&self) -> usize {
        self.awaiting
            .iter()
            .filter(|a| matches!(a.then, Then::Admit(_)))
            .count()
    }

    /// Lets a participant in once their join is on the record.
    async fn admit(&mut self, join: Admission, written: Written) {
        let carried = self.carried_consents.remove(&join.id);
        let held = self.carried_held.remove(&join.id).unwrap_or_default();
        if let Err(e) = written {
            tracing::error!(room = %self.record.id, error = %e, "join not recorded; refused");
            let _ = join.reply.send(Err(RoomError::Audit(e.to_string())));
            return;
        }
        if join.reply.is_closed() {
            // The session stopped waiting (its join deadline, a closed socket): it is on the
            // record as having joined, so it goes on the record as gone.
            self.record_gone(&join.id, join.role, "abandoned").await;
            return;
        }
        if self.revoked.contains(&join.invite) {
            // Its invitation was revoked while the join was being recorded.
            self.record_gone(&join.id, join.role, "invite_revoked")
                .await;
            let _ = join.reply.send(Err(RoomError::InviteRevoked));
            return;
        }
        let waits = self.waits(&join);
        let Admission {
            id,
            name,
            role,
            publish,
            simulcast,
            role_given: _,
            invite,
            account,
            institution,
            session,
            readmitted: _,
            link,
            reply,
        } = join;
        let seat = account.clone();
        let mut person = Participant::new(id.clone(), name, role, invite, account, publish, link);
        person.simulcast = simulcast;
        person.session = session;
        person.of_institution = institution.as_ref() == Some(&self.record.institution_id);
        if let Some(consents) = carried {
            person.consents = consents;
        }
        person.held = held;
        if waits {
            self.lobby.push(Waiter {
                person,
                since: now_unix(),
                sent_back: None,
                precall: None,
            });
            let waiting = self
                .lobby
                .waiting(
                    self.id(),
                    &self.record.title,
                    self.record.slot,
                    &id,
                    now_unix(),
                )
                .expect("just queued");
            tracing::info!(room = %self.record.id, participant = %id, role = role.as_str(), "waiting");
            // The others' line grew: their `of` changed.
            self.tell_waiting_except(Some(&id));
            let _ = reply.send(Ok(Joined {
                participant: id,
                entry: Entry::Waiting(Box::new(waiting)),
            }));
            self.tell_queue();
            return;
        }
        if let Err(person) = self.seat(person).await {
            self.record_gone(&person.id, person.role, "media_unavailable")
                .await;
            let _ = reply.send(Err(RoomError::Closed));
            return;
        }
        if let Some(account) = seat {
            self.take_over_seat(&id, &account).await;
        }
        tracing::info!(room = %self.record.id, participant = %id, role = role.as_str(), "joined");
        let _ = reply.send(Ok(Joined {
            entry: Entry::Admitted(Box::new(self.welcome(&id))),
            participant: id,
        }));
    }

    /// One account, one presence: a clinician who enters again with their seat (a second tab,
    /// another device, a reload that lost its resume token) takes over from where they were.
    /// The earlier connection is told it was replaced (close 4003, as after a reload) and
    /// leaves (`replaced`), so the room and its attendance never hold them twice. Done once
    /// `newcomer` is seated, so the care team is never absent meanwhile and a huddle goes on
    /// (a screen share or a presentation of the earlier connection ends with it).
    async fn take_over_seat(&mut self, newcomer: &ParticipantId, account: &UserId) {
        let earlier: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|p| &p.id != newcomer && p.account.as_ref() == Some(account))
            .map(|p| p.id.clone())
            .collect();
        for old in earlier {
            if let Some(p) = self.find(&old) {
                p.close(Farewell::Replaced);
            }
            tracing::info!(room = %self.record.id, participant = %old, by = %newcomer, "seat taken over by a new connection");
            self.remove(&old, LeaveReason::Replaced).await;
        }
    }

    /// How someone's peer connection is set up: where the server allows simulcast and their
    /// client asked for it, their camera is received in layers and what they are sent is chosen
    /// from an estimate of their link. Both go together: a client that sends layers is one that
    /// shows `video_quality` (a paused video), and an older client is sent as before, at the pace
    /// its publishers send. A screen stays one layer whatever this says (the media core offers
    /// layers only for the camera).
    fn transport_options(&self, person: &Participant) -> TransportOptions {
        let on = self.settings.simulcast && person.simulcast;
        TransportOptions {
            simulcast: on,
            bwe: on,
            // Only the network check's transport is sent its own media back, and has its
            // download probed above what it is sent.
            echo: false,
            measure_down: false,
        }
    }

    /// Whether someone joining waits to be admitted: those who come with an invitation, in a
    /// consultation that has a waiting room. Clinicians enter with their care-team seats.
    fn waits(&self, join: &Admission) -> bool {
        self.record.waiting_room && join.account.is_none() && !join.readmitted
    }

    /// Puts someone in the room: their peer connection, their place among the participants,
    /// their announcement. Hands them back if the media core cannot take them.
    async fn seat(&mut self, person: Participant) -> Result<(), Participant> {
        let added = self
            .media
            .command(SfuCommand::AddTransport {
                room: self.id().clone(),
                participant: person.id.clone(),
                publish: PublishKinds {
                    audio: person.publish.audio,
                    video: person.publish.video,
                },
                subscribe: person.role.may_subscribe(),
                options: self.transport_options(&person),
            })
            .await;
        if added.is_err() {
            return Err(person);
        }
        let id = person.id.clone();
        self.participants.push(person);
        // Their welcome tells them where consent stands.
        let told = self.consent_state_for(self.participants.last().expect("just pushed"));
        if let Some(p) = self.participants.last_mut() {
            p.consent_told = Some(told);
        }
        // Before any of their media can flow (it needs their ICE and DTLS, after this), the
        // media core learns what they may not be sent, and what the others may not of theirs.
        self.sync_blocks().await;
        self.metrics.participants.fetch_add(1, Ordering::Relaxed);
        self.empty_since = None;
        // Announced by `run`, alone or with whoever else is arriving.
        let now = self.settings.clock.now();
        self.arrivals_since.get_or_insert(now);
        self.arrivals.push(id.clone());
        if self.find(&id).is_some_and(|p| p.role == Role::Patient) {
            // A patient who has not agreed to observers: they wait until the patient does.
            self.enforce_observer_consent().await;
            self.tell_consent_except(Some(&id));
        }
        Ok(())
    }

    /// Records that a join which was recorded never became a presence in the room.
    async fn record_gone(&self, id: &ParticipantId, role: Role, reason: &str) {
        let event = AuditEvent::new(Actor::Participant(id.clone(), role), Action::Left)
            .room(self.id())
            .detail(serde_json::json!({ "reason": reason }));
        self.services
            .audit
            .submit_or_log(Append::entry(event).with(Change::participant_left(id)))
            .await;
    }

    fn resume(&mut self, resume: ResumeRef, link: SessionLink) -> Result<Joined, RoomError> {
        let Some(p) = self.find_mut(&resume.participant) else {
            return Err(RoomError::ResumeFailed);
        };
        if p.resume_nonce != resume.nonce {
            return Err(RoomError::ResumeFailed);
        }
        // A client may notice the drop before the server does: the old link is replaced.
        p.close(Farewell::Replaced);
        p.resume_nonce += 1;
        p.reconnect(link);
        let pending = p.pending_offer.as_ref().map(|(_, m)| m.clone());
        let view = p.info();
        let id = p.id.clone();
        self.broadcast_except(&id, Notice::ParticipantUpdated(view));
        let welcome = self.welcome(&id);
        if let (Some(offer), Some(p)) = (pending, self.find(&id)) {
            // Queued behind the `resumed` reply the session sends first.
            p.send(offer);
        }
        tracing::info!(room = %self.record.id, participant = %id, "resumed");
        Ok(Joined {
            participant: id,
            entry: Entry::Admitted(Box::new(welcome)),
        })
    }

    async fn answer(&mut self, participant: ParticipantId, conn: u64, offer_id: u64, sdp: String) {
        let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        if p.pending_offer.as_ref().map(|(id, _)| *id) != Some(offer_id) {
            tracing::debug!(participant = %participant, offer = offer_id, pending = ?p.pending_offer.as_ref().map(|(id, _)| *id), "answer to an offer not outstanding");
            p.send(Notice::refused(
                Problem::StaleOffer,
                format!("offer {offer_id} is not outstanding"),
            ));
            return;
        }
        p.pending_offer = None;
        let _ = self
            .media
            .command(SfuCommand::Answer {
                participant,
                offer_id,
                answer: Answer::parse(&sdp),
            })
            .await;
    }

    /// The participant's media path changed or failed: the media core restarts ICE (a new
    /// offer follows), and the others see them reconnecting until ICE is up again. At most
    /// [`super::MAX_ICE_RESTARTS`] a window; a refusal past that may be a client in a loop, and is
    /// audited.
    async fn ice_restart(&mut self, participant: ParticipantId, conn: u64) {
        let now = self.settings.clock.now();
        let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        let link = p.media;
        if let Err(refusal) = p.ice_restarts.grant(link, now) {
            match refusal {
                IceRestartRefused::NotConnected => {
                    p.send(Notice::refused(Problem::Invalid, refusal.to_string()));
                }
                IceRestartRefused::TooMany => {
                    p.send(Notice::refused(
                        Problem::IceRestartLimited,
                        refusal.to_string(),
                    ));
                    if let Some(p) = self.find(&participant) {
                        self.refused(p, "ice_restart_limited").await;
                    }
                }
            }
            return;
        }
        p.media = MediaLink::Restarting;
        let view = p.info();
        let _ = self
            .media
            .command(SfuCommand::RestartIce {
                participant: participant.clone(),
            })
            .await;
        tracing::info!(room = %self.record.id, participant = %participant, "ICE restart");
        if link != MediaLink::Restarting {
            self.broadcast_except(&participant, Notice::ParticipantUpdated(view));
        }
    }

    async fn handle_media(&mut self, event: SfuEvent) {
        match event {
            SfuEvent::Offer {
                participant, offer, ..
            } => {
                let Some(p) = self.find_mut(&participant) else {
                    tracing::debug!(participant = %participant, offer = offer.offer_id, "offer for someone not in the room");
                    return;
                };
                let msg = Notice::Offer {
                    offer_id: offer.offer_id,
                    sdp: offer.sdp,
                    tracks: offer
                        .tracks
                        .into_iter()
                        .map(|t| OfferedTrack {
                            mid: t.mid,
                            participant: t.participant,
                            kind: match t.kind {
                                MediaKind::Audio => TrackKind::Audio,
                                MediaKind::Video => TrackKind::Video,
                            },
                            source: match t.source {
                                crate::sfu::TrackSource::Microphone => TrackSource::Microphone,
                                crate::sfu::TrackSource::Camera => TrackSource::Camera,
                                crate::sfu::TrackSource::Screen => TrackSource::Screen,
                            },
                        })
                        .collect(),
                    screen_mid: offer.screen_mid,
                    publish_mids: offer.publish_mids,
                };
                p.pending_offer = Some((offer.offer_id, msg.clone()));
                p.send(msg);
            }
            SfuEvent::VideoQuality {
                participant,
                mid,
                layer,
                reason,
                ..
            } => {
                if let Some(p) = self.find(&participant) {
                    p.send(Notice::VideoQuality {
                        mid,
                        layer: layer.map(|l| match l.index() {
                            0 => VideoLayer::Low,
                            1 => VideoLayer::Medium,
                            _ => VideoLayer::Full,
                        }),
                        reason: match reason {
                            QualityReason::Bandwidth => VideoQualityReason::Bandwidth,
                            QualityReason::Hidden => VideoQualityReason::Hidden,
                            QualityReason::Display => VideoQualityReason::Display,
                        },
                    });
                }
            }
            SfuEvent::AnswerFailed {
                participant, error, ..
            } => {
                if let Some(p) = self.find(&participant) {
                    let problem = match error {
                        AnswerError::Stale => Problem::StaleOffer,
                        AnswerError::BadSdp(_) => Problem::BadAnswer,
                    };
                    p.send(Notice::refused(problem, "the answer could not be applied"));
                }
            }
            SfuEvent::Connected { participant, .. } => {
                let Some(p) = self.find_mut(&participant) else {
                    return;
                };
                let restarted = p.media == MediaLink::Restarting;
                p.media = MediaLink::Connected;
                if restarted {
                    // Back on a working path: the others see them connected again.
                    let view = p.info();
                    self.broadcast_except(&participant, Notice::ParticipantUpdated(view));
                    tracing::info!(room = %self.record.id, participant = %participant, "media connected again after an ICE restart");
                } else {
                    tracing::info!(room = %self.record.id, participant = %participant, "media connected");
                }
            }
            SfuEvent::Failed {
                participant,
                reason,
                ..
            } => {
                let (problem, text) = match reason {
                    FailReason::NeverConnected => (
                        Problem::MediaUnreachable,
                        "the media connection never came up: UDP to the server's media port may be blocked",
                    ),
                    FailReason::Lost => (
                        Problem::MediaLost,
                        "the media connection was lost; join again",
                    ),
                };
                if let Some(p) = self.find(&participant) {
                    p.send(Notice::refused(problem, text));
                    p.close(Farewell::MediaFailed(problem));
                }
                tracing::info!(room = %self.record.id, participant = %participant, reason = ?reason, "media connection failed");
                self.remove(&participant, LeaveReason::MediaFailed).await;
            }
            // Only the network check's transports estimate their download for it, and they
            // live in rooms of their own (`crate::netcheck`), never a consultation's.
            SfuEvent::DownEstimate { .. } => {}
        }
    }

    async fn expire_reconnecting(&mut self) {
        let now = self.settings.clock.now();
        let expired: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(
                |p| matches!(p.presence, Presence::Reconnecting { deadline, .. } if deadline <= now),
            )
            .map(|p| p.id.clone())
            .collect();
        for id in expired {
            self.remove(&id, LeaveReason::Disconnected).await;
        }
    }

    /// Tells each of `ids` why they must go (`told`), closes their connection with
    /// `farewell`, and removes them (the others see `reason`).
    async fn turn_out(
        &mut self,
        ids: &[ParticipantId],
        told: (Problem, &str),
        farewell: Farewell,
        reason: LeaveReason,
    ) {
        for id in ids {
            if let Some(p) = self.find(id) {
                p.send(Notice::refused(told.0, told.1));
                p.close(farewell);
            }
            self.remove(id, reason).await;
        }
    }

    async fn remove(&mut self, id: &ParticipantId, reason: LeaveReason) {
        // `run` announces waiting arrivals before anything but a join; a join that replaces an
        // earlier connection removes from inside, so the leave must not overtake them here.
        self.announce_arrivals();
        if !self.participants.iter().any(|p| &p.id == id) {
            return;
        }
        // While they are still here, so the record names them.
        self.end_screen_share(id, "left").await;
        let Some(pos) = self.participants.iter().position(|p| &p.id == id) else {
            return;
        };
        let gone = self.participants.remove(pos);
        self.metrics.participants.fetch_sub(1, Ordering::Relaxed);
        // Queued, not waited for: the leave has happened whatever the disk says.
        let event = self
            .audit(&gone, Action::Left)
            .detail(serde_json::json!({"reason": reason}));
        self.services
            .audit
            .submit_or_log(Append::entry(event).with(Change::participant_left(id)))
            .await;
        if self.follow.as_ref().is_some_and(|f| &f.presenter == id) {
            self.follow = None;
            self.broadcast_where(
                |_| true,
                Notice::PresentingStopped {
                    presenter: id.clone(),
                },
            );
        }
        let _ = self
            .media
            .command(SfuCommand::RemoveTransport {
                participant: id.clone(),
            })
            .await;
        self.broadcast_except(
            id,
            Notice::ParticipantLeft {
                participant: id.clone(),
                reason,
            },
        );
        if self.participants.is_empty() {
            self.empty_since = Some(self.settings.clock.now());
        }
        // A huddle needs a clinician: when the last one is gone, the patient is not left
        // hearing nobody without being told; it is on the record as ended by nobody present.
        let clinicians = self
            .participants
            .iter()
            .filter(|p| p.role.may_admit())
            .count();
        if self.huddle.after_leave(clinicians) {
            self.huddle = Huddle::Off;
            self.broadcast_where(
                |_| true,
                Notice::Huddle {
                    active: false,
                    by: None,
                },
            );
            let event = AuditEvent::new(Actor::System, Action::HuddleEnded)
                .room(self.id())
                .detail(serde_json::json!({"reason": "no_clinician_left"}));
            self.services.audit.record_or_log(event).await;
        }
        self.sync_blocks().await;
        if gone.role == Role::Patient {
            self.tell_consent_except(None);
        }
        tracing::info!(room = %self.record.id, participant = %id, reason = ?reason, "left");
    }

    /// What `subscriber` may not be sent: the clinicians' media during a huddle (for those
    /// who are not clinicians), and everyone's media the care team holds.
    fn blocks_for(&self, subscriber: &Participant) -> Vec<(ParticipantId, MediaKind)> {
        let mut blocked = Vec::new();
        for p in self.participants.iter().filter(|p| p.id != subscriber.id) {
            let huddled = self.huddle.is_on() && p.role.may_admit() && !subscriber.role.may_admit();
            if huddled || p.held.audio {
                blocked.push((p.id.clone(), MediaKind::Audio));
            }
            if huddled || p.held.video {
                blocked.push((p.id.clone(), MediaKind::Video));
            }
        }
        blocked
    }

    /// Tells the media core what each participant may not be sent, where it changed.
    async fn sync_blocks(&mut self) {
        let changes: Vec<(usize, Vec<(ParticipantId, MediaKind)>)> = self
            .participants
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let blocked = self.blocks_for(p);
                (blocked != p.blocked).then_some((i, blocked))
            })
            .collect();
        for (i, blocked) in changes {
            let p = &mut self.participants[i];
            p.blocked = blocked.clone();
            let _ = self
                .media
                .command(SfuCommand::Block {
                    participant: p.id.clone(),
                    blocked,
                })
                .await;
        }
    }

    /// Takes a connected patient or observer out of the room into the waiting room, at its
    /// front, telling them why; false if `target` is not such a participant.
    async fn send_back_person(&mut self, target: &ParticipantId, reason: SentBack) -> bool {
        let Some(pos) = self.participants.iter().position(|p| {
            &p.id == target && !p.role.may_admit() && matches!(p.presence, Presence::Connected(_))
        }) else {
            return false;
        };
        self.announce_arrivals();
        let mut person = self.participants.remove(pos);
        self.metrics.participants.fetch_sub(1, Ordering::Relaxed);
        // Their resume token and access token die with their place in the room.
        person.resume_nonce += 1;
        person.pending_offer = None;
        person.blocked.clear();
        if self.follow.as_ref().is_some_and(|f| &f.presenter == target) {
            self.follow = None;
            self.broadcast_where(
                |_| true,
                Notice::PresentingStopped {
                    presenter: target.clone(),
                },
            );
        }
        let _ = self
            .media
            .command(SfuCommand::RemoveTransport {
                participant: target.clone(),
            })
            .await;
        self.broadcast_except(
            target,
            Notice::ParticipantLeft {
                participant: target.clone(),
                reason: LeaveReason::SentBack,
            },
        );
        if self.participants.is_empty() {
            self.empty_since = Some(self.settings.clock.now());
        }
        let was_patient = person.role == Role::Patient;
        self.lobby.push(Waiter {
            person,
            since: now_unix(),
            sent_back: Some(reason),
            precall: None,
        });
        self.sync_blocks().await;
        if was_patient {
            self.tell_consent_except(None);
        }
        self.tell_queue();
        self.tell_waiting();
        tracing::info!(room = %self.record.id, participant = %target, "sent back to the waiting room");
        true
    }

    /// Whether observers may be present: every patient present agreed (vacuously, when no
    /// patient is present: a teaching session among clinicians).
    /// Whether observers and guests may be present: every patient of the consultation agrees,
    /// those in the room and those the care team sent back to wait (they are still its
    /// patients: the clinicians talking without them are talking about them). A patient who has
    /// not come in yet has not been asked.
    fn observers_allowed(&self) -> bool {
        let agrees = |p: &Participant| p.consents.contains(&ConsentPurpose::ObserverPresent);
        self.participants
            .iter()
            .filter(|p| p.role == Role::Patient)
            .all(agrees)
            && self
                .lobby
                .iter()
                .filter(|w| w.person.role == Role::Patient && w.sent_back.is_some())
                .all(|w| agrees(&w.person))
    }

    /// Observers and guests present without the patients' consent wait until it is given.
    async fn enforce_observer_consent(&mut self) {
        if self.observers_allowed() {
            return;
        }
        let observers: Vec<(ParticipantId, bool)> = self
            .participants
            .iter()
            .filter(|p| p.role.is_third_party())
            .map(|p| (p.id.clone(), matches!(p.presence, Presence::Connected(_))))
            .collect();
        for (id, connected) in observers {
            if !connected || !self.send_back_person(&id, SentBack::AwaitsConsent).await {
                self.remove(&id, LeaveReason::RemovedByCareTeam).await;
            }
        }
    }

    /// What `p` is told of consent.
    fn consent_state_for(&self, p: &Participant) -> ConsentState {
        let patients: Vec<&Participant> = self
            .participants
            .iter()
            .filter(|q| q.role == Role::Patient)
            .collect();
        let in_force = ConsentPurpose::ALL
            .into_iter()
            .filter(|c| !patients.is_empty() && patients.iter().all(|q| q.consents.contains(c)))
            .collect();
        ConsentState {
            in_force,
            yours: (p.role == Role::Patient).then(|| p.consents.iter().copied().collect()),
        }
    }

    /// Tells everyone whose view of consent changed where it stands (but `except`, who is
    /// being welcomed with it).
    fn tell_consent_except(&mut self, except: Option<&ParticipantId>) {
        let states: Vec<ConsentState> = self
            .participants
            .iter()
            .map(|p| self.consent_state_for(p))
            .collect();
        for (p, state) in self.participants.iter_mut().zip(states) {
            if p.consent_told.as_ref() == Some(&state) {
                continue;
            }
            if Some(&p.id) != except {
                p.send(Notice::Consent(state.clone()));
            }
            p.consent_told = Some(state);
        }
    }

    /// A patient gives or withdraws consent: on the record with the words' version, in force
    /// at once (observers wait again when it is withdrawn), and everyone is told.
    async fn consent(
        &mut self,
        participant: ParticipantId,
        conn: u64,
        purpose: ConsentPurpose,
        given: bool,
    ) {
        let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        if p.role != Role::Patient {
            p.send(Notice::refused(
                Problem::Forbidden,
                "consent is the patient's to give",
            ));
            let p = self.find(&participant).expect("present");
            self.refused(p, "consent_not_patient").await;
            return;
        }
        let changed = if given {
            p.consents.insert(purpose)
        } else {
            p.consents.remove(&purpose)
        };
        if !changed {
            return;
        }
        let (role, invite) = (p.role, p.invite.clone());
        let action = if given {
            Action::ConsentGiven
        } else {
            Action::ConsentWithdrawn
        };
        let event = AuditEvent::new(Actor::Participant(participant.clone(), role), action)
            .room(self.id())
            .detail(serde_json::json!({
                "purpose": purpose.as_str(),
                "wording_version": purpose.wording().version,
            }));
        let change = Change::consent(self.id(), &participant, &invite, purpose, given);
        self.services
            .audit
            .submit_or_log(Append::entry(event).with(change))
            .await;
        tracing::info!(room = %self.record.id, participant = %participant, purpose = purpose.as_str(), given, "consent");
        self.enforce_observer_consent().await;
        self.tell_consent_except(None);
        // It also decides what the other institution's clinicians read of the request's
        // documents here.
        if purpose == ConsentPurpose::ExternalSharing {
            self.reread_sharing();
        }
    }

    /// Tells the clinicians how the waiting room stands: those in the room, and the care
    /// team's consoles.
    fn tell_queue(&self) {
        let queue = Notice::Queue(Box::new(self.lobby.queue()));
        self.broadcast_where(|p| p.role.may_admit(), queue);
        let people = self
            .lobby
            .iter()
            .map(|w| WaitingPerson {
                name: w.person.name.clone(),
                role: w.person.role,
                since: w.since,
                sent_back: w.sent_back.is_some(),
            })
            .collect();
        self.services.notifications.room_waiting(self.id(), people);
    }

    /// Tells everyone waiting where they stand.
    fn tell_waiting(&self) {
        self.tell_waiting_except(None);
    }

    /// Tells everyone waiting, but `except` (who is told otherwise), where they stand.
    fn tell_waiting_except(&self, except: Option<&ParticipantId>) {
        let now = now_unix();
        for w in self.lobby.iter().filter(|w| Some(&w.person.id) != except) {
            if let Some(info) = self.lobby.waiting(
                self.id(),
                &self.record.title,
                self.record.slot,
                &w.person.id,
                now,
            ) {
                w.person.send(Notice::Waiting(Box::new(info)));
            }
        }
    }

    /// Someone left the waiting room without being admitted: on the record as gone, and the
    /// queue moves.
    async fn left_waiting(&mut self, w: Waiter, reason: LeaveReason) {
        let event = AuditEvent::new(
            Actor::Participant(w.person.id.clone(), w.person.role),
            Action::Left,
        )
        .room(self.id())
        .detail(serde_json::json!({"reason": reason, "waiting": true}));
        let mut append = Append::entry(event).with(Change::participant_left(&w.person.id));
        // Never let in, and not turned away: their invitation's use is theirs again.
        let never_in = w.sent_back.is_none();
        if never_in && matches!(reason, LeaveReason::Left | LeaveReason::Disconnected) {
            append = append.with(Change::InviteUseReturned {
                invite: w.person.invite.clone(),
                participant: w.person.id.clone(),
            });
        }
        self.services.audit.submit_or_log(append).await;
        tracing::info!(room = %self.record.id, participant = %w.person.id, reason = ?reason, "left the waiting room");
        self.tell_queue();
        self.tell_waiting();
    }

    /// Waiting people whose connection could not take a message leave the queue.
    async fn drop_overflowed_waiters(&mut self) {
        if !self.lobby.iter().any(|w| w.person.overflowed()) {
            return;
        }
        for w in self.lobby.take_where(|w| w.person.overflowed()) {
            w.person.close(Farewell::TooSlow);
            self.left_waiting(w, LeaveReason::Disconnected).await;
        }
    }

    /// Those waiting whose session ended without the room hearing of it (its `Disconnected`
    /// found the room's queue full): someone waiting has no resume token, so nobody comes
    /// back on that connection, and a ghost must not hold a place in the line.
    async fn drop_gone_waiters(&mut self) {
        if !self.lobby.iter().any(|w| w.person.session_gone()) {
            return;
        }
        for w in self.lobby.take_where(|w| w.person.session_gone()) {
            self.left_waiting(w, LeaveReason::Disconnected).await;
        }
    }

    /// A clinician's action on the waiting room. Refused (told, and audited) for those who
    /// may not admit; each action is on the record.
    /// Sets (or, empty, clears) what everyone waiting is told by the clinic, on `by`'s behalf
    /// (audited); the caller tells the waiting room. Why not, for text that breaks the rules.
    async fn set_waiting_message(&mut self, text: &str, by: Actor) -> Result<(), String> {
        let text = text.trim();
        if text.chars().count() > MAX_WAITING_TEXT_CHARS
            || text.chars().any(crate::domain::text::is_hiding_but_newline)
        {
            return Err(format!(
                "a message to the waiting room is at most {MAX_WAITING_TEXT_CHARS} printable characters"
            ));
        }
        self.lobby.message = (!text.is_empty()).then(|| text.to_owned());
        let event = AuditEvent::new(by, Action::WaitingMessage)
            .room(self.id())
            .detail(serde_json::json!({"cleared": text.is_empty()}));
        self.services.audit.record_or_log(event).await;
        Ok(())
    }

    async fn moderate(&mut self, participant: ParticipantId, conn: u64, action: Moderation) {
        let asker = match self.find(&participant).filter(|p| p.is_conn(conn)) {
            Some(p) => Asker::present(p.role),
            // Someone waiting who tries to let themselves (or anyone) in.
            None if self
                .lobby
                .find(&participant)
                .is_some_and(|w| w.person.is_conn(conn)) =>
            {
                Asker::Waiting
            }
            None => return,
        };
        if let Err(refusal) = waiting::authorize(asker) {
            self.moderation_refused(&participant, refusal).await;
            return;
        }
        let Some(role) = self.find(&participant).map(|actor| actor.role) else {
            return;
        };
        let by = Actor::Participant(participant.clone(), role);
        // Beyond the waiting room, the permission table's moderation rows.
        let refusal = match &action {
            Moderation::Huddle(_) | Moderation::Hold { .. } | Moderation::SetRole { .. } => {
                (!role.may_moderate()).then_some(Refusal::NotCareTeam)
            }
            Moderation::Remove { .. } => (!role.may_remove()).then_some(Refusal::NotHost),
            _ => None,
        };
        if let Some(refusal) = refusal {
            self.moderation_refused(&participant, refusal).await;
            return;
        }
        let tell_actor = |room: &Self, problem: Problem, text: String| {
            if let Some(a) = room.find(&participant) {
                a.send(Notice::refused(problem, text));
            }
        };
        // The waiting room's and the huddle's steps, as the state machine decides them.
        let request = match &action {
            Moderation::Decline {
                participant: target,
                ..
            } => Some(Request::Decline(self.place(target))),
            Moderation::SendBack {
                participant: target,
                ..
            } => Some(Request::SendBack(self.place(target))),
            Moderation::Lock(locked) => Some(Request::Lock(*locked)),
            Moderation::Huddle(on) => Some(Request::Huddle(*on)),
            // Admitting is decided in `admit_waiting`, which the department queue uses too.
            _ => None,
        };
        let step = match request.map(|r| waiting::apply(Asker::CareTeam, r, self.facts())) {
            Some(Err(refusal)) => {
                tell_actor(self, refusal.problem(), refusal.to_string());
                return;
            }
            Some(Ok(Step::Unchanged)) => return,
            Some(Ok(step)) => Some(step),
            None => None,
        };
        match action {
            Moderation::Admit(target) => {
                if let Err((problem, text)) = self.admit_waiting(target.as_ref(), by.clone()).await
                {
                    tell_actor(self, problem, text);
                    return;
                }
            }
            Moderation::Decline {
                participant: target,
                reason,
            } => {
                // Decided above: they wait.
                let Some(w) = self.lobby.take(&target) else {
                    return;
                };
                w.person.send(Notice::turned_away(
                    Problem::Declined,
                    waiting_text(&reason),
                    "the clinic could not see you in this consultation",
                ));
                w.person.close(Farewell::Declined);
                let event = AuditEvent::new(by.clone(), Action::WaitingDeclined)
                    .room(self.id())
                    .object("participant", &target);
                self.services.audit.record_or_log(event).await;
                self.left_waiting(w, LeaveReason::Removed).await;
                return;
            }
            Moderation::SendBack {
                participant: target,
                reason,
            } => {
                let reason = SentBack::CareTeam(waiting_text(&reason));
                if !self.send_back_person(&target, reason).await {
                    let refusal = Refusal::CannotSendBack;
                    tell_actor(self, refusal.problem(), refusal.to_string());
                    return;
                }
                let event = AuditEvent::new(by.clone(), Action::WaitingSentBack)
                    .room(self.id())
                    .object("participant", &target);
                self.services.audit.record_or_log(event).await;
                // `send_back_person` told the queue and those waiting already.
                return;
            }
            Moderation::Message(text) => {
                if let Err(why) = self.set_waiting_message(&text, by.clone()).await {
                    tell_actor(self, Problem::Invalid, why);
                    return;
                }
            }
            Moderation::Huddle(_) => {
                let Some(Step::Huddle(active)) = step else {
                    return;
                };
                self.huddle = if active {
                    Huddle::On {
                        by: participant.clone(),
                    }
                } else {
                    Huddle::Off
                };
                self.sync_blocks().await;
                self.broadcast_where(
                    |_| true,
                    Notice::Huddle {
                        active,
                        by: Some(participant.clone()),
                    },
                );
                let action = if active {
                    Action::HuddleStarted
                } else {
                    Action::HuddleEnded
                };
                let event = AuditEvent::new(by.clone(), action).room(self.id());
                self.services.audit.record_or_log(event).await;
                tracing::info!(room = %self.record.id, active, "huddle");
                return;
            }
            Moderation::Hold {
                participant: target,
                held,
            } => {
                let Some(p) = self.find_mut(&target).filter(|p| p.id != participant) else {
                    tell_actor(
                        self,
                        Problem::NotPresent,
                        "nobody else of that id is in the consultation".to_owned(),
                    );
                    return;
                };
                if p.held == held {
                    return;
                }
                p.held = held;
                let view = p.info();
                p.send(Notice::Held {
                    held,
                    by: participant.clone(),
                });
                self.sync_blocks().await;
                self.broadcast_except(&target, Notice::ParticipantUpdated(view));
                let event = AuditEvent::new(by.clone(), Action::ParticipantHeld)
                    .room(self.id())
                    .object("participant", &target)
                    .detail(serde_json::json!({"audio": held.audio, "video": held.video}));
                self.services.audit.record_or_log(event).await;
                return;
            }
            Moderation::Remove {
                participant: target,
                reason,
            } => {
                let Some(p) = self.find(&target).filter(|p| p.id != participant) else {
                    tell_actor(
                        self,
                        Problem::NotPresent,
                        "nobody else of that id is in the consultation".to_owned(),
                    );
                    return;
                };
                if p.account.is_some() {
                    tell_actor(
                        self,
                        Problem::Forbidden,
                        "only someone who came with an invitation link can be removed (clinicians leave the care team)"
                            .to_owned(),
                    );
                    return;
                }
                p.send(Notice::turned_away(
                    Problem::Removed,
                    waiting_text(&reason),
                    "the care team removed you from the consultation",
                ));
                p.close(Farewell::Removed);
                // Their link admits nobody more: at once in this live consultation, and in the
                // database, so that it stays revoked when the room's task stops and starts again
                // (an empty room, a restart) and shows as revoked in the console's list.
                let invite = p.invite.clone();
                self.revoked.insert(invite.clone());
                let stored = match self.db.revoke_invite(self.id(), &invite).await {
                    Ok(()) => true,
                    // Revoked meanwhile through the API: it is, all the same.
                    Err(StorageError::NotFound) => true,
                    Err(e) => {
                        tracing::error!(room = %self.record.id, error = %e, "a removed participant's invitation could not be revoked in storage");
                        false
                    }
                };
                let event = AuditEvent::new(by.clone(), Action::ParticipantRemoved)
                    .room(self.id())
                    .object("participant", &target)
                    .detail(serde_json::json!({"invite": invite, "invite_revoked": stored}));
                self.services.audit.record_or_log(event).await;
                // The link's revocation is an entry of its own, as when it is revoked from the
                // console: a regulator following the invitation finds it under its action.
                if stored {
                    let revoked = AuditEvent::new(by.clone(), Action::InviteRevoked)
                        .room(self.id())
                        .object("invite", &invite)
                        .detail(
                            serde_json::json!({"participants_removed": 1, "by_removal": target}),
                        );
                    self.services.audit.record_or_log(revoked).await;
                }
                self.remove(&target, LeaveReason::RemovedByCareTeam).await;
                return;
            }
            Moderation::SetRole {
                participant: target,
                role,
            } => {
                self.set_role(&participant, by, &target, role).await;
                return;
            }
            Moderation::Lock(_) => {
                let Some(Step::Lock(locked)) = step else {
                    return;
                };
                self.lobby.locked = locked;
                let action = if locked {
                    Action::RoomLocked
                } else {
                    Action::RoomUnlocked
                };
                let event = AuditEvent::new(by.clone(), action).room(self.id());
                self.services.audit.record_or_log(event).await;
            }
        }
        self.tell_queue();
        self.tell_waiting();
    }

    /// Tells `who` (in the room or waiting) why what they asked of the waiting room was
    /// refused, and puts it on the record where it may be misuse (rate-limited by the trail).
    async fn moderation_refused(&self, who: &ParticipantId, refusal: Refusal) {
        let person = self
            .find(who)
            .or_else(|| self.lobby.find(who).map(|w| &w.person));
        let Some(p) = person else {
            return;
        };
        p.send(Notice::refused(refusal.problem(), refusal.to_string()));
        if let Some(reason) = refusal.audit_reason() {
            self.refused(p, reason).await;
        }
    }

    /// Where `id` stands: waiting, in the room, or not here.
    fn place(&self, id: &ParticipantId) -> Place {
        if let Some(w) = self.lobby.find(id) {
            return Place::Waiting {
                role: w.person.role,
            };
        }
        match self.find(id) {
            Some(p) => Place::Present {
                role: p.role,
                connected: matches!(p.presence, Presence::Connected(_)),
            },
            None => Place::Absent,
        }
    }

    /// What the waiting room's state machine needs to know of the room.
    fn facts(&self) -> waiting::Facts {
        waiting::Facts {
            observers_allowed: self.observers_allowed(),
            huddle: self.huddle.is_on(),
            locked: self.lobby.locked,
        }
    }

    /// Ends the consultation. The room waits here for what it persists (the end is rare and
    /// the room is going away; no other room waits with it).
    async fn end(
        &mut self,
        reason: EndReason,
        ended_by: Option<AuditEvent>,
    ) -> Result<(), RoomError> {
        // Joins under way are turned away, messages on their way shown.
        self.settle_all(Phase::Ended).await;
        if let Some(event) = ended_by {
            self.services.audit.record_or_log(event).await;
        }
        for p in &self.participants {
            p.send(Notice::RoomEnded(reason));
            p.close(Farewell::RoomEnded);
        }
        let waiting: Vec<ParticipantId> = self
            .lobby
            .drain()
            .into_iter()
            .map(|w| {
                w.person.send(Notice::RoomEnded(reason));
                w.person.close(Farewell::RoomEnded);
                w.person.id
            })
            .collect();
        if !waiting.is_empty() {
            // Nobody waits in an ended consultation: the consoles' counts go.
            self.services
                .notifications
                .room_waiting(self.id(), Vec::new());
        }
        let ids: Vec<ParticipantId> = self.participants.drain(..).map(|p| p.id).collect();
        let mut changes: Vec<Change> = ids
            .iter()
            .chain(&waiting)
            .map(Change::participant_left)
            .collect();
        // A shutdown ends nothing on the record: the consultation resumes after the restart.
        if reason != EndReason::ServerShutdown {
            changes.push(Change::room_ended(self.id()));
        }
        self.metrics
            .participants
            .fetch_sub(ids.len() as i64, Ordering::Relaxed);
        for id in ids {
            let _ = self
                .media
                .command(SfuCommand::RemoveTransport { participant: id })
                .await;
        }
        self.phase = Phase::Ended;
        if !changes.is_empty() {
            let written = match self.services.audit.submit(Append::rows(changes)).await {
                Ok(durable) => durable.await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::error!(room = %self.record.id, error = %e, "end not stored");
                return Err(RoomError::Audit(e.to_string()));
            }
        }
        tracing::info!(room = %self.record.id, reason = ?reason, "consultation ended");
        Ok(())
    }

    fn welcome(&self, id: &ParticipantId) -> Welcome {
        let me = self.find(id).expect("welcome for a present participant");
        let resume_token = self.key.sign(&Claims {
            kind: TokenKind::Resume,
            sub: id.to_string(),
            room: Some(self.record.id.clone()),
            role: Some(me.role),
            sid: None,
            exp: now_unix() + RESUME_TOKEN_LIFETIME_S,
            nonce: me.resume_nonce,
        });
        Welcome {
            room: self.record.id.clone(),
            title: self.record.title.clone(),
            you: me.info(),
            participants: self
                .participants
                .iter()
                .filter(|p| &p.id != id)
                .map(Participant::info)
                .collect(),
            resume_token,
            resume_window_s: self.settings.resume_window.as_secs(),
            access_token: self.key.sign(&Claims {
                kind: TokenKind::Access,
                sub: id.to_string(),
                room: Some(self.record.id.clone()),
                role: Some(me.role),
                sid: None,
                exp: now_unix() + ACCESS_TOKEN_LIFETIME_S,
                nonce: rand::random(),
            }),
            limits: self.settings.limits,
            documents: self
                .documents
                .iter()
                .filter(|d| self.may_see(me, d))
                .cloned()
                .collect(),
            withheld: self
                .documents
                .iter()
                .filter(|d| me.role.may_view(d.visibility) && !self.may_see(me, d))
                .map(|d| d.id.clone())
                .collect(),
            chat: self
                .chat
                .iter()
                .filter(|m| reaches(m.huddle, me.role))
                .cloned()
                .collect(),
            presenting: self.follow.clone().filter(|_| {
                self.presented_document()
                    .is_some_and(|d| self.may_see(me, d))
            }),
            queue: me.role.may_admit().then(|| self.lobby.queue()),
            huddle: self.huddle.is_on(),
            screen_share: self.screen.clone(),
            consent: self.consent_state_for(me),
            // Under a pseudonym of the participant: the TURN server's logs name nobody.
            ice_servers: self.settings.turn.as_ref().map_or_else(Vec::new, |turn| {
                turn.ice_servers(
                    &self.key.pseudonym(format!("turn {id}").as_bytes()),
                    now_unix(),
                )
            }),
        }
    }

    fn find(&self, id: &ParticipantId) -> Option<&Participant> {
        self.participants.iter().find(|p| &p.id == id)
    }

    fn find_mut(&mut self, id: &ParticipantId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| &p.id == id)
    }

    /// Sends one message, shared, to every participant `to` selects.
    fn broadcast_where(&self, to: impl Fn(&Participant) -> bool, msg: Notice) {
        let msg = Arc::new(msg);
        for p in self.participants.iter().filter(|p| to(p)) {
            p.send_shared(&msg);
        }
    }

    /// Sends to everyone but `except`.
    fn broadcast_except(&self, except: &ParticipantId, msg: Notice) {
        self.broadcast_where(|p| &p.id != except, msg);
    }

    /// Drops the connections that could not take a message: a client whose queue is full is
    /// too slow to keep up (or its session is gone). Each is marked reconnecting, as if its
    /// connection had dropped (it may resume and get a fresh state), and the others are told,
    /// which may in turn find more of them.
    fn drop_overflowed(&mut self) {
        let deadline = self.settings.clock.now() + self.settings.resume_window;
        loop {
            let mut views = Vec::new();
            for p in self.participants.iter_mut().filter(|p| p.overflowed()) {
                if p.too_slow() {
                    self.metrics.slow_clients.fetch_add(1, Ordering::Relaxed);
                }
                p.close(Farewell::TooSlow);
                p.lose_connection(deadline);
                views.push(p.info());
            }
            if views.is_empty() {
                return;
            }
            for view in views {
                tracing::info!(room = %self.record.id, participant = %view.id, "signaling queue full or gone; waiting for resume");
                let id = view.id.clone();
                self.broadcast_except(&id, Notice::ParticipantUpdated(view));
            }
        }
    }

    /// Tells everyone present about the arrivals not yet announced: each member who was here
    /// before them hears of all of them, each arrival of those who came after it (its `joined`
    /// listed the earlier ones). One arrival is a `participant_joined`, several one
    /// `participants_joined`.
    fn announce_arrivals(&mut self) {
        self.arrivals_since = None;
        if self.arrivals.is_empty() {
            return;
        }
        let arrivals = std::mem::take(&mut self.arrivals);
        let views: Vec<_> = arrivals
            .iter()
            .filter_map(|id| self.find(id).map(Participant::info))
            .collect();
        // The message for those who came after the first `from` of the views (by position).
        let message = |from: usize| -> Option<Arc<Notice>> {
            let rest = &views[from.min(views.len())..];
            match rest {
                [] => None,
                [one] => Some(Notice::ParticipantJoined(one.clone())),
                many => Some(Notice::ParticipantsJoined(many.to_vec())),
            }
            .map(Arc::new)
        };
        let everyone = message(0);
        for p in self.participants.iter() {
            let msg = match views.iter().position(|v| v.id == p.id) {
                Some(k) => message(k + 1),
                None => everyone.clone(),
            };
            if let Some(msg) = msg {
                p.send_shared(&msg);
            }
        }
    }
}

/// Answers a command that arrived after the room stopped.
fn refuse(cmd: RoomCommand, phase: Phase) {
    let err = || match phase {
        Phase::Ended => RoomError::Ended,
        Phase::Open => RoomError::Closed,
    };
    match cmd {
        RoomCommand::Join { reply, .. } | RoomCommand::Resume { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        RoomCommand::End { reply, .. } => {
            let _ = reply.send(Err(err()));
        }
        _ => {}
    }
}

/// A reason or message for the waiting room: trimmed, printable, bounded; `None` if empty or
/// not acceptable (the room then says something generic).
fn waiting_text(raw: &str) -> Option<String> {
    let text = raw.trim();
    let ok = !text.is_empty()
        && text.chars().count() <= MAX_WAITING_TEXT_CHARS
        && !text.chars().any(crate::domain::text::is_hiding_but_newline);
    ok.then(|| text.to_owned())
}

/// Whether a chat message reaches someone of `role`: a huddle's (`huddle`, written by a
/// clinician while they conferred) only the clinicians, then and in later histories.
fn reaches(huddle: bool, role: Role) -> bool {
    !huddle || role.may_admit()
}
