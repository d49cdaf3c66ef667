//! One client's signaling connection, from the first `join` to the close.
//!
//! States: awaiting `join`/`resume` (with a deadline), then in a room. Every protocol error
//! becomes a typed `error` message; fatal ones are followed by a close with the code from
//! [`ErrorCode::close_code`]. Nothing a client sends can panic the server or stall a room: room
//! commands go through bounded queues and a slow client only loses its own connection.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, Stream, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::SignalingContext;
use super::invitation;
use super::limits::RateLimiter;
use super::net_check::CheckSlot;
use super::protocol::{
    ClientMessage, ErrorCode, Join, MAX_DOWN_ESTIMATE_KBPS, PROTOCOL_VERSION, ParseError, Resume,
    ServerMessage, Welcome, close,
};
use super::write_deadline::Deadlined;
use crate::audit::{Action, Actor, AuditEvent};
use crate::auth::{AuthError, TokenKind};
use crate::domain::clock::now_unix;
use crate::domain::ids::{InstitutionId, InviteId, ParticipantId, RoomId, SessionId, UserId};
use crate::domain::organisation::clinician_label;
use crate::domain::text::display_name;
use crate::rooms::{
    self, Entry, Joined, Moderation, Outbound, ResumeRef, RoomCommand, RoomError, RoomHandle,
    SESSION_QUEUE, SessionLink,
};
use crate::storage::Invite;

/// Malformed or unknown messages tolerated before the connection is closed.
const MAX_BAD_MESSAGES: u32 = 5;
/// Most queued messages written to the socket together before a flush.
const WRITE_BATCH: usize = 64;
/// How long an ending session waits for room in its room's queue to say it is gone.
const DISCONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const MAX_NAME_CHARS: usize = 64;

/// A protocol-level refusal: the code the client sees and a human text.
type Refusal = (ErrorCode, String);

enum State {
    AwaitingJoin,
    InRoom {
        room: RoomHandle,
        participant: ParticipantId,
    },
}

/// What the loop does after handling one message.
enum Flow {
    Continue,
    /// Close with this code; tell the room we are gone unless it already knows.
    Close {
        code: u16,
        room_knows: bool,
    },
}

struct Session {
    ctx: SignalingContext,
    conn: u64,
    state: State,
    /// Kept only until joined: from then on the room holds the one sender, so when the room
    /// drops this connection (a resume elsewhere, a queue overflow, a leave) the queue closes
    /// and the session ends.
    link_tx: Option<mpsc::Sender<Outbound>>,
    bad_messages: u32,
    /// A pseudonym of the client's address, for the audit trail (never the address).
    client: String,
    /// When the invitation of a join refused as `invite_not_yet` opens (sent with the error).
    opens_at: Option<i64>,
    /// The pre-call network check, while waiting.
    check: CheckSlot,
}

/// Runs a connection to its end. `socket` is any stream of WebSocket messages with a sink for
/// them (axum's WebSocket at the edge; a pair of channels in a test); `client` is a pseudonym
/// of the client's address.
pub async fn run_session<S, E>(socket: S, ctx: SignalingContext, conn: u64, client: String)
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    let metrics = ctx.metrics.clone();
    metrics
        .signaling_connections
        .fetch_add(1, Ordering::Relaxed);
    run(socket, ctx, conn, client).await;
    metrics
        .signaling_connections
        .fetch_sub(1, Ordering::Relaxed);
}

