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
use super::{Joined, ResumeRef, RoomCommand, RoomError, RoomSettings, SessionLink};
use crate::auth::{Claims, Role, SigningKey, TokenKind, now_unix};
use crate::ids::{ParticipantId, RoomId};
use crate::media::WorkerHandle;
use crate::metrics::Metrics;
use crate::sfu::{AnswerError, FailReason, PublishKinds, SfuCommand, SfuEvent};
use crate::signaling::protocol::{
    EndReason, ErrorCode, LeaveReason, RoomView, ServerMessage, TrackView, Welcome, close,
};
use crate::storage::{Db, RoomRecord};

/// Resume tokens outlive any consultation; what keeps them short-lived is that each works
/// once, and only while its participant is still in the room (see `resume`).
const RESUME_TOKEN_LIFETIME_S: i64 = 24 * 3600;
const TICK: Duration = Duration::from_secs(1);

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
    phase: Phase,
    participants: Vec<Participant>,
    empty_since: Option<Instant>,
}

impl Room {
    pub fn new(
        record: RoomRecord,
        settings: Arc<RoomSettings>,
        key: SigningKey,
        db: Db,
        media: WorkerHandle,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            record,
            settings,
            key,
            db,
            media,
            metrics,
            phase: Phase::Open,
            participants: Vec::new(),
            empty_since: Some(Instant::now()),
        }
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
        while self.phase == Phase::Open {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.handle_command(cmd).await,
                    None => break,
                },
                Some(event) = media_events.recv() => self.handle_media(event).await,
                _ = tick.tick() => {
                    self.expire_reconnecting().await;
                    if self.empty_since.is_some_and(|t| t.elapsed() >= self.settings.idle_stop) {
                        break;
                    }
                }
            }
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
                let view = p.view();
                self.broadcast_except(
                    &participant,
                    ServerMessage::ParticipantUpdated { participant: view },
                );
            }
            RoomCommand::Leave { participant, conn } => {
                if let Some(p) = self.find(&participant).filter(|p| p.is_conn(conn)) {
                    p.close(close::NORMAL, "left");
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
                let result = self.end(reason).await;
                let _ = reply.send(result);
            }
            RoomCommand::Disconnected { participant, conn } => {
                let deadline = Instant::now() + self.settings.resume_window;
                let Some(p) = self.find_mut(&participant).filter(|p| p.is_conn(conn)) else {
                    return;
                };
                p.presence = Presence::Reconnecting { deadline };
                let view = p.view();
                tracing::info!(room = %self.record.id, participant = %participant, "signaling lost; waiting for resume");
                self.broadcast_except(
                    &participant,
                    ServerMessage::ParticipantUpdated { participant: view },
                );
            }
        }
    }

    async fn join(
        &mut self,
        name: String,
        role: Role,
        publish: crate::signaling::protocol::Publish,
        invite: crate::ids::InviteId,
        replaces: Option<ResumeRef>,
        link: SessionLink,
    ) -> Result<Joined, RoomError> {
        if let Some(old) = replaces {
            let same = self
                .find(&old.participant)
                .is_some_and(|p| p.resume_nonce == old.nonce);
            if same {
                if let Some(p) = self.find(&old.participant) {
                    p.close(close::REPLACED, "replaced");
                }
                self.remove(&old.participant, LeaveReason::Replaced).await;
            }
        }
        if self.participants.len() >= self.settings.max_participants {
            return Err(RoomError::Full(self.settings.max_participants));
        }
        let id = ParticipantId::generate();
        let publish = if role.may_publish() {
            publish
        } else {
            Default::default()
        };
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
        let participant = Participant {
            id: id.clone(),
            name,
            role,
            invite,
            publish,
            audio_muted: false,
            video_off: false,
            presence: Presence::Connected(link),
            resume_nonce: 1,
            pending_offer: None,
        };
        let view = participant.view();
        self.participants.push(participant);
        self.metrics.participants.fetch_add(1, Ordering::Relaxed);
        self.empty_since = None;
        self.broadcast_except(&id, ServerMessage::ParticipantJoined { participant: view });
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
        p.close(close::REPLACED, "resumed elsewhere");
        p.resume_nonce += 1;
        p.presence = Presence::Connected(link);
        let pending = p.pending_offer.as_ref().map(|(_, m)| m.clone());
        let view = p.view();
        let id = p.id.clone();
        self.broadcast_except(&id, ServerMessage::ParticipantUpdated { participant: view });
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
            p.send(ServerMessage::error(
                ErrorCode::StaleOffer,
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
                sdp,
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
                let msg = ServerMessage::Offer {
                    offer_id: offer.offer_id,
                    sdp: offer.sdp,
                    tracks: offer
                        .tracks
                        .into_iter()
                        .map(|t| TrackView {
                            mid: t.mid,
                            participant_id: t.participant,
                            kind: match t.kind {
                                MediaKind::Audio => "audio",
                                MediaKind::Video => "video",
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
                    let code = match error {
                        AnswerError::Stale => ErrorCode::StaleOffer,
                        AnswerError::BadSdp(_) => ErrorCode::BadSdp,
                    };
                    p.send(ServerMessage::error(
                        code,
                        "the answer could not be applied",
                    ));
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
                let (code, text) = match reason {
                    FailReason::NeverConnected => (
                        ErrorCode::MediaUnreachable,
                        "the media connection never came up: UDP to the server's media port may be blocked",
                    ),
                    FailReason::Lost => (
                        ErrorCode::MediaLost,
                        "the media connection was lost; join again",
                    ),
                };
                if let Some(p) = self.find(&participant) {
                    p.send(ServerMessage::error(code, text));
                    p.close(code.close_code(), "media failed");
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
                |p| matches!(p.presence, Presence::Reconnecting { deadline } if deadline <= now),
            )
            .map(|p| p.id.clone())
            .collect();
        for id in expired {
            self.remove(&id, LeaveReason::Disconnected).await;
        }
    }

    async fn remove(&mut self, id: &ParticipantId, reason: LeaveReason) {
        let Some(pos) = self.participants.iter().position(|p| &p.id == id) else {
            return;
        };
        self.participants.remove(pos);
        self.metrics.participants.fetch_sub(1, Ordering::Relaxed);
        let _ = self
            .media
            .command(SfuCommand::RemoveTransport {
                participant: id.clone(),
            })
            .await;
        self.broadcast_except(
            id,
            ServerMessage::ParticipantLeft {
                participant_id: id.clone(),
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
            p.send(ServerMessage::RoomEnded { reason });
            p.close(close::ROOM_ENDED, "room ended");
        }
        let ids: Vec<ParticipantId> = self.participants.drain(..).map(|p| p.id).collect();
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
            exp: now_unix() + RESUME_TOKEN_LIFETIME_S,
            nonce: me.resume_nonce,
        });
        Welcome {
            v: crate::signaling::protocol::PROTOCOL_VERSION,
            room: RoomView {
                id: self.record.id.clone(),
                title: self.record.title.clone(),
            },
            you: me.view(),
            participants: self
                .participants
                .iter()
                .filter(|p| &p.id != id)
                .map(Participant::view)
                .collect(),
            resume_token,
            resume_window_s: self.settings.resume_window.as_secs(),
            limits: self.settings.limits,
        }
    }

    fn find(&self, id: &ParticipantId) -> Option<&Participant> {
        self.participants.iter().find(|p| &p.id == id)
    }

    fn find_mut(&mut self, id: &ParticipantId) -> Option<&mut Participant> {
        self.participants.iter_mut().find(|p| &p.id == id)
    }

    /// Sends to everyone but `except`. A participant whose queue is full is too slow to keep
    /// up; it is treated as disconnected (it may resume and get a fresh state).
    fn broadcast_except(&mut self, except: &ParticipantId, msg: ServerMessage) {
        let deadline = Instant::now() + self.settings.resume_window;
        for p in self.participants.iter_mut().filter(|p| &p.id != except) {
            if !p.send(msg.clone()) {
                p.close(close::INTERNAL, "too slow");
                p.presence = Presence::Reconnecting { deadline };
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
