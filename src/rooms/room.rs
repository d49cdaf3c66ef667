//! The room actor: one task per live consultation, the only owner of its participants.
//!
//! State machine: `Open` while the consultation runs, `Ended` once a doctor (or the API) ends
//! it; an open room with nobody in it stops its task after `idle_stop` and is started again on
//! the next join. All changes arrive as commands (from signaling sessions) or media events
//! (from the media worker) and are handled one at a time, so there is no locking.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use str0m::media::MediaKind;
use tokio::sync::mpsc;

use super::participant::{Participant, Presence};
use super::{
    Annotate, EndReason, Farewell, Follow, Joined, LeaveReason, MAX_CHAT_CHARS, Notice,
    OfferedTrack, Presenting, Problem, Publish, ResumeRef, RoomCommand, RoomError, RoomServices,
    RoomSettings, SessionLink, TrackKind, Welcome,
};
use crate::audit::{Action, Actor, AuditEvent, Outcome};
use crate::auth::{Claims, SigningKey, TokenKind};
use crate::documents::DocumentError;
use crate::domain::clock::{now_unix, now_unix_ms};
use crate::domain::ids::{ChatMessageId, ParticipantId, RoomId};
use crate::domain::member::Member;
use crate::domain::role::Role;
use crate::media::WorkerHandle;
use crate::metrics::Metrics;
use crate::sfu::{Answer, AnswerError, FailReason, PublishKinds, SfuCommand, SfuEvent};
use crate::storage::{ChatRecord, Db, DocumentRecord, RoomRecord};