async fn run<S, E>(socket: S, ctx: SignalingContext, conn: u64, client: String)
where
    S: Stream<Item = Result<Message, E>> + Sink<Message> + Unpin,
{
    let errors = ctx.errors.clone();
    let to_frame = |msg: &ServerMessage| {
        if let ServerMessage::Error { code, .. } = msg {
            errors.count(*code);
        }
        text_frame(msg)
    };
    let notice_frame = |notice: &rooms::Notice| to_frame(&ServerMessage::from_notice(notice));
    let (sink, mut stream) = socket.split();
    let mut sink = Deadlined::new(sink, ctx.settings.write_timeout);
    let (link_tx, mut link_rx) = mpsc::channel(SESSION_QUEUE);
    let settings = ctx.settings.clone();
    let mut limiter = RateLimiter::new(
        settings.messages_per_second,
        settings.message_burst,
        Instant::now(),
    );
    let join_deadline = tokio::time::Instant::now() + settings.join_timeout;
    let check = CheckSlot::new(ctx.metrics.clone());
    let mut session = Session {
        ctx,
        conn,
        state: State::AwaitingJoin,
        link_tx: Some(link_tx),
        bad_messages: 0,
        client,
        opens_at: None,
        check,
    };

    let flow = loop {
        let awaiting = matches!(session.state, State::AwaitingJoin);
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                        break Flow::Close { code: close::NORMAL, room_knows: false };
                    }
                    Some(Ok(Message::Text(t))) => {
                        session.ctx.metrics.signaling_messages.fetch_add(1, Ordering::Relaxed);
                        t
                    }
                    Some(Ok(Message::Binary(_))) => {
                        // Fatal, unlike other bad messages: the connection closes (1003) at once.
                        let msg = ServerMessage::Error {
                            code: ErrorCode::BadMessage,
                            message: "binary frames are not part of the protocol".into(),
                            fatal: true,
                            opens_at: None,
                            clinic_reason: None,
                        };
                        let _ = sink.send(to_frame(&msg)).await;
                        break Flow::Close { code: close::UNSUPPORTED_DATA, room_knows: false };
                    }
                    Some(Ok(_)) => continue, // ping/pong: answered by the WebSocket layer
                };
                let mut replies = Vec::new();
                let flow = if text.len() > settings.max_message_bytes {
                    session.refuse(&mut replies, (ErrorCode::MessageTooLarge, format!("messages are limited to {} bytes", settings.max_message_bytes)))
                } else if !limiter.allow(Instant::now()) {
                    session.refuse(&mut replies, (ErrorCode::RateLimited, format!("more than {} messages per second", settings.messages_per_second)))
                } else {
                    session.handle_text(&text, &mut replies).await
                };
                let mut written = true;
                for msg in replies {
                    if sink.send(to_frame(&msg)).await.is_err() {
                        written = false;
                        break;
                    }
                }
                if let Flow::Close { .. } = flow {
                    break flow;
                }
                // Gone, or not reading (the write's deadline passed): as if it dropped.
                if !written {
                    break Flow::Close { code: close::NORMAL, room_knows: false };
                }
            }
            out = link_rx.recv(), if session.link_tx.is_none() => match out {
                Some(Outbound::Message(msg)) => {
                    // Whatever else is already queued goes out in the same write: one TLS
                    // record and one system call for a burst (a lecture filling up queues an
                    // announcement per arrival for everyone) instead of one per message.
                    let mut close = None;
                    let mut written = sink.feed(notice_frame(&msg)).await.is_ok();
                    if let Some(ended) = session.check.on_notice(&msg) {
                        written = written && sink.feed(to_frame(&ended)).await.is_ok();
                    }
                    for _ in 1..WRITE_BATCH {
                        if !written {
                            break;
                        }
                        match link_rx.try_recv() {
                            Ok(Outbound::Message(msg)) => {
                                written = sink.feed(notice_frame(&msg)).await.is_ok();
                                if let Some(ended) = session.check.on_notice(&msg) {
                                    written = written && sink.feed(to_frame(&ended)).await.is_ok();
                                }
                            }
                            Ok(Outbound::Close(farewell)) => {
                                close = Some(close::of_farewell(farewell));
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if !written || sink.flush().await.is_err() {
                        break Flow::Close { code: close::NORMAL, room_knows: false };
                    }
                    if let Some(code) = close {
                        break Flow::Close { code, room_knows: true };
                    }
                }
                Some(Outbound::Close(farewell)) => break Flow::Close { code: close::of_farewell(farewell), room_knows: true },
                // The room let go of this connection without a word: it was too slow to keep up.
                None => break Flow::Close { code: close::INTERNAL, room_knows: true },
            },
            // The network check's offer, or its end (failed, out of time).
            msg = session.check.next() => {
                if sink.send(to_frame(&msg)).await.is_err() {
                    break Flow::Close { code: close::NORMAL, room_knows: false };
                }
            }
            _ = tokio::time::sleep_until(join_deadline), if awaiting => {
                let msg = ServerMessage::error(ErrorCode::NotJoined, "no join within the time allowed");
                let _ = sink.send(to_frame(&msg)).await;
                break Flow::Close { code: ErrorCode::NotJoined.close_code(), room_knows: false };
            }
        }
    };

    let Flow::Close { code, room_knows } = flow else {
        unreachable!("the loop only breaks with Close")
    };
    if let State::InRoom { room, participant } = &session.state {
        if !room_knows {
            // Waits for room in the room's queue (a state change, never dropped): a little,
            // not forever; should the room be that far behind, its tick finds the ended
            // session all the same.
            let _ = tokio::time::timeout(
                DISCONNECT_WAIT,
                room.send(RoomCommand::Disconnected {
                    participant: participant.clone(),
                    conn,
                }),
            )
            .await;
        } else {
            // Deliver what the room queued before its close (e.g. `room_ended`).
            while let Ok(Outbound::Message(msg)) = link_rx.try_recv() {
                let _ = sink.send(notice_frame(&msg)).await;
            }
        }
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(""),
        })))
        .await;
    let _ = sink.close().await;
}

fn text_frame(msg: &ServerMessage) -> Message {
    Message::Text(msg.to_json().into())
}

impl Session {
    /// Puts a refused join or resume on the audit trail when it may be misuse: a forged token
    /// or one for another room, a revoked invitation, a role asking for what it may not have.
    /// (Full rooms are ordinary; an expired patient's link is on its invitation's trail as
    /// `invite.refused`, from `join`.) Rate-limited per client by the trail.
    async fn audit_refusal(&self, step: &'static str, (code, _): &Refusal) {
        let reason = match code {
            ErrorCode::InvalidToken => "signaling_invalid_token",
            ErrorCode::InviteRevoked => "signaling_revoked_invite",
            ErrorCode::Forbidden => "signaling_forbidden",
            _ => return,
        };
        self.audit_misuse(step, *code, reason).await;
    }

    /// An `access.denied` entry for a refusal at `step` that may be misuse, naming the client
    /// by its pseudonym only; rate-limited per client by the trail.
    async fn audit_misuse(&self, step: &'static str, code: ErrorCode, reason: &'static str) {
        let event = AuditEvent::new(Actor::Unknown, Action::AccessDenied).detail(json!({
            "step": step,
            "code": code.as_str(),
            "client": self.client,
        }));
        self.ctx
            .rooms
            .audit()
            .refused(&self.client, reason, event)
            .await;
    }

    /// Refuses a network check, on the audit trail when it may be misuse (rate-limited per
    /// client by the trail).
    async fn refuse_check(
        &mut self,
        replies: &mut Vec<ServerMessage>,
        refused: super::net_check::Refused,
    ) -> Flow {
        if let Some(reason) = refused.audit {
            self.audit_misuse("net_check", refused.code, reason).await;
        }
        self.refuse(replies, (refused.code, refused.text))
    }

    /// Queues an error; fatal errors end the connection.
    fn refuse(&mut self, replies: &mut Vec<ServerMessage>, (code, text): Refusal) -> Flow {
        replies.push(ServerMessage::error(code, text).opening_at(self.opens_at.take()));
        if code.is_fatal() {
            Flow::Close {
                code: code.close_code(),
                room_knows: false,
            }
        } else {
            Flow::Continue
        }
    }