/// Resume tokens outlive any consultation; what keeps them short-lived is that each works
/// once, and only while its participant is still in the room (see `resume`).
const RESUME_TOKEN_LIFETIME_S: i64 = 24 * 3600;
/// Access tokens are likewise honoured only while their participant is in the room.
const ACCESS_TOKEN_LIFETIME_S: i64 = 12 * 3600;
/// Chat messages a joining participant receives in `joined`.
const CHAT_HISTORY: usize = 100;
const TICK: Duration = Duration::from_secs(1);
/// Most arrivals announced in one `participants_joined`, and the longest an arrival waits to be
/// announced while joins keep coming (see `Room::run`).
const MAX_ARRIVALS: usize = 100;
const MAX_ARRIVAL_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Ended,
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
    /// The latest chat messages, for late joiners.
    chat: std::collections::VecDeque<ChatRecord>,
    /// Who presents which document, and where they are in it (follow mode).
    follow: Option<Presenting>,
    /// Participants who joined but are not yet announced to the others, in order of arrival,
    /// and when the first of them came (see `run`).
    arrivals: Vec<ParticipantId>,
    arrivals_since: Option<Instant>,
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
            empty_since: Some(Instant::now()),
            documents: Vec::new(),
            chat: Default::default(),
            follow: None,
            arrivals: Vec::new(),
            arrivals_since: None,
        }
    }

    /// What earlier runs of this room left: its documents and recent chat.
    async fn load(&mut self) -> Result<(), RoomError> {
        self.documents = self.db.documents_in_room(self.id()).await?;
        self.chat = self
            .db
            .recent_chat(self.id(), CHAT_HISTORY as i64)
            .await?
            .into();
        Ok(())
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
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                        let waited = self.arrivals_since.is_some_and(|t| t.elapsed() >= MAX_ARRIVAL_WAIT);
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
                _ = tick.tick() => {
                    self.announce_arrivals();
                    self.expire_reconnecting().await;
                    if self.empty_since.is_some_and(|t| t.elapsed() >= self.settings.idle_stop) {
                        break;
                    }
                }
            }
            self.drop_overflowed();
        }
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
                publish,
                invite,
                replaces,
                link,
                reply,
            } => {
                let result = self.join(name, role, publish, invite, replaces, link).await;
                let _ = reply.send(result);
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
            RoomCommand::Leave { participant, conn } => {
                // Also from a connection the room already found gone: the session sent its
                // `leave` before it closed, and the room may have noticed the close first.
                if let Some(p) = self.find(&participant).filter(|p| p.is_or_was_conn(conn)) {
                    p.close(Farewell::Left);
                    self.remove(&participant, LeaveReason::Left).await;
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
                    let _ = reply.send(Err(RoomError::Forbidden));
                    return;
                }
                if let Some(p) = by.as_ref().and_then(|(pid, _)| self.find(pid)) {
                    let event = self.audit(p, Action::RoomEnded).object("room", self.id());
                    self.services.audit.record_or_log(event).await;
                }
                let result = self.end(reason).await;
                let _ = reply.send(result);
            }
            RoomCommand::Disconnected { participant, conn } => {
                let deadline = Instant::now() + self.settings.resume_window;
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
                let member = self.find(&participant).map(|p| Member {
                    participant: p.id.clone(),
                    invite: p.invite.clone(),
                    role: p.role,
                    name: p.name.clone(),
                });
                let _ = reply.send(member);
            }
            RoomCommand::DocumentShared { document } => {
                if self.documents.iter().any(|d| d.id == document.id) {
                    return;
                }
                let msg = Notice::DocumentShared(document.clone());
                let visibility = document.visibility;
                self.documents.push(document);
                self.broadcast_where(|p| p.role.may_view(visibility), msg);
            }
            RoomCommand::RecordChanged { record } => {
                let msg = Notice::RecordUpdated(record.clone());
                self.broadcast_where(|p| crate::records::may_read(p.role, &record.record), msg);
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
            } => self.follow(participant, conn, follow),
            RoomCommand::Annotate {
                participant,
                conn,
                annotate,
            } => self.annotate(participant, conn, annotate).await,
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
            return;
        }
        if text.is_empty() || text.chars().count() > MAX_CHAT_CHARS {
            p.send(Notice::refused(
                Problem::Invalid,
                format!("a chat message must be 1 to {MAX_CHAT_CHARS} characters"),
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
        };
        // Persisted before anyone sees it: what was said is part of the consultation record.
        if let Err(e) = self.db.insert_chat(self.id(), &message).await {
            tracing::error!(room = %self.record.id, error = %e, "chat message not stored");
            p.send(Notice::refused(
                Problem::Internal,
                "the message could not be stored; try again",
            ));
            return;
        }
        if self.chat.len() == CHAT_HISTORY {
            self.chat.pop_front();
        }
        self.chat.push_back(message.clone());
        self.broadcast_where(|_| true, Notice::Chat(message));
    }

    fn follow(&mut self, participant: ParticipantId, conn: u64, follow: Follow) {
        let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        if !p.role.may_annotate() {
            p.send(Notice::refused(
                Problem::Forbidden,
                "your role may not present documents",
            ));
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
        let Some(visibility) = self
            .documents
            .iter()
            .find(|d| d.id == doc_id)
            .map(|d| d.visibility)
            .filter(|v| p.role.may_view(*v))
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
        self.follow = Some(view.clone());
        self.broadcast_where(
            |q| q.id != participant && q.role.may_view(visibility),
            Notice::Presenting(Box::new(view)),
        );
    }

    fn presented_visibility(&self) -> Option<crate::domain::role::Visibility> {
        let id = self.follow.as_ref()?.position.document_id.as_ref()?;
        self.documents
            .iter()
            .find(|d| &d.id == id)
            .map(|d| d.visibility)
    }

    async fn annotate(&mut self, participant: ParticipantId, conn: u64, a: Annotate) {
        let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        let member = Member {
            participant: p.id.clone(),
            invite: p.invite.clone(),
            role: p.role,
            name: p.name.clone(),
        };
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
                let visibility = doc.visibility;
                self.broadcast_where(
                    |q| q.role.may_view(visibility),
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
                self.services.audit.record_or_log(event).await;
            }
        }
    }

    async fn join(
        &mut self,
        name: String,
        role: Role,
        publish: Publish,
        invite: crate::domain::ids::InviteId,
        replaces: Option<ResumeRef>,
        link: SessionLink,
    ) -> Result<Joined, RoomError> {
        if let Some(old) = replaces {
            let same = self
                .find(&old.participant)
                .is_some_and(|p| p.resume_nonce == old.nonce);
            if same {
                if let Some(p) = self.find(&old.participant) {
                    p.close(Farewell::Replaced);
                }
                self.remove(&old.participant, LeaveReason::Replaced).await;
            }
        }
        // The room decides what a role may do; signaling only carries the request.
        if !role.may_publish() && (publish.audio || publish.video) {
            return Err(RoomError::MayNotPublish(role));
        }
        if self.participants.len() >= self.settings.max_participants {
            return Err(RoomError::Full(self.settings.max_participants));
        }
        let id = ParticipantId::generate();
        // Recorded before they are let in: whoever is in a consultation is on its record.
        self.db
            .participant_joined(self.id(), &id, &invite, role, &name)
            .await?;
        self.services
            .audit
            .record(
                AuditEvent::new(Actor::Participant(id.clone(), role), Action::Joined)
                    .room(self.id())
                    .object("invite", &invite),
            )
            .await
            .map_err(|e| RoomError::Audit(e.to_string()))?;
        self.media
            .command(SfuCommand::AddTransport {
                room: self.id().clone(),
                participant: id.clone(),
                publish: PublishKinds {
                    audio: publish.audio,
                    video: publish.video,
                },
                subscribe: role.may_subscribe(),
            })
            .await
            .map_err(|_| RoomError::Closed)?;
        let participant = Participant::new(id.clone(), name, role, invite, publish, link);
        self.participants.push(participant);
        self.metrics.participants.fetch_add(1, Ordering::Relaxed);
        self.empty_since = None;
        // Announced by `run`, alone or with whoever else is arriving.
        self.arrivals_since.get_or_insert_with(Instant::now);
        self.arrivals.push(id.clone());
        tracing::info!(room = %self.record.id, participant = %id, invite = %self.find(&id).map(|p| p.invite.to_string()).unwrap_or_default(), role = role.as_str(), "joined");
        Ok(Joined {
            welcome: self.welcome(&id),
            participant: id,
        })
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
            welcome,
        })
    }

    async fn answer(&mut self, participant: ParticipantId, conn: u64, offer_id: u64, sdp: String) {
        let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
            return;
        };
        if p.pending_offer.as_ref().map(|(id, _)| *id) != Some(offer_id) {
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

    async fn handle_media(&mut self, event: SfuEvent) {
        match event {
            SfuEvent::Offer {
                participant, offer, ..
            } => {
                let Some(p) = self.find_mut(&participant) else {
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
                        })
                        .collect(),
                };
                p.pending_offer = Some((offer.offer_id, msg.clone()));
                p.send(msg);
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
                tracing::info!(room = %self.record.id, participant = %participant, "media connected");
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
        }
    }

    async fn expire_reconnecting(&mut self) {
        let now = Instant::now();
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

    async fn remove(&mut self, id: &ParticipantId, reason: LeaveReason) {
        // `run` announces waiting arrivals before anything but a join; a join that replaces an
        // earlier connection removes from inside, so the leave must not overtake them here.
        self.announce_arrivals();
        let Some(pos) = self.participants.iter().position(|p| &p.id == id) else {
            return;
        };
        let gone = self.participants.remove(pos);
        self.metrics.participants.fetch_sub(1, Ordering::Relaxed);
        if let Err(e) = self.db.participant_left(id).await {
            tracing::error!(room = %self.record.id, error = %e, "leave not stored");
        }
        let event = self
            .audit(&gone, Action::Left)
            .detail(serde_json::json!({"reason": reason}));
        self.services.audit.record_or_log(event).await;
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
            self.empty_since = Some(Instant::now());
        }
        tracing::info!(room = %self.record.id, participant = %id, reason = ?reason, "left");
    }

    async fn end(&mut self, reason: EndReason) -> Result<(), RoomError> {
        for p in &self.participants {
            p.send(Notice::RoomEnded(reason));
            p.close(Farewell::RoomEnded);
        }
        let ids: Vec<ParticipantId> = self.participants.drain(..).map(|p| p.id).collect();
        for id in &ids {
            if let Err(e) = self.db.participant_left(id).await {
                tracing::error!(room = %self.record.id, error = %e, "leave not stored");
            }
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
        if reason == EndReason::EndedByDoctor {
            self.db.end_room(self.id()).await?;
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
                .filter(|d| me.role.may_view(d.visibility))
                .cloned()
                .collect(),
            chat: self.chat.iter().cloned().collect(),
            presenting: self.follow.clone().filter(|_| {
                self.presented_visibility()
                    .is_some_and(|v| me.role.may_view(v))
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
        let deadline = Instant::now() + self.settings.resume_window;
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