    async fn handle_text(&mut self, text: &str, replies: &mut Vec<ServerMessage>) -> Flow {
        let started = Instant::now();
        let msg = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(e) => {
                self.bad_messages += 1;
                let code = match e {
                    ParseError::Malformed(_) => ErrorCode::BadMessage,
                    ParseError::UnknownType(_) => ErrorCode::UnknownType,
                };
                if self.bad_messages > MAX_BAD_MESSAGES {
                    replies.push(ServerMessage::error(
                        ErrorCode::BadMessage,
                        "too many invalid messages",
                    ));
                    return Flow::Close {
                        code: close::POLICY,
                        room_knows: false,
                    };
                }
                return self.refuse(replies, (code, e.to_string()));
            }
        };
        match (&self.state, msg) {
            (State::AwaitingJoin, ClientMessage::Join(join)) => match self.join(join).await {
                Ok((room, joined)) => {
                    self.ctx.metrics.observe_join(started.elapsed());
                    replies.push(match &joined.entry {
                        Entry::Admitted(welcome) => {
                            ServerMessage::Joined(Box::new(Welcome::from_room(welcome)))
                        }
                        // Let in later: the room then sends `joined` over the link.
                        Entry::Waiting(waiting) => {
                            self.check.entered_waiting();
                            ServerMessage::Waiting(Box::new(waiting.as_ref().into()))
                        }
                    });
                    self.link_tx = None;
                    self.state = State::InRoom {
                        room,
                        participant: joined.participant,
                    };
                    Flow::Continue
                }
                Err(refusal) => {
                    self.audit_refusal("join", &refusal).await;
                    self.refuse(replies, refusal)
                }
            },
            (State::AwaitingJoin, ClientMessage::Resume(resume)) => match self.resume(resume).await
            {
                Ok((room, joined)) => {
                    let Entry::Admitted(welcome) = &joined.entry else {
                        unreachable!("a resume is into the room, never into its waiting room")
                    };
                    replies.push(ServerMessage::Resumed(Box::new(Welcome::from_room(
                        welcome,
                    ))));
                    self.link_tx = None;
                    self.state = State::InRoom {
                        room,
                        participant: joined.participant,
                    };
                    Flow::Continue
                }
                Err(refusal) => {
                    self.audit_refusal("resume", &refusal).await;
                    self.refuse(replies, refusal)
                }
            },
            (State::AwaitingJoin, ClientMessage::Ping(p)) => {
                replies.push(ServerMessage::Pong { id: p.id });
                Flow::Continue
            }
            (State::AwaitingJoin, other) => self.refuse(
                replies,
                (
                    ErrorCode::NotJoined,
                    format!("`{}` before `join`", other.type_name()),
                ),
            ),
            (State::InRoom { .. }, ClientMessage::Join(_) | ClientMessage::Resume(_)) => self
                .refuse(
                    replies,
                    (
                        ErrorCode::AlreadyJoined,
                        "this connection has joined already".into(),
                    ),
                ),
            (State::InRoom { .. }, ClientMessage::NetCheck) => {
                if let Err(refused) = self.check.start(&self.ctx.net_checks).await {
                    return self.refuse_check(replies, refused).await;
                }
                Flow::Continue
            }
            (State::InRoom { .. }, ClientMessage::NetCheckAnswer(a)) => {
                if let Err(refused) = self.check.answer(a.offer_id, &a.sdp).await {
                    return self.refuse_check(replies, refused).await;
                }
                Flow::Continue
            }
            (State::InRoom { .. }, ClientMessage::NetCheckStop) => {
                replies.extend(self.check.stop());
                Flow::Continue
            }
            (State::InRoom { room, participant }, msg) => {
                let (room, participant) = (room.clone(), participant.clone());
                self.in_room(room, participant, msg, replies).await
            }
        }
    }

    async fn in_room(
        &mut self,
        room: RoomHandle,
        participant: ParticipantId,
        msg: ClientMessage,
        replies: &mut Vec<ServerMessage>,
    ) -> Flow {
        let conn = self.conn;
        let cmd = match msg {
            ClientMessage::Answer(a) => RoomCommand::Answer {
                participant,
                conn,
                offer_id: a.offer_id,
                sdp: a.sdp,
            },
            ClientMessage::MediaState(state) => RoomCommand::MediaState {
                participant,
                conn,
                state: state.into(),
            },
            ClientMessage::Leave => RoomCommand::Leave { participant, conn },
            ClientMessage::IceRestart => RoomCommand::IceRestart { participant, conn },
            ClientMessage::VideoSizes(v) => RoomCommand::VideoSizes {
                participant,
                conn,
                sizes: v.sizes.into_iter().map(Into::into).collect(),
            },
            ClientMessage::Chat(chat) => RoomCommand::Chat {
                participant,
                conn,
                text: chat.text,
            },
            ClientMessage::Follow(follow) => RoomCommand::Follow {
                participant,
                conn,
                follow: follow.into(),
            },
            ClientMessage::Annotate(annotate) => RoomCommand::Annotate {
                participant,
                conn,
                annotate: annotate.into(),
            },
            ClientMessage::Admit(a) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Admit(a.participant_id),
            },
            ClientMessage::Decline(m) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Decline {
                    participant: m.participant_id,
                    reason: m.reason,
                },
            },
            ClientMessage::SendBack(m) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::SendBack {
                    participant: m.participant_id,
                    reason: m.reason,
                },
            },
            ClientMessage::WaitingMessage(m) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Message(m.text),
            },
            ClientMessage::Lock(l) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Lock(l.locked),
            },
            ClientMessage::Huddle(h) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Huddle(h.active),
            },
            ClientMessage::Hold(h) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Hold {
                    participant: h.participant_id,
                    held: rooms::Publish {
                        audio: h.audio,
                        video: h.video,
                    },
                },
            },
            ClientMessage::ScreenShare(s) => RoomCommand::ScreenShare {
                participant,
                conn,
                active: s.active,
            },
            // Agreeing to words other than the current ones is no consent to these: nothing is
            // recorded, and the page is told to show the new ones (withdrawing needs no words).
            ClientMessage::Consent(c)
                if c.given
                    && c.wording_version
                        .as_deref()
                        .is_some_and(|v| v != c.purpose.wording().version) =>
            {
                return self.refuse(
                    replies,
                    (
                        ErrorCode::WordingChanged,
                        "the words you agreed to have been revised; read them again".into(),
                    ),
                );
            }
            ClientMessage::Consent(c) => RoomCommand::Consent {
                participant,
                conn,
                purpose: c.purpose,
                given: c.given,
            },
            ClientMessage::Remove(m) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::Remove {
                    participant: m.participant_id,
                    reason: m.reason,
                },
            },
            ClientMessage::SetRole(r) => RoomCommand::Moderate {
                participant,
                conn,
                action: Moderation::SetRole {
                    participant: r.participant_id,
                    role: r.role,
                },
            },
            ClientMessage::Precall(p) => match precall_report(p) {
                Ok(report) => RoomCommand::Precall {
                    participant,
                    conn,
                    report,
                },
                Err(text) => return self.refuse(replies, (ErrorCode::BadMessage, text.into())),
            },
            ClientMessage::EndRoom => {
                let (reply, rx) = oneshot::channel();
                if room
                    .send(RoomCommand::End {
                        by: Some((participant, conn)),
                        reason: rooms::EndReason::EndedByDoctor,
                        reply,
                    })
                    .await
                    .is_err()
                {
                    return self.refuse(
                        replies,
                        (ErrorCode::RoomEnded, "the consultation has ended".into()),
                    );
                }
                return match rx.await {
                    Ok(Ok(())) | Err(_) => Flow::Continue, // the room closes us with 4000
                    Ok(Err(e)) => self.refuse(replies, room_refusal(e)),
                };
            }
            ClientMessage::Ping(p) => {
                replies.push(ServerMessage::Pong { id: p.id });
                return Flow::Continue;
            }
            ClientMessage::Join(_)
            | ClientMessage::Resume(_)
            | ClientMessage::NetCheck
            | ClientMessage::NetCheckAnswer(_)
            | ClientMessage::NetCheckStop => {
                unreachable!("handled by the caller")
            }
        };
        if room.send(cmd).await.is_err() {
            return self.refuse(
                replies,
                (ErrorCode::RoomEnded, "the consultation has ended".into()),
            );
        }
        Flow::Continue
    }

    fn link(&self) -> Result<SessionLink, Refusal> {
        let tx = self.link_tx.clone().ok_or((
            ErrorCode::AlreadyJoined,
            "this connection has joined already".to_string(),
        ))?;
        Ok(SessionLink {
            conn: self.conn,
            tx,
        })
    }

    async fn join(&mut self, join: Join) -> Result<(RoomHandle, Joined), Refusal> {
        if join.v != PROTOCOL_VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!("this server speaks version {PROTOCOL_VERSION}"),
            ));
        }
        // Signature and kind here; expiry once the invitation is read (below).
        let claims = self
            .ctx
            .key
            .decode(&join.token, TokenKind::Invite)
            .map_err(token_refusal)?;
        let (Some(room_id), Some(role), Some(invite_id)) = (
            claims.room.clone(),
            claims.role,
            InviteId::parse(&claims.sub),
        ) else {
            return Err(token_refusal(AuthError::InvalidToken));
        };
        let invite = self
            .ctx
            .db
            .invite(&invite_id)
            .await
            .map_err(|_| (ErrorCode::Internal, "storage unavailable".to_string()))?
            .filter(|i| i.room_id == room_id && i.role == role)
            .ok_or_else(|| token_refusal(AuthError::InvalidToken))?;
        // A patient's link lives as long as its invitation's window, which moves with the
        // consultation's time (a visit rescheduled later), not as long as the token said when
        // it was made; a care-team seat's token keeps its own short life.
        let until = if invite.account.is_some() {
            claims.exp
        } else {
            invite.expires_at
        };
        if let Err(e) = claims.within(until, now_unix()) {
            // A patient's link tried after its window: on the invitation's trail (issue 17:
            // invitations failed), rate-limited per client like every refusal.
            if invite.account.is_none() {
                self.ctx
                    .rooms
                    .audit()
                    .invite_refused(&invite, "invite_expired", &self.client, None)
                    .await;
            }
            return Err(token_refusal(e));
        }
        if invite.revoked_at.is_some() {
            // On the invitation's trail too, with its room (issue 17: invitations failed).
            self.ctx
                .rooms
                .audit()
                .invite_refused(&invite, "invite_revoked", &self.client, None)
                .await;
            let message = if invite.account.is_some() {
                "you are no longer on this consultation's care team"
            } else {
                "this invite link was revoked"
            };
            return Err((ErrorCode::InviteRevoked, message.into()));
        }
        // A care-team seat: the name shown comes from the account, never from what was typed,
        // and the seat is honoured only while the session that took its token is open (and
        // ends with it: `rooms/room/seats.rs`).
        let (name, seat) = match (&invite.account, &claims.sid) {
            (Some(account), Some(session)) => {
                let (name, institution) = self.seat_name(account, session).await?;
                let seat = Seat {
                    institution: Some(institution),
                    session: Some(session.clone()),
                };
                (name, seat)
            }
            // A link made for a doctor or a specialist before clinicians had accounts (an
            // older release made them): whoever holds it would enter the care team under a
            // name they type. Clinicians enter from their console now.
            (None, None) if role.is_clinician() => {
                return Err((
                    ErrorCode::InviteRevoked,
                    "links for doctors and specialists no longer admit anyone: sign in and \
                     enter the consultation from your console"
                        .into(),
                ));
            }
            (None, None) => {
                let name = display_name(&join.name, MAX_NAME_CHARS).map_err(|e| {
                    (
                        ErrorCode::InvalidName,
                        format!("invalid display name: {e} (at most {MAX_NAME_CHARS} characters)"),
                    )
                })?;
                let link = Seat {
                    institution: None,
                    session: None,
                };
                (name, link)
            }
            _ => return Err(token_refusal(AuthError::InvalidToken)),
        };
        let name = name.as_str();
        let replaces = join
            .replaces
            .as_deref()
            .and_then(|t| self.resume_ref(t, Some(&room_id)).ok())
            .map(|(_, r)| r);
        // The invitation's window and uses (`invitation.rs`): a use is taken now and given
        // back if the room refuses the join.
        let ticket = invitation::admit(&self.ctx, &invite, replaces.as_ref(), &self.client)
            .await
            .map_err(|refused| {
                self.opens_at = refused.opens_at;
                (refused.code, refused.message)
            })?;
        let result = self
            .enter_room(&room_id, name, &join, &invite, seat, replaces)
            .await;
        invitation::settle(&self.ctx, ticket, &result, &self.client).await;
        result
    }

    /// Asks the room to let the participant in.
    async fn enter_room(
        &mut self,
        room_id: &RoomId,
        name: &str,
        join: &Join,
        invite: &Invite,
        seat: Seat,
        replaces: Option<ResumeRef>,
    ) -> Result<(RoomHandle, Joined), Refusal> {
        // The role the care team last gave the link's holder, if they changed it: it follows
        // the person to another tab or device (`rooms::room::roles`).
        let role = invite.role_for_join();
        // A room task that is stopping refuses with `Closed`; the second try starts a new one.
        let mut last = RoomError::Closed;
        for _ in 0..2 {
            let room = self.ctx.rooms.open(room_id).await.map_err(room_refusal)?;
            let (reply, rx) = oneshot::channel();
            // What the client asked for, as asked: the room narrows it to the role it settles
            // on (a reload carries over the room's own record of a change, which may be newer
            // than the one read here).
            let cmd = RoomCommand::Join {
                name: name.to_owned(),
                role,
                role_given: invite.role_now.is_some(),
                publish: join.publish.into(),
                simulcast: join.publish.simulcast,
                invite: invite.id.clone(),
                account: invite.account.clone(),
                institution: seat.institution.clone(),
                session: seat.session.clone(),
                replaces: replaces.clone(),
                link: self.link()?,
                reply,
            };
            if room.send(cmd).await.is_err() {
                continue;
            }
            match rx.await {
                Ok(Ok(joined)) => return Ok((room, joined)),
                Ok(Err(RoomError::Closed)) | Err(_) => continue,
                Ok(Err(e)) => {
                    last = e;
                    break;
                }
            }
        }
        Err(room_refusal(last))
    }

    /// The name a care-team seat's holder is shown under (name, title and institution from
    /// their account) and their institution, if their session is still open.
    async fn seat_name(
        &self,
        account: &UserId,
        session: &SessionId,
    ) -> Result<(String, InstitutionId), Refusal> {
        let unavailable = |_| (ErrorCode::Internal, "storage unavailable".to_string());
        let open = crate::sessions::still_open(&self.ctx.db, session, account, now_unix())
            .await
            .map_err(unavailable)?;
        if !open {
            return Err((
                ErrorCode::InvalidToken,
                "your sign-in has ended; sign in again to enter".into(),
            ));
        }
        let user = self
            .ctx
            .db
            .user(account)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| token_refusal(AuthError::InvalidToken))?;
        let institution = self
            .ctx
            .db
            .institution(&user.institution_id)
            .await
            .map_err(unavailable)?
            .map(|i| i.name)
            .unwrap_or_default();
        let label = clinician_label(
            &user.display_name,
            &user.title,
            &institution,
            MAX_NAME_CHARS,
        );
        Ok((label, user.institution_id))
    }

    async fn resume(&mut self, resume: Resume) -> Result<(RoomHandle, Joined), Refusal> {
        if resume.v != PROTOCOL_VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                format!("this server speaks version {PROTOCOL_VERSION}"),
            ));
        }
        let (room_id, rref) = self.resume_ref(&resume.resume_token, None)?;
        let room = self
            .ctx
            .rooms
            .get(&room_id)
            .ok_or((ErrorCode::ResumeFailed, "nothing to resume".to_string()))?;
        let (reply, rx) = oneshot::channel();
        room.send(RoomCommand::Resume {
            resume: rref,
            link: self.link()?,
            reply,
        })
        .await
        .map_err(room_refusal)?;
        match rx.await {
            Ok(Ok(joined)) => Ok((room, joined)),
            Ok(Err(e)) => Err(room_refusal(e)),
            Err(_) => Err(room_refusal(RoomError::ResumeFailed)),
        }
    }

    /// Checks a resume token; `room` restricts it to one room.
    fn resume_ref(
        &self,
        token: &str,
        room: Option<&RoomId>,
    ) -> Result<(RoomId, ResumeRef), Refusal> {
        let claims = self
            .ctx
            .key
            .verify(token, TokenKind::Resume)
            .map_err(token_refusal)?;
        let (Some(room_id), Some(participant)) = (claims.room, ParticipantId::parse(&claims.sub))
        else {
            return Err(token_refusal(AuthError::InvalidToken));
        };
        if room.is_some_and(|r| r != &room_id) {
            return Err(token_refusal(AuthError::WrongRoom));
        }
        Ok((
            room_id,
            ResumeRef {
                participant,
                nonce: claims.nonce,
            },
        ))
    }
}

fn token_refusal(e: AuthError) -> Refusal {
    match e {
        AuthError::Expired => (
            ErrorCode::TokenExpired,
            "this link has expired; ask for a new one".into(),
        ),
        _ => (ErrorCode::InvalidToken, "this link is not valid".into()),
    }
}

fn room_refusal(e: RoomError) -> Refusal {
    let code = match &e {
        RoomError::NotFound => ErrorCode::RoomNotFound,
        RoomError::Ended => ErrorCode::RoomEnded,
        RoomError::Full(_) | RoomError::RoomJoinsExhausted(_) => ErrorCode::RoomFull,
        RoomError::InviteJoinsExhausted(_) => ErrorCode::InviteUsedUp,
        RoomError::ServerFull => ErrorCode::ServerFull,
        RoomError::ResumeFailed => ErrorCode::ResumeFailed,
        RoomError::InviteRevoked => ErrorCode::InviteRevoked,
        RoomError::Locked => ErrorCode::RoomLocked,
        RoomError::ConsentRequired => ErrorCode::ConsentRequired,
        RoomError::Forbidden | RoomError::MayNotPublish(_) => ErrorCode::Forbidden,
        RoomError::Closed | RoomError::Storage(_) | RoomError::Audit(_) => {
            tracing::warn!(error = %e, "room unavailable");
            return (
                ErrorCode::Internal,
                "the room is unavailable; try again".into(),
            );
        }
    };
    (code, e.to_string())
}

/// The most a precall's times (round trips, jitter) are taken to be, in ms: a minute is no
/// call already.
const MAX_MS: u32 = 60_000;
/// The most a precall's rates are taken to be, in kbit/s: 10 Gbit/s, beyond what any browser
/// estimates or receives.
const MAX_KBPS: u32 = 10_000_000;

/// A `precall` from the wire as the room keeps it: every word checked, every figure capped.
fn precall_report(p: super::protocol::Precall) -> Result<rooms::Precall, &'static str> {
    let connection = rooms::ConnectionQuality::parse(&p.connection)
        .ok_or("precall.connection must be good, fair, poor or unknown")?;
    let device = |state: Option<String>, what: &'static str| {
        state
            .map(|s| rooms::DeviceCheck::parse(&s).ok_or(what))
            .transpose()
    };
    let camera_state = device(
        p.camera_state,
        "precall.camera_state must be ok, none or denied",
    )?;
    let microphone_state = device(
        p.microphone_state,
        "precall.microphone_state must be ok, none or denied",
    )?;
    let speaker = p
        .speaker
        .map(|s| {
            rooms::SpeakerCheck::parse(&s)
                .ok_or("precall.speaker must be heard, not_heard or untested")
        })
        .transpose()?;
    let media = match p.media_path.as_deref() {
        None => None,
        Some("connected") => Some(rooms::MediaPath::Connected(rooms::MediaFigures {
            rtt_ms: p.media_rtt_ms.map(|ms| ms.min(MAX_MS)),
            loss_permille: p.loss_permille.map(|l| l.min(1000)),
            up_kbps: p.up_kbps.map(|k| k.min(MAX_KBPS)),
            up_sent_kbps: p.up_sent_kbps.map(|k| k.min(MAX_KBPS)),
            down_kbps: p.down_kbps.map(|k| k.min(MAX_KBPS)),
            down_estimate_kbps: p.down_estimate_kbps.map(|k| k.min(MAX_DOWN_ESTIMATE_KBPS)),
            down_loss_permille: p.down_loss_permille.map(|l| l.min(1000)),
            down_jitter_ms: p.down_jitter_ms.map(|ms| ms.min(MAX_MS)),
        })),
        Some("failed") => Some(rooms::MediaPath::Failed),
        Some(_) => return Err("precall.media_path must be connected or failed"),
    };
    Ok(rooms::Precall {
        camera: p.camera,
        microphone: p.microphone,
        connection,
        rtt_ms: p.rtt_ms.map(|ms| ms.min(MAX_MS)),
        camera_state,
        microphone_state,
        speaker,
        media,
    })
}

/// What a care-team seat brings to its join besides the name: the account's institution, and
/// the sign-in that took the seat's token. Neither for an invitation link.
struct Seat {
    institution: Option<InstitutionId>,
    session: Option<SessionId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(v: serde_json::Value) -> super::super::protocol::Precall {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn precall_figures_are_kept_within_their_limits() {
        let p = precall_report(wire(serde_json::json!({
            "camera": true, "microphone": true, "connection": "fair",
            "rtt_ms": 4_000_000, "media_path": "connected", "media_rtt_ms": 70_000,
            "loss_permille": 1001, "up_kbps": u32::MAX, "up_sent_kbps": u32::MAX,
            "down_kbps": 10_000_001,
            "down_estimate_kbps": u32::MAX,
            "down_loss_permille": 5000, "down_jitter_ms": 60_001,
        })))
        .unwrap();
        assert_eq!(p.rtt_ms, Some(MAX_MS));
        assert_eq!(
            p.media,
            Some(rooms::MediaPath::Connected(rooms::MediaFigures {
                rtt_ms: Some(MAX_MS),
                loss_permille: Some(1000),
                up_kbps: Some(MAX_KBPS),
                up_sent_kbps: Some(MAX_KBPS),
                down_kbps: Some(MAX_KBPS),
                down_estimate_kbps: Some(MAX_DOWN_ESTIMATE_KBPS),
                down_loss_permille: Some(1000),
                down_jitter_ms: Some(MAX_MS),
            }))
        );
        // Within the limits, as sent; each figure optional.
        let p = precall_report(wire(serde_json::json!({
            "camera": true, "microphone": true, "connection": "good",
            "media_path": "connected", "down_kbps": 820, "down_loss_permille": 3,
            "down_estimate_kbps": 3100, "up_sent_kbps": 257,
        })))
        .unwrap();
        assert_eq!(
            p.media,
            Some(rooms::MediaPath::Connected(rooms::MediaFigures {
                rtt_ms: None,
                loss_permille: None,
                up_kbps: None,
                up_sent_kbps: Some(257),
                down_kbps: Some(820),
                down_estimate_kbps: Some(3100),
                down_loss_permille: Some(3),
                down_jitter_ms: None,
            }))
        );
        // A failed path carries no figures, whatever is sent with it.
        let p = precall_report(wire(serde_json::json!({
            "camera": true, "microphone": true, "connection": "poor",
            "media_path": "failed", "down_kbps": 820,
        })))
        .unwrap();
        assert_eq!(p.media, Some(rooms::MediaPath::Failed));
        // A figure that is no count is refused as the message is parsed (`bad_message`).
        let negative = serde_json::from_value::<super::super::protocol::Precall>(
            serde_json::json!({"camera": true, "microphone": true, "connection": "good",
                "media_path": "connected", "down_kbps": -1}),
        );
        assert!(negative.is_err());
    }
}
